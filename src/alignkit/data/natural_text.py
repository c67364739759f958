"""``natural-text``: held-out natural English prose for the stability condition's perplexity.

No alignkit stage (safety SFT, any defence, any attack, the demo) trains on it, unlike the templated
``harmless-instructions`` responses whose train split the demo's base was fine-tuned on. The text: 335 prose
paragraphs of the Python Language Reference as shipped with CPython's standard library
(``pydoc_data/topics.py`` of CPython 3.11.7, PSF License 2.0), vendored under ``vendored/python-docs/`` with
its license and a provenance manifest (source version, path, sha256 of the source and of the vendored file,
selection rule). Technical English, not code: indented blocks (code, grammar) are dropped. A pretrained base
may have seen this text in pre-training; stability compares each defended model with its base on the same
passages, so only the change matters.

Records are :class:`Prompt` rows: the passage in ``prompt``, its reference topic in ``category``. Splits: every
row is ``test`` (evaluation only); ``eval`` holds none.
"""

from __future__ import annotations

import json

from alignkit.data.base import dataset, read_vendored_text
from alignkit.data.records import Prompt

REL = "python-docs/passages.jsonl"


def passages() -> list[dict]:
    return [json.loads(line) for line in read_vendored_text(REL).splitlines() if line.strip()]


def provenance() -> dict:
    """The manifest entry of the vendored file (source package, version, path, sha256, license)."""
    return json.loads(read_vendored_text("python-docs/MANIFEST.json"))["files"][0]


@dataset("natural-text", record=Prompt, splits=("test",), license="PSF-2.0 (CPython documentation)",
         source="CPython 3.11.7 standard library: pydoc_data/topics.py (Python Language Reference topics)",
         description="Held-out natural English prose (335 paragraphs of the Python Language Reference) for "
                     "stability perplexity; no alignkit stage trains on it.",
         notes="vendored with license + provenance in data/vendored/python-docs/; evaluation only (test split)")
def _build_natural_text(seed: int = 0):
    return {"test": [Prompt(id=p["id"], source="cpython-3.11.7:pydoc_data/topics.py", prompt=p["text"],
                            category=p["topic"]) for p in passages()]}
