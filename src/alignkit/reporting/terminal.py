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
    h, rows = T.main_table(report)
    t = Table(title=f"{title}: harmfulness (judge {report.judge}"
                    + (f", phi {report.phi:.3f})" if report.phi is not None else ")"), title_justify="left")
    for c in h:
        t.add_column(c)
    for r in rows:
        t.add_row(*r)
    console.print(t)
    h, rows = T.verdict_table(report)
    v = Table(title="verdicts", title_justify="left")
    for c in h:
        v.add_column(c)
    for r in rows:
        v.add_row(r[0], *[f"[{STYLE[c.split()[0]]}]{c}[/]" if c.split() and c.split()[0] in STYLE else c for c in r[1:]])
    console.print(v)
    for x in report.verdicts:
        if x.verdict not in ("skipped",):
            console.print(f"  [dim]{x.model}/{x.condition}:[/] {x.detail}", highlight=False, overflow="ellipsis",
                          no_wrap=True)
    from rich.markup import escape

    where = escape(str(folder) if folder is not None else report.run_dir)
    console.print(f"report: [bold]{where}/report.html[/] (and report.md, results.json)", highlight=False,
                  soft_wrap=True)
