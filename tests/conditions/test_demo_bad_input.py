"""``alignkit demo`` with bad input: one-line AlignkitError before any model is loaded or trained (a valid run
trains smollm2, so every call here must fail validation; the model loaders are replaced by a failing stub)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from bad_input_support import forbid_model_load, one_line_error


@pytest.fixture
def no_training(monkeypatch):
    forbid_model_load(monkeypatch, "resolve_model", "load_causal_lm")


def _demo(args, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from alignkit.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    return CliRunner().invoke(app, ["demo", *args])




def test_negative_seed(tmp_path, monkeypatch, no_training):
    """Problem 32: was a pydantic ValidationError traceback from inside the first defence."""
    r = _demo(["--seed", "-1", "--output-dir", "x4"], monkeypatch, tmp_path)
    one_line_error(r, "--seed", "must be >= 0")
    assert not (tmp_path / "x4").exists()


def test_non_finite_threshold(tmp_path, monkeypatch, no_training):
    r = _demo(["--align-threshold", "nan", "--output-dir", "x5"], monkeypatch, tmp_path)
    one_line_error(r, "--align-threshold", "finite number")


def test_output_dir_is_a_file(tmp_path, monkeypatch, no_training):
    """Problem 33: was FileExistsError / NotADirectoryError."""
    (tmp_path / "realfile").write_text("mine")
    r = _demo(["--output-dir", "realfile"], monkeypatch, tmp_path)
    one_line_error(r, "realfile", "is a file")
    r = _demo(["--output-dir", "realfile/sub"], monkeypatch, tmp_path)
    one_line_error(r, "realfile", "is a file")
    assert (tmp_path / "realfile").read_text() == "mine"


def test_output_dir_read_only(tmp_path, monkeypatch, no_training):
    """Problem 33: a read-only location was an OSError traceback."""
    real_mkdir = Path.mkdir

    def read_only(self, *a, **k):
        if "ro" in self.parts:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(Path, "mkdir", read_only)
    r = _demo(["--output-dir", "ro/demo"], monkeypatch, tmp_path)
    one_line_error(r, "ro/demo", "Read-only file system")


def test_output_dir_not_writable(tmp_path, monkeypatch, no_training):
    import os

    (tmp_path / "locked").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: False if "locked" in str(p)
                        else real_access(p, mode, *a, **k))
    r = _demo(["--output-dir", "locked"], monkeypatch, tmp_path)
    one_line_error(r, "locked", "not writable")


def test_stage_folder_is_a_file(tmp_path, monkeypatch, no_training):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "models").write_text("mine")
    r = _demo(["--output-dir", "d"], monkeypatch, tmp_path)
    one_line_error(r, "models", "is a file")


def test_demo_config_seed_validation():
    from pydantic import ValidationError

    from alignkit.conditions.demo import DemoConfig

    with pytest.raises(ValidationError, match="must be >= 0"):
        DemoConfig(seed=-1)
    assert DemoConfig(seed=3).seed == 3


def test_unknown_attack_family(tmp_path, monkeypatch, no_training):
    """demo --attacks is checked like evaluate --attacks, before any stage: the line names the registered families."""
    r = _demo(["--attacks", "prefill,nope", "--output-dir", "x9"], monkeypatch, tmp_path)
    one_line_error(r, "--attacks", "unknown attack 'nope'", "registered attack families: sft-full")
    assert not (tmp_path / "x9").exists()
