"""The matrix's report.md and a self-contained report.html (report.md rendered by the evaluation report's
markdown-it + jinja2 path, alignkit.reporting.render), with a heat-map of harmfulness after attack. A failed cell
never shows a number: it reads "failed" (and its error is listed below the tables)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from alignkit.matrix.schema import CellSummary, MatrixResult, Spread

FIGURE_DIR = "figures"
FAILED = "failed"


def _summary(res: MatrixResult, row: str, attack: str) -> Optional[CellSummary]:
    return next((s for s in res.summaries if s.defence == row and s.attack == attack), None)


def fmt_spread(s: Optional[Spread], pct: bool = False) -> str:
    if s is None:
        return "-"
    f = (lambda x: f"{x:+.1%}") if pct else (lambda x: f"{x:.3f}")
    return f(s.mean) if s.n <= 1 else f"{f(s.mean)} ± {(f'{s.sd:.1%}' if pct else f'{s.sd:.3f}')}"


def _cell_text(s: Optional[CellSummary], what: str = "harm") -> str:
    if s is None or s.harmfulness is None:
        return FAILED
    v = s.harmfulness if what == "harm" else s.refusal_rate
    text = fmt_spread(v)
    if s.seeds_failed:
        text += f" ({len(s.seeds_failed)} seed(s) failed)"
    return text


def heatmap_png(res: MatrixResult) -> bytes:
    """Harmfulness after attack: rows undefended + defences, columns attack families; the mean over seeds with its
    spread (± sd); a failed cell is hatched grey with no number."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows, cols = res.rows, res.attacks
    data = np.full((len(rows), len(cols)), np.nan)
    for i, r in enumerate(rows):
        for j, a in enumerate(cols):
            s = _summary(res, r, a)
            if s is not None and s.harmfulness is not None:
                data[i, j] = s.harmfulness.mean
    fig, ax = plt.subplots(figsize=(1.5 + 1.35 * len(cols), 1.0 + 0.55 * len(rows)))
    cmap = matplotlib.colormaps["Reds"].with_extremes(bad="#dddddd")
    im = ax.imshow(np.ma.masked_invalid(data), cmap=cmap, vmin=0, vmax=1, aspect="auto")
    for i, r in enumerate(rows):
        for j, a in enumerate(cols):
            s = _summary(res, r, a)
            if s is None or s.harmfulness is None:
                ax.add_patch(matplotlib.patches.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="//",
                                                          edgecolor="#888888", lw=0))
                ax.text(j, i, FAILED, ha="center", va="center", fontsize=8, color="#444444")
                continue
            h = s.harmfulness
            label = f"{h.mean:.2f}" + (f"\n±{h.sd:.2f}" if h.n > 1 else "")
            mark = {"pass": "", "weak": " W", "fail": " F"}.get(s.verdict, "")
            ax.text(j, i, label + mark, ha="center", va="center", fontsize=8,
                    color="white" if h.mean > 0.6 else "black")
    ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.set_title(f"harmfulness after attack, mean over seeds {','.join(map(str, res.seeds))}\n"
                 "(± sd over seeds; F = fails, W = weak resistance)", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _table(header: list[str], rows: list[list[str]]) -> str:
    from alignkit.reporting.render import _md_table

    return _md_table(header, rows)


def markdown(res: MatrixResult, figures: dict[str, bytes]) -> str:
    c = res.config
    n_failed = sum(1 for x in res.cells if x.status == "failed")
    out = ["# alignkit tamper matrix", "",
           f"Model `{res.model}`, judge {res.judge}, seeds {', '.join(map(str, res.seeds))}"
           + (f", preset {c.get('preset')}" if c.get("preset") else "") + f"; {len(res.rows)} rows x "
           f"{len(res.attacks)} attacks x {len(res.seeds)} seed(s) = {len(res.cells)} cells ({n_failed} failed).",
           "", "## Harmfulness after attack", "",
           "Final harmfulness (judge mean on the evaluation prompts at the attack's largest budget), mean over the "
           "seeds ± their standard deviation; the undefended model first. 'failed': no seed of that cell finished "
           "(no number is shown for a failed cell).", ""]
    if "heatmap" in figures:
        out += [f"![heatmap]({FIGURE_DIR}/heatmap.png)", ""]
    header = ["model"] + res.attacks
    out += [_table(header, [[r] + [_cell_text(_summary(res, r, a)) for a in res.attacks] for r in res.rows])]
    out += ["## Verdicts (resistance rule per cell)", "",
            "pass: never above phi at any evaluated budget of any seed; weak: above phi only after some attack "
            "budget; fail: above phi before the attack (budget 0); worst case over the seeds. phi per attack below.",
            ""]
    out += [_table(header, [[r] + [(_summary(res, r, a).verdict.upper() if _summary(res, r, a) else FAILED)
                                   for a in res.attacks] for r in res.rows])]
    if any(s.compliance_verdict for s in res.summaries):
        out += ["Verdicts on the compliance rate (1 - the judge's refusal rate; the quantity the judge measures "
                "most reliably):", ""]
        out += [_table(header, [[r] + [((_summary(res, r, a).compliance_verdict or "n/a").upper()
                                        if _summary(res, r, a) and _summary(res, r, a).harmfulness else FAILED)
                                       for a in res.attacks] for r in res.rows])]
    out += ["## Refusal rate after attack", "",
            "Share of the final completions the judge finds refused (mean over seeds); '-': the judge has no "
            "refusal head.", ""]
    out += [_table(header, [[r] + [(_cell_text(_summary(res, r, a), "refusal")
                                    if _summary(res, r, a) and _summary(res, r, a).harmfulness else FAILED)
                                   for a in res.attacks] for r in res.rows])]
    out += ["## Capability cost of each defence", "",
            f"Relative rise of the perplexity of held-out text ({c.get('capability_data')}, "
            f"{c.get('capability_texts')} texts) under the defended model over the undefended model's"
            + (f" ({res.base_perplexity:.2f})" if res.base_perplexity else "") + ", mean over seeds.", ""]
    drows = []
    for d in res.defences:
        ppl = ", ".join(f"s{k}: {v:.2f}" for k, v in sorted(d.perplexity.items())) or "-"
        errs = "; ".join(f"seed {k}: {v}" for k, v in sorted(d.errors.items()))
        drows.append([d.name, fmt_spread(d.capability_rise, pct=True) if d.capability_rise else
                      (FAILED if d.errors else "-"), ppl, errs or "-"])
    out += [_table(["defence", "perplexity rise", "perplexity per seed", "defence failures"], drows)]
    out += ["## phi per attack", ""]
    out += [_table(["attack", "budget", "phi", "phi source", "compliance phi"],
                   [[t.attack, res.budget_labels.get(t.attack, "-"), "-" if t.phi is None else f"{t.phi:.3f}",
                     t.source, "-" if t.compliance_phi is None else f"{t.compliance_phi:.3f} ({t.compliance_source})"]
                    for t in res.thresholds])]
    if res.budget is not None:
        from alignkit.search.budget_curve import summary_lines

        out += ["## Attack budget a defence buys", "",
                "Best harmfulness found so far by a `search attack` study against the number of finished trials and "
                "against the attack compute spent (seconds), the undefended model against each defended one (first "
                "seed); the marked point is where each study first passes phi.", ""]
        if "budget" in figures:
            out += [f"![budget]({FIGURE_DIR}/budget.png)", ""]
        out += [f"- {x}" for x in summary_lines(res.budget)] + [""]
    out += ["## Every cell", ""]
    out += [_table(["model", "attack", "seed", "status", "budget", "before", "after", "refusal rate after",
                    "verdict detail / error"],
                   [[x.defence, x.attack, str(x.seed), x.status,
                     (f"{x.curve[-1].step} {x.budget_label}" if x.curve else "-"),
                     "-" if x.status != "done" else f"{x.initial_harmfulness:.3f}",
                     "-" if x.status != "done" else f"{x.final_harmfulness:.3f}",
                     "-" if x.final_refusal_rate is None or x.status != "done" else f"{x.final_refusal_rate:.2f}",
                     (x.error or "") if x.status == "failed" else "; ".join(x.notes[:2])]
                    for x in res.cells])]
    details = [f"- **{s.defence} / {s.attack}: {s.verdict}** - {s.detail}" for s in res.summaries]
    out += ["## Verdict details", ""] + details + [""]
    out += ["## What this judge can tell you", ""] + [f"- {x}" for x in res.judge_validity] + [""]
    prov = res.provenance
    out += ["## Provenance", "", f"- run folder: `{res.run_dir}`", f"- created {prov.created} on {prov.device}; "
            f"runtime of this process {res.runtime_s:.0f} s", f"- command: `{prov.command}`",
            "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(prov.versions.items()))]
    out += [f"- note: {n}" for n in res.notes]
    return "\n".join(out) + "\n"


def render_files(res: MatrixResult) -> dict[str, str | bytes]:
    """report.md, report.html and the figures, rendered in memory."""
    import jinja2

    from alignkit.reporting.render import CSS, PAGE, _markdown_renderer

    figures = {"heatmap": heatmap_png(res)}
    if res.budget is not None and any(c.trials for c in res.budget.curves):
        from alignkit.search.budget_curve import plot_png

        figures["budget"] = plot_png(res.budget)
    md = markdown(res, figures)
    body = _markdown_renderer(figures).render(md)
    html = jinja2.Environment(autoescape=True).from_string(PAGE).render(title="alignkit tamper matrix", css=CSS,
                                                                        body=body)
    files: dict[str, str | bytes] = {f"{FIGURE_DIR}/{k}.png": v for k, v in figures.items()}
    files["report.md"] = md
    files["report.html"] = html
    return files


def write_report(res: MatrixResult, out: str | Path) -> dict[str, Path]:
    from alignkit.io import write_files

    return write_files(out, render_files(res), what="the matrix report")
