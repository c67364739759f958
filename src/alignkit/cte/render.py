"""Pictures of CTEs: a side-by-side PNG (original vs counterfactual) and an HTML gallery.

Each panel shows the shared start state (walls grey, houses brown, goal green, citizens blue, player
red) and the path of the player: a line through the cells it visits (start = red square, end = black
ring), a yellow star on every citizen it rescues, and a title with the average learned reward of the
segment, its length and its ground-truth return.
"""

from __future__ import annotations

import html
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from alignkit.cte.env import ACTION_NAMES, SIZE, EmergencyState, render_state  # noqa: E402

CELL = 32


def _path(states: list[EmergencyState]):
    rc = np.array([divmod(s.player, SIZE) for s in states], dtype=float)
    rescued = []
    for a, b in zip(states[:-1], states[1:]):
        gone = a.citizens & ~b.citizens
        if gone:
            rescued.append(divmod(gone.bit_length() - 1, SIZE))
    gt = sum(10.0 * bool(a.citizens & ~b.citizens) + 0.1 * (a.player == 6 * SIZE + 6)  # goal bonus: pre-move
             for a, b in zip(states[:-1], states[1:]))
    return rc, rescued, gt


def _panel(ax, states, actions, rewards, title, color):
    ax.imshow(render_state(states[0], CELL))
    rc, rescued, gt = _path(states)
    xs, ys = rc[:, 1] * CELL + CELL / 2, rc[:, 0] * CELL + CELL / 2
    ax.plot(xs, ys, "-", color=color, lw=3, alpha=0.85)
    ax.plot(xs[-1], ys[-1], "o", ms=14, mfc="none", mec="black", mew=2)
    for r, c in rescued:
        ax.plot(c * CELL + CELL / 2, r * CELL + CELL / 2, "*", ms=18, color="gold", mec="black")
    mean_r = float(np.mean(rewards)) if len(rewards) else 0.0
    steps = f"{len(actions)} step{'' if len(actions) == 1 else 's'}"
    ax.set_title(f"{title}\nmean learned reward {mean_r:+.3f}\n{steps}, ground truth {gt:.1f}", fontsize=10)
    acts = ", ".join(ACTION_NAMES[a] for a in actions[:10]) + (" ..." if len(actions) > 10 else "")
    ax.set_xlabel(textwrap.fill(acts, 70), fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def draw_cte(orig_states, cf_states, orig_actions, cf_actions, orig_rewards, cf_rewards, path: str | Path,
             header: str = "") -> Path:
    """Write a PNG with the original (left) and the counterfactual (right) from the same start state."""
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 5.4))
    _panel(axes[0], orig_states, orig_actions, orig_rewards, "original", "darkorange")
    _panel(axes[1], cf_states, cf_actions, cf_rewards, "counterfactual", "purple")
    if header:
        fig.suptitle(header, fontsize=11, fontweight="bold")
        fig.tight_layout(rect=(0, 0, 1, 0.94))
    else:
        fig.tight_layout()
    from alignkit.io import unique_temp

    path = Path(path)
    try:
        with unique_temp(path) as tmp:  # unique name beside the PNG, removed on failure
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)
    return path


def gallery_html(items: list[dict], title: str = "Counterfactual trajectory explanations",
                 curves: str | None = None) -> str:
    """``items``: dicts with png (relative path), method, start, quality, mean rewards and criteria;
    ``curves``: relative path of the proxy-human learning-curve PNG, shown first."""
    cards = []
    for it in items:
        crit = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.3f}</td></tr>" for k, v in it["raw"].items())
        cards.append(
            f'<div class="card"><img src="{html.escape(it["png"])}" alt="CTE {it["index"]}">'
            f'<p><b>{html.escape(it["method"])} #{it["index"]}</b> &mdash; start t={it["start"]}, '
            f'quality {it["quality"]:.2f}<br>mean learned reward: original {it["mean_reward_orig"]:+.3f}, '
            f'counterfactual {it["mean_reward_cf"]:+.3f}</p>'
            f'<details><summary>criteria (raw)</summary><table>{crit}</table></details></div>')
    return ("<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;margin:1em} .card{display:inline-block;vertical-align:top;width:440px;"
            "margin:8px;padding:6px;border:1px solid #ccc} img{width:430px} table{font-size:12px}"
            "</style></head><body><h1>" + html.escape(title) + "</h1>"
            "<p>Left: the agent's original partial trajectory; right: the counterfactual from the same start "
            "state. Stars mark rescued citizens; the ring marks where each segment ends.</p>"
            + (f"<h2>Proxy-human learning curves</h2><p>How well a proxy human predicts the learned reward "
               f"after learning from n_train CTEs of each generator (95% bands over seeds); the dashed line "
               f"sees only the start state.</p><img style='width:900px' src='{html.escape(curves)}' "
               f"alt='learning curves'>" if curves else "")
            + "<h2>CTEs</h2>" + "".join(cards) + "</body></html>\n")
