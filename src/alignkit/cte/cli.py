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


def _check_model_dir(model_dir: Optional[Path]) -> Optional[Path]:
    """The weights folder exists and its reward and policy files load (else one line, before any work)."""
    if model_dir is not None:
        if not model_dir.is_dir():
            raise AlignkitError(f"--model-dir {model_dir} is not a folder; pass the folder "
                                "'alignkit cte train --out' wrote")
        from alignkit.cte.models import load_models

        load_models(model_dir)
    return model_dir


def _check_seed(seed: int) -> int:
    from alignkit.cte.core import check_seed

    return check_seed(seed, "--seed")


def _check_options(weights: str, realisticness: str, env: str) -> None:
    from alignkit.cte.criteria import check_realisticness, check_weights
    from alignkit.cte.env import make_env

    if Path(weights).exists():
        raise AlignkitError(f"--weights takes a criteria weights preset (paper, alignkit), not a path; "
                            f"pass the AIRL weights folder {weights} with --model-dir")
    check_weights(weights)
    check_realisticness(realisticness)
    make_env(env)


def _writable(out: Path) -> Path:
    """The run folder can be created and written (else one line naming --out)."""
    from alignkit.io import check_writable_dir

    try:
        return check_writable_dir(out)
    except AlignkitError as e:
        raise AlignkitError(str(e).replace("--output-dir", "--out")) from None


def _writable_run(out: Path) -> None:
    """Before any work: an existing run folder (and its gallery/) can be written; a missing one is reported
    by the loader ('no ctes_*.jsonl' / 'not found')."""
    if out.exists():
        _writable(out)
        if (out / "gallery").exists():
            _writable(out / "gallery")


def _at_least(name: str, value: Optional[int], low: int = 1) -> None:
    if value is not None and value < low:
        raise AlignkitError(f"{name} must be at least {low} (got {value})")


def _generate(method, n, out, seed, model_dir, settings=None, weights="paper", realisticness="signed",
              env="emergency-v2"):
    from alignkit.cte.pipeline import generate

    with Progress(TextColumn(f"[bold]{method}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as prog:
        task = prog.add_task(method, total=n)
        t0 = time.perf_counter()
        rows = generate(method, n, out, seed=seed, weights=model_dir, settings=settings, scorer_weights=weights,
                        realisticness=realisticness, env_id=env,
                        progress=lambda i: prog.update(task, completed=i + 1))
        dt = time.perf_counter() - t0
    q = sum(r["quality"] for r in rows) / len(rows)
    s = sum(r["seconds"] for r in rows) / len(rows)
    c = sum(r["cpu_seconds"] for r in rows) / len(rows)
    console.print(f"{method}: {len(rows)} CTEs in {dt:.1f}s ({s:.3f} s/CTE wall, {c:.3f} CPU), mean quality {q:.2f} "
                  f"-> {Path(out) / f'ctes_{method}.jsonl'}")
    return rows


def _print_table(res: dict) -> None:
    from alignkit.cte.pipeline import curve_table

    header, rows = curve_table(res, "mlp")
    t = Table(title=f"Proxy-human learning curves (MLP proxy, combined test set; Pearson and sign accuracy, "
                    f"mean ± half-width of the 95% band over {res['seeds']} seeds)")
    for col in header:
        t.add_column(col, justify="left" if col in ("target", "n_train") else "right")
    for r in rows:
        t.add_row(*[str(c) for c in r])
    wide.print(t)
    q = Table(title="Generated CTEs")
    for col in ("generator", "quality", "mean length", "level share", "s/CTE wall", "s/CTE CPU"):
        q.add_column(col, justify="left" if col == "generator" else "right")
    for g in res["methods"]:
        d = res["quality"][g]
        q.add_row(g, f"{d['mean']:.2f} ± {d['std']:.2f}", f"{d['mean_length']:.1f}", f"{d['level_share']:.2f}",
                  f"{res['seconds_per_cte'][g]:.3f}", f"{res['cpu_seconds_per_cte'][g]:.3f}")
    wide.print(q)


def _evaluate(out: Path, seeds: int, epochs: int = 150, command: str = "evaluate", n_trains=None) -> dict:
    from alignkit.cte.models import load_meta
    from alignkit.cte.pipeline import evaluate_run, json_safe, plot_curves, results_markdown
    from alignkit.io import atomic_write_text, write_json
    from alignkit.provenance import Provenance

    _writable_run(out)
    res = evaluate_run(out, seeds=seeds, epochs=epochs, n_trains=n_trains)
    res["provenance"] = Provenance(model="alignkit/cte/weights (AIRL g(s) + PPO policy)",
                                   data={"env": load_meta().get("env", "emergency-v2")}, seed=0,
                                   command=command).model_dump()
    write_json(out / "results.json", json_safe(res))
    atomic_write_text(out / "results.md", results_markdown(res))
    plot_curves(res, out / "gallery" / "curves.png")
    _print_table(res)
    return res


def _show(out: Path, method: str, index: int, gallery: int) -> tuple[Path, Path]:
    _at_least("--gallery", gallery, 0)
    from alignkit.cte.pipeline import METHODS, load_ctes, replay
    from alignkit.cte.render import draw_cte, gallery_html
    from alignkit.io import atomic_write_text

    rows = load_ctes(out, method)
    if not 0 <= index < len(rows):
        raise AlignkitError(f"--index {index} is out of range; {method} has CTEs 0..{len(rows) - 1}")
    others = {m: rows if m == method else load_ctes(out, m)  # every file checked before anything is drawn
              for m in METHODS if (out / f"ctes_{m}.jsonl").exists()}
    _writable_run(out)

    def png_for(m, i, r):
        so, sc = replay(r)
        return draw_cte(so, sc, r["orig_actions"], r["cf_actions"], r["orig_rewards"], r["cf_rewards"],
                        out / "gallery" / f"{m}_{i:04d}.png",
                        header=f"{m} CTE #{i}: start t={r['start']}, quality {r['quality']:.2f}")

    png = png_for(method, index, rows[index])
    items = []
    for m, m_rows in others.items():
        for i, r in enumerate(m_rows[:gallery]):
            p = png_for(m, i, r)
            items.append(dict(png=p.name, method=m, index=i, start=r["start"], quality=r["quality"],
                              mean_reward_orig=r["mean_reward_orig"], mean_reward_cf=r["mean_reward_cf"], raw=r["raw"]))
    curves = (out / "gallery" / "curves.png").exists()
    page = atomic_write_text(out / "gallery" / "index.html", gallery_html(items, curves="curves.png" if curves else None))
    return png, page


WEIGHTS_HELP = "criteria weights preset: paper (the paper's best weights) | alignkit (earlier hand-set weights)"
REAL_HELP = "realisticness: signed (mean R(c) - mean R(o), the original) | likelihood (mean log pi of the counterfactual)"


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
    _check_seed(seed)
    _writable(out)
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
                 model_dir: Optional[Path] = typer.Option(None, help="AIRL weights folder (default: the shipped weights)"),
                 weights: str = typer.Option("paper", help=WEIGHTS_HELP),
                 realisticness: str = typer.Option("signed", help=REAL_HELP),
                 env: str = typer.Option("emergency-v2", help="environment id"),
                 n_starts: Optional[int] = typer.Option(None, help="MCTO: start states tried"),
                 n_iter: Optional[int] = typer.Option(None, help="MCTO: iterations per committed step")):
    """Generate N CTEs with one method and write them to OUT/ctes_<method>.jsonl."""
    _check_method(method)
    _at_least("-n", n)
    _check_seed(seed)
    _at_least("--n-starts", n_starts)
    _at_least("--n-iter", n_iter)
    _check_options(weights, realisticness, env)
    _check_model_dir(model_dir)
    _writable(out)
    settings = {}
    if method == "mcto":
        if n_starts is not None:
            settings["n_starts"] = n_starts
        if n_iter is not None:
            settings["n_iter"] = n_iter
    _generate(method, n, out, seed, model_dir, settings, weights, realisticness, env)


@app.command()
@_user_errors
def evaluate(out: Path = typer.Option(DEFAULT_RUN, help="run folder with ctes_*.jsonl"),
             seeds: int = typer.Option(10, help="proxy-human seeds"),
             epochs: int = typer.Option(150, help="MLP training epochs")):
    """Proxy-human learning curves on the CTEs in OUT; print and save the table and the curves."""
    _at_least("--seeds", seeds)
    _at_least("--epochs", epochs)
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
def explain(trajectory: Path = typer.Argument(..., help="JSON file {'layout_seed': int, 'actions': [int, ...]} "
                                              "or {'start_state': {...}, 'actions': [...]}: the original to explain"),
            method: str = typer.Option("mcto", "--method", "-m", help="mcto | dac | random"),
            out: Path = typer.Option(DEFAULT_RUN / "explain", help="folder for the PNG and the CTE"),
            seed: int = typer.Option(0),
            model_dir: Optional[Path] = typer.Option(None, help="AIRL weights folder (default: the shipped weights)"),
            weights: str = typer.Option("paper", help=WEIGHTS_HELP),
            realisticness: str = typer.Option("signed", help=REAL_HELP),
            env: str = typer.Option("emergency-v2", help="environment id")):
    """Explain one trajectory of your own (a layout and its actions) with one CTE; writes a PNG."""
    from alignkit.cte.env import make_env
    from alignkit.cte.pipeline import explain_trajectory, read_trajectory

    _check_method(method)
    _check_seed(seed)
    _check_options(weights, realisticness, env)
    read_trajectory(trajectory, make_env(env))  # a bad file is reported before anything is created
    _check_model_dir(model_dir)
    _writable(out)
    png = explain_trajectory(trajectory, method, out, seed=seed, weights=model_dir,
                             scorer_weights=weights, realisticness=realisticness, env_id=env)
    console.print(f"PNG -> {png}")


@app.command()
@_user_errors
def pipeline(preset: str = typer.Option("quick", help="quick (minutes) | paper (1000 CTEs/method, 10 seeds)"),
             out: Optional[Path] = typer.Option(None, help="run folder (default runs/cte/<preset>)"),
             seed: int = typer.Option(0),
             model_dir: Optional[Path] = typer.Option(None, help="AIRL weights folder (default: the shipped weights)"),
             weights: Optional[str] = typer.Option(None, help=WEIGHTS_HELP + " (default: the preset's)"),
             realisticness: str = typer.Option("signed", help=REAL_HELP),
             env: str = typer.Option("emergency-v2", help="environment id"),
             n: Optional[int] = typer.Option(None, "-n", help="override CTEs per method"),
             seeds: Optional[int] = typer.Option(None, help="override proxy-human seeds")):
    """Generate CTEs with all three methods, print the proxy-human learning curves, draw pictures."""
    from alignkit.cte.pipeline import METHODS, PRESETS

    if preset not in PRESETS:
        raise AlignkitError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    _at_least("-n", n)
    _at_least("--seeds", seeds)
    _check_seed(seed)
    weights = weights or p.weights
    _check_options(weights, realisticness, env)
    _check_model_dir(model_dir)
    out = _writable(out or DEFAULT_RUN / preset)
    n = n if n is not None else p.n
    t0 = time.perf_counter()
    for m in METHODS:
        _generate(m, n, out, seed, model_dir, p.mcto if m == "mcto" else None, weights, realisticness, env)
    _evaluate(out, seeds or p.seeds, p.epochs, command=f"alignkit cte pipeline --preset {preset}")
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
