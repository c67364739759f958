"""Stability on held-out natural text and over-refusal as its own number: the vendored natural-text data
matches its provenance manifest, the verdict uses both numbers, and the measurement runs on a tiny model."""

from __future__ import annotations

import hashlib
import math


def test_natural_text_vendored_with_license_and_provenance():
    from alignkit import data
    from alignkit.data.base import vendored_path
    from alignkit.data.natural_text import REL, provenance

    prov = provenance()
    assert prov["path"] == REL and prov["license"] == "PSF-2.0" and prov["version"].startswith("3.11")
    assert hashlib.sha256(vendored_path(REL).read_bytes()).hexdigest() == prov["sha256"]
    assert "PYTHON SOFTWARE FOUNDATION LICENSE VERSION 2" in vendored_path("python-docs/LICENSE").read_text()
    rows = data.load("natural-text", split="test")
    assert len(rows) == prov["rows"] > 300
    assert all(len(r.prompt) >= 200 and ">>>" not in r.prompt for r in rows)
    # not in any training data alignkit builds
    train_text = " ".join(r.response for r in data.load("harmless-instructions", split="train"))
    assert not any(r.prompt[:80] in train_text for r in rows[:50])


def test_verdict_uses_natural_perplexity_and_over_refusal():
    from alignkit.conditions.stability import stability_verdict

    base = dict(base_ppl=2.0, ppl=2.1, base_acc=0.5, acc=0.5)
    ok = stability_verdict("m", **base, base_natural_ppl=20.0, natural_ppl=22.0, base_over_refusal=0.1,
                           over_refusal=0.15)
    assert ok.verdict == "pass" and "over-refusal 0.15" in ok.detail and "natural-text perplexity x1.10" in ok.detail
    assert stability_verdict("m", **base, base_natural_ppl=20.0, natural_ppl=26.0).verdict == "fail"
    assert stability_verdict("m", **base, base_over_refusal=0.1, over_refusal=0.2).verdict == "fail"
    assert stability_verdict("m", **base).verdict == "pass"  # old callers: unchanged
    # with natural text measured, the templated perplexity (text the base was fine-tuned on) is reported, not judged
    worn = dict(base_ppl=1.34, ppl=1.74, base_acc=0.5, acc=0.5)
    assert stability_verdict("m", **worn).verdict == "fail"  # without natural text it is still the criterion
    v = stability_verdict("m", **worn, base_natural_ppl=27.5, natural_ppl=29.8)
    assert v.verdict == "pass" and "templated perplexity x1.30 (reported, not judged" in v.detail
    assert stability_verdict("m", base_ppl=1.34, ppl=1.74, base_acc=0.5, acc=0.3, base_natural_ppl=27.5,
                             natural_ppl=29.8).verdict == "fail"  # the probe still counts


def test_measure_reports_natural_perplexity_and_over_refusal(tiny_model_path):
    from alignkit.conditions.stability import measure, over_refusal
    from alignkit.models import load_causal_lm

    model, tok = load_causal_lm(tiny_model_path)
    m = measure(model, tok, n_ppl=4, n_probe=4, template="chat", n_natural=3)
    assert m["natural_perplexity"].n == 3 and math.isfinite(m["natural_perplexity"].value)
    assert m["natural_perplexity"].value > 1.0 and 0.0 <= m["over_refusal"].value <= 1.0
    assert all("refused" in e for e in m["examples"])
    refusing = [{"refused": True}, {"refused": True}, {"refused": False}, {"refused": True}]
    assert over_refusal(refusing).value == 0.75
