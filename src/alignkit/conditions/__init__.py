"""The immunization conditions (methods.md section 1) and the evaluation pipeline.

    from alignkit.conditions import EvaluateConfig, evaluate, CONDITIONS
    report = evaluate(EvaluateConfig(model=["runs/defend-repnoise/model"], base="smollm2-135m-instruct"))

One module per condition, registered by name in :data:`CONDITIONS`: ``resistance``, ``stability``,
``generalization``, ``trainability``, ``depth``; each holds its verdict logic as pure functions and its runner
``run_<name>(ctx)`` (stability's runner is in ``stability_runner.py``). :mod:`~alignkit.conditions.context`
holds what the runners share, :mod:`~alignkit.conditions.stages` the stage cache,
:mod:`~alignkit.conditions.config` the config, :mod:`~alignkit.conditions.verdicts` the report's verdict rows
(harm score and compliance rate), :mod:`~alignkit.conditions.meaning` what a results.json must mean, and
:mod:`~alignkit.conditions.evaluate` the pipeline. ``alignkit evaluate`` and ``alignkit demo`` are in ``cli.py``.
"""

from __future__ import annotations

from alignkit.conditions.evaluate import EvaluateConfig, evaluate, load_report, save_report
from alignkit.conditions.registry import CONDITIONS, ORDER
from alignkit.conditions.schema import EvaluationReport

__all__ = ["CONDITIONS", "ORDER", "EvaluateConfig", "EvaluationReport", "evaluate", "load_report", "save_report"]
