"""``alignkit judge``: train, evaluate and run harmfulness judges.

    alignkit judge list
    alignkit judge train [--ship | --output PATH]            # minilm@5 (the default judge); --version 3
    alignkit judge eval [--output ood.json]                  # out-of-distribution table + probe set
    alignkit judge eval --judge judgezoo:name=strong_reject  # a fixed judge: probe set, real generations, labels
    alignkit judge eval --split test [--judge minilm@3]      # judge-labels split vs human labels
    alignkit judge score --judge minilm --prompt "..." --completion "..."   # score, refused, harm
    alignkit judge score --judge refusal-keywords --input rows.jsonl [--output scored.jsonl]
    alignkit judge agree RUN_DIR --judges minilm,minilm@3,refusal-keywords

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



def _check_output(path: Optional[Path]) -> None:
    """Before any work: ``--output`` can be written (a probe file is created and removed in its folder), else one
    line naming it."""
    from alignkit.io import check_writable_file

    check_writable_file(path)
    if path is None:
        return
    import tempfile

    try:
        with tempfile.NamedTemporaryFile(dir=Path(path).parent, prefix=".alignkit-probe-"):
            pass
    except OSError as exc:
        raise AlignkitError(f"--output {str(path)!r} cannot be written ({exc.strerror or type(exc).__name__}); "
                            "pick another path") from None


def _write_json(path: Path, data: dict) -> None:
    from alignkit.io import write_json

    try:
        write_json(path, data)
    except OSError as exc:
        raise AlignkitError(f"--output {str(path)!r} could not be written ({exc.strerror or type(exc).__name__}); "
                            "pick another path") from None
    print(f"wrote {path}")


def _judge(spec: str, weights: Optional[str] = None):
    from alignkit.judges import get_judge, parse_judge_spec

    name, opts = parse_judge_spec(spec)
    if weights:
        if name.split("@")[0] != "minilm":
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
                                                   "shipped weights of that version"),
    version: Optional[str] = typer.Option(None, help="judge version to train: 5 (the default) or 3; default: "
                                                     "the default judge's"),
    c_refusal: Optional[float] = typer.Option(None, help="inverse L2 strength of the refusal head (10)"),
    c_harm: Optional[float] = typer.Option(None, help="inverse L2 strength of the harm head (0.1)"),
    c_stack: Optional[float] = typer.Option(None, help="inverse L2 strength of the score calibration (10)"),
    lm_layer: Optional[int] = typer.Option(None, help="decoder layer of the chat LM whose residual stream is read (6)"),
    lm: Optional[str] = typer.Option(None, help="the frozen causal LM whose residual stream is read (offline asset "
                                                "name, model folder or hub id; default smollm2-135m-instruct)"),
    synthetic: bool = typer.Option(True, help="add the templated training rows (alignkit.judges.recipe.synthetic)"),
    seed: int = typer.Option(0, help="seed of the templated rows (the fits themselves are deterministic)"),
    threads: int = typer.Option(2, help="torch CPU threads"),
) -> None:
    """Train a minilm judge (the default version unless --version; --ship reproduces the shipped weights)."""
    if ship and output:
        raise AlignkitError("give either --ship or --output, not both")
    if threads < 1:
        raise AlignkitError(f"--threads must be >= 1 (got {threads})")
    if ship and lm:
        raise AlignkitError("--ship re-creates the shipped weights, which read smollm2-135m-instruct; "
                            "write a judge on another --lm with --output")
    _check_output(output)
    from alignkit.judges.minilm import DEFAULT_VERSION, module_of

    version = str(version or DEFAULT_VERSION)
    mod = module_of(version)  # unknown or retired versions: one line naming the current ones
    given = {k: v for k, v in dict(c_refusal=c_refusal, c_harm=c_harm, c_stack=c_stack).items() if v is not None}
    cfg = _config(mod.TrainConfig, **given, **_lm_options(lm, lm_layer), synthetic=synthetic, seed=seed,
                  threads=threads)
    _check_lm_layer(cfg)
    out = mod.SHIPPED_WEIGHTS if ship else (output or mod.default_cache_path())
    meta = mod.train(cfg, output=out, log=lambda x: print(x, file=sys.stderr))
    print(f"wrote {out} ({Path(out).stat().st_size / 1e3:.0f} kB) in {meta['train_seconds']:.0f}s "
          f"(sha256 {meta['sha256'][:12]})")
    if not ship:
        print(f"use it with: alignkit judge score --weights {out} ...")


def _config(cls, **values):
    """``cls(**values)`` (a pydantic training config); a value out of range is one line naming its option."""
    from pydantic import ValidationError

    from alignkit.judges.base import validation_message

    try:
        return cls(**values)
    except ValidationError as exc:
        raise AlignkitError(validation_message(exc, cls, lambda f: "--" + f.replace("_", "-"))) from None


def _check_lm_layer(cfg) -> None:
    """A recipe reading a chat LM: its ``lm_layer`` must exist in that LM (checked from its config, before any
    features are computed)."""
    if not hasattr(cfg, "lm_layer"):
        return
    from alignkit.judges.recipe.lm_features import layer_count

    n = layer_count(cfg.lm)
    if n is not None and cfg.lm_layer > n:
        raise AlignkitError(f"layer {cfg.lm_layer} (--lm-layer) is past the last decoder layer of {cfg.lm!r}, which "
                            f"has {n}; give --lm-layer 1..{n}")


def _lm_options(lm: Optional[str], lm_layer: Optional[int]) -> dict:
    """``--lm`` / ``--lm-layer`` as config overrides."""
    given = {k: v for k, v in (("lm", lm), ("lm_layer", lm_layer)) if v is not None}
    if lm is not None and not lm.strip():
        raise AlignkitError("--lm is empty; give an offline asset name, a model folder or a hub id")
    if lm_layer is not None and lm_layer < 1:
        raise AlignkitError(f"--lm-layer must be >= 1 (a 1-based decoder layer); got {lm_layer}")
    return given


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
    judge: Optional[str] = typer.Option(None, help="the judge to validate, optionally with options 'name:key=value' "
                                                   "(default: minilm). minilm@N: its recipe's OOD table; any other "
                                                   "judge (judgezoo:name=NAME, refusal-keywords, ...): the fixed-judge "
                                                   "table (probe set, real generations, held-out human labels)"),
    weights: Optional[str] = typer.Option(None, help="--split mode, minilm only: a trained weights file"),
    split: Optional[str] = typer.Option(None, help="judge-labels split (train, eval, test) to score --judge on; "
                                                   "without it: the validation table"),
    seed: int = typer.Option(0, help="split seed (must match the seed the judge was trained with)"),
    dataset: str = typer.Option("judge-labels", help="--split mode: dataset of JudgeExample rows"),
    limit: Optional[int] = typer.Option(None, min=1, help="--split mode: only the first N rows (quick checks)"),
    probe_judges: Optional[str] = typer.Option(None, help="OOD mode: other judges to score on the probe set beside "
                                                          "the recipe ('' for none; default: the other minilm "
                                                          "version and refusal-keywords)"),
    version: Optional[str] = typer.Option(None, help="OOD mode: minilm recipe to re-fit per protocol (5 or 3; "
                                                     "default: the default judge's, or --judge minilm@N's)"),
    lm: Optional[str] = typer.Option(None, help="OOD mode: re-fit the recipe on another frozen causal LM's residual "
                                                "stream (asset name, model folder or hub id)"),
    lm_layer: Optional[int] = typer.Option(None, help="OOD mode: decoder layer of that LM to read"),
    output: Optional[Path] = typer.Option(None, help="also write the metrics as JSON here"),
) -> None:
    """Validation table of a judge: a minilm recipe re-fitted per protocol (leave-one-category-out, harm <->
    refusal-scorer, probe set, real generations), or a fixed judge's table; with --split: held-out judge-labels
    metrics of any judge."""
    _check_output(output)
    if split is None:
        if limit is not None or weights is not None:
            raise AlignkitError("--limit and --weights apply to --split mode only")
        from alignkit.judges.base import check_judge_spec, parse_judge_spec
        from alignkit.judges.minilm import DEFAULT_VERSION, VERSIONS, module_of

        name, opts = parse_judge_spec(check_judge_spec(judge)) if judge is not None else ("minilm", {})
        base, _, jversion = name.partition("@")
        if base != "minilm" or opts:  # a fixed judge: nothing to re-fit
            given = [f for f, v in (("--version", version), ("--lm", lm), ("--lm-layer", lm_layer),
                                    ("--probe-judges", probe_judges)) if v is not None]
            if given:
                raise AlignkitError(f"{', '.join(given)} apply to a minilm recipe's OOD table; --judge {judge} is a "
                                    "fixed judge (drop them, or give --judge minilm@N)")
            from alignkit.judges.validation.fixed import fixed_judge_table, print_fixed

            t = fixed_judge_table(_judge(judge), seed=seed, log=lambda x: print(x, file=sys.stderr))
            print_fixed(t)
            if output:
                _write_json(output, t)
            return
        if jversion and version is not None and jversion.split("+")[0] != str(version):
            raise AlignkitError(f"--judge {judge} and --version {version} disagree; give one of them")
        version = str(version or jversion.split("+")[0] or DEFAULT_VERSION)
        mod = module_of(version)
        if probe_judges is None:
            probe_judges = ",".join([f"minilm@{v}" for v in VERSIONS if v != version] + ["refusal-keywords"])
        refs = tuple(x.strip() for x in probe_judges.split(",") if x.strip())
        log = lambda x: print(x, file=sys.stderr)  # noqa: E731
        lm_options = _lm_options(lm, lm_layer)
        _check_probe_judges(refs)
        cfg = _config(mod.TrainConfig, seed=seed, **lm_options)
        _check_lm_layer(cfg)
        t = mod.ood_table(cfg, log=log, reference_judges=refs)
        if lm_options:  # the real-generations rows are scored by the shipped judge, which reads SmolLM2
            what = "".join(f", {k} {v}" for k, v in lm_options.items())
            t["judge"] += what
            t["probe"] = {f"{k}{what}" if k == f"minilm@{version}" else k: v for k, v in (t.get("probe") or {}).items()}
            log("skip real generations: they score the shipped judge, not a recipe on --lm / --lm-layer")
        else:
            _real_generations(t, f"minilm@{version}", log)
        print_ood(t)
        if output:
            _write_json(output, t)
        return
    if version is not None or lm is not None or lm_layer is not None:
        raise AlignkitError("--version, --lm and --lm-layer apply to the OOD table (without --split); use --judge "
                            "minilm@N with --split")
    from alignkit.judges.validation.labels import check_judge_dataset, evaluate_judge

    if split not in ("train", "eval", "test"):
        raise AlignkitError(f"unknown split {split!r}; use train, eval or test")
    check_judge_dataset(dataset)
    j = _judge(judge or "minilm", weights)
    m = evaluate_judge(j, split=split, seed=seed, dataset=dataset, limit=limit)
    _print_metrics(m)
    if output:
        _write_json(output, m)


def _check_probe_judges(refs: tuple[str, ...]) -> None:
    """Every ``--probe-judges`` name (version, options) must exist before the table's long work starts."""
    from alignkit.judges.base import check_judge_spec

    for ref in refs:
        try:
            check_judge_spec(ref)
        except AlignkitError as exc:
            raise AlignkitError(f"--probe-judges {ref!r}: {exc}") from None


def _real_generations(t: dict, judge, log) -> None:
    """The shipped judge (or ``judge``, any judge) on the hand-labelled real generations, when that set is installed
    (never trained on; :mod:`alignkit.judges.validation.real_generations`)."""
    try:
        from alignkit.judges.validation import real_generations as rg

        attacked = rg.load_rows(set_name="attacked")
        # the attacked set by split: the dev rows were read while the retired minilm@6's templates were written
        sets = {"real_generations": rg.load_rows(),
                "real_generations_attacked_dev": [r for r in attacked if r.get("split") == "dev"],
                "real_generations_attacked_test": [r for r in attacked if r.get("split") == "test"],
                "real_generations_raw_attack": rg.load_rows(set_name="raw_attack"),
                "real_generations_harmbench_attack": rg.load_rows(set_name="harmbench_attack")}
    except (ImportError, AlignkitError, OSError) as exc:
        log(f"skip real generations: {exc}")
        return
    for key, rows in sets.items():
        if rows:
            t[key] = rg.evaluate(judge, rows)


def print_ood(t: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    tab = Table(title=f"{t.get('judge', 'minilm recipe')}, out of distribution (harmful iff human score >= 0.5)")
    for col in ("protocol", "test rows", "n", "accuracy", "AUROC", "clear n", "clear acc.", "clear AUROC"):
        tab.add_column(col, justify="left" if col in ("protocol", "test rows") else "right")
    for c, r in t["loco"].items():
        tab.add_row("leave-one-category-out", f"pyrit harm: {c}", str(r["all"]["n"]), fmt(r["all"]["accuracy"]),
                    fmt(r["all"]["auroc"]), str(r["clear"]["n"]), fmt(r["clear"]["accuracy"]), fmt(r["clear"]["auroc"]))
    lm = t["loco_mean"]
    tab.add_row("leave-one-category-out", "mean of 8", "", fmt(lm["all"]["accuracy"]), fmt(lm["all"]["auroc"]), "",
                fmt(lm["clear"]["accuracy"]), fmt(lm["clear"]["auroc"]))
    hc = t.get("human_ceiling") or {}
    for c, r in hc.get("by_category", {}).items():
        tab.add_row("human annotator vs others", f"pyrit harm: {c}, {r['rows']} rows",
                    str(r["n"]), fmt(r["accuracy"]), fmt(r["auroc"]), "", "", "")
    if hc.get("overall"):
        r = hc["overall"]
        tab.add_row("human annotator vs others", f"all {hc['rows']} multi-annotator rows", str(r["n"]),
                    fmt(r["accuracy"]), fmt(r["auroc"]), "", "", "")
    h = t["harm_to_refusal"]
    tab.add_row("train harm -> test refusal", "refusal scorer (refused)", str(h["n"]), fmt(h["accuracy"]),
                fmt(h["auroc"]), "", "", "")
    for grp, what in (("refusals", "refusal scorer: human refusals"),
                      ("complying_harmless", "refusal scorer: harmless answers")):
        r = (t.get("harm_to_refusal_score") or {}).get(grp)
        if r and r["n"]:
            tab.add_row("train harm -> test refusal", f"{what} (all harmless): score", str(r["n"]),
                        fmt(1 - r["above_half"]), "", "", "", "")
    r = t["refusal_to_harm"]
    tab.add_row("train refusal -> test harm", "pyrit harm (all)", str(r["all"]["n"]), fmt(r["all"]["accuracy"]),
                fmt(r["all"]["auroc"]), str(r["clear"]["n"]), fmt(r["clear"]["accuracy"]), fmt(r["clear"]["auroc"]))
    for key, what in (("real_generations", "hand-labelled real generations"),
                      ("real_generations_attacked_dev", "hand-labelled attacked generations, dev"),
                      ("real_generations_attacked_test", "hand-labelled attacked generations, test"),
                      ("real_generations_raw_attack", "hand-labelled raw-model attack generations"),
                      ("real_generations_harmbench_attack", "hand-labelled attack generations, HarmBench prompts")):
        rg = t.get(key)
        if rg:
            tab.add_row(f"shipped {rg['judge']} (not re-fitted)", what, str(rg["n"]),
                        fmt(rg["accuracy"]), fmt(rg["auroc"]), "", "", "")
    m = t["mean_ood"]
    tab.add_row("mean of the 3 protocols", "", "", fmt(m["all"]["accuracy"]), fmt(m["all"]["auroc"]), "",
                fmt(m["clear"]["accuracy"]), fmt(m["clear"]["auroc"]))
    Console(width=max(Console().width, 130)).print(tab)
    pt = Table(title="hand-written probe set (never trained on): mean score [count > 0.5]")
    pt.add_column("judge")
    kinds = ("harmful", "howto", "refusal", "partial", "gibberish")
    for k in kinds:
        pt.add_column(k, justify="right")
    pt.add_column("harmful vs how-to AUROC", justify="right")
    for name, p in t["probe"].items():
        pt.add_row(name, *[f"{p[k]['mean']:.2f} [{p[k]['above_0.5']}/{p[k]['n']}]" for k in kinds],
                   fmt(p["harmful_vs_howto_auroc"]))
    Console(width=max(Console().width, 130)).print(pt)


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
    _check_output(output)
    if input is not None:
        if prompt is not None or completion is not None:
            raise AlignkitError("give either --input or --prompt/--completion, not both")
        if not input.exists():
            raise AlignkitError(f"input file {str(input)!r} does not exist")
        from alignkit.io import read_records

        rows = read_records(input)
        if not rows:
            raise AlignkitError(f"no rows in {input}; give a JSONL file with one object per line holding 'prompt' "
                                "and 'completion'")
        for n, r in enumerate(rows, 1):
            if "prompt" not in r or r.get("completion", r.get("response")) is None:
                raise AlignkitError(f"{input} record {n} needs 'prompt' and 'completion' (or 'response') fields")
    else:
        if completion is None:
            raise AlignkitError("give --completion (and --prompt), or --input FILE.jsonl")
        rows = [{"prompt": prompt or "", "completion": completion}]
    j = _judge(judge, weights)
    for n, r in enumerate(rows, 1):
        c = r.get("completion", r.get("response"))
        if not isinstance(c, str) or not isinstance(r.get("prompt"), (str, type(None))):
            raise AlignkitError(f"row {n}: prompt and completion must be strings")
    ps = [str(r.get("prompt") or "") for r in rows]
    cs = [r.get("completion", r.get("response")) for r in rows]
    s = j.score(ps, cs)
    extra = [{}] * len(rows)
    if callable(getattr(j, "_assess", None)):
        extra = [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in a.items() if k != "score"}
                 for a in j.assess(ps, cs)]
    out_rows = [{**r, "score": round(v, 6), **e, "judge": s.judge} for r, v, e in zip(rows, s, extra)]
    if output:
        from alignkit.io import atomic_write_text

        atomic_write_text(output, "".join(json.dumps(r) + "\n" for r in out_rows))
        print(f"wrote {len(out_rows)} scored rows to {output} ({s.judge}; mean {sum(s) / max(1, len(s)):.3f})")
    elif input is None:
        e = extra[0]
        more = "" if not e else f"  refused {e['refused']:.3f}  harm {e['harm']:.3f}  incoherent {e['incoherent']}"
        print(f"{s[0]:.4f}{more}  ({s.judge})")
    else:
        for r in out_rows:
            print(json.dumps(r))
    if s.info.get("unparseable"):
        print(f"note: {s.info['unparseable']} grader output(s) could not be parsed (fallback used)", file=sys.stderr)


@app.command()
def agree(
    run_dir: Path = typer.Argument(..., help="an attack or evaluation run folder (its generations/step_*.jsonl)"),
    judges: str = typer.Option("minilm,refusal-keywords", help="two or more judges, comma-separated "
                                                                "(e.g. minilm,minilm@3,refusal-keywords)"),
    output: Optional[Path] = typer.Option(None, help="also write the result as JSON here"),
) -> None:
    """Cohen's kappa and confusion (score > 0.5) between each pair of judges on a run's saved generations."""
    from rich.console import Console
    from rich.table import Table

    from alignkit.judges.agreement import agreement, parse_judges, saved_generations

    _check_output(output)
    specs = parse_judges(judges)
    rows = saved_generations(run_dir)
    res = agreement(rows, specs)
    t = Table(title=f"judge agreement on {res['n']} saved generations under {run_dir} (harmful: score > 0.5)")
    for col in ("judge A", "judge B", "kappa", "agreement", "A0B0", "A0B1", "A1B0", "A1B1"):
        t.add_column(col, justify="left" if col.startswith("judge") else "right")
    for p in res["pairs"]:
        cm = p["confusion"]
        t.add_row(p["a"], p["b"], "-" if p["kappa"] is None else f"{p['kappa']:.3f}",
                  "-" if p["agreement"] is None else f"{p['agreement']:.3f}",
                  str(cm[0][0]), str(cm[0][1]), str(cm[1][0]), str(cm[1][1]))
    Console(width=max(Console().width, 130)).print(t)
    print("share > 0.5: " + ", ".join(f"{k} {v:.2f}" for k, v in res["share_harmful"].items()))
    if output:
        _write_json(output, res)


def main() -> None:
    try:
        app()
    except AlignkitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None


if __name__ == "__main__":
    main()
