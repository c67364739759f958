"""``alignkit cte ...``: train the reward, generate / evaluate / show CTEs, or run the whole pipeline.

Mounted by the root CLI as ``app.add_typer(cte_app, name="cte")``; also runs standalone as
``python -m alignkit.cte.cli``. User mistakes print ``error: <one line>`` and exit with status 2.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from alignkit.errors import AlignkitError

app = typer.Typer(help="Counterfactual trajectory explanations (CTEs) of a learned reward (Emergency gridworld).",
                  no_args_is_help=True, add_completion=False)
console = Console()
wide = Console(width=max(console.width, 150))  # tables stay readable when output is piped
DEFAULT_RUN = Path("runs/cte")


def _user_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except AlignkitError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2)
    return wrapper


def _check_method(method: str) -> str:
    from alignkit.cte.pipeline import METHODS

    if method not in METHODS:
        raise AlignkitError(f"unknown CTE method {method!r}; choose one of: {', '.join(METHODS)}")
    return method


def _check_weights_dir(weights: Optional[Path]) -> Optional[Path]:
    if weights is not None and not weights.is_dir():
        raise AlignkitError(f"--weights {weights} is not a folder; pass the folder 'alignkit cte train --out' wrote")
    return weights


def _generate(method, n, out, seed, weights, settings=None):
    from alignkit.cte.pipeline import generate

    with Progress(TextColumn(f"[bold]{method}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as prog:
        task = prog.add_task(method, total=n)
        t0 = time.perf_counter()
        rows = generate(method, n, out, seed=seed, weights=weights, settings=settings,
                        progress=lambda i: prog.update(task, completed=i + 1))
        dt = time.perf_counter() - t0
    q = sum(r["quality"] for r in rows) / len(rows)
    s = sum(r["seconds"] for r in rows) / len(rows)
    c = sum(r["cpu_seconds"] for r in rows) / len(rows)
    console.print(f"{method}: {len(rows)} CTEs in {dt:.1f}s ({s:.3f} s/CTE wall, {c:.3f} CPU), mean quality {q:.2f} "
                  f"-> {Path(out) / f'ctes_{method}.jsonl'}")
    return rows


def _print_table(res: dict) -> None:
    def cell(gen, model, test, metric):
        for r in res["table"]:
            if (r["generator"], r["model"], r["test"], r["metric"]) == (gen, model, test, metric):
                return f"{r['mean']:.2f} ± {r['std']:.2f}"
        return "-"

    t = Table(title=f"Proxy-human evaluation ({res['seeds']} seeds; mean ± std; comb = combined OOD test set)")
    for col in ("generator", "model", "Pearson comb", "Spearman comb", "sign acc comb", "Pearson Δ comb",
                "Pearson own", "sign acc own", "quality", "s/CTE wall", "s/CTE CPU"):
        t.add_column(col, justify="right" if col not in ("generator", "model") else "left")
    for g in res["methods"]:
        for m in ("mlp", "linear"):
            q = res["quality"][g]
            t.add_row(g, m, cell(g, m, "combined", "pearson"), cell(g, m, "combined", "spearman"),
                      cell(g, m, "combined", "sign_acc"), cell(g, m, "combined", "pearson_diff"),
                      cell(g, m, "own", "pearson"), cell(g, m, "own", "sign_acc"),
                      f"{q['mean']:.2f} ± {q['std']:.2f}", f"{res['seconds_per_cte'][g]:.3f}",
                      f"{res['cpu_seconds_per_cte'][g]:.3f}")
    wide.print(t)


def _evaluate(out: Path, seeds: int, epochs: int = 150, command: str = "evaluate") -> dict:
    from alignkit.cte.pipeline import evaluate_run, results_markdown
    from alignkit.io import atomic_write_text, write_json
    from alignkit.provenance import Provenance

    res = evaluate_run(out, seeds=seeds, epochs=epochs)
    res["provenance"] = Provenance(model="alignkit/cte/weights (AIRL g(s) + PPO policy)",
                                   data={"env": "Emergency gridworld 8x8"}, seed=0, command=command).model_dump()
    write_json(out / "results.json", res)
    atomic_write_text(out / "results.md", results_markdown(res))
    _print_table(res)
    return res


def _show(out: Path, method: str, index: int, gallery: int) -> tuple[Path, Path]:
    from alignkit.cte.pipeline import METHODS, load_ctes, replay
    from alignkit.cte.render import draw_cte, gallery_html
    from alignkit.io import atomic_write_text

    rows = load_ctes(out, method)
    if not 0 <= index < len(rows):
        raise AlignkitError(f"--index {index} is out of range; {method} has CTEs 0..{len(rows) - 1}")

    def png_for(m, i, r):
        so, sc = replay(r)
        return draw_cte(so, sc, r["orig_actions"], r["cf_actions"], r["orig_rewards"], r["cf_rewards"],
                        out / "gallery" / f"{m}_{i:04d}.png",
                        header=f"{m} CTE #{i}: start t={r['start']}, quality {r['quality']:.2f}")

    png = png_for(method, index, rows[index])
    items = []
    for m in METHODS:
        if not (out / f"ctes_{m}.jsonl").exists():
            continue
        for i, r in enumerate(load_ctes(out, m)[:gallery]):
            p = png_for(m, i, r)
            items.append(dict(png=p.name, method=m, index=i, start=r["start"], quality=r["quality"],
                              mean_reward_orig=r["mean_reward_orig"], mean_reward_cf=r["mean_reward_cf"], raw=r["raw"]))
    page = atomic_write_text(out / "gallery" / "index.html", gallery_html(items))
    return png, page


@app.command()
@_user_errors
def train(out: Path = typer.Option(DEFAULT_RUN / "weights", help="folder for the safetensors weights "
                                   "(use src/alignkit/cte/weights to refresh the shipped ones)"),
          demos: int = typer.Option(1000, help="expert demonstrations"),
          timesteps: int = typer.Option(150_000, help="PPO generator steps"),
          seed: int = typer.Option(0)):
    """Train AIRL (g, h) against a PPO generator on planner demonstrations; save safetensors weights."""
    import torch

    from alignkit.cte.airl import train_airl

    if demos < 1 or timesteps < 2048:
        raise AlignkitError("--demos must be >= 1 and --timesteps >= 2048")
    torch.set_num_threads(1)
    meta = train_airl(out, n_demos=demos, total_steps=timesteps, seed=seed, log=console.print)
    console.print_json(json.dumps(meta["agreement"]))
    console.print(f"weights -> {out}")


@app.command("generate")
@_user_errors
def generate_cmd(method: str = typer.Option("mcto", "--method", "-m", help="mcto | dac | random"),
                 n: int = typer.Option(20, "-n", help="number of CTEs (one per original trajectory)"),
                 out: Path = typer.Option(DEFAULT_RUN, help="run folder"),
                 seed: int = typer.Option(0),
                 weights: Optional[Path] = typer.Option(None, help="weights folder (default: the shipped weights)"),
                 n_starts: Optional[int] = typer.Option(None, help="MCTO: start states tried"),
                 n_iter: Optional[int] = typer.Option(None, help="MCTO: iterations per committed step")):
    """Generate N CTEs with one method and write them to OUT/ctes_<method>.jsonl."""
    _check_method(method)
    settings = {}
    if method == "mcto":
        if n_starts is not None:
            settings["n_starts"] = n_starts
        if n_iter is not None:
            settings["n_iter"] = n_iter
    _generate(method, n, out, seed, _check_weights_dir(weights), settings)


@app.command()
@_user_errors
def evaluate(out: Path = typer.Option(DEFAULT_RUN, help="run folder with ctes_*.jsonl"),
             seeds: int = typer.Option(3, help="proxy-human seeds"),
             epochs: int = typer.Option(150, help="MLP training epochs")):
    """Train and test the proxy humans on the CTEs in OUT; print and save the table."""
    if seeds < 1:
        raise AlignkitError("--seeds must be at least 1")
    _evaluate(out, seeds, epochs)


@app.command()
@_user_errors
def show(out: Path = typer.Option(DEFAULT_RUN, help="run folder with ctes_*.jsonl"),
         method: str = typer.Option("mcto", "--method", "-m"),
         index: int = typer.Option(0, help="which CTE to draw"),
         gallery: int = typer.Option(8, help="CTEs per method in the HTML gallery")):
    """Draw one CTE as a PNG (original vs counterfactual with rewards) and write an HTML gallery."""
    _check_method(method)
    png, page = _show(out, method, index, gallery)
    console.print(f"PNG -> {png}\ngallery -> {page}")


@app.command()
@_user_errors
def pipeline(preset: str = typer.Option("quick", help="quick (minutes) | paper (1000 CTEs/method, 10 seeds)"),
             out: Optional[Path] = typer.Option(None, help="run folder (default runs/cte/<preset>)"),
             seed: int = typer.Option(0),
             weights: Optional[Path] = typer.Option(None, help="weights folder (default: the shipped weights)"),
             n: Optional[int] = typer.Option(None, "-n", help="override CTEs per method")):
    """Generate CTEs with all three methods, evaluate with the proxy humans, draw pictures."""
    from alignkit.cte.pipeline import METHODS, PRESETS

    if preset not in PRESETS:
        raise AlignkitError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    out = out or DEFAULT_RUN / preset
    _check_weights_dir(weights)
    n = n or p.n
    t0 = time.perf_counter()
    for m in METHODS:
        _generate(m, n, out, seed, weights, p.mcto if m == "mcto" else None)
    _evaluate(out, p.seeds, p.epochs, command=f"alignkit cte pipeline --preset {preset}")
    png, page = _show(out, "mcto", 0, 8)
    console.print(f"PNG -> {png}\ngallery -> {page}\nresults -> {out / 'results.md'}\n"
                  f"total {time.perf_counter() - t0:.0f}s")


def main() -> None:  # standalone entry point
    try:
        app()
    except AlignkitError as e:  # pragma: no cover - commands already convert these
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
