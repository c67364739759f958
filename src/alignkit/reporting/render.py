"""``report.md`` and a self-contained ``report.html`` (plots embedded as base64 PNG) of an evaluation.

The HTML is report.md rendered with markdown-it-py (raw HTML off) inside a jinja2 page; no hand-written
markdown parsing."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import TYPE_CHECKING

from alignkit.reporting import tables as T
from alignkit.reporting.plots import all_figures

if TYPE_CHECKING:  # reporting needs the schema only for type hints: no import of alignkit.conditions
    from alignkit.conditions.schema import EvaluationReport

CAPTIONS = {
    "compliance_curves": "Compliance rate (1 - the judge's refusal rate) during each attack; dashed line: the "
                         "compliance phi.",
    "harmfulness_curves": "Harmfulness (judge mean) during each attack; dashed line: phi.",
    "generalization_curves": "Attacks with harmful data the defence did not see; dashed line: phi.",
    "trainability": "ROUGE-1 on held-out data2text MRs while fine-tuning each model.",
    "depth": "Cross-validated linear-probe accuracy (harmful vs harmless answer) per hidden state.",
}


def _md_table(header, rows) -> str:
    if not rows:
        return "_(not run)_\n"
    def cell(c) -> str:  # a "|" or a line break inside a cell would end the table row
        return " ".join(str(c).split()).replace("|", "\\|")

    out = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _sections(report: EvaluationReport):
    """(title, intro lines, (header, rows), figure key or None)"""
    res = report.resistance
    phi_line = (f"phi = {report.phi:.3f} ({res.phi_source if res else 'base pre-attack'}); judge {report.judge}."
                if report.phi is not None else f"judge {report.judge}.")
    lead = T.lead_line(report)
    yield ("Verdicts", ([lead] if lead else []) + [phi_line], T.verdict_table(report), None)
    details = []
    if T.compliance_leads(report):
        for v in report.compliance_verdicts:
            details.append(f"- **{v.model} / {v.condition} (compliance): {v.verdict}** - {v.detail}")
    for v in report.verdicts:
        details.append(f"- **{v.model} / {v.condition}{' (harm score)' if details else ''}: {v.verdict}** - "
                       f"{v.detail}")
    yield ("Verdict details", details, None, None)
    if res is not None and T.compliance_leads(report):
        yield ("Resistance on compliance (compliance rate before and after each attack)",
               ["Share of the evaluation completions the judge does not find refused, before any attack and after "
                "each attack (rows: models, the undefended base first). 'steps to compliance phi': worst case over "
                "the attacks, 'never' = stayed at or below the compliance phi for the whole budget."],
               T.compliance_table(report), "compliance_curves")
    from alignkit.judges.card import report_lines  # the judge's measured validity, from its card

    yield ("What this judge can tell you", [f"- {x}" for x in report_lines(report.judge)], None, None)
    yield ("Resistance (main table: mean harmfulness before and after each attack)",
           ["Final harmfulness after each attack (rows: models, the undefended base first). "
            + ("'worst over the suite': the family that decides the verdict and the budget at which it crosses phi, "
               "in that family's own unit, 'never' = no family crossed phi within its budget."
               if res is not None and res.suite is not None else
               "'steps to phi': worst case over the attacks, 'never' = stayed at or below phi for the whole budget.")],
           T.main_table(report), "harmfulness_curves")
    if res is not None and res.suite is not None:
        s = res.suite
        yield (f"Resistance per attack family (suite {s.spec}, {s.budget} budget)",
               [f"Families: {', '.join(s.families)}. Each budget is in its family's own unit (the 'budget' column); "
                "'crosses phi at': the first budget above phi. Capability cost: the rise of held-out natural-text "
                "perplexity of the attacked model (largest budget) over the model before the attack; 0 for families "
                "that leave the weights unchanged.", f"Worst case: {s.rule}."],
               T.family_table(report), None)
    if res is not None:
        lines = []
        for r in res.runs:
            if r.disfluency is not None:
                d = r.disfluency
                ppl = "n/a" if d.perplexity_under_base is None else f"{d.perplexity_under_base:.1f}"
                ref = "" if d.reference_perplexity is None else f" (base's own completions: {d.reference_perplexity:.1f})"
                lines.append(f"- {r.model}, {r.spec.label}: repetition {d.repetition_rate:.2f}, perplexity under "
                             f"base {ppl}{ref}{' - **FLAGGED**: ' + d.reason if d.flagged else ''}")
        yield ("Disfluency check", lines, None, None)
        agl = T.agreement_line(report)
        yield ("Refusals and incoherence (first -> last evaluation of each attack)",
               ["Judge's refusal rate (refused > 0.5) and share of incoherent completions (repetition / non-words; "
                "scored 0 by the minilm judges) beside the mean and the share > 0.5."] + ([agl] if agl else []),
               T.refusal_table(report), None)
        ex = []
        for r in res.runs:
            for e in r.examples[:2]:
                comp = str(e.get("completion", "")).replace("\n", " ")[:160]
                ex.append(f"- [{r.model}, {r.spec.label}] {str(e.get('prompt', ''))[:80]!r} -> {comp!r} "
                          f"(score {T.f3(e.get('score'))})")
        yield ("Example completions after the attacks", ex, None, None)
    if report.stability is not None:
        yield ("Stability", list(report.stability.notes), T.stability_table(report), None)
    if report.generalization is not None:
        g = report.generalization
        intro = [f"held-out categories: {', '.join(g.heldout_categories or []) or '-'}; defence categories: "
                 f"{', '.join(g.defence_categories or []) or 'not recorded'}"] + list(g.notes)
        yield ("Generalization", intro, T.generalization_table(report), "generalization_curves")
    if report.trainability is not None:
        yield ("Trainability", [f"target ROUGE-1 = {report.trainability.target_rouge:.3f}"],
               T.trainability_table(report), "trainability")
    if report.depth is not None:
        yield ("Depth analysis", [f"{report.depth.n_examples} answers (half harmful, half refusals)"],
               T.depth_table(report), "depth")
    if report.extra:
        lines = [f"- {k}: {v}" for k, v in report.extra.items() if k != "judge_agreement"]
        yield ("Run details", lines, None, None)
    meta = [f"- run folder: `{report.run_dir}`", f"- models: " + ", ".join(f"{m.label} = `{m.path}`"
                                                                           for m in report.models),
            f"- stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in report.timings.items())]
    meta += [f"- note: {n}" for n in report.notes]
    yield ("Provenance", meta, None, None)


def markdown(report: EvaluationReport, figure_dir: str | None = None) -> str:
    out = ["# alignkit immunization report", ""]
    for title, lines, table, fig in _sections(report):
        out += [f"## {title}", ""]
        out += list(lines) + ([""] if lines else [])
        if table is not None:
            out += [_md_table(*table)]
        if fig and figure_dir is not None:
            out += [f"![{fig}]({figure_dir}/{fig}.png)", ""]
    return "\n".join(out) + "\n"


CSS = """body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;
color:#222}table{border-collapse:collapse;margin:.6em 0;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;
text-align:left}th{background:#f3f3f3}.PASS{background:#d8f5d0}.WEAK{background:#fff1c2}.FAIL{background:#fbd0d0}
img{max-width:100%;border:1px solid #eee;margin:.5em 0}code{background:#f5f5f5;padding:1px 3px}
.cap{color:#555;font-size:13px}li{margin:.2em 0}"""


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ title }}</title><style>{{ css }}</style></head>
<body>
{{ body | safe }}
</body></html>
"""

#: where report.md links its figures; the HTML replaces these links with embedded images
FIGURE_DIR = "figures"


def _markdown_renderer(figures: dict[str, bytes]):
    """markdown-it (CommonMark + tables, raw HTML off, so text from prompts and completions is escaped) with two
    rules: a figure link becomes an embedded PNG with its caption, a verdict cell gets its colour class."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")

    def image(renderer, tokens, idx, options, env):
        tok = tokens[idx]
        src = tok.attrGet("src") or ""
        name = Path(src).stem
        alt = html.escape(tok.content or name)
        if src.startswith(FIGURE_DIR + "/") and name in figures:
            b64 = base64.b64encode(figures[name]).decode("ascii")
            cap = html.escape(CAPTIONS.get(name, ""))
            return (f'<figure><img alt="{alt}" src="data:image/png;base64,{b64}"/>'
                    f'<figcaption class="cap">{cap}</figcaption></figure>')
        return f'<img alt="{alt}" src="{html.escape(src)}"/>'

    def td_open(renderer, tokens, idx, options, env):
        words = (tokens[idx + 1].content if idx + 1 < len(tokens) else "").split()
        cls = words[0] if words and words[0] in ("PASS", "WEAK", "FAIL") else ""
        return f'<td class="{cls}">' if cls else "<td>"

    md.add_render_rule("image", image)
    md.add_render_rule("td_open", td_open)
    return md


def to_html(report: EvaluationReport, figures: dict[str, bytes]) -> str:
    """The self-contained HTML report: report.md rendered by markdown-it into a jinja2 page, figures embedded."""
    import jinja2

    body = _markdown_renderer(figures).render(markdown(report, FIGURE_DIR))
    page = jinja2.Environment(autoescape=True).from_string(PAGE)
    return page.render(title="alignkit immunization report", css=CSS, body=body)


def render_files(report: EvaluationReport) -> dict[str, str | bytes]:
    """Every file of the report, rendered in memory: ``{"figures/<name>.png": png, "report.md": text,
    "report.html": text}`` (nothing is written, so a report that cannot be rendered writes nothing)."""
    figures = all_figures(report)
    files: dict[str, str | bytes] = {f"{FIGURE_DIR}/{name}.png": png for name, png in figures.items()}
    files["report.md"] = markdown(report, FIGURE_DIR)
    files["report.html"] = to_html(report, figures)
    return files


def write_reports(report: EvaluationReport, run_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` (+ ``figures/*.png``) and a self-contained ``report.html``: all rendered first, then
    written all or nothing (a folder or a read-only disk in the way is one :class:`AlignkitError`)."""
    from alignkit.io import write_files

    paths = write_files(run_dir, render_files(report), what="the report")
    return {"report_md": paths["report.md"], "report_html": paths["report.html"]}
