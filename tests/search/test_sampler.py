"""The samplers of a study are seeded per trial: a re-run (continuing a study) or a second worker with the same
--sampler-seed proposes new parameters, not the first trials' again; one worker's study stays reproducible."""

from __future__ import annotations

import pytest


def _objective(trial):
    return trial.suggest_float("lr", 1e-5, 1e-3, log=True), trial.suggest_int("steps", 1, 100)


def _params(study):
    return [(t.params["lr"], t.params["steps"]) for t in study.get_trials(deepcopy=False)]


@pytest.mark.parametrize("directions", [["maximize", "minimize"], ["maximize"]])  # NSGA-II, TPE
def test_continuing_or_a_second_worker_proposes_new_parameters(tmp_path, directions):
    from alignkit.search.study import open_storage, open_study

    f = _objective if len(directions) == 2 else (lambda t: _objective(t)[0])
    sig = {"kind": "test"}
    url = f"sqlite:///{tmp_path / 'a.db'}"
    first = open_study(open_storage(url), sig, directions, sampler_seed=0)
    first.optimize(f, n_trials=3)
    again = open_study(open_storage(url), sig, directions, sampler_seed=0)  # the same command run again
    again.optimize(f, n_trials=3)
    got = _params(again)
    assert len(got) == 6 and len(set(got)) == 6  # the re-run did not replay trials 0-2

    # one worker's study is reproducible: the same seed gives the same six trials in one go
    one = open_study(open_storage(f"sqlite:///{tmp_path / 'b.db'}"), sig, directions, sampler_seed=0)
    one.optimize(f, n_trials=6)
    assert _params(one) == got

    # two workers started together (same seed) on one storage: interleaved trials all differ
    url = f"sqlite:///{tmp_path / 'c.db'}"
    w1 = open_study(open_storage(url), sig, directions, sampler_seed=0)
    w2 = open_study(open_storage(url), sig, directions, sampler_seed=0)
    for _ in range(3):
        for w in (w1, w2):
            t = w.ask()
            w.tell(t, f(t))
    both = _params(w1)
    assert len(both) == 6 and len(set(both)) == 6
