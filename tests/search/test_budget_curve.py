"""The attack budget a defence buys (alignkit.search.budget_curve) on hand-made Optuna studies."""

from __future__ import annotations

import pytest


def _study(values, attack_s=None, initial=0.1, failed=()):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for i, v in enumerate(values):
        if i in failed:
            study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, params={}, distributions={}))
            continue
        attrs = {"initial_harmfulness": initial if not isinstance(initial, list) else initial[i]}
        if attack_s is not None:
            attrs["attack_s"] = attack_s[i]
        study.add_trial(optuna.trial.create_trial(value=v, params={}, distributions={}, user_attrs=attrs))
    return study


def test_best_so_far_and_trials_to_pass():
    from alignkit.search.budget_curve import budget_curves

    base = _study([0.2, 0.5, 0.4, 0.7], attack_s=[10, 20, 30, 40], initial=[0.1, 0.2, 0.3, 0.1])
    defended = _study([0.1, 0.15, 0.9, 0.3, 0.2], attack_s=[5, 5, 5, 5, 5], failed=(1,))
    bc = budget_curves([base, defended], ["undefended", "repnoise"], margin=0.1)
    # phi = the reference's median pre-attack harmfulness (0.15) + margin
    assert bc.phi == pytest.approx(0.25) and "0.150" in bc.phi_source
    u, d = bc.curves
    assert u.best_so_far == [0.2, 0.5, 0.5, 0.7] and u.cumulative_attack_s == [10, 30, 60, 100]
    assert u.trials_to_pass == 2 and u.attack_s_to_pass == 30
    # the failed trial is left out of both axes
    assert d.trials == [0, 2, 3, 4] and d.best_so_far == [0.1, 0.9, 0.9, 0.9]
    assert d.trials_to_pass == 2 and d.attack_s_to_pass == 10 and d.best == 0.9


def test_never_passing_and_given_phi():
    from alignkit.search.budget_curve import budget_curves, summary_lines

    bc = budget_curves([_study([0.2, 0.3]), _study([0.1, 0.1])], ["base", "defended"], phi=0.25)
    assert bc.phi_source == "given"
    assert bc.curves[0].trials_to_pass == 2 and bc.curves[0].attack_s_to_pass is None  # no attack_s recorded
    assert bc.curves[1].trials_to_pass is None
    lines = summary_lines(bc)
    assert "never above phi in 2 finished trials" in lines[2] and "after 2 of 2" in lines[1]
    # equal to phi is not above it
    assert budget_curves([_study([0.25])], phi=0.25).curves[0].trials_to_pass is None


def test_default_margin_comes_from_the_judge_card():
    from alignkit.search.budget_curve import DEFAULT_PHI_MARGIN, judge_phi_margin

    m, src = judge_phi_margin("minilm@5")
    assert 0 < m <= 0.2 and "card" in src
    assert judge_phi_margin("fake@1")[0] == DEFAULT_PHI_MARGIN


def test_plot_and_search_folder(tmp_path):
    """A finished search folder (results.json) reads the same as its study; the plot is a PNG."""
    import json

    from alignkit.errors import AlignkitError
    from alignkit.search.budget_curve import budget_curves, plot_png, search_report_section
    from alignkit.search.common import trial_records

    study = _study([0.3, 0.6], attack_s=[1.5, 2.5])
    recs = trial_records(study)
    (tmp_path / "results.json").write_text(json.dumps({"config": {"model": "m", "judge": "fake"},
                                                       "provenance": {"judge": "fake@1"},
                                                       "trials": [r.model_dump() for r in recs]}))
    a = budget_curves([tmp_path], margin=0.1).curves[0]
    b = budget_curves([study], margin=0.1).curves[0]
    assert a.best_so_far == b.best_so_far == [0.3, 0.6] and a.label == "m" and a.source == str(tmp_path)
    png = plot_png(budget_curves([tmp_path, study], ["a", "b"]))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"

    class Result:  # the shape of an AttackSearchResult
        config = {"model": "m", "judge": "fake", "phi": None}
        trials = recs
        provenance = {"judge": "fake@1"}
        run_dir = str(tmp_path)

    (sec,) = search_report_section(Result())
    assert sec[0].startswith("Attack budget") and "data:image/png;base64," in sec[1]
    with pytest.raises(AlignkitError, match="no finished search"):
        budget_curves([tmp_path / "nope"])


def test_the_search_report_draws_its_own_curve(tmp_path):
    from alignkit.search.attack import AttackSearchResult, write_report
    from alignkit.search.common import trial_records

    res = AttackSearchResult(config={"model": "m", "judge": "fake", "phi": 0.5}, space={}, storage="", epsilon=0.25,
                             counts={"complete": 3}, worst_raw=None, worst_bounded=None, mean_overhead_s=None,
                             trials=trial_records(_study([0.2, 0.6, 0.4], attack_s=[1, 1, 1])), provenance={},
                             run_dir=str(tmp_path))
    write_report(res, tmp_path / "report.html")
    html = (tmp_path / "report.html").read_text()
    assert "Attack budget: best harmfulness so far" in html
    assert "phi = 0.500 (given)" in html and "above phi after 2 of 3 finished trials" in html
