"""Bad input to ``alignkit search attack|defence`` that used to end in a traceback or a damaged study: one line
``error: ...``, exit 2, before any study or trial exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from alignkit.attacks import AttackConfig
from alignkit.errors import AlignkitError
from alignkit.search.space import parse_space
from search_support import TINY_OPTIONS, run_cli


def _cli(args: list, monkeypatch, capsys) -> tuple[int, str]:
    code, _, err = run_cli(args, monkeypatch, capsys)
    return code, err


def _opts() -> list[str]:
    out = []
    for k, v in TINY_OPTIONS.items():
        flag = f"--{k.replace('_', '-')}"
        out += [flag] if v is True else [flag, str(v)]
    return out


def _one_line(code: int, err: str) -> str:
    assert code == 2, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


# ------------------------------------------------------------------------------------- 34: unwritable folder
@pytest.mark.parametrize("kind", ["attack", "defence"])
def test_read_only_output_dir_fails_before_the_study(kind, tmp_path, attack_space, defence_space, monkeypatch,
                                                     capsys):
    import alignkit.io as aio

    ro = tmp_path / "ro"
    ro.mkdir()
    real = os.access
    monkeypatch.setattr(aio.os, "access", lambda p, m: False if Path(p) == ro else real(p, m))
    monkeypatch.setattr(aio, "_read_only", lambda p: Path(p) == ro)  # as on a read-only mount (root ignores chmod)
    journal = tmp_path / "j.log"
    space = attack_space if kind == "attack" else defence_space
    extra = [] if kind == "attack" else ["--defence", "repnoise"]
    for storage in ([], ["--storage", f"journal:{journal}"]):
        code, err = _cli(["search", kind, *_opts(), *extra, "--space", space, "--output-dir", ro / "s",
                          "--n-trials", "1", *storage], monkeypatch, capsys)
        line = _one_line(code, err)
        assert "cannot create output dir" in line and "read-only file system" in line, line
        assert not (ro / "s").exists() and not journal.exists()


def test_output_dir_below_a_file(tmp_path, attack_space, monkeypatch, capsys):
    f = tmp_path / "plain"
    f.write_text("x")
    code, err = _cli(["search", "attack", *_opts(), "--space", attack_space, "--output-dir", f / "s"],
                     monkeypatch, capsys)
    assert "is a file" in _one_line(code, err)


# ------------------------------------------------------------------------------------- 35: journal not a journal
def test_journal_storage_that_is_not_a_journal(tmp_path, attack_space, monkeypatch, capsys):
    garbage = tmp_path / "garbage.db"
    garbage.write_text("this is not a database\n")
    before = garbage.read_bytes()
    monkeypatch.chdir(tmp_path)
    code, err = _cli(["search", "attack", *_opts(), "--space", attack_space, "--output-dir", tmp_path / "s",
                      "--n-trials", "1", "--storage", "journal:garbage.db"], monkeypatch, capsys)
    line = _one_line(code, err)
    assert "cannot open storage 'journal:garbage.db': not an Optuna journal file" in line, line
    assert garbage.read_bytes() == before  # nothing appended to the user's file
    assert not (tmp_path / "s").exists()


def test_journal_checks(tmp_path):
    from alignkit.search.study import check_journal_file

    ok = tmp_path / "ok.log"
    ok.write_text('{"op_code": 0, "study_name": "x"}\n{"op_code": 1, "ti')  # last line cut by a kill: fine
    check_journal_file("journal:ok.log", ok)
    check_journal_file("journal:new.log", tmp_path / "new.log")  # absent: created by Optuna
    (tmp_path / "empty.log").write_text("")
    check_journal_file("journal:empty.log", tmp_path / "empty.log")
    for name, body in [("bin.log", b"\xff\xfe\x00\n"), ("list.log", b"[1, 2]\n"), ("text.log", b"hello")]:
        (tmp_path / name).write_bytes(body)
        with pytest.raises(AlignkitError, match="not an Optuna journal file"):
            check_journal_file(f"journal:{name}", tmp_path / name)
    with pytest.raises(AlignkitError, match="is a folder"):
        check_journal_file("journal:dir", tmp_path)


# ------------------------------------------------------------------------------------- 36: attacks not a list
@pytest.mark.parametrize("attacks, fragment", [
    ("5", "'attacks' in d1.yaml must be a list of attack settings"),
    ("{lr: 1.0e-4}", "'attacks' in d1.yaml must be a list of attack settings"),
    ("[5]", "attacks[0] must be a mapping of attack options"),
    ("[{output_dir: /tmp/x}]", "attacks[0]: output_dir cannot be set in a space"),
    ("[{model: other}]", "attacks[0]: model cannot be set in a space"),
])
def test_defence_space_attacks_must_be_a_list(attacks, fragment, tmp_path, monkeypatch, capsys):
    space = tmp_path / "d1.yaml"
    space.write_text(f"params:\n  alpha: {{low: 0.1, high: 2.0}}\nattacks: {attacks}\n")
    code, err = _cli(["search", "defence", "--defence", "repnoise", *_opts(), "--space", space,
                      "--output-dir", tmp_path / "s", "--n-trials", "1"], monkeypatch, capsys)
    assert fragment in _one_line(code, err)
    assert not (tmp_path / "s").exists()


# ------------------------------------------------------------------------------------- 37: judge, names, bounds
def test_unknown_judge_fails_before_any_trial(tmp_path, attack_space, monkeypatch, capsys):
    out = tmp_path / "s"
    opts = [a for a in _opts() if a not in ("--judge", TINY_OPTIONS["judge"])]
    code, err = _cli(["search", "attack", *opts, "--judge", "nope", "--space", attack_space, "--output-dir", out,
                      "--n-trials", "1"], monkeypatch, capsys)
    assert "--judge: unknown judge 'nope'" in _one_line(code, err)
    assert not out.exists()  # no study.db, so no failed trial in it
    code, err = _cli(["search", "defence", "--defence", "repnoise", *opts, "--judge", "minilm@99",
                      "--output-dir", out, "--n-trials", "1"], monkeypatch, capsys)
    assert "unknown minilm judge version" in _one_line(code, err)
    assert not out.exists()


@pytest.mark.parametrize("raw, message", [
    ({"params": {"lr": {"low": 1e-5, "high": 1e-3}, "output_dir": {"choices": ["a", "b"]}}},
     "output_dir cannot be searched or fixed in a space"),
    ({"params": {"lr": {"low": 1e-5, "high": 1e-3}}, "fixed": {"model": "other"}}, "model cannot be searched"),
    ({"params": {"lr": {"low": 1e-5, "high": 1e-3}}, "fixed": {"judge": "minilm"}}, "judge cannot be searched"),
    ({"params": {"max_steps": {"type": "int", "low": 1, "high": 1e23}}}, "absurd range"),
    ({"params": {"max_steps": {"low": 1, "high": 10**23}}}, "absurd range"),
    ({"params": {"max_steps": {"low": 1, "high": 1.0e23}}}, "absurd range"),
    ({"params": {"max_steps": {"low": 1.0, "high": 20.5}}}, "max_steps takes whole numbers"),
    ({"params": {"lr": {"low": 1e-5, "high": float("inf")}}}, "must be a finite number"),
    ({"params": {"lr": {"low": float("nan"), "high": 1e-3}}}, "must be a finite number"),
    ({"params": {"lr": {"low": 1e-5, "high": 1e-3}}, "fixed": {"max_steps": 10**23}}, "too large"),
])
def test_reserved_names_and_absurd_bounds(raw, message):
    from alignkit.search.attack import RESERVED

    with pytest.raises(AlignkitError) as exc:
        parse_space(raw, AttackConfig, source="s.yaml", reserved=RESERVED)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_reserved_name_in_a_space_file_via_the_cli(tmp_path, monkeypatch, capsys):
    space = tmp_path / "s.yaml"
    space.write_text("params:\n  lr: {low: 1.0e-4, high: 1.0e-3}\n  output_dir: {choices: [a, b]}\n")
    code, err = _cli(["search", "attack", *_opts(), "--space", space, "--output-dir", tmp_path / "s"],
                     monkeypatch, capsys)
    assert "output_dir cannot be searched or fixed" in _one_line(code, err)
    space.write_text("params:\n  max_steps: {low: 1, high: 1e23}\n")  # YAML reads 1e23 as text: a float range
    code, err = _cli(["search", "attack", *_opts(), "--space", space, "--output-dir", tmp_path / "s"],
                     monkeypatch, capsys)
    assert "absurd range" in _one_line(code, err)
    assert not (tmp_path / "s").exists()
