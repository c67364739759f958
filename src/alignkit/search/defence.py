"""``alignkit search defence``: a multi-objective Optuna study over a defence's hyperparameters.

Each trial samples the defence's config from its space (declared by the defence next to its module:
``alignkit/defences/spaces/<name>.yaml``, :meth:`Defence.search_space_file`; every registered defence has one),
trains the defence into
``<output-dir>/trials/trial-NNNN/model`` and measures three objectives:

1. **worst-case post-attack harmfulness** (minimise): the highest final harmfulness over the space's attack
   grid (``attacks:``), each attack an ordinary attack run folder under the trial's ``attacks/``;
2. **stability** (minimise): capability loss before any attack = relative rise of held-out perplexity versus
   the undefended model;
3. **trainability** (maximise): ROUGE-1 on held-out data2text MRs after a short harmless fine-tuning of the
   defended model (same recipe as the trainability condition).

Capability guard: a trial whose stability loss exceeds ``epsilon`` runs no attack and no trainability
fine-tuning; it is recorded as PRUNED with ``guard: stability`` (it cannot be on the Pareto front). The Pareto
front (Optuna's ``best_trials``) goes to ``report.html`` as a table and a plot; the **chosen** trial is the
front trial with the lowest worst-case harmfulness (ties: lower stability loss), linked as
``<output-dir>/chosen-model``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

from pydantic import BaseModel, Field

from alignkit.errors import AlignkitError
from alignkit.search.common import (SearchOptions, TrialRecord, apply_preset, base_perplexity, capability_label,
                                    check_datasets, check_judge, check_output_dir, default_output_dir, fmt_params,
                                    html_page, html_table, log_event,
                                    measure_perplexity, png_img, public_config, redact, relative_rise, trial_records)

# quick: the evaluation budget of the demo --fast conditions (16 prompts x 32 tokens, 30 natural-text passages,
# trainability 8 steps at lr 1e-4 scored on 8 MRs), so a quick front reads against the demo's numbers.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"n_trials": 5, "eval_prompts": 16, "max_new_tokens": 32, "capability_texts": 30,
              "train_steps": 8, "train_lr": 1e-4, "train_eval_size": 8},
}

DIRECTIONS = ["minimize", "minimize", "maximize"]
OBJECTIVES = ["worst_harmfulness", "stability_loss", "rouge1"]


#: defence config fields the search sets itself (a space naming them would be ignored or break the trials)
RESERVED: dict[str, str] = {
    "output_dir": "each trial writes its model under --output-dir",
    "model": "the defended model is --model",
    "defence": "the defence is --defence",
    "overwrite": "a re-queued trial resumes its own folder",
}


def _attack_reserved() -> dict[str, str]:
    from alignkit.search.attack import RESERVED as attack_reserved

    return {**{k: v for k, v in attack_reserved.items() if k != "save_model"},
            "model": "each attack runs on the trial's defended model",
            "security_vector": "set from the defended model"}


class DefenceSearchConfig(SearchOptions):
    """Multi-objective search over a defence's hyperparameters (Optuna): worst-case post-attack harmfulness,
    stability (capability loss before any attack) and trainability; a trial beyond the capability bound skips
    its attacks."""

    defence: str = Field("repnoise", description="defence to tune (alignkit defend --help lists them)")
    train_steps: int = Field(20, ge=1, description="trainability: data2text fine-tuning steps per trial")
    train_lr: float = Field(5e-5, gt=0, description="trainability: fine-tuning learning rate")
    train_batch_size: int = Field(4, ge=1, description="trainability: batch size")
    train_eval_size: int = Field(20, ge=1, description="trainability: held-out MRs for ROUGE-1")
    measure_base: bool = Field(True, description="also attack the undefended model with the space's attack grid "
                               "and fine-tune it with the trainability recipe (once per search folder, in base/, "
                               "when a trial passed the capability guard): the front's reference point")


class ParetoTrial(BaseModel):
    trial: int
    worst_harmfulness: float
    stability_loss: float
    rouge1: float
    params: dict[str, Any]
    model_dir: str


class DefenceSearchResult(BaseModel):
    """``results.json`` of a defence search: every trial, the Pareto front and the chosen trial."""

    schema_version: int = 1
    kind: str = "defence"
    config: dict[str, Any] = Field(description="the search's options (storage password masked)")
    space: dict[str, Any]
    storage: str
    objectives: list[str] = Field(default_factory=lambda: list(OBJECTIVES))
    directions: list[str] = Field(default_factory=lambda: list(DIRECTIONS))
    counts: dict[str, int]
    pareto: list[ParetoTrial]
    chosen: Optional[ParetoTrial] = Field(description="the front trial with the lowest worst-case harmfulness")
    base: dict[str, Any] = Field(default_factory=dict, description="the undefended model's measurements under the "
                                 "same attacks and trainability recipe, per template (--measure-base)")
    mean_overhead_s: Optional[float] = None
    trials: list[TrialRecord]
    provenance: dict[str, Any]
    run_dir: str


def resolve(config: DefenceSearchConfig):
    from alignkit.attacks import AttackConfig
    from alignkit.defences import DEFENCES
    from alignkit.harmfulness import judge_cache_name
    from alignkit.search.space import load_space_file

    config = apply_preset(config, PRESETS)
    check_judge(config.judge, config.allow_judge_import)
    from alignkit.models import resolve_model

    resolve_model(config.model)  # a wrong --model fails here, before a study exists, not inside the first trial
    if config.defence not in DEFENCES.names():
        raise AlignkitError(f"unknown defence {config.defence!r}; use one of: {', '.join(DEFENCES.names())}")
    cls = DEFENCES.get(config.defence).config_class
    base = {"defence": config.defence, "model": config.model, "data_seed": config.data_seed, "dtype": config.dtype}
    space_file = config.space or DEFENCES.get(config.defence).search_space_file(config.preset)
    if space_file is None:
        raise AlignkitError(f"defence {config.defence!r} declares no search space; give one with --space FILE "
                            "(see docs/search.md for the format)")
    space = load_space_file(space_file, cls, base=base, allow_attacks=True, reserved=RESERVED)
    attacks = space.attacks or [{}]
    for i, item in enumerate(attacks):
        if not isinstance(item, dict):
            raise AlignkitError(f"search space {space.source}: attacks[{i}] must be a mapping of attack options")
        bad = sorted(set(item) - set(AttackConfig.model_fields))
        if bad:
            raise AlignkitError(f"search space {space.source}: attacks[{i}]: unknown attack option(s) "
                                f"{', '.join(bad)}")
        reserved = _attack_reserved()
        taken = [k for k in item if k in reserved]
        if taken:
            raise AlignkitError(f"search space {space.source}: attacks[{i}]: {taken[0]} cannot be set in a space "
                                f"({reserved[taken[0]]}); remove it")
        try:
            AttackConfig(**{**base_attack_values(config, config.model), **item})
        except Exception as exc:
            raise AlignkitError(f"search space {space.source}: attacks[{i}] is not a valid attack: "
                                f"{str(exc).splitlines()[0]}") from None
    named: list[Any] = [item.get("dataset") for item in attacks]  # every dataset the space names, before a trial
    for key in ("dataset", "retain_dataset", "harmless_dataset"):
        param = space.params.get(key)
        named += [space.fixed.get(key)] + list((param.choices or []) if param else [])
    check_datasets(named)
    out = (Path(config.output_dir).expanduser() if config.output_dir
           else default_output_dir("defence", config.model, config.defence))
    signature = {"kind": "defence", "defence": config.defence, "model": config.model, "space": space.fingerprint(),
                 "epsilon": config.epsilon, "base": base, "capability_texts": config.capability_texts,
                 "capability_data": config.capability_data,
                 "attack": {k: getattr(config, k) for k in ("judge", "eval_prompts", "max_new_tokens", "eval_every")},
                 "judge": judge_cache_name(config.judge),  # "minilm" -> "minilm@5": a new default is a new study
                 "trainability": [config.train_steps, config.train_lr, config.train_batch_size,
                                  config.train_eval_size]}
    return config, space, attacks, out, signature


def base_attack_values(config: DefenceSearchConfig, model: str) -> dict[str, Any]:
    return {"model": model, "judge": config.judge, "allow_judge_import": config.allow_judge_import,
            "eval_prompts": config.eval_prompts,
            "max_new_tokens": config.max_new_tokens, "eval_every": config.eval_every,
            "data_seed": config.data_seed, "dtype": config.dtype, "save_checkpoints": config.checkpoints}


def _template(values: dict[str, Any]) -> str:
    return values.get("template", "chat")


def search_defence(config: DefenceSearchConfig, *, log: Callable[[str], None] | None = None
                   ) -> DefenceSearchResult:
    """Run this worker's share of the study, then write ``results.json`` and ``report.html``."""
    import shutil

    import optuna

    from alignkit.attacks import AttackConfig, attack
    from alignkit.defences import DEFENCES, defend
    from alignkit.harmfulness import get_judge
    from alignkit.io import check_writable_dir, write_json
    from alignkit.search.study import open_storage, open_study, run_worker, storage_url, trial_folder_number

    log = log or _log
    config, space, attacks, out, signature = resolve(config)
    url = storage_url(out, config.storage)
    check_output_dir(out, signature, url)
    if config.storage is None:
        check_writable_dir(out)
    storage = open_storage(url, heartbeat_interval=config.heartbeat_interval, grace_period=config.grace_period,
                           max_retry=config.max_retry)
    study = open_study(storage, signature, DIRECTIONS, sampler_seed=config.sampler_seed)
    check_writable_dir(out)
    write_json(out / "search.json", {"kind": "defence", "signature": signature, "storage": redact(url),
                                     "space_file": space.source, "config": public_config(config)})
    cls = DEFENCES.get(config.defence).config_class
    box: dict[str, Any] = {}

    def objective(trial: optuna.Trial):
        t0 = time.time()
        n = trial_folder_number(trial)
        folder = out / "trials" / f"trial-{n:04d}"
        values = {"defence": config.defence, "model": config.model, "data_seed": config.data_seed,
                  "dtype": config.dtype, **space.sample(trial)}
        dcfg = cls(**values, output_dir=str(folder / "model"))
        template = _template(values)
        log_event(out, trial=trial.number, folder=folder.name, event="start")
        work = 0.0
        t = time.time()
        model_dir = Path(defend(dcfg))
        trial.set_user_attr("model_dir", str(model_dir))
        trial.set_user_attr("defence_s", round(time.time() - t, 2))
        work += time.time() - t
        t = time.time()
        base_ppl = base_perplexity(out, config.model, template, config.capability_texts, config.data_seed,
                                   config.dtype, config.capability_data)
        ppl = measure_perplexity(str(model_dir), template, config.capability_texts, config.data_seed, config.dtype,
                                 config.capability_data)
        loss = relative_rise(ppl, base_ppl)
        work += time.time() - t
        for k, v in {"perplexity": ppl, "base_perplexity": base_ppl, "stability_loss": loss}.items():
            trial.set_user_attr(k, v)
        if loss > config.epsilon:
            trial.set_user_attr("guard", "stability")
            trial.set_user_attr("overhead_s", round(time.time() - t0 - work, 2))
            log_event(out, trial=trial.number, folder=folder.name, event="end", guard="stability")
            log(f"trial {trial.number}: {fmt_params(trial.params)} -> capability loss {loss:+.1%} > epsilon "
                f"{config.epsilon:g}: attacks and trainability skipped (capability guard)")
            raise optuna.TrialPruned(f"capability guard: loss {loss:.3f} > epsilon {config.epsilon}")
        # attacks
        if "judge" not in box:
            box["judge"] = get_judge(config.judge)
        sv = None
        if config.defence == "security-vectors":
            from alignkit.defences import security_vector_path

            sv = security_vector_path(model_dir)
        harms = []
        for i, item in enumerate(attacks):
            acfg = AttackConfig(**{**base_attack_values(config, str(model_dir)), "template": template, **item,
                                   "output_dir": str(folder / "attacks" / f"attack-{i}"),
                                   "security_vector": str(sv) if sv else None})
            t = time.time()
            res = attack(acfg, judge=box["judge"])
            work += time.time() - t
            shutil.rmtree(Path(res.run_dir) / "checkpoints", ignore_errors=True)
            harms.append(res.final_harmfulness)
        worst = max(harms)
        # trainability
        t = time.time()
        rouge = _trainability(config, str(model_dir), template)
        work += time.time() - t
        attrs = {"harmfulness": harms, "worst_harmfulness": worst, "rouge1": rouge,
                 "overhead_s": round(time.time() - t0 - work, 2)}
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        log_event(out, trial=trial.number, folder=folder.name, event="end", worst_harmfulness=worst)
        log(f"trial {trial.number}: {fmt_params(trial.params)} -> worst harmfulness {worst:.3f}, capability loss "
            f"{loss:+.1%}, ROUGE-1 {rouge:.3f}")
        return worst, loss, rouge

    log(f"defence search ({config.defence}) on {config.model}: {config.n_trials} trials, storage {redact(url)}, "
        f"space {space.source}")
    counts = run_worker(study, objective, config.n_trials, log=log, reset_running=config.reset_running,
                        workers_dir=out, threads=config.threads)
    ref = {}
    if config.measure_base:
        templates = sorted({_template({**space.fixed, **r.params}) for r in trial_records(study)
                            if r.state == "COMPLETE"})
        ref = reference(config, attacks, out, templates, box, log)
    result = summarize(study, config, space, out, url, counts, base=ref)
    write_json(out / "results.json", result)
    _link_chosen(out, result)
    write_report(result, out / "report.html")
    log(f"done: {counts['complete']} trials, Pareto front {[p.trial for p in result.pareto]}, chosen "
        f"{result.chosen.trial if result.chosen else 'none'}; results in {out / 'results.json'}")
    return result


def reference(config: DefenceSearchConfig, attacks: list[dict[str, Any]], out: Path, templates: list[str],
              box: dict[str, Any], log: Callable[[str], None]) -> dict[str, Any]:
    """The undefended model under the trials' attack grid and trainability recipe, per template: measured once
    per search folder (``base/attack-K-<template>/`` run folders, ``base/trainability-<template>.json``; a lock
    keeps two workers from measuring it twice) and read back afterwards."""
    import json

    from filelock import FileLock

    from alignkit.attacks import AttackConfig
    from alignkit.io import write_json
    from alignkit.search.common import reference_attack

    ref: dict[str, Any] = {}
    if not templates:
        return ref
    (out / "base").mkdir(parents=True, exist_ok=True)
    with FileLock(str(out / "base" / "reference.lock")):
        for template in templates:
            harms, dirs = [], []
            for i, item in enumerate(attacks):
                folder = out / "base" / f"attack-{i}-{template}"
                acfg = AttackConfig(**{**base_attack_values(config, config.model), "template": template, **item,
                                       "output_dir": str(folder)})
                res = reference_attack(acfg, config.judge, box, log,
                                       f"attack {i} on the undefended model {config.model} ({template} template)")
                harms.append(res.final_harmfulness)
                dirs.append(str(folder))
            f = out / "base" / f"trainability-{template}.json"
            key = {"model": config.model, "template": template, "dtype": config.dtype,
                   "recipe": [config.train_steps, config.train_lr, config.train_batch_size, config.train_eval_size,
                              config.data_seed]}
            rouge = None
            if f.exists():
                try:
                    d = json.loads(f.read_text(encoding="utf-8"))
                    rouge = float(d["rouge1"]) if d.get("key") == key else None
                except (ValueError, KeyError, TypeError):
                    rouge = None
            if rouge is None:
                log(f"reference: trainability of the undefended model ({template} template)")
                rouge = _trainability(config, config.model, template)
                write_json(f, {"key": key, "rouge1": rouge})
            ppl = base_perplexity(out, config.model, template, config.capability_texts, config.data_seed,
                                  config.dtype, config.capability_data)
            ref[template] = {"harmfulness": harms, "worst_harmfulness": max(harms), "rouge1": rouge,
                             "perplexity": ppl, "attack_dirs": dirs}
    return ref


def _trainability(config: DefenceSearchConfig, model_dir: str, template: str) -> float:
    """ROUGE-1 after ``train_steps`` of data2text fine-tuning (the trainability condition's recipe)."""
    import gc

    from alignkit import data
    from alignkit.conditions.trainability import finetune
    from alignkit.models import load_causal_lm

    train_rows = data.load("data2text", split="train", seed=config.data_seed)
    eval_rows = data.load("data2text", split="test", seed=config.data_seed)[:config.train_eval_size]
    model, tok = load_causal_lm(model_dir, dtype=config.dtype)
    curve = finetune(model, tok, train_rows, eval_rows, steps=config.train_steps, lr=config.train_lr,
                     batch_size=config.train_batch_size, eval_every=config.train_steps, template=template,
                     seed=config.data_seed)
    del model
    gc.collect()
    return float(curve[-1].rouge1)


def _pareto(records: list[TrialRecord]) -> list[ParetoTrial]:
    """Non-dominated finished trials (minimise harm and loss, maximise ROUGE-1)."""
    done = [r for r in records if r.state == "COMPLETE" and r.values and len(r.values) == 3]

    def dominates(a, b) -> bool:
        x, y = (a.values[0], a.values[1], -a.values[2]), (b.values[0], b.values[1], -b.values[2])
        return all(p <= q for p, q in zip(x, y)) and any(p < q for p, q in zip(x, y))

    front = [r for r in done if not any(dominates(o, r) for o in done if o is not r)]
    return [ParetoTrial(trial=r.number, worst_harmfulness=r.values[0], stability_loss=r.values[1],
                        rouge1=r.values[2], params=r.params, model_dir=r.attrs.get("model_dir", ""))
            for r in sorted(front, key=lambda r: (r.values[0], r.values[1], r.number))]


def summarize(study, config: DefenceSearchConfig, space, out: Path, url: str, counts: dict[str, int],
              base: Optional[dict[str, Any]] = None) -> DefenceSearchResult:
    from alignkit.harmfulness import judge_cache_name
    from alignkit.provenance import Provenance

    records = trial_records(study)
    front = _pareto(records)
    overheads = [r.attrs["overhead_s"] for r in records if "overhead_s" in r.attrs]
    prov = Provenance(model=config.model, judge=judge_cache_name(config.judge), seed=config.sampler_seed,
                      data={"capability": capability_label(config.capability_data, config.capability_texts),
                            "eval": f"harmful-eval:test n={config.eval_prompts}",
                            "trainability": f"data2text train/test n_eval={config.train_eval_size}"},
                      command=" ".join(sys.argv)).model_dump(mode="json")
    return DefenceSearchResult(config=public_config(config), space=space.model_dump(mode="json"), storage=redact(url),
                               counts=counts, pareto=front, chosen=front[0] if front else None, base=base or {},
                               mean_overhead_s=round(sum(overheads) / len(overheads), 2) if overheads else None,
                               trials=records, provenance=prov, run_dir=str(out))


def _link_chosen(out: Path, result: DefenceSearchResult) -> None:
    import os

    link = out / "chosen-model"
    if result.chosen is None or not result.chosen.model_dir:
        return
    target = os.path.relpath(result.chosen.model_dir, out)
    tmp = out / f".chosen-model.{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(target, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:  # file systems without symlinks: results.json names the folder
        if tmp.is_symlink():
            tmp.unlink()


def write_report(result: DefenceSearchResult, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from alignkit.io import atomic_write_text

    c = DefenceSearchConfig(**result.config)
    done = [r for r in result.trials if r.state == "COMPLETE" and r.values]
    guarded = [r for r in result.trials if r.attrs.get("guard")]
    front = {p.trial for p in result.pareto}
    intro = (f"<p>Defence <b>{c.defence}</b> on <b>{c.model}</b>, judge {result.provenance.get('judge', c.judge)}; objectives: worst-case "
             f"post-attack harmfulness over {len(result.space.get('attacks') or [{}])} attack(s) (minimise), "
             f"capability loss before attack (minimise; guard epsilon {c.epsilon:g}), ROUGE-1 after "
             f"{c.train_steps} data2text steps (maximise). {result.counts.get('complete', 0)} finished trials, "
             f"{len(guarded)} stopped by the capability guard, {result.counts.get('failed', 0)} failed.</p>"
             + (f"<p>Chosen: trial {result.chosen.trial} ({fmt_params(result.chosen.params)}), model "
                f"<code>{result.chosen.model_dir}</code></p>" if result.chosen
                else "<p>No trial passed the capability guard: the front is empty.</p>" if guarded
                else "<p>No finished trial.</p>"))
    sections = [("Summary", intro)]
    sections.append(("Pareto front", html_table(
        ["trial", "worst harmfulness", "capability loss", "ROUGE-1", "params"],
        [[p.trial, p.worst_harmfulness, p.stability_loss, p.rouge1, fmt_params(p.params)] for p in result.pareto]
        + [[f"undefended model ({t}; reference)", b["worst_harmfulness"], 0.0, b["rouge1"], "the same attacks and "
            "trainability recipe"] for t, b in sorted(result.base.items())],
        highlight={0} if result.pareto else None)))
    if done:
        fig, ax = plt.subplots(figsize=(6, 4))
        sc = ax.scatter([r.values[1] for r in done], [r.values[0] for r in done], c=[r.values[2] for r in done],
                        cmap="viridis", edgecolors=["red" if r.number in front else "none" for r in done])
        fig.colorbar(sc, ax=ax, label="ROUGE-1")
        for r in done:
            ax.annotate(str(r.number), (r.values[1], r.values[0]), fontsize=7)
        for t, b in sorted(result.base.items()):
            ax.axhline(b["worst_harmfulness"], color="gray", ls="--", lw=1)
            ax.scatter([0.0], [b["worst_harmfulness"]], marker="*", s=120, color="black", zorder=3)
            ax.annotate(f"undefended, attacked ({t})", (0.0, b["worst_harmfulness"]), fontsize=7,
                        xytext=(4, 4), textcoords="offset points")
        ax.axvline(c.epsilon, color="gray", ls=":", lw=1)
        ax.annotate(f"guard epsilon {c.epsilon:g}", (c.epsilon, ax.get_ylim()[0]), fontsize=7, rotation=90,
                    xytext=(-9, 4), textcoords="offset points")
        ax.set_xlabel("capability loss before attack (relative perplexity rise)")
        ax.set_ylabel("worst-case post-attack harmfulness")
        ax.set_title("trials (red edge: Pareto front)", fontsize=9)
        fig.tight_layout()
        sections.append(("Pareto plot", png_img(fig)))
        plt.close(fig)
    sections.append(("Every trial", html_table(
        ["trial", "state", "worst harmfulness", "capability loss", "ROUGE-1", "guard", "params"],
        [[r.number, r.state, r.attrs.get("worst_harmfulness"), r.attrs.get("stability_loss"), r.attrs.get("rouge1"),
          r.attrs.get("guard"), fmt_params(r.params)] for r in result.trials])))
    atomic_write_text(path, html_page("alignkit defence search", sections))


def _log(msg: str) -> None:
    from alignkit.training import log

    log(msg)
