"""``alignkit evaluate``, ``alignkit demo`` and ``alignkit report`` (mounted by alignkit.cli via register)."""

from __future__ import annotations

from pathlib import Path

import typer

from alignkit.config import config_command


def _progress(console):
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console)


def _evaluate(config) -> None:
    import time

    from rich.console import Console

    from alignkit.conditions.evaluate import evaluate
    from alignkit.reporting import summary

    console = Console()
    t0 = time.time()
    with _progress(console) as progress:
        def log(msg: str) -> None:
            progress.console.print(f"  [dim]{time.time() - t0:6.0f}s[/] {msg}", highlight=False)

        report = evaluate(config, progress=progress, log=log)
    summary(report, console=console)


def _demo(config) -> None:
    from alignkit.conditions.demo import run_demo

    run_demo(config)


def register(app: typer.Typer) -> None:
    from alignkit.conditions.demo import DemoConfig
    from alignkit.conditions.evaluate import EvaluateConfig

    config_command(app, EvaluateConfig, "evaluate", _evaluate,
                   help="Certify defended model(s) against the undefended base: resistance (attack sweep, "
                        "phi, steps-to-threshold, worst case), stability, generalization, trainability and "
                        "per-layer probes. Writes results.json, report.md, report.html.")
    config_command(app, DemoConfig, "demo", _demo,
                   help="The main job: measure smollm2-135m-instruct, align it with safety SFT (the base), "
                        "immunize it with RepNoise, attack both, run the conditions and write the report.")

    @app.command("report")
    def report_cmd(run_dir: Path = typer.Argument(..., help="an evaluation run folder (or its results.json)")
                   ) -> None:
        """Re-render report.md / report.html and the terminal summary from a results.json."""
        from alignkit.conditions.evaluate import load_report, save_report
        from alignkit.reporting import summary

        rep = load_report(run_dir)  # the whole file is validated before anything is written
        folder = Path(run_dir) if Path(run_dir).is_dir() else Path(run_dir).parent
        save_report(rep, folder)
        summary(rep, folder=folder)  # the folder written (a copied run folder's results.json names the original)
