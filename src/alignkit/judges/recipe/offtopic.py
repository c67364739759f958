"""Off-topic pairs: labelled "does not comply" rows made by pairing a request with another request's answer.

Why: pyrit's refusal scorer (and any "did the response achieve the objective" label) counts a fluent answer to a
*different* question as not complying. The judges' refusal head learns refusals from refusal phrases and shapes;
a fluent off-topic answer looks like compliance to it (``minilm@3`` misread 46 of pyrit's 169 refusal-scorer rows,
nearly all of them non-compliant rows read as complying, most of those answers to another prompt). Off-topic answers need no human
labels: pairing request i with a complying answer j of *another* category gives an answer to a different
question by construction (the self-supervised negatives used to train retrieval and relevance models).

The pairs train the relevance gate of ``minilm@5`` (:func:`alignkit.judges.recipe.heads.fit_heads`): a 2-feature
logistic regression on the prompt-completion and prompt-opening cosine similarities, matched complying rows
against these pairs. Only complying rows of pyrit's harm files and of the templated generator are paired (never
pyrit's refusal-scorer rows, which the out-of-distribution table holds out), each at most once as the request and
once at random as the answer. A pair carries both categories (``cat`` = the request's, ``also_cats`` = the
answer's) so that leave-one-category-out drops it when either side belongs to the held-out category; a pair of
two templated rows is marked ``src="synthetic"`` (the refusal-scorer -> harm protocol trains on templated rows
only), any other ``src="offtopic-pair"``. Pairs have ``refused=1`` and no harm or combined label: they train the
gate only. Deterministic: ``random.Random(f"alignkit-offtopic:{seed}")``.
"""

from __future__ import annotations

import random
from typing import Any

KIND = "offtopic-pair"
SOURCES = ("pyrit-harm", "synthetic")


def offtopic_pairs(rows: list[dict[str, Any]], seed: int = 0, per_row: float = 1.0) -> list[dict[str, Any]]:
    """Rows pairing each complying request of ``rows`` (with probability ``per_row``) with a complying answer of
    another category (see the module docstring)."""
    if not 0.0 <= per_row <= 1.0:
        raise ValueError(f"per_row must be within [0, 1]; got {per_row}")
    rng = random.Random(f"alignkit-offtopic:{seed}")
    comply = [i for i, r in enumerate(rows) if r["src"] in SOURCES and r["refused"] == 0.0]
    if len({rows[i]["cat"] for i in comply}) < 2:
        return []
    out = []
    for i in comply:
        if rng.random() > per_row:
            continue
        while True:
            j = rng.choice(comply)
            if rows[j]["cat"] != rows[i]["cat"]:
                break
        both_templated = rows[i]["src"] == rows[j]["src"] == "synthetic"
        out.append(dict(src="synthetic" if both_templated else "offtopic-pair", cat=rows[i]["cat"],
                        also_cats=(rows[j]["cat"],), prompt=rows[i]["prompt"], response=rows[j]["response"],
                        label=None, refused=1.0, harm=None, group=rows[i]["group"], kind=KIND))
    return out
