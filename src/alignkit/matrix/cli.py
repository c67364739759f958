"""``alignkit matrix`` (mounted by the root CLI): prints the results.json path."""

from __future__ import annotations

import typer


def _matrix(config) -> None:
    from alignkit.matrix.run import run_matrix

    res = run_matrix(config)
    print(f"{res.run_dir}/results.json")


def register(app: typer.Typer) -> None:
    from alignkit.config import config_command
    from alignkit.matrix.config import MatrixConfig

    config_command(app, MatrixConfig, "matrix", _matrix,
                   help="Defences x attacks in one command: each defence trained once per seed, every attack of the "
                        "suite run on the undefended and each defended model (one cached cell each; re-running "
                        "resumes, several processes may share the folder); writes results.json and report.md/html "
                        "with a heat-map, the capability cost of each defence and the verdict per cell. Prints the "
                        "results.json path.")
