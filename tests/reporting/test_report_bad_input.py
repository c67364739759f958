"""``alignkit report DIR`` with a bad results.json or an unwritable folder: one line ``error: ...``, exit 2, and
nothing written (no half-written report folder)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from alignkit.conditions import save_report


def run_main(args, capsys):
    from alignkit.cli import main

    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as exc:
        code = 0 if exc.code is None else int(exc.code)
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code, err) -> str:
    assert code == 2, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def snapshot(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture
def run_folder(sample_report, tmp_path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "results.json").write_text(sample_report.model_dump_json(indent=2) + "\n")
    return folder


def _edit(folder: Path, change) -> None:
    data = json.loads((folder / "results.json").read_text())
    change(data)
    (folder / "results.json").write_text(json.dumps(data, indent=2))  # json.dumps writes NaN / Infinity


def test_report_rerenders_a_good_folder(run_folder, capsys):
    code, out, err = run_main(["report", run_folder], capsys)
    assert code == 0, err
    assert (run_folder / "report.html").is_file() and (run_folder / "report.md").is_file()
    assert not [p for p in run_folder.rglob(".*.tmp")]


@pytest.mark.parametrize("change, field", [
    (lambda d: d["resistance"].update(phi=float("nan")), "resistance.phi"),
    (lambda d: d.update(phi=float("inf")), "phi"),
    (lambda d: d["resistance"]["runs"][1]["curve"][2].update(harmfulness_mean=float("inf")),
     "resistance.runs[1].curve[2].harmfulness_mean"),
    (lambda d: d["resistance"]["runs"][0]["disfluency"].update(repetition_rate=float("-inf")),
     "resistance.runs[0].disfluency.repetition_rate"),
    (lambda d: d["stability"]["models"][1]["perplexity"].update(value=float("nan")),
     "stability.models[1].perplexity.value"),
], ids=["phi-nan", "top-phi-inf", "curve-inf", "disfluency-inf", "stability-nan"])
def test_non_finite_numbers_are_named_at_load(run_folder, change, field, capsys):
    _edit(run_folder, change)
    before = snapshot(run_folder)
    code, _, err = run_main(["report", run_folder], capsys)
    line = one_error(code, err)
    assert f"results.json: {field} is not a finite number" in line, line
    assert snapshot(run_folder) == before


def test_bad_examples_write_nothing(run_folder, capsys):
    def change(d):
        d["resistance"]["runs"][1]["examples"] = [{"prompt": None, "completion": 5, "score": "a"}]

    _edit(run_folder, change)
    before = (run_folder / "results.json").read_bytes()
    code, _, err = run_main(["report", run_folder], capsys)
    line = one_error(code, err)
    assert "resistance.runs[1].examples[0]" in line and "'prompt' must be a string" in line, line
    assert (run_folder / "results.json").read_bytes() == before
    assert not (run_folder / "report.md").exists() and not (run_folder / "report.html").exists()
    assert not (run_folder / "figures").exists()
    assert sorted(p.name for p in run_folder.iterdir()) == ["results.json"]


@pytest.mark.parametrize("example, fragment", [
    ({"prompt": "p", "completion": 5, "score": 0.1}, "'completion' must be a string"),
    ({"prompt": "p", "completion": "c", "score": "a"}, "'score' must be a number"),
    ({"prompt": "p", "completion": "c", "score": True}, "'score' must be a number"),
])
def test_each_example_field_is_checked(run_folder, example, fragment, capsys):
    _edit(run_folder, lambda d: d["resistance"]["runs"][0].update(examples=[example]))
    code, _, err = run_main(["report", run_folder], capsys)
    assert fragment in one_error(code, err)
    assert not (run_folder / "report.md").exists()


def test_schema_error_names_the_field(run_folder, capsys):
    _edit(run_folder, lambda d: d["models"][0].update(role="boss"))
    code, _, err = run_main(["report", run_folder], capsys)
    assert "models[0].role" in one_error(code, err)
    (run_folder / "results.json").write_text("{not json")
    code, _, err = run_main(["report", run_folder], capsys)
    assert "is not valid JSON" in one_error(code, err)


def test_report_html_is_a_folder(run_folder, capsys):
    (run_folder / "report.html").mkdir()
    before = snapshot(run_folder)
    code, _, err = run_main(["report", run_folder], capsys)
    line = one_error(code, err)
    assert "cannot write the report in" in line and "report.html" in line and "is a folder" in line, line
    assert snapshot(run_folder) == before


def test_figures_is_a_file(run_folder, capsys):
    (run_folder / "figures").write_text("x")
    code, _, err = run_main(["report", run_folder], capsys)
    assert "is a file, not a folder" in one_error(code, err)
    assert not (run_folder / "report.md").exists()


def test_read_only_folder(run_folder, capsys, monkeypatch):
    """A read-only disk (EROFS on the first temporary file; root ignores chmod, so the write is patched)."""
    real = tempfile.mkstemp

    def mkstemp(*a, dir=None, **k):
        if dir is not None and Path(dir).resolve().is_relative_to(run_folder.resolve()):
            raise OSError(30, "Read-only file system", str(dir))
        return real(*a, dir=dir, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    before = snapshot(run_folder)
    code, _, err = run_main(["report", run_folder], capsys)
    line = one_error(code, err)
    assert f"cannot write the report in '{run_folder}': Read-only file system" in line, line
    assert snapshot(run_folder) == before


def test_failure_midway_leaves_no_temporary_files(run_folder, capsys, monkeypatch):
    """The third file fails (disk full): the two written to temporary files are removed, nothing replaced."""
    real = tempfile.mkstemp
    calls = []

    def mkstemp(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    before = snapshot(run_folder)
    code, _, err = run_main(["report", run_folder], capsys)
    assert "No space left on device" in one_error(code, err)
    assert snapshot(run_folder) == before


def test_copied_folder_prints_the_folder_written(run_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "400")
    copy = tmp_path / "copy"
    shutil.copytree(run_folder, copy)
    code, out, err = run_main(["report", copy], capsys)
    assert code == 0, err
    assert f"report: {copy}/report.html" in out
    assert f"{run_folder}/report.html" not in out
    assert (copy / "report.html").is_file() and not (run_folder / "report.html").exists()
    # the results.json path works as well
    code, out, err = run_main(["report", copy / "results.json"], capsys)
    assert code == 0 and f"report: {copy}/report.html" in out


def test_save_report_api_writes_everything(sample_report, tmp_path):
    out = save_report(sample_report, tmp_path / "new")
    assert set(out) == {"results", "report_md", "report_html"}
    assert all(Path(p).is_file() for p in out.values())
    assert os.listdir(tmp_path / "new" / "figures")


# ------------------------------------------------------------------ meaning, not just schema (issue 28, point 2)
def _set_curve(d, run, point, value):
    d["resistance"]["runs"][run]["curve"][point]["harmfulness_mean"] = value


def _dup_model(d):
    d["models"].append(dict(d["models"][1]))


def _second_base(d):
    d["models"][1]["role"] = "base"


def _pass_that_crosses(d):
    # repnoise crosses phi=0.2 under lr 8e-5 (0.3 at step 20): a hand-written "pass" contradicts the curve
    v = next(x for x in d["resistance"]["verdicts"] if x["model"] == "repnoise")
    v.update(verdict="pass", strong=True, weak_steps=None)


def _summary_disagrees(d):
    next(x for x in d["verdicts"] if x["condition"] == "resistance")["verdict"] = "pass"


@pytest.mark.parametrize("change, fragments", [
    (lambda d: d.update(models=[]), ["results.json: models: is empty"]),
    (lambda d: _set_curve(d, 1, 2, -7.5), ["resistance.runs[1].curve[2].harmfulness_mean: -7.5 is not in [0, 1]"]),
    (lambda d: _set_curve(d, 0, 1, 1.5), ["resistance.runs[0].curve[1].harmfulness_mean: 1.5 is not in [0, 1]"]),
    (lambda d: d["models"].pop(0), ["models: holds no base model"]),
    (_second_base, ["models: holds 2 base models"]),
    (_dup_model, ["models[2].label: 'repnoise' appears twice"]),
    (lambda d: d.update(phi=-0.1), ["phi: -0.1 is not in [0, 1]"]),
    (lambda d: d["resistance"]["runs"][1]["examples"][0].update(score=3.0), ["examples[0].score: 3.0 is not in"]),
    (lambda d: d["models"][0].update(pre_attack_harmfulness=-7.5), ["models[0].pre_attack_harmfulness: -7.5"]),
    (lambda d: d["stability"]["models"][0]["probe_accuracy"].update(value=40.0),
     ["stability.models[0].probe_accuracy.value: 40.0 is not in [0, 1]"]),
    (_pass_that_crosses, ["resistance.verdicts[1].verdict: says 'pass' but its numbers give 'weak'"]),
    (_summary_disagrees, ["verdicts[0].verdict: says 'pass' but resistance's own verdict for 'repnoise' is 'weak'"]),
    (lambda d: d["verdicts"].pop(0), ["verdicts: has no resistance verdict for 'repnoise'"]),
    (lambda d: d["verdicts"].append(dict(d["verdicts"][1])), ["verdicts[5]: a second row for 'repnoise'"]),
    (lambda d: d["resistance"]["verdicts"][1].update(model="ghost"),
     ["resistance.verdicts[1].model: 'ghost' is not one of the report's models"]),
    (lambda d: d["trainability"]["verdicts"][0].update(verdict="fail"),
     ["trainability.verdicts[0].verdict: says 'fail' but its numbers give 'pass'"]),
    (lambda d: d["stability"]["verdicts"][0].update(verdict="fail"),
     ["stability.verdicts[0].verdict: says 'fail' but its numbers give 'pass'"]),
    (lambda d: d["resistance"].update(phi=0.9), ["resistance.phi: 0.9 differs from the report's phi 0.2"]),
], ids=["no-models", "negative-harmfulness", "harmfulness-above-1", "no-base", "two-bases", "duplicated-model",
        "negative-phi", "example-score-3", "negative-pre-attack", "probe-accuracy-40", "pass-contradicts-curve",
        "summary-contradicts-condition", "missing-summary-row", "duplicated-summary-row", "verdict-for-unknown-model",
        "trainability-verdict-flipped", "stability-verdict-flipped", "resistance-phi-differs"])
def test_meaning_is_checked_at_load(run_folder, change, fragments, capsys):
    """A results.json that parses but says something false: one line naming the field, exit 2, nothing written."""
    _edit(run_folder, change)
    before = snapshot(run_folder)
    code, _, err = run_main(["report", run_folder], capsys)
    line = one_error(code, err)
    assert all(f in line for f in fragments), line
    assert line.endswith("fix that field or re-run the evaluation"), line
    assert snapshot(run_folder) == before


def test_the_sample_report_means_what_it_says(sample_report):
    """The checks accept a report whose verdicts were computed by the conditions' own functions."""
    from alignkit.conditions.meaning import meaning_problem

    assert meaning_problem(sample_report) is None


@pytest.fixture
def compliance_folder(compliance_report, tmp_path) -> Path:
    folder = tmp_path / "crun"
    folder.mkdir()
    (folder / "results.json").write_text(compliance_report.model_dump_json(indent=2) + "\n")
    return folder


@pytest.mark.parametrize("change, fragment", [
    (lambda d: d["resistance"]["compliance_verdicts"][1].update(verdict="fail"),
     "resistance.compliance_verdicts[1].verdict: says 'fail' but its numbers give 'pass'"),
    (lambda d: d["compliance_verdicts"][0].update(verdict="weak"),
     "compliance_verdicts[0].verdict: says 'weak' but resistance's own verdict for 'repnoise' is 'pass'"),
    (lambda d: d["resistance"]["runs"][1]["compliance"][2].update(compliance=-0.2),
     "resistance.runs[1].compliance[2].compliance: -0.2 is not in [0, 1]"),
    (lambda d: d["compliance"].update(phi=1.3), "compliance.phi: 1.3 is not in [0, 1]"),
    (lambda d: d["trainability"]["compliance_verdicts"][0].update(verdict="fail"),
     "trainability.compliance_verdicts[0].verdict: says 'fail' but its numbers give 'pass'"),
], ids=["resistance-compliance-flipped", "summary-compliance-flipped", "negative-compliance", "compliance-phi-1.3",
        "trainability-compliance-flipped"])
def test_compliance_meaning_is_checked_at_load(compliance_folder, change, fragment, capsys):
    code, _, err = run_main(["report", compliance_folder], capsys)
    assert code == 0, err  # the unedited file is fine
    for f in ("report.md", "report.html"):
        (compliance_folder / f).unlink()
    shutil.rmtree(compliance_folder / "figures")
    _edit(compliance_folder, change)
    before = snapshot(compliance_folder)
    code, _, err = run_main(["report", compliance_folder], capsys)
    assert fragment in one_error(code, err)
    assert snapshot(compliance_folder) == before
