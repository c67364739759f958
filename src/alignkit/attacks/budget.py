"""Budget attack families: an attack without a Trainer, evaluated at a growing budget (prefill length, embedding
optimisation steps, ablation strength, ...), and the runner they share (:func:`run_budget_attack`).

A family subclasses :class:`BudgetAttack`, sets ``config_class`` / ``budget_label`` / ``changes_weights``, is
registered with ``@ATTACKS.register("name")`` and implements:

- ``budgets() -> list[int]``: the budgets to evaluate (default: ``config.budgets``), increasing, >= 0;
- ``check()``: bad input that needs the loaded model / tokenizer / evaluation prompts (e.g. no chat template, an
  empty prompt file), before anything is measured (one-line :class:`AlignkitError`);
- ``setup(run_dir)``: once per run, before the first budget still to evaluate (directions, optimised suffixes,
  ...); may cache artefacts in ``run_dir`` so that a resumed run does not recompute them;
- ``completions(budget, prompts) -> list[str]``: the response the judge scores for each evaluation prompt at
  that budget (default: greedy generation with ``attacked_model(budget)``);
- ``attacked_model(budget)``: the model at that budget (families that edit weights; default the loaded model);
  saved as a plain Hugging Face folder with ``--save-model`` (the largest budget) through ``export(model)``;
- optional: ``extra_metrics(budget, prompts, judge) -> dict`` (more numbers for that budget's metrics row, e.g.
  the harmfulness of the generated part alone), ``data_label()`` (provenance of the data the attack used),
  ``self.notes`` (lines for the result's ``notes``), ``num_train_samples``.

``self.model`` / ``self.tokenizer`` (loaded once, ``config.dtype``, eval mode), ``self.prompts`` (the evaluation
prompts, ``Prompt`` records) and ``self.run_dir`` are set by the runner before ``check``. The runner gives every family the run folder (``config.json`` check, lock, resume that skips the
budgets already in ``metrics.jsonl``), ``generations/step_XXXX.jsonl`` (XXXX = budget), ``curve.png`` (x axis =
``budget_label``), ``results.json`` (:class:`AttackResult`, with provenance) and the model save.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from alignkit.attacks.base import (ATTACKS, RESUME_IGNORED, AttackFamily, _slug, check_judge_import, curve_from_rows,
                                   finished_result, load_eval_prompts, write_curve_plot)
from alignkit.attacks.config import AttackOptions, AttackResult, steps_to_threshold
from alignkit.errors import AlignkitError
from alignkit.training import RunFolder, config_hash, device_kind, log, num_processes

__all__ = ["ATTACKS", "BudgetAttack", "check_budgets", "run_budget_attack"]


def check_budgets(values: Sequence[int], option: str) -> list[int]:
    """Budgets as a sorted list of unique non-negative ints (for a config's field validator: raises ValueError)."""
    vals = sorted(set(int(v) for v in values))
    if not vals:
        raise ValueError(f"give at least one value for {option}")
    if vals[0] < 0:
        raise ValueError(f"{option} must be >= 0")
    return vals


class BudgetAttack(AttackFamily):
    """Base class of an attack family without a Trainer (see the module docstring)."""

    config_class = AttackOptions
    budget_label = "budget"
    changes_weights = False
    #: training examples the attack used (e.g. prompts a universal suffix or a direction was fitted on)
    num_train_samples: int = 0

    def __init__(self, config: AttackOptions):
        super().__init__(config)
        self.model: Any = None
        self.tokenizer: Any = None
        self.run_dir: Path | None = None
        self.prompts: list = []
        self.notes: list[str] = []

    @classmethod
    def run(cls, config, *, judge: Any = None, reuse_step0_from: Any = None) -> AttackResult:
        return run_budget_attack(config, cls, judge=judge)

    # ---- hooks
    def budgets(self) -> list[int]:
        return check_budgets(getattr(self.config, "budgets"), "--budgets")

    def check(self) -> None:
        """Bad input that needs the loaded model (raise AlignkitError)."""

    def setup(self, run_dir: Path) -> None:
        """One-time work before the first budget to evaluate."""

    def attacked_model(self, budget: int):
        """The model at ``budget`` (weight-editing families override; default: the loaded model)."""
        return self.model

    def export(self, model):
        """The plain transformers model to save."""
        return model

    def completions(self, budget: int, prompts: list) -> list[str]:
        from alignkit.harmfulness import generate_completions

        cfg = self.config
        return generate_completions(self.attacked_model(budget), self.tokenizer, prompts, template=cfg.template,
                                    max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch_size)

    def data_label(self) -> str | None:
        """Provenance: the data the attack itself used (None: none)."""
        return None

    def extra_metrics(self, budget: int, prompts: list, judge: Any) -> dict[str, Any]:
        """More numbers for the metrics row of ``budget`` (called right after ``completions``)."""
        return {}


def default_budget_run_dir(config: AttackOptions) -> Path:
    from alignkit.paths import default_runs_dir

    values = {k: v for k, v in config.model_dump(mode="json").items() if k not in RESUME_IGNORED}
    return default_runs_dir() / (f"attack-{_slug(config.model)}-{config.family()}-s{config.seed}-"
                                 f"{config_hash(values)}")


def run_budget_attack(config: AttackOptions, attack_cls: type[BudgetAttack], judge: Any = None) -> AttackResult:
    """Run (or resume, or report) one budget attack: every budget of ``attack_cls(config).budgets()`` not yet in
    the run folder's ``metrics.jsonl`` is evaluated, then ``results.json`` and ``curve.png`` are written."""
    if num_processes() > 1:
        raise AlignkitError(f"attack {config.family()} runs in one process; run it without accelerate launch")
    run_dir = Path(config.output_dir).expanduser() if config.output_dir else default_budget_run_dir(config)
    folder = RunFolder(run_dir, ignore=RESUME_IGNORED)
    check_judge_import(judge if judge is not None else config.judge, config.allow_judge_import)
    lock = folder.lock()
    lock.acquire()  # one writer per run folder; a second run fails naming the holder
    state: dict[str, Any] = {"status": None}
    try:
        return _run(config, attack_cls, judge, run_dir, folder, state)
    except BaseException:
        if state["status"] in ("new", "overwrite"):
            folder.discard_unstarted()  # nothing measured yet: the corrected command must not be refused
        raise
    finally:
        lock.release()


def _run(config: AttackOptions, attack_cls: type[BudgetAttack], judge: Any, run_dir: Path, folder: RunFolder,
         state: dict) -> AttackResult:
    from alignkit.harmfulness import evaluate_harmfulness, get_judge, judge_label
    from alignkit.io import append_jsonl, atomic_write_text, write_json
    from alignkit.models import context_length, load_causal_lm, public_model_name, resolve_model, save_with_card
    from alignkit.provenance import Provenance

    t_start = time.time()
    name = config.family()
    results_file = run_dir / "results.json"
    impl = attack_cls(config)
    budgets = impl.budgets()
    status = folder.prepare(config.model_dump(mode="json"), config.overwrite, kind="attack run")
    state["status"] = status
    if not folder.metrics_file.exists():
        atomic_write_text(folder.metrics_file, "")  # marks the folder as an alignkit run folder
    if status == "resume" and (res := finished_result(run_dir)) is not None:
        return res
    rows = folder.read_metrics()
    done = {int(r["step"]) for r in rows if r.get("type") == "eval"}
    prompts = load_eval_prompts(config)
    n_ctx = context_length(resolve_model(config.model))
    if n_ctx is not None and config.max_new_tokens >= n_ctx:
        raise AlignkitError(f"--max-new-tokens {config.max_new_tokens} does not fit the model's context of {n_ctx} "
                            "tokens; give fewer")
    judge_obj = get_judge(judge if judge is not None else config.judge)
    judge_name = judge_label(judge_obj)
    model, tokenizer = load_causal_lm(config.model, dtype=config.dtype)
    model.eval()
    impl.model, impl.tokenizer, impl.run_dir, impl.prompts = model, tokenizer, run_dir, prompts
    impl.check()
    todo = [b for b in budgets if b not in done]
    log(f"attack {name} on {config.model}: budgets ({impl.budget_label}) {budgets}, judge {judge_name}, "
        f"{len(prompts)} eval prompts -> {run_dir}" + (f"; already evaluated: {sorted(done)}" if done else ""))
    if todo:
        impl.setup(run_dir)
    for b in todo:
        t0 = time.time()
        completions = impl.completions(b, prompts)
        if len(completions) != len(prompts):
            raise AlignkitError(f"attack {name} returned {len(completions)} completions for {len(prompts)} prompts")
        ev = evaluate_harmfulness(None, tokenizer, prompts, judge_obj, template=config.template,
                                  completions=completions)
        extra = impl.extra_metrics(b, prompts, judge_obj)
        gen_file = run_dir / "generations" / f"step_{b:04d}.jsonl"
        gen_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(gen_file, "".join(json.dumps(g.model_dump()) + "\n" for g in ev.generations))
        append_jsonl(folder.metrics_file, {
            "type": "eval", "step": b, "budget_label": impl.budget_label, "harmfulness_mean": ev.mean,
            "share_harmful": ev.share_harmful, "per_category": ev.per_category, "ci95": list(ev.ci95), "n": ev.n,
            "judge": ev.judge, **extra, "elapsed_s": round(time.time() - t0, 2)})
        log(f"{impl.budget_label} {b}: {ev.summary()} [{time.time() - t0:.0f}s]")

    final_model_dir = None
    if config.save_model:
        if impl.changes_weights:
            final_model_dir = str(run_dir / "model")
            card = {"title": f"{public_model_name(config.model)} after attack {name} ({impl.budget_label} "
                             f"{budgets[-1]})", "base_model": public_model_name(config.model), "attack": name,
                    "attack_config": config.model_dump(mode="json"), "judge": judge_name}
            save_with_card(impl.export(impl.attacked_model(budgets[-1])), tokenizer, final_model_dir, card)
        else:
            impl.notes.append(f"--save-model: {name} does not change the weights; no model saved")
            log(f"note: {name} does not change the weights; --save-model saves nothing")

    rows = folder.read_metrics()
    curve = [p for p in curve_from_rows(rows) if p.step in set(budgets)]
    if not curve:
        raise AlignkitError(f"no harmfulness was measured in {run_dir}; pass --overwrite to start over")
    phi = config.threshold if config.threshold is not None else curve[0].harmfulness_mean
    means = [p.harmfulness_mean for p in curve]
    data = {"eval": f"{config.eval_dataset}:{config.eval_split} n={len(prompts)}"}
    if impl.data_label():
        data["attack"] = impl.data_label()
    prov = Provenance(model=config.model, data=data, judge=judge_name, seed=config.seed, device=device_kind(),
                      command=" ".join(sys.argv))
    notes = list(impl.notes)
    if not impl.changes_weights:
        notes.append(f"{name} does not change the model's weights: capability loss 0 by construction")
    from alignkit.judges.card import report_lines  # the judge's measured validity, from its card

    res = AttackResult(
        config=config, provenance=prov, attack=name, budget_label=impl.budget_label,
        changes_weights=impl.changes_weights, capability_loss=None if impl.changes_weights else 0.0, notes=notes,
        judge_validity=report_lines(judge_name),
        curve=curve, initial_harmfulness=means[0], final_harmfulness=means[-1], max_harmfulness=max(means),
        threshold=phi, steps_to_threshold=steps_to_threshold(curve, phi), total_steps=budgets[-1],
        num_train_samples=impl.num_train_samples, resumed_from_step=max(done) if done else None,
        runtime_s=round(time.time() - t_start, 1), run_dir=str(run_dir), final_model_dir=final_model_dir)
    write_curve_plot(curve, run_dir / "curve.png", phi, f"{name} on {_slug(config.model)}, judge {judge_name}",
                     xlabel=impl.budget_label)
    write_json(results_file, res)
    log(f"done: harmfulness {res.initial_harmfulness:.3f} ({impl.budget_label} {curve[0].step}) -> "
        f"{res.final_harmfulness:.3f} ({impl.budget_label} {curve[-1].step}); results in {results_file}")
    return res
