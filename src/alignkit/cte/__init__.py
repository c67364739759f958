"""Counterfactual Trajectory Explanations (CTEs) for learned reward functions.

One file per component, each readable top to bottom:

* :mod:`~alignkit.cte.env`: the Emergency gridworld (Gymnasium, numpy, get_state/set_state, renderer)
* :mod:`~alignkit.cte.expert`, :mod:`~alignkit.cte.airl`, :mod:`~alignkit.cte.models`: planner expert,
  AIRL with a state-only reward g(s), safetensors weights and numpy inference
* :mod:`~alignkit.cte.core`: the general interface (env + policy(obs)->probs + reward(obs)->float)
* :mod:`~alignkit.cte.criteria`: the six quality criteria, normalisation, weight presets
* :mod:`~alignkit.cte.diagnostics`: g against the ground truth up to shaping (EPIC distance)
* :mod:`~alignkit.cte.mcto`, :mod:`~alignkit.cte.dac`, :mod:`~alignkit.cte.random_gen`: generators
* :mod:`~alignkit.cte.features`, :mod:`~alignkit.cte.proxy_human`: proxy-human evaluation
* :mod:`~alignkit.cte.render`, :mod:`~alignkit.cte.pipeline`, :mod:`~alignkit.cte.cli`: pictures, glue, CLI

Explaining your own reward model::

    from alignkit.cte import GENERATORS, Model, Scorer, rollout
    model = Model(policy=my_policy_probs, reward=my_reward)      # callables on one observation
    orig = rollout(my_env, model, seed=0)                        # env offers get_state/set_state
    scorer = Scorer(my_env, model)
    scorer.fit([...raw criteria of sample CTEs...])             # or pass bounds=...
    cte = GENERATORS.get("mcto")(my_env, model, scorer).generate([orig])[0]
"""

from alignkit.cte import dac, mcto, random_gen  # noqa: F401  (registers the generators)
from alignkit.cte.core import CTE, GENERATORS, Generator, Model, Segment, rollout
from alignkit.cte.criteria import CRITERIA, DEFAULT_WEIGHTS, WEIGHT_PRESETS, Scorer
from alignkit.cte.env import EmergencyEnv

__all__ = ["CTE", "CRITERIA", "DEFAULT_WEIGHTS", "WEIGHT_PRESETS", "GENERATORS", "Generator", "Model", "Scorer", "Segment",
           "EmergencyEnv", "rollout"]
