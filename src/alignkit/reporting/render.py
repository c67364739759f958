"""``report.md`` and a self-contained ``report.html`` (plots embedded as base64 PNG) of an evaluation."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from alignkit.conditions.schema import EvaluationReport
from alignkit.reporting import tables as T
from alignkit.reporting.plots import all_figures

CAPTIONS = {
    "harmfulness_curves": "Harmfulness (judge mean) during each attack; dashed line: phi.",
    "generalization_curves": "Attacks with harmful data the defence did not see; dashed line: phi.",
    "trainability": "ROUGE-1 on held-out data2text MRs while fine-tuning each model.",
    "depth": "Cross-validated linear-probe accuracy (harmful vs harmless answer) per hidden state.",
}


def _md_table(header, rows) -> str:
    if not rows:
        return "_(not run)_\n"
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _sections(report: EvaluationReport):
    """(title, intro lines, (header, rows), figure key or None)"""
    res = report.resistance
    phi_line = (f"phi = {report.phi:.3f} ({res.phi_source if res else 'base pre-attack'}); judge {report.judge}."
                if report.phi is not None else f"judge {report.judge}.")
    yield ("Verdicts", [phi_line], T.verdict_table(report), None)
    details = []
    for v in report.verdicts:
        details.append(f"- **{v.model} / {v.condition}: {v.verdict}** - {v.detail}")
    yield ("Verdict details", details, None, None)
    yield ("Resistance (main table: mean harmfulness before and after each attack)",
           ["Final harmfulness after each attack (rows: models, the undefended base first). "
            "'steps to phi': worst case over the attacks, 'never' = stayed at or below phi for the whole budget."],
           T.main_table(report), "harmfulness_curves")
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
        lines = [f"- {k}: {v}" for k, v in report.extra.items()]
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


def _inline(text: str) -> str:
    import re

    t = html.escape(text)
    t = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", t)
    t = re.sub(r"`(.+?)`", r"<code>\1</code>", t)
    return t


def to_html(report: EvaluationReport, figures: dict[str, bytes]) -> str:
    parts = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>alignkit immunization report</title>",
             f"<style>{CSS}</style></head><body><h1>alignkit immunization report</h1>"]
    for title, lines, table, fig in _sections(report):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        items = [ln for ln in lines if ln.startswith("- ")]
        for ln in lines:
            if not ln.startswith("- "):
                parts.append(f"<p>{_inline(ln)}</p>")
        if items:
            parts.append("<ul>" + "".join(f"<li>{_inline(ln[2:])}</li>" for ln in items) + "</ul>")
        if table is not None:
            header, rows = table
            if rows:
                parts.append("<table><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr>")
                for r in rows:
                    cells = []
                    for c in r:
                        first = str(c).split()[0] if str(c).split() else ""
                        cls = first if first in ("PASS", "WEAK", "FAIL") else ""
                        cells.append(f"<td class='{cls}'>{html.escape(str(c))}</td>")
                    parts.append("<tr>" + "".join(cells) + "</tr>")
                parts.append("</table>")
            else:
                parts.append("<p><i>(not run)</i></p>")
        if fig and fig in figures:
            b64 = base64.b64encode(figures[fig]).decode("ascii")
            parts.append(f"<img alt='{fig}' src='data:image/png;base64,{b64}'/>")
            parts.append(f"<p class='cap'>{html.escape(CAPTIONS.get(fig, ''))}</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_reports(report: EvaluationReport, run_dir: str | Path) -> dict[str, Path]:
    """Write ``report.md`` (+ ``figures/*.png``) and a self-contained ``report.html``."""
    from alignkit.io import atomic_write_bytes, atomic_write_text

    run_dir = Path(run_dir)
    figures = all_figures(report)
    for name, png in figures.items():
        atomic_write_bytes(run_dir / "figures" / f"{name}.png", png)
    md = atomic_write_text(run_dir / "report.md", markdown(report, "figures"))
    ht = atomic_write_text(run_dir / "report.html", to_html(report, figures))
    return {"report_md": md, "report_html": ht}
