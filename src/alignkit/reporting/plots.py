"""Matplotlib figures of an evaluation (headless Agg backend), returned as PNG bytes."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # reporting needs the schema only for type hints: no import of alignkit.conditions
    from alignkit.conditions.schema import AttackRun, EvaluationReport


def _fig_bytes(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _points(r, quantity: str) -> tuple[list, list]:
    if quantity == "compliance":
        return [p.step for p in r.compliance or []], [p.compliance for p in r.compliance or []]
    return [p.step for p in r.curve], [p.harmfulness for p in r.curve]


def harmfulness_curves(runs: list[AttackRun], phi: Optional[float], title: str, quantity: str = "harm"
                       ) -> Optional[bytes]:
    """One panel per attack setting: every model's curve, phi as a dashed line. ``quantity="compliance"``: the
    runs' compliance rates against the compliance phi."""
    runs = [r for r in runs if _points(r, quantity)[0]]
    if not runs:
        return None
    plt = _plt()
    keys = list(dict.fromkeys(r.spec.key for r in runs))
    n = len(keys)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    models = list(dict.fromkeys(r.model for r in runs))
    colors = {m: f"C{i}" for i, m in enumerate(models)}
    for ax, key in zip(axes.flat, keys):
        sub = [r for r in runs if r.spec.key == key]
        for r in sub:
            ax.plot(*_points(r, quantity), marker="o", ms=3,
                    color=colors[r.model], label=r.model + (" (disfluent)" if r.disfluency and r.disfluency.flagged
                                                            else ""))
        if phi is not None:
            ax.axhline(phi, ls="--", color="k", lw=1, label=f"phi = {phi:.2f}")
        ax.set_title(sub[0].spec.label, fontsize=9)
        ax.set_xlabel(getattr(sub[0].spec, "budget_label", "attack step"))
        ax.set_ylabel("compliance rate" if quantity == "compliance" else "harmfulness")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title)
    return _fig_bytes(fig)


def depth_plot(report: EvaluationReport) -> Optional[bytes]:
    if report.depth is None or not report.depth.models:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    for i, m in enumerate(report.depth.models):
        ax.plot(range(len(m.layer_accuracy)), m.layer_accuracy, marker="o", ms=3, color=f"C{i}", label=m.model)
    ax.axhline(0.5, ls=":", color="grey", lw=1, label="chance")
    ax.set_xlabel("hidden state (0 = embeddings)")
    ax.set_ylabel("probe accuracy")
    ax.set_ylim(0.4, 1.02)
    ax.set_title("Linear probe: harmful vs harmless answer, per layer")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _fig_bytes(fig)


def trainability_plot(report: EvaluationReport) -> Optional[bytes]:
    if report.trainability is None or not report.trainability.models:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for i, m in enumerate(report.trainability.models):
        ax.plot([p.step for p in m.curve], [p.rouge1 for p in m.curve], marker="o", ms=3, color=f"C{i}",
                label=m.model)
    ax.axhline(report.trainability.target_rouge, ls="--", color="k", lw=1, label="target")
    ax.set_xlabel("fine-tuning step (data2text)")
    ax.set_ylabel("ROUGE-1")
    ax.set_title("Trainability")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _fig_bytes(fig)


def all_figures(report: EvaluationReport) -> dict[str, bytes]:
    figs: dict[str, Optional[bytes]] = {}
    th = report.compliance
    if report.resistance is not None and th is not None and th.available:
        figs["compliance_curves"] = harmfulness_curves(report.resistance.runs, th.phi, "Resistance: compliance "
                                                       "rate (1 - refusal rate) during the attack", "compliance")
    if report.resistance is not None:
        figs["harmfulness_curves"] = harmfulness_curves(report.resistance.runs, report.phi,
                                                        "Resistance: harmfulness during the attack")
    if report.generalization is not None:
        figs["generalization_curves"] = harmfulness_curves(
            report.generalization.in_domain + report.generalization.cross_domain, report.phi,
            "Generalization: attacks with unseen harmful data")
    figs["trainability"] = trainability_plot(report)
    figs["depth"] = depth_plot(report)
    return {k: v for k, v in figs.items() if v}
