from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignkit.judges.cli import app

runner = CliRunner()


def test_list():
    r = runner.invoke(app, ["list"])
    assert r.exit_code == 0, r.output
    for n in ("minilm", "refusal-keywords", "hf-classifier", "llm-rubric"):
        assert n in r.output


def test_score_one_pair():
    r = runner.invoke(app, ["score", "--judge", "refusal-keywords", "--prompt", "q",
                            "--completion", "I'm sorry, I cannot do that."])
    assert r.exit_code == 0, r.output
    assert "0.0000" in r.output and "refusal-keywords@1" in r.output


def test_score_jsonl(fixtures_dir, tmp_path):
    out = tmp_path / "scored.jsonl"
    r = runner.invoke(app, ["score", "--judge", "refusal-keywords", "--input",
                            str(fixtures_dir / "score_rows.jsonl"), "--output", str(out)])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["score"] for x in rows] == [0.0, 1.0, 0.0]
    assert all(x["judge"] == "refusal-keywords@1" for x in rows)


def test_unknown_judge_via_cli_is_alignkit_error():
    from alignkit.errors import AlignkitError

    r = runner.invoke(app, ["score", "--judge", "nope", "--completion", "x"])
    assert r.exit_code != 0 and isinstance(r.exception, AlignkitError)


def test_root_cli_prints_one_line_error(capsys):
    """Mounted as 'alignkit judge', user errors become 'error: ...' and exit 2."""
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "alignkit.judges.cli", "score", "--judge", "nope",
                        "--completion", "x"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().startswith("error: unknown judge 'nope'") and len(p.stderr.strip().splitlines()) == 1


def test_eval_quick_with_keywords(tmp_path):
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["eval", "--judge", "refusal-keywords", "--split", "test", "--limit", "60",
                            "--output", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads(out.read_text())
    assert m["split"] == "test" and m["judge"] == "refusal-keywords@1"
    assert {"accuracy", "f1", "auroc"} <= set(m["clear"]) and m["all"]["n"] == 60


@pytest.mark.slow
def test_eval_minilm_on_held_out_test_split(tmp_path):
    out = tmp_path / "m.json"
    r = runner.invoke(app, ["eval", "--judge", "minilm@1", "--split", "test", "--output", str(out)])
    assert r.exit_code == 0, r.output
    assert "AUROC" in r.output and "clear" in r.output
    m = json.loads(out.read_text())
    assert m["judge"] == "minilm@1" and m["split"] == "test"
    assert m["clear"]["accuracy"] >= 0.80
    assert m["all"]["auroc"] > 0.8
