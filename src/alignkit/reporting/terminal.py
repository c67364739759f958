"""A one-screen rich summary of an evaluation: the main table and a verdict per condition."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from alignkit.reporting import tables as T

if TYPE_CHECKING:  # reporting needs the schema only for type hints: no import of alignkit.conditions
    from alignkit.conditions.schema import EvaluationReport

STYLE = {"PASS": "bold green", "WEAK": "bold yellow", "FAIL": "bold red"}


def summary(report: EvaluationReport, console: Optional[Any] = None, title: str = "alignkit evaluation",
            folder: Optional[Any] = None) -> None:
    """Print the main table and the verdicts; the last line names the report in ``folder`` (the folder the
    report was written to; default: the run folder stored in the report)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    from rich.markup import escape

    lead = T.lead_line(report)
    if lead:
        console.print(escape(lead), highlight=False)
    if T.compliance_leads(report):
        h, rows = T.compliance_table(report)
        if rows:
            c = Table(title=f"{title}: compliance rate (1 - refusal rate; compliance phi {report.compliance.phi:.3f})",
                      title_justify="left")
            for col in h:
                c.add_column(col)
            for r in rows:
                c.add_row(*r)
            console.print(c)
    h, rows = T.main_table(report)
    t = Table(title=f"{title}: harmfulness (judge {report.judge}"
                    + (f", phi {report.phi:.3f})" if report.phi is not None else ")"), title_justify="left")
    for c in h:
        t.add_column(c)
    for r in rows:
        t.add_row(*r)
    console.print(t)
    h, rows = T.family_table(report)
    if rows:  # an attack suite: one row per model and family, budgets in each family's unit
        f = Table(title=f"attack suite {report.resistance.suite.spec} ({report.resistance.suite.budget} budget): per "
                        "family", title_justify="left")
        for c in h:
            f.add_column(c)
        for r in rows:
            f.add_row(*r)
        console.print(f)
    h, rows = T.verdict_table(report)
    v = Table(title="verdicts", title_justify="left")
    for c in h:
        v.add_column(c)
    for r in rows:
        v.add_row(r[0], *[f"[{STYLE[c.split()[0]]}]{c}[/]" if c.split() and c.split()[0] in STYLE else c for c in r[1:]])
    console.print(v)
    lead_c = T.compliance_leads(report)
    for kind, items in (("compliance", report.compliance_verdicts if lead_c else []),
                        ("harm score" if lead_c else "", report.verdicts)):
        for x in items:
            if x.verdict not in ("skipped",):
                what = f"{x.model}/{x.condition}" + (f" ({kind})" if kind else "")
                console.print(f"  [dim]{escape(what)}:[/] {escape(x.detail)}", highlight=False,
                              overflow="ellipsis", no_wrap=True)

    from alignkit.judges.card import report_lines  # the judge's measured validity, from its card

    console.print("[bold]what this judge can tell you[/]", highlight=False)
    for line in report_lines(report.judge)[:4]:  # what it measures, refusal detection, harmful content, pyrit
        console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)

    where = escape(str(folder) if folder is not None else report.run_dir)
    console.print(f"report: [bold]{where}/report.html[/] (and report.md, results.json)", highlight=False,
                  soft_wrap=True)
