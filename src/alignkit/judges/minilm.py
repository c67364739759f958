"""``minilm``: the offline harm judges on all-MiniLM-L6-v2 (``minilm@5`` is the default).

``get_judge("minilm")`` gives ``minilm@5`` (:mod:`alignkit.judges.minilm5`: ``minilm@3`` with a relevance gate, so
that an answer to another request does not count as complying); ``get_judge("minilm@3")`` the previous default
(:mod:`alignkit.judges.minilm3`), kept because many recorded results use it. A ``weights`` file is dispatched by
the ``format_version`` in its ``.json`` metadata. Each version is one module (its config defaults, judge class and
shipped weights) plus its card (``weights/<file>.card.json``, :mod:`alignkit.judges.card`: the validity measured
for it); the shared recipe is :mod:`alignkit.judges.recipe`, the validation :mod:`alignkit.judges.validation`.

Retired versions (:data:`RETIRED`: ``minilm@1`` the fine-tuned cross-encoder, ``minilm@2`` MiniLM features only,
``minilm@4`` a deeper LM layer, ``minilm@6`` non-answers as harmless, ``minilm@7`` substance-aware calibration) left
the package: none was the default or quoted by the current docs, and each measured no better than ``minilm@5``
out of distribution (docs/judges.md). Git keeps them: ``git checkout RETIRED_AT -- src/alignkit/judges`` restores
the package that last shipped them, so results recorded under them can be re-scored.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from alignkit.errors import AlignkitError
from alignkit.judges.base import JUDGES, Judge

WEIGHTS_DIR = Path(__file__).parent / "weights"
VERSIONS = ("5", "3")
DEFAULT_VERSION = "5"
#: version -> (module, judge class): one module per shipped version
HEADS_JUDGES = {"3": ("alignkit.judges.minilm3", "MiniLMJudgeV3"), "5": ("alignkit.judges.minilm5", "MiniLMJudgeV5")}
#: the last commit whose package shipped the retired versions (their weights, recipes and tests)
RETIRED_AT = "dee4c2c"
RETIRED = {"1": "fine-tuned cross-encoder", "2": "MiniLM features only", "4": "minilm@3 on a deeper LM layer",
           "6": "minilm@5 trained with non-answers", "7": "minilm@5 with a substance-aware calibration"}


def retired_message(version: str) -> str:
    """One line for a retired version: what it was, the current versions, the commit that last shipped it."""
    current = ", ".join(f"minilm@{v}" + (" (default)" if v == DEFAULT_VERSION else "") for v in VERSIONS)
    return (f"judge minilm@{version} ({RETIRED[version]}) was retired; use {current}, or restore it from commit "
            f"{RETIRED_AT}, the last that shipped it (git checkout {RETIRED_AT} -- src/alignkit/judges)")


def module_of(version: str):
    """The module of a shipped version (its ``train``, ``ood_table``, ``TrainConfig``, ``SHIPPED_WEIGHTS``)."""
    version = str(version).split("+")[0]
    if version in RETIRED:
        raise AlignkitError(retired_message(version))
    if version not in HEADS_JUDGES:
        raise AlignkitError(f"unknown minilm judge version {version!r}; available: "
                            + ", ".join(f"minilm@{v}" + (" (default)" if v == DEFAULT_VERSION else "")
                                        for v in VERSIONS))
    return importlib.import_module(HEADS_JUDGES[version][0])


@JUDGES.register("minilm")
def minilm(version: str = DEFAULT_VERSION, weights: str | None = None, batch_size: int | None = None,
           device: str = "cpu", threads: int | None = None, precision: str | None = None) -> Judge:
    """MiniLM harm judge, offline, shipped weights: minilm@5 (default) or minilm@3 (the previous default);
    refused / harm / score. ``precision=bfloat16``: opt-in faster variant."""
    version = str(version).strip()
    tags = version.split("+")[1:]
    if "bf16" in tags:  # a recorded name like minilm@3+bf16 loads the same opt-in precision again
        if precision not in (None, "bfloat16"):
            raise AlignkitError(f"judge minilm@{version} is the bfloat16 variant; drop precision={precision!r}")
        precision = "bfloat16"
    if weights and version == DEFAULT_VERSION:
        mp = Path(weights).expanduser().with_suffix(".json")
        if mp.is_file():
            try:
                version = str(json.loads(mp.read_text()).get("format_version", version))
            except (OSError, ValueError):
                pass
    mod = module_of(version)
    if not weights:  # the shipped judge travels with its card: a missing or malformed one is named here
        from alignkit.judges.card import load_card

        load_card(f"minilm@{version.split('+')[0]}")
    cls = getattr(mod, HEADS_JUDGES[version.split("+")[0]][1])
    return cls(weights=weights, batch_size=batch_size or 64, device=device, threads=threads,
               precision=precision or "float32")


minilm.version = DEFAULT_VERSION
minilm.versions = VERSIONS
minilm.check_version = module_of  # checked before building: a retired version gets its one-line message
