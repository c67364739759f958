"""Shared helpers of the bad-input tests: a user mistake is one AlignkitError line, raised before any model loads."""

from __future__ import annotations


def one_line_error(result, *needles: str) -> str:
    """The AlignkitError of a CliRunner ``result``: one line holding every ``needle``; returns the message."""
    from alignkit.errors import AlignkitError

    assert isinstance(result.exception, AlignkitError), (result.output[-1000:], result.exception)
    msg = str(result.exception)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    return msg


def forbid_model_load(monkeypatch, *names: str) -> None:
    """Make ``alignkit.models.<name>`` (default: ``load_causal_lm``) fail the test if called: validation must
    come first."""
    import alignkit.models

    def boom(*a, **k):
        raise AssertionError("a model was loaded before the input was validated")

    for name in names or ("load_causal_lm",):
        monkeypatch.setattr(alignkit.models, name, boom)
