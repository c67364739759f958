"""The searches' capability measure: natural-text perplexity by default, the templated set on request."""

from __future__ import annotations


def test_capability_rows_default_to_natural_text():
    from alignkit.search.common import SearchOptions, capability_label, capability_rows

    assert SearchOptions.model_fields["capability_data"].default == "natural-text"
    nat = capability_rows(5, 0)
    tmpl = capability_rows(5, 0, "harmless-instructions")
    assert len(nat) == len(tmpl) == 5
    assert all(hasattr(r, "prompt") for r in nat) and all(hasattr(r, "response") for r in tmpl)
    assert capability_label("natural-text", 5).startswith("natural-text:test n=5")


def test_capability_perplexity_depends_on_the_data(tmp_path):
    from alignkit.search.common import base_perplexity, measure_perplexity

    nat = measure_perplexity("tiny-random-llama", "chat", 4, 0)
    tmpl = measure_perplexity("tiny-random-llama", "chat", 4, 0, data_name="harmless-instructions")
    assert nat > 1 and tmpl > 1 and abs(nat - tmpl) > 1e-6
    # the cached base value is keyed by the data: asking for the other set measures it, not the cached one
    b1 = base_perplexity(tmp_path, "tiny-random-llama", "chat", 4, 0, "float32")
    b2 = base_perplexity(tmp_path, "tiny-random-llama", "chat", 4, 0, "float32", "harmless-instructions")
    assert abs(b1 - nat) < 1e-6 and abs(b2 - tmpl) < 1e-6


def test_base_natural_text_perplexity_is_measured_once_for_every_template(tmp_path, monkeypatch):
    """Natural text is raw prose: a search whose trials use the chat and the qa template measures the base once;
    the templated set depends on the template and is measured per template."""
    from alignkit.search import common

    calls = []
    real = common.measure_perplexity
    monkeypatch.setattr(common, "measure_perplexity", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    chat = common.base_perplexity(tmp_path, "tiny-random-llama", "chat", 3, 0, "float32")
    qa = common.base_perplexity(tmp_path, "tiny-random-llama", "qa", 3, 0, "float32")
    assert chat == qa and calls == ["chat"]
    common.base_perplexity(tmp_path, "tiny-random-llama", "chat", 3, 0, "float32", "harmless-instructions")
    common.base_perplexity(tmp_path, "tiny-random-llama", "qa", 3, 0, "float32", "harmless-instructions")
    assert calls == ["chat", "chat", "qa"]
