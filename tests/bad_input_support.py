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


def make_training_diverge(monkeypatch, value: float = float("nan")) -> None:
    """After training, fill the first weight tensor with ``value`` (NaN / inf): a run that diverged."""
    from alignkit import training

    real = training.train_or_restore

    def diverge(trainer, resume_from):
        real(trainer, resume_from)
        import torch

        with torch.no_grad():
            next(trainer.model.parameters()).fill_(value)
        return trainer

    monkeypatch.setattr(training, "train_or_restore", diverge)
