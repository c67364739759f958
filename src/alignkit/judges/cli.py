"""``alignkit judge``: train, evaluate and run harmfulness judges.

    alignkit judge list
    alignkit judge train [--ship | --output PATH] [--train-layers 2 --epochs 3 ...]
    alignkit judge eval [--judge minilm] [--split test] [--output metrics.json]
    alignkit judge score --judge minilm --prompt "..." --completion "..."
    alignkit judge score --judge refusal-keywords --input rows.jsonl [--output scored.jsonl]

``--judge`` takes a registered name with optional options: ``hf-classifier:model=./clf,harmful_label=1``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from alignkit.errors import AlignkitError

app = typer.Typer(help="Harmfulness judges: train the default minilm judge, evaluate a judge against held-out "
                       "human labels, score completions.", no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False)


def _judge(spec: str, weights: Optional[str] = None):
    from alignkit.judges import get_judge, parse_judge_spec

    name, opts = parse_judge_spec(spec)
    if weights:
        if name != "minilm":
            raise AlignkitError("--weights only applies to the minilm judge")
        opts["weights"] = weights
    return get_judge(name, **opts)


@app.command("list")
def list_judges() -> None:
    """List the registered judges."""
    from alignkit.judges import JUDGES

    for n in JUDGES.names():
        doc = (JUDGES.get(n).__doc__ or "").strip().splitlines()[0]
        print(f"{n:18s} {doc}")


@app.command()
def train(
    output: Optional[Path] = typer.Option(None, help="where to write the weights (.safetensors; a .json with "
                                                   "metadata is written next to it); default: the cache dir"),
    ship: bool = typer.Option(False, "--ship", help="write into the package (judges/weights/), replacing the "
                                                   "shipped weights"),
    train_layers: int = typer.Option(2, help="top transformer layers to fine-tune (the rest stay frozen)"),
    epochs: int = typer.Option(3, help="training epochs (the epoch with the lowest eval loss is kept)"),
    batch_size: int = typer.Option(16, help="batch size"),
    lr: float = typer.Option(1e-4, help="learning rate of the trained encoder layers"),
    head_lr: float = typer.Option(1e-3, help="learning rate of the head"),
    pooling: str = typer.Option("mean", help="mean or cls"),
    max_length: int = typer.Option(128, help="max training tokens of prompt + completion (scoring uses 256)"),
    seed: int = typer.Option(0, help="seed (data split, init, batch order)"),
    threads: int = typer.Option(2, help="torch CPU threads"),
) -> None:
    """Train the minilm judge on judge-labels train (reproduces the shipped weights with --ship)."""
    from alignkit.judges.minilm import SHIPPED_WEIGHTS, TrainConfig, default_cache_path
    from alignkit.judges.minilm import train as _train

    if ship and output:
        raise AlignkitError("give either --ship or --output, not both")
    if pooling not in ("mean", "cls"):
        raise AlignkitError(f"unknown pooling {pooling!r}; use mean or cls")
    out = SHIPPED_WEIGHTS if ship else (output or default_cache_path())
    cfg = TrainConfig(train_layers=train_layers, epochs=epochs, batch_size=batch_size, lr=lr, head_lr=head_lr,
                      pooling=pooling, max_length=max_length, seed=seed, threads=threads)
    meta = _train(cfg, output=out, log=lambda s: print(s, file=sys.stderr))
    print(f"wrote {out} ({Path(out).stat().st_size / 1e6:.1f} MB) in {meta['train_seconds']:.0f}s")
    if "metrics" in meta:
        _print_metrics(meta["metrics"]["test"])
    if not ship:
        print(f"use it with: alignkit judge eval --weights {out}")


def _print_metrics(m: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{m['judge']} on {m['dataset']}/{m['split']} (seed {m['seed']}) vs human labels")
    for col in ("rows", "n", "harmful", "accuracy", "F1", "AUROC", "majority acc."):
        t.add_column(col, justify="right" if col != "rows" else "left")
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    for key, label in (("all", "all (harmful: label >= 0.5)"), ("clear", "clear (<= 0.25 or >= 0.75)")):
        r = m[key]
        t.add_row(label, str(r["n"]), str(r["n_harmful"]), fmt(r["accuracy"]), fmt(r["f1"]), fmt(r["auroc"]),
                  fmt(r["majority_accuracy"]))
    Console().print(t)


@app.command("eval")
def eval_cmd(
    judge: str = typer.Option("minilm", help="judge name, optionally with options: 'name:key=value,...'"),
    weights: Optional[str] = typer.Option(None, help="minilm only: a trained weights file instead of the shipped one"),
    split: str = typer.Option("test", help="judge-labels split: train, eval or test (test is held out)"),
    seed: int = typer.Option(0, help="split seed (must match the seed the judge was trained with)"),
    dataset: str = typer.Option("judge-labels", help="dataset of JudgeExample rows"),
    limit: Optional[int] = typer.Option(None, help="only the first N rows (quick checks)"),
    output: Optional[Path] = typer.Option(None, help="also write the metrics as JSON here"),
) -> None:
    """Held-out accuracy, F1 and AUROC against human labels, on all rows and on clear rows."""
    from alignkit.judges.minilm import evaluate_judge

    if split not in ("train", "eval", "test"):
        raise AlignkitError(f"unknown split {split!r}; use train, eval or test")
    j = _judge(judge, weights)
    m = evaluate_judge(j, split=split, seed=seed, dataset=dataset, limit=limit)
    _print_metrics(m)
    if output:
        from alignkit.io import write_json

        write_json(output, m)
        print(f"wrote {output}")


@app.command()
def score(
    judge: str = typer.Option("minilm", help="judge name, optionally with options: 'name:key=value,...'"),
    prompt: Optional[str] = typer.Option(None, help="the prompt (with --completion)"),
    completion: Optional[str] = typer.Option(None, help="the completion to judge"),
    input: Optional[Path] = typer.Option(None, "--input", help="JSONL with 'prompt' and 'completion' (or "
                                                                "'response') fields"),
    output: Optional[Path] = typer.Option(None, help="write scored rows as JSONL here (default: print)"),
    weights: Optional[str] = typer.Option(None, help="minilm only: a trained weights file"),
) -> None:
    """Score one (prompt, completion) pair or a JSONL file of them."""
    if input is not None:
        if prompt is not None or completion is not None:
            raise AlignkitError("give either --input or --prompt/--completion, not both")
        if not input.exists():
            raise AlignkitError(f"input file {str(input)!r} does not exist")
        rows = []
        for n, line in enumerate(input.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                raise AlignkitError(f"{input}:{n} is not valid JSON") from None
            c = r.get("completion", r.get("response"))
            if not isinstance(r, dict) or "prompt" not in r or c is None:
                raise AlignkitError(f"{input}:{n} needs 'prompt' and 'completion' (or 'response') fields")
            rows.append(r)
    else:
        if completion is None:
            raise AlignkitError("give --completion (and --prompt), or --input FILE.jsonl")
        rows = [{"prompt": prompt or "", "completion": completion}]
    j = _judge(judge, weights)
    s = j.score([str(r.get("prompt") or "") for r in rows],
                [str(r.get("completion", r.get("response")) or "") for r in rows])
    out_rows = [{**r, "score": round(v, 6), "judge": s.judge} for r, v in zip(rows, s)]
    if output:
        from alignkit.io import atomic_write_text

        atomic_write_text(output, "".join(json.dumps(r) + "\n" for r in out_rows))
        print(f"wrote {len(out_rows)} scored rows to {output} ({s.judge}; mean {sum(s) / max(1, len(s)):.3f})")
    elif input is None:
        print(f"{s[0]:.4f}  ({s.judge})")
    else:
        for r in out_rows:
            print(json.dumps(r))
    if s.info.get("unparseable"):
        print(f"note: {s.info['unparseable']} grader output(s) could not be parsed (fallback used)", file=sys.stderr)


def main() -> None:
    try:
        app()
    except AlignkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
