"""``alignkit matrix``: defences x attacks in one command (docs/matrix.md).

    from alignkit.matrix import MatrixConfig, run_matrix
    res = run_matrix(MatrixConfig(defences="repnoise,safety-sft", attacks="quick", seeds=[0, 1, 2],
                                  output_dir="runs/matrix"))
    res.summaries      # per (row, attack): harmfulness after attack (mean, spread), refusal rate, verdict

config.py: the options (doubling as the CLI) and the plan; run.py: the cells (cached, locked, resumable);
report.py: report.md / report.html with the heat-map; schema.py: results.json.
"""

from __future__ import annotations

from typing import Any

from alignkit.matrix.config import MatrixConfig


def run_matrix(config: MatrixConfig, **kw: Any):
    from alignkit.matrix.run import run_matrix as _run

    return _run(config, **kw)


__all__ = ["MatrixConfig", "run_matrix"]
