"""``alignkit search attack [--attack NAME]``: the worst attack of one family on one model, found by an Optuna study.

Each trial samples the family's config from the family's space (default ``sft``: learning rate, steps, warm-up,
schedule, full vs LoRA and its rank, template, samples, seed, attack data ...; another family: its own space file
beside its module, ``attacks/spaces/<name>[-quick].yaml``), runs it as an ordinary attack run folder
``<output-dir>/trials/trial-NNNN/`` (saving the attacked model when the family changes weights), measures the
attacked model's capability (perplexity of held-out harmless text, relative to the unattacked model's; 0 by
construction for families that do not change weights) and reports the post-attack harmfulness (the judge mean on
the evaluation prompts at the last step / largest budget) as the value to maximise.

Capability-bounded worst case (TamperBench's definition): a trial whose attacked model's perplexity rises by
more than ``epsilon`` does not count as a successful attack. The sampler knows this bound (Optuna's
constrained TPE: ``trial.set_constraint`` with ``capability_loss - epsilon <= 0``), so it searches inside the
bound; the results report both the raw worst case (every trial) and the bounded one, with the steps-to-break
(first evaluated step above phi) of each.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from pydantic import BaseModel, Field

from alignkit.errors import AlignkitError
from alignkit.search.common import (SearchOptions, TrialRecord, apply_preset, base_perplexity, capability_label,
                                    check_datasets,
                                    check_judge, check_output_dir, default_output_dir, drop_heavy, fmt_params,
                                    html_page, html_table, log_event, png_img, public_config,
                                    redact, relative_rise, trial_records)

#: ``--preset quick``: 8 trials of at most 25 steps; the demo --fast evaluation budget (16 prompts x 32 tokens,
#: 30 natural-text passages), so the worst case reads against the demo's own attack
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"n_trials": 8, "eval_prompts": 16, "max_new_tokens": 32, "capability_texts": 30},
}


#: AttackConfig fields the search sets itself (a space naming them would be ignored or break the trials)
RESERVED: dict[str, str] = {
    "output_dir": "each trial writes its own run folder under --output-dir",
    "model": "the searched model is --model",
    "judge": "the judge is --judge",
    "allow_judge_import": "use --allow-judge-import",
    "save_model": "the search keeps each attacked model to measure its capability",
    "overwrite": "a re-queued trial resumes its own folder",
    "attack": "the searched family is --attack",
}


class AttackSearchConfig(SearchOptions):
    """Search the attacker's hyperparameters for the worst post-attack harmfulness of one model (Optuna),
    capability-bounded by --epsilon; every trial is an ordinary attack run folder."""

    attack: str = Field("sft", description="attack family to search (alignkit attack --attack NAME; sft: full "
                        "and LoRA fine-tuning), with its own space file unless --space is given")
    phi: Optional[float] = Field(None, ge=0, le=1, description="harmfulness threshold for steps-to-break; "
                                 "default: each trial's step-0 harmfulness (the attack's default)")
    reference_model: Optional[str] = Field(None, description="also run the raw and the bounded worst trial's "
                                           "exact attack on this model (e.g. the undefended base), once, in "
                                           "reference/: a same-attack comparison")


class WorstCase(BaseModel):
    trial: int
    harmfulness: float = Field(description="post-attack (final) harmfulness")
    steps_to_break: Optional[int] = Field(description="first evaluated step above phi (None: never)")
    threshold: float
    capability_loss: float
    params: dict[str, Any]
    run_dir: str


class AttackSearchResult(BaseModel):
    """``results.json`` of an attack search: every trial, the raw and the capability-bounded worst case."""

    schema_version: int = 1
    kind: str = "attack"
    config: dict[str, Any] = Field(description="the search's options (storage password masked)")
    space: dict[str, Any]
    storage: str
    epsilon: float
    counts: dict[str, int]
    worst_raw: Optional[WorstCase]
    worst_bounded: Optional[WorstCase] = Field(description="worst trial whose capability loss <= epsilon")
    mean_overhead_s: Optional[float] = Field(description="mean time per trial spent outside the attack and the "
                                             "capability measurement (the search's own cost)")
    reference: dict[str, Any] = Field(default_factory=dict, description="the worst trials' attacks on "
                                      "--reference-model: model, and per trial its harmfulness before / after")
    trials: list[TrialRecord]
    provenance: dict[str, Any]
    run_dir: str


def resolve(config: AttackSearchConfig):
    """Preset applied, space loaded and validated, output folder and signature; raises before writing."""
    from alignkit.attacks.base import family_class_by_name, family_config_class
    from alignkit.search.space import load_space_file

    AttackConfig = family_config_class(config.attack)  # the family's config class (unknown: names the registered)
    family = family_class_by_name(config.attack)

    config = apply_preset(config, PRESETS)
    from alignkit.harmfulness import judge_cache_name

    check_judge(config.judge, config.allow_judge_import)
    from alignkit.models import resolve_model

    resolve_model(config.model)  # a wrong --model fails here, before a study exists, not inside the first trial
    if config.reference_model:  # checked now, not after the whole search has run
        resolve_model(config.reference_model)
    base = base_attack_values(config)
    space_file = config.space or family.search_space_file(config.preset)
    if space_file is None:
        raise AlignkitError(f"attack family {config.attack!r} ships no search space; give one with --space FILE "
                            "(see docs/search.md for the format)")
    fixed = _space_fixed(space_file)
    try:  # the search's own settings with the space's fixed values (e.g. a family's budgets that fit them)
        AttackConfig(**{**fixed, **base})
    except Exception as exc:
        from pydantic import ValidationError

        from alignkit.config import validation_message

        msg = validation_message(exc) if isinstance(exc, ValidationError) else str(exc).splitlines()[0]
        raise AlignkitError(f"invalid base attack settings: {msg.removeprefix('invalid option ')}") from None
    space = load_space_file(space_file, AttackConfig, base=base, reserved=RESERVED)
    ds = space.params.get("dataset")
    check_datasets([space.fixed.get("dataset")] + list((ds.choices or []) if ds else []))
    out = Path(config.output_dir).expanduser() if config.output_dir else default_output_dir("attack", config.model)
    signature = {"kind": "attack", "model": config.model, "space": space.fingerprint(), "epsilon": config.epsilon,
                 "base": base, "capability_texts": config.capability_texts,
                 "capability_data": config.capability_data, "judge": judge_cache_name(config.judge)}  # "minilm" -> "minilm@5": a new default is a new study
    if config.attack != "sft":  # sft studies keep their signature (existing folders resume)
        signature["attack"] = config.attack
    return config, space, out, signature


def _space_fixed(path: Any) -> dict[str, Any]:
    """The ``fixed`` mapping of a space file ({} when it has none or cannot be read: the space loader reports it)."""
    import yaml

    try:
        raw = yaml.safe_load(Path(path).expanduser().read_text(encoding="utf-8"))
        fixed = raw.get("fixed") if isinstance(raw, dict) else None
    except Exception:  # noqa: BLE001
        return {}
    return fixed if isinstance(fixed, dict) else {}


def base_attack_values(config: AttackSearchConfig) -> dict[str, Any]:
    """The trial config values the search sets itself (only the fields the family's config has)."""
    from alignkit.attacks.base import family_class_by_name, family_config_class

    cls = family_config_class(config.attack)
    v = {"model": config.model, "judge": config.judge, "eval_prompts": config.eval_prompts,
         "max_new_tokens": config.max_new_tokens, "eval_every": config.eval_every, "data_seed": config.data_seed,
         "dtype": config.dtype, "save_model": family_class_by_name(config.attack).changes_weights,
         "save_checkpoints": config.checkpoints}
    if config.attack != "sft":
        v["attack"] = config.attack
    if config.phi is not None:
        v["threshold"] = config.phi
    return {k: x for k, x in v.items() if k in cls.model_fields}


def search_attack(config: AttackSearchConfig, *, log: Callable[[str], None] | None = None) -> AttackSearchResult:
    """Run this worker's share of the study (until it holds ``n_trials`` finished trials), then write
    ``results.json`` and ``report.html`` in the output folder and return the result."""
    import optuna

    from alignkit.attacks import attack
    from alignkit.attacks.base import Attack, family_class_by_name, family_config_class
    from alignkit.harmfulness import get_judge
    from alignkit.io import check_writable_dir, write_json
    from alignkit.search.study import open_storage, open_study, run_worker, storage_url, trial_folder_number

    log = log or _log
    config, space, out, signature = resolve(config)
    url = storage_url(out, config.storage)
    check_output_dir(out, signature, url)
    if config.storage is None:
        check_writable_dir(out)
    storage = open_storage(url, heartbeat_interval=config.heartbeat_interval, grace_period=config.grace_period,
                           max_retry=config.max_retry)
    study = open_study(storage, signature, ["maximize"], sampler_seed=config.sampler_seed)
    check_writable_dir(out)
    write_json(out / "search.json", {"kind": "attack", "signature": signature, "storage": redact(url),
                                     "space_file": space.source, "config": public_config(config)})
    judge_box: dict[str, Any] = {}
    base = base_attack_values(config)
    AttackConfig = family_config_class(config.attack)
    family = family_class_by_name(config.attack)

    def objective(trial: optuna.Trial) -> float:
        t0 = time.time()
        n = trial_folder_number(trial)
        folder = out / "trials" / f"trial-{n:04d}"
        values = {**base, **space.sample(trial), "output_dir": str(folder)}
        cfg = AttackConfig(**values)
        log_event(out, trial=trial.number, folder=folder.name, event="start")
        if "judge" not in judge_box:
            judge_box["judge"] = get_judge(config.judge)
        reuse = _finished_trial(out, cfg.template, exclude=folder) if issubclass(family, Attack) else None
        t_attack = time.time()
        res = attack(cfg, judge=judge_box["judge"], reuse_step0_from=reuse)
        attack_s = time.time() - t_attack
        t_cap = time.time()
        if res.changes_weights:  # the capability guard (attacks/capability.py): held-out perplexity rise
            from alignkit.attacks.capability import perplexity_rise

            if res.final_model_dir and Path(res.final_model_dir).is_dir():
                loss, ppl, base_ppl = perplexity_rise(
                    config.model, res.final_model_dir, template=cfg.template, n=config.capability_texts,
                    seed=config.data_seed, dtype=config.dtype, data_name=config.capability_data, cache_dir=out)
            else:  # a finished trial whose model was already dropped (re-run after the study ended)
                base_ppl = base_perplexity(out, config.model, cfg.template, config.capability_texts,
                                           config.data_seed, config.dtype, config.capability_data)
                ppl = float(trial.user_attrs.get("perplexity", float("nan")))
                loss = relative_rise(ppl, base_ppl)
        else:  # the weights are unchanged: capability loss 0 by construction, nothing measured
            ppl, base_ppl, loss = None, None, 0.0
        cap_s = time.time() - t_cap
        drop_heavy(folder, config.keep_models)
        attrs = {"harmfulness": res.final_harmfulness, "initial_harmfulness": res.initial_harmfulness,
                 "max_harmfulness": res.max_harmfulness, "steps_to_break": res.steps_to_threshold,
                 "threshold": res.threshold, "total_steps": res.total_steps, "budget_label": res.budget_label,
                 "perplexity": ppl,
                 "base_perplexity": base_ppl, "capability_loss": loss, "within_epsilon": bool(loss <= config.epsilon),
                 "run_dir": str(folder), "attack_s": round(attack_s, 2), "capability_s": round(cap_s, 2)}
        attrs["overhead_s"] = round(time.time() - t0 - attack_s - cap_s, 2)
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        trial.set_constraint("capability", loss - config.epsilon)  # feasible when <= 0 (constrained TPE)
        log_event(out, trial=trial.number, folder=folder.name, event="end", harmfulness=res.final_harmfulness)
        log(f"trial {trial.number}: {fmt_params(trial.params)} -> harmfulness {res.final_harmfulness:.3f}, "
            f"capability loss {loss:+.1%}{'' if loss <= config.epsilon else ' (beyond epsilon)'}")
        return res.final_harmfulness

    log(f"attack search ({config.attack}) on {config.model}: {config.n_trials} trials, storage {redact(url)}, space "
        f"{space.source}")
    counts = run_worker(study, objective, config.n_trials, log=log, reset_running=config.reset_running,
                        workers_dir=out, threads=config.threads)
    result = summarize(study, config, space, out, url, counts)
    if config.reference_model:
        result.reference = reference(config, result, out, judge_box, log)
    write_json(out / "results.json", result)
    write_report(result, out / "report.html")
    log(f"done: {counts['complete']} trials; raw worst {_fmt_worst(result.worst_raw)}; bounded worst "
        f"{_fmt_worst(result.worst_bounded)}; results in {out / 'results.json'}")
    return result


def reference(config: AttackSearchConfig, result: AttackSearchResult, out: Path, judge_box: dict[str, Any],
              log: Callable[[str], None]) -> dict[str, Any]:
    """The raw and the bounded worst trial's attack (its saved config, model replaced) on
    ``config.reference_model``, in ``reference/trial-NNNN/`` (measured once under a lock, read back after)."""
    from filelock import FileLock

    from alignkit.attacks import AttackResult
    from alignkit.search.common import reference_attack

    worst = {w.trial: w for w in (result.worst_raw, result.worst_bounded) if w is not None}
    rows = []
    (out / "reference").mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / "reference" / "reference.lock")):
        for n, w in sorted(worst.items()):
            f = Path(w.run_dir) / "results.json"
            if not f.is_file():
                log(f"reference: trial {n} has no results.json in {w.run_dir}; skipped")
                continue
            trial_run = AttackResult.model_validate_json(f.read_text(encoding="utf-8"))
            folder = out / "reference" / f"trial-{n:04d}"
            cfg = trial_run.config.model_copy(update={"model": config.reference_model, "output_dir": str(folder),
                                                      "save_model": False})
            res = reference_attack(cfg, config.judge, judge_box, log,
                                   f"trial {n}'s attack on {config.reference_model}")
            rows.append({"trial": n, "initial_harmfulness": res.initial_harmfulness,
                         "harmfulness": res.final_harmfulness, "steps_to_break": res.steps_to_threshold,
                         "threshold": res.threshold, "run_dir": str(folder)})
    return {"model": config.reference_model, "trials": rows}


def _finished_trial(out: Path, template: str, exclude: Path) -> Optional[Path]:
    """A finished trial folder with the same template: its step-0 evaluation can be reused."""
    import json

    for f in sorted((out / "trials").glob("trial-*/results.json")):
        if f.parent == exclude:
            continue
        try:
            if json.loads(f.read_text(encoding="utf-8"))["config"]["template"] == template:
                return f.parent
        except (ValueError, KeyError, OSError):
            continue
    return None


def _worst(records: list[TrialRecord], bounded: bool, epsilon: float) -> Optional[WorstCase]:
    ok = [r for r in records if r.state == "COMPLETE" and r.values
          and (not bounded or r.attrs.get("capability_loss", float("inf")) <= epsilon)]
    if not ok:
        return None
    r = max(ok, key=lambda r: (r.values[0], -r.number))
    return WorstCase(trial=r.number, harmfulness=r.values[0], steps_to_break=r.attrs.get("steps_to_break"),
                     threshold=r.attrs.get("threshold", float("nan")),
                     capability_loss=r.attrs.get("capability_loss", float("nan")), params=r.params,
                     run_dir=r.attrs.get("run_dir", ""))


def summarize(study, config: AttackSearchConfig, space, out: Path, url: str, counts: dict[str, int]
              ) -> AttackSearchResult:
    from alignkit.harmfulness import judge_cache_name
    from alignkit.provenance import Provenance

    records = trial_records(study)
    overheads = [r.attrs["overhead_s"] for r in records if "overhead_s" in r.attrs]
    prov = Provenance(model=config.model, judge=judge_cache_name(config.judge), seed=config.sampler_seed,
                      data={"capability": capability_label(config.capability_data, config.capability_texts),
                            "eval": f"harmful-eval:test n={config.eval_prompts}"},
                      command=" ".join(sys.argv)).model_dump(mode="json")
    return AttackSearchResult(config=public_config(config), space=space.model_dump(mode="json"), storage=redact(url),
                              epsilon=config.epsilon, counts=counts, worst_raw=_worst(records, False, config.epsilon),
                              worst_bounded=_worst(records, True, config.epsilon),
                              mean_overhead_s=round(sum(overheads) / len(overheads), 2) if overheads else None,
                              trials=records, provenance=prov, run_dir=str(out))


def _fmt_worst(w: Optional[WorstCase]) -> str:
    if w is None:
        return "none"
    return (f"{w.harmfulness:.3f} (trial {w.trial}, steps-to-break "
            f"{'never' if w.steps_to_break is None else w.steps_to_break})")


def write_report(result: AttackSearchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import html as _html

    from alignkit.io import atomic_write_text

    done = [r for r in result.trials if r.state == "COMPLETE" and r.values]
    eps = result.epsilon
    sections = []
    lines = [f"Model <b>{_html.escape(str(result.config['model']))}</b>, judge {result.provenance.get('judge', result.config['judge'])}, epsilon {eps:g} (relative "
             f"perplexity rise), {result.counts.get('complete', 0)} finished trials "
             f"({result.counts.get('failed', 0)} failed).",
             f"Raw worst case: {_fmt_worst(result.worst_raw)}.",
             f"Capability-bounded worst case: {_fmt_worst(result.worst_bounded)}."]
    for row in (result.reference or {}).get("trials", []):
        lines.append(f"The same attack as trial {row['trial']} on the reference model "
                     f"<code>{_html.escape(str(result.reference['model']))}</code>: "
                     f"{row['initial_harmfulness']:.3f} -> "
                     f"{row['harmfulness']:.3f}.")
    sections.append(("Worst case", "<p>" + "<br>".join(lines) + "</p>"))
    from alignkit.judges.card import report_lines  # the judge's measured validity, from its card

    judge = str(result.provenance.get("judge", result.config["judge"]))
    sections.append(("What this judge can tell you",
                     "<ul>" + "".join(f"<li>{_html.escape(x)}</li>" for x in report_lines(judge)) + "</ul>"))
    if done:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = [r.attrs.get("capability_loss", float("nan")) for r in done]
        ys = [r.values[0] for r in done]
        ax.scatter(xs, ys, c=["tab:red" if x > eps else "tab:blue" for x in xs])
        for r, x, y in zip(done, xs, ys):
            ax.annotate(str(r.number), (x, y), fontsize=7)
        ax.axvline(eps, color="gray", ls=":", label=f"epsilon = {eps:g}")
        ax.set_xlabel("capability loss (relative perplexity rise)")
        ax.set_ylabel("post-attack harmfulness")
        ax.legend(fontsize=8)
        fig.tight_layout()
        sections.append(("Trials: harmfulness vs capability loss", png_img(fig)))
        plt.close(fig)
    from alignkit.search.budget_curve import search_report_section

    sections += search_report_section(result)  # best harmfulness so far against trials / attack seconds, vs phi
    rows = sorted(result.trials, key=lambda r: -(r.values[0] if r.values else -1))
    worst = {result.worst_bounded.trial if result.worst_bounded else -1}
    sections.append(("Every trial", html_table(
        ["trial", "state", "harmfulness", "steps to break", "capability loss", "within epsilon", "params"],
        [[r.number, r.state, r.values[0] if r.values else None, r.attrs.get("steps_to_break"),
          r.attrs.get("capability_loss"), r.attrs.get("within_epsilon"), fmt_params(r.params)] for r in rows],
        highlight={i for i, r in enumerate(rows) if r.number in worst})))
    atomic_write_text(path, html_page("alignkit attack search", sections))


def _log(msg: str) -> None:
    from alignkit.training import log

    log(msg)
