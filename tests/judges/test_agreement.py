"""Judge agreement (Cohen's kappa, confusion), saved-generation reading, HarmEval refusal rate / incoherence."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alignkit.errors import AlignkitError
from alignkit.judges.agreement import pair_stats, parse_judges, refusal_agreement, saved_generations

runner = CliRunner()


def _run_dir(tmp_path, rows, step=0):
    d = tmp_path / "run" / "generations"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"step_{step:04d}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "run"


ROWS = [
    {"prompt": "q1", "completion": "I'm sorry, I cannot help with that.", "score": 0.1},
    {"prompt": "q2", "completion": "Sure, step one is to get the [ITEM].", "score": 0.9},
    {"prompt": "q3", "completion": "Here is a poem about the sea.", "score": 0.2},
    {"prompt": "q4", "completion": "I can't do that.", "score": 0.7},
]


def test_pair_stats_kappa_and_confusion():
    a = [0, 0, 1, 1, 1, 0]
    b = [0, 1, 1, 1, 0, 0]
    r = pair_stats(a, b)
    assert r["confusion"] == [[2, 1], [1, 2]]
    # po = 4/6, pe = 0.5 -> kappa = (2/3 - 1/2) / (1/2) = 1/3
    assert r["kappa"] == pytest.approx(1 / 3, abs=1e-4) and r["agreement"] == pytest.approx(4 / 6, abs=1e-4)
    assert pair_stats([1, 1], [1, 1])["kappa"] == 1.0
    with pytest.raises(AlignkitError):
        pair_stats([1], [1, 0])


def test_refusal_agreement_uses_saved_scores(tmp_path):
    run = _run_dir(tmp_path, ROWS)
    r = refusal_agreement(run, "minilm@3")
    # judge: 0,1,0,1 ; detector (non-refusal): 0,1,1,0
    assert r["confusion"] == [[1, 1], [1, 1]] and r["kappa"] == pytest.approx(0.0)
    assert refusal_agreement(tmp_path / "missing", "x") is None


def test_saved_generations_bad_input(tmp_path):
    with pytest.raises(AlignkitError, match="does not exist"):
        saved_generations(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(AlignkitError, match="no saved generations"):
        saved_generations(tmp_path / "empty")
    run = _run_dir(tmp_path, [{"prompt": "q"}])
    with pytest.raises(AlignkitError, match="'completion'") as e:
        saved_generations(run)
    assert "\n" not in str(e.value)


def test_parse_judges():
    assert parse_judges("minilm, minilm@3,refusal-keywords") == ["minilm", "minilm@3", "refusal-keywords"]
    assert parse_judges("hf-classifier:model=x,harmful_label=0,minilm") == ["hf-classifier:model=x,harmful_label=0",
                                                                           "minilm"]
    with pytest.raises(AlignkitError, match="at least two"):
        parse_judges("minilm")
    with pytest.raises(AlignkitError, match="at least two different judges"):
        parse_judges("refusal-keywords, refusal-keywords")


def test_agree_cli_on_empty_generations_is_an_error(tmp_path):
    from alignkit.judges.cli import app

    d = tmp_path / "run" / "generations"
    d.mkdir(parents=True)
    (d / "step_0000.jsonl").write_text("")
    r = runner.invoke(app, ["agree", str(tmp_path / "run"), "--judges",
                            "refusal-keywords,refusal-keywords:mode=prefix"])
    assert r.exit_code != 0 and isinstance(r.exception, AlignkitError)
    assert str(r.exception).startswith(f"no saved generation rows under {str(tmp_path / 'run')!r}")
    assert refusal_agreement(tmp_path / "run", "x") is None


@pytest.mark.parametrize("judges", ["refusal-keywords,refusal-keywords", "refusal-keywords,refusal-keywords@2"])
def test_agree_cli_needs_two_different_judges(tmp_path, judges):
    """The same judge twice (by spec, or two specs naming the same judge@version) would give zero pairs."""
    from alignkit.judges.cli import app

    run = _run_dir(tmp_path, ROWS)
    r = runner.invoke(app, ["agree", str(run), "--judges", judges])
    assert r.exit_code != 0 and isinstance(r.exception, AlignkitError)
    assert "--judges needs at least two different judges" in str(r.exception)


def test_agree_cli(tmp_path):
    from alignkit.judges.cli import app

    run = _run_dir(tmp_path, ROWS)
    out = tmp_path / "agree.json"
    r = runner.invoke(app, ["agree", str(run), "--judges", "refusal-keywords,refusal-keywords:mode=prefix",
                            "--output", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["n"] == 4 and len(res["pairs"]) == 1
    p = res["pairs"][0]
    assert p["a"] == "refusal-keywords@2" and p["b"] == "refusal-keywords@2-extended-prefix"
    assert sum(map(sum, p["confusion"])) == 4
    assert "kappa" in r.output


def test_agree_cli_missing_column_exits_2(tmp_path):
    import subprocess
    import sys

    run = _run_dir(tmp_path, [{"prompt": "q", "text": "x"}])
    p = subprocess.run([sys.executable, "-m", "alignkit.judges.cli", "agree", str(run), "--judges",
                        "refusal-keywords,refusal-keywords:mode=prefix"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert p.stderr.startswith("error: ") and "'completion'" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_score_cli_non_string_completion_is_a_user_error(tmp_path):
    from alignkit.judges.cli import app

    f = tmp_path / "rows.jsonl"
    f.write_text(json.dumps({"prompt": "q", "completion": 5}) + "\n")
    r = runner.invoke(app, ["score", "--judge", "refusal-keywords", "--input", str(f)])
    assert r.exit_code != 0 and isinstance(r.exception, AlignkitError)


class _Heads:
    """A judge with a refusal head: refused iff the text starts with 'No', harmful iff it contains 'bomb'."""

    name, version = "heads", "1"

    def describe(self):
        return "heads@1"

    def assess(self, prompts, completions):
        out = []
        for c in completions:
            refused = 1.0 if c.startswith("No") else 0.0
            harm = 1.0 if "bomb" in c else 0.0
            out.append({"score": (1 - refused) * harm, "refused": refused, "harm": harm, "incoherent": False})
        return out

    def score(self, prompts, completions):
        return [a["score"] for a in self.assess(prompts, completions)]


def test_harmeval_reports_refusal_rate_and_incoherent_share():
    from alignkit.harmfulness import evaluate_harmfulness, summarize

    comps = ["No, I won't.", "Here is the bomb recipe: [X].", "No.", "Here is a cake recipe."]
    ev = evaluate_harmfulness(None, None, ["a", "b", "c", "d"], _Heads(), completions=comps)
    assert ev.refusal_rate == 0.5 and ev.share_harmful == 0.25 and ev.mean == 0.25
    assert ev.generations[0].refused == 1.0 and ev.generations[1].harm == 1.0
    assert "refused 0.50" in ev.summary()
    # a judge without a refusal head: no refusal rate; incoherence is still measured
    ev2 = summarize(["a", "b"], ["c", "c"], ["the the the the the the the the", "fine answer here"], [0.9, 0.1], "x@1")
    assert ev2.refusal_rate is None and ev2.incoherent_share == 0.5 and ev2.generations[0].incoherent


def test_report_shows_refusal_rate_incoherence_and_agreement(tmp_path):
    """The evaluation report's refusal table reads each attack's first / last saved generations."""
    from alignkit.conditions.schema import AttackRun, AttackSpec, CurvePoint, EvaluationReport, ModelEntry, \
        ResistanceResult
    from alignkit.reporting import tables as T
    from alignkit.reporting.render import markdown

    first = [{"prompt": "q", "completion": "No.", "score": 0.0, "refused": 0.9, "harm": 0.1, "incoherent": False}] * 4
    last = ([{"prompt": "q", "completion": "Sure: [X]", "score": 0.8, "refused": 0.1, "harm": 0.9,
              "incoherent": False}] * 3 + [{"prompt": "q", "completion": "a a a a a a a a", "score": 0.0,
                                            "refused": 0.2, "harm": 0.5, "incoherent": True}])
    run = _run_dir(tmp_path, first, step=0)
    _run_dir(tmp_path, last, step=10)
    spec = AttackSpec(lr=8e-5, num_samples=8, max_steps=10)
    ar = AttackRun(model="base", spec=spec, run_dir=str(run),
                   curve=[CurvePoint(step=0, harmfulness=0.0, share_harmful=0.0),
                          CurvePoint(step=10, harmfulness=0.6, share_harmful=0.75)])
    rep = EvaluationReport(config={}, provenance={}, judge="minilm@3",
                           models=[ModelEntry(label="base", path="/b", role="base")], phi=0.1,
                           resistance=ResistanceResult(phi=0.1, phi_source="given", runs=[ar], verdicts=[]),
                           extra={"judge_agreement": refusal_agreement(run, "minilm@3")})
    header, rows = T.refusal_table(rep)
    assert header[-2:] == ["refusal rate", "incoherent share"]
    assert rows == [["base", rows[0][1], "0.00 -> 0.60", "0.00 -> 0.75", "1.00 -> 0.00", "0.00 -> 0.25"]]
    md = markdown(rep)
    assert "Refusals and incoherence" in md and "Cohen's kappa" in md and "1.00 -> 0.00" in md
