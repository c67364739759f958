"""The attack contract shared by every attack family, and the training families' run (Trainer path).

An attack turns a model into an attacked model, or into an attacked way of prompting it, at a growing
*budget*; its harmfulness curve is harmfulness against that budget. A family is one module with one class
registered by name in :data:`ATTACKS` and one typed config class:

- ``AttackFamily`` (this file): what every registered class carries:
  ``config_class`` (a subclass of :class:`~alignkit.attacks.config.AttackOptions`, the shared model /
  evaluation / judge / run-folder fields; the config's ``attack`` field is a ``Literal`` of the registered
  name), ``budget_label`` (the curve's x axis: "optimizer steps", "prefill tokens", "ablation strength (%)",
  ...), ``changes_weights`` (False: the model's capability is unchanged by construction, capability loss 0),
  and ``run(config, judge=None, reuse_step0_from=None) -> AttackResult`` (the family's runner).
- Training families (:class:`Attack`: ``sft-full``, ``sft-lora``, and SFT data transforms such as
  jailbreak-tuning or benign fine-tuning): :func:`run_attack` loads the training records
  (``load_records()`` then ``transform_records(records)``), prepares the model (``prepare_model``), trains it with
  a ``transformers.Trainer`` carrying the given callbacks (``train``), evaluates at step 0 and every
  ``eval_every`` steps on ``transform_prompts(prompts)`` (the judge always sees the original prompts), in
  ``eval_mode`` (e.g. without a security vector), and saves ``export(model)``. Budget = optimizer steps.
  Their configs subclass :class:`~alignkit.attacks.config.AttackConfig`.
- Budget families without a Trainer (:class:`alignkit.attacks.budget.BudgetAttack`: ``prefill``, embedding,
  refusal ablation): :func:`alignkit.attacks.budget.run_budget_attack` evaluates ``completions(budget,
  prompts)`` at every value of ``budgets()`` after one ``setup(run_dir)``; families that edit weights return the
  edited model from ``attacked_model(budget)`` (saved with ``--save-model``, measured by the capability guard).

Both runners share the run folder (``config.json`` check, :class:`~alignkit.io.RunLock`, resume, ``metrics.jsonl``,
``generations/step_XXXX.jsonl`` with XXXX = the budget value, ``curve.png`` with the budget on the x axis,
``results.json`` = :class:`~alignkit.attacks.config.AttackResult` with provenance) and bad input (one-line
:class:`~alignkit.errors.AlignkitError`, nothing left behind). ``alignkit.attacks.attack(config)`` dispatches on
``config.family()``; the CLI (``alignkit attack --attack NAME``) builds its options from the family's config class.
The capability guard (held-out perplexity rise, next-token KL on harmless prompts) is
:mod:`alignkit.attacks.capability`. docs/architecture.md (attacks) states the contract.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from alignkit.attacks.config import AttackConfig, AttackResult, CurvePoint, steps_to_threshold
from alignkit.errors import AlignkitError
from alignkit.registry import Registry
from alignkit.training import (
    RunFolder,
    barrier,
    broadcast_object,
    config_hash,
    device_kind,
    is_main_process,
    last_checkpoint,
    log,
    model_for_generation,
)

ATTACKS: Registry = Registry("attack")

# config fields that may change between the first run and a resumed one
RESUME_IGNORED = ("output_dir", "overwrite", "eval_batch_size", "save_model", "allow_judge_import",
                  "allow_pickle_adapter")


def check_judge_import(spec: Any, allowed: bool) -> None:
    """``--judge package.module:Class`` imports and runs that module: refuse it unless explicitly allowed
    (``--allow-judge-import``); registered judge names (and ``name:key=value`` options) always pass."""
    if not isinstance(spec, str) or ":" not in spec or allowed:
        return
    left, _, right = spec.strip().partition(":")
    if right.isidentifier() and all(part.isidentifier() for part in left.split(".")):
        raise AlignkitError(f"--judge {spec!r} would import and run Python module {left!r}; use a registered judge "
                            "(alignkit judge list), or pass --allow-judge-import if you trust that module")


class AttackFamily:
    """What every registered attack class carries (see the module docstring)."""

    #: the family's config class (a subclass of AttackOptions; its ``attack`` field names the family)
    config_class: type = AttackConfig
    #: what the curve's x axis (``CurvePoint.step``) counts
    budget_label: str = "optimizer steps"
    #: False: the model's weights are unchanged (capability loss 0 by construction)
    changes_weights: bool = True
    #: set by the registry: the registered name
    registry_name: str = ""

    def __init__(self, config):
        self.config = config

    @classmethod
    def run(cls, config, *, judge: Any = None, reuse_step0_from: Any = None) -> AttackResult:
        """Run (resume, or report the finished) attack ``config`` of this family."""
        raise NotImplementedError

    @classmethod
    def search_space_file(cls, preset: str | None = None) -> Path | None:
        """The family's shipped search space for ``search attack --attack NAME``: ``attacks/spaces/<name>.yaml``
        (``<name>-<preset>.yaml`` for a preset that has one); None when the family ships none."""
        folder = Path(__file__).resolve().parent / "spaces"
        if preset and (folder / f"{cls.registry_name}-{preset}.yaml").is_file():
            return folder / f"{cls.registry_name}-{preset}.yaml"
        f = folder / f"{cls.registry_name}.yaml"
        return f if f.is_file() else None


class Attack(AttackFamily):
    """Base class of a training attack family (one instance per run): the Trainer path of :func:`run_attack`."""

    config_class = AttackConfig
    budget_label = "optimizer steps"
    changes_weights = True

    @classmethod
    def run(cls, config, *, judge: Any = None, reuse_step0_from: Any = None) -> AttackResult:
        return run_attack(config, judge=judge, reuse_step0_from=reuse_step0_from)

    def load_records(self) -> list:
        """The training records (objects with ``question`` and ``answer``): default the harmful QA data of
        ``--dataset`` (:func:`load_train_records`); a family training on other data (e.g. harmless instructions)
        overrides this."""
        return load_train_records(self.config)

    def transform_records(self, records: list) -> list:
        """Rewrite the training records (e.g. add a jailbreak trigger); default: unchanged."""
        return records

    def transform_prompts(self, prompts: list) -> list:
        """The evaluation prompts as the attacked model is prompted (``Prompt`` records or strings; e.g. with the
        same trigger as in training); the judge still scores the original prompts. Default: unchanged."""
        return prompts

    def prepare_model(self, model):
        """Wrap / freeze the loaded model for training (e.g. LoRA). Returns the model to train."""
        return model

    def train(self, model, tokenizer, records, *, callbacks, checkpoint_dir: Path, resume_from: str | None,
              trainer_box: dict):
        """Train ``model`` on ``records`` (HarmfulQA) with a Trainer carrying ``callbacks``, resuming from
        ``resume_from``; put the Trainer in ``trainer_box["trainer"]`` before training; return it."""
        raise NotImplementedError

    @contextlib.contextmanager
    def eval_mode(self, model) -> Iterator[Any]:
        """Context in which ``model`` is evaluated (default: as trained)."""
        yield model

    def export(self, model):
        """The plain transformers model to save (adapters merged / removed)."""
        return model


def ensure_registered() -> None:
    """Import the attack package, which registers every shipped family."""
    import alignkit.attacks  # noqa: F401


def family_class(config) -> type[AttackFamily]:
    """The registered class of ``config``'s family (unknown names: one line listing the registered ones)."""
    ensure_registered()
    return ATTACKS.get(config.family())


def family_config_class(name: str) -> type:
    """The config class of family ``name`` (``sft`` and ``sft-*``: :class:`AttackConfig`); an unknown name is one
    line listing the registered families."""
    if name == "sft" or name in ("sft-full", "sft-lora"):
        return AttackConfig
    ensure_registered()
    return ATTACKS.get(name).config_class


def family_class_by_name(name: str) -> type[AttackFamily]:
    """The registered class of family ``name`` (``sft``: ``sft-full``, whose space and runner ``sft`` shares)."""
    ensure_registered()
    return ATTACKS.get("sft-full" if name == "sft" else name)


def resolve_attack(config: AttackConfig) -> tuple[str, type[Attack]]:
    name = config.family()
    return name, family_class(config)


def _slug(text: str) -> str:
    from alignkit.io import safe_name

    return safe_name(Path(str(text)).name or str(text), max_len=40)


def default_run_dir(config: AttackConfig) -> Path:
    from alignkit.paths import default_runs_dir

    values = {k: v for k, v in config.model_dump(mode="json").items() if k not in RESUME_IGNORED}
    name = (f"attack-{_slug(config.model)}-{config.attack}-{config.method}-lr{config.lr:g}"
            f"-n{config.num_samples or 'all'}-s{config.seed}-{config_hash(values)}")
    return default_runs_dir() / name


def on_main(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on the main process; its result (or its AlignkitError) reaches every process."""
    out, err = None, None
    if is_main_process():
        try:
            out = fn()
        except AlignkitError as exc:
            err = str(exc)
    out, err = broadcast_object((out, err))
    if err is not None:
        raise AlignkitError(err)
    return out


# ------------------------------------------------------------------------------------------------ data
def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or Path(name).suffix.lower() in (
        ".jsonl", ".json", ".csv", ".parquet", ".tsv", ".txt") or name.count("/") > 1


def load_train_records(config: AttackConfig) -> list:
    """Harmful QA records for the attack: a registered dataset split or a user file / hub dataset."""
    from alignkit import data

    name = config.dataset
    if name in data.names():
        recs = data.load(name, split=config.dataset_split, seed=config.data_seed)
    else:
        p = Path(name).expanduser()
        if not p.exists() and (_looks_like_path(name) or "/" not in name):
            if _looks_like_path(name):
                raise AlignkitError(f"dataset file {name!r} does not exist; give an existing file or one of: "
                                    f"{', '.join(data.names())}")
            raise AlignkitError(f"unknown dataset {name!r}; use one of: {', '.join(data.names())}, a file, "
                                "or a hub dataset id like 'org/name'")
        cols = {k: v for k, v in (("question", config.question_column), ("answer", config.answer_column),
                                  ("category", config.category_column)) if v}
        recs = data.load_user(name, columns=cols or None, schema=config.dataset_schema)
    recs = list(recs)
    if not recs:
        raise AlignkitError(f"dataset {name!r} has no rows in split {config.dataset_split!r}")
    if not all(hasattr(r, "question") and hasattr(r, "answer") for r in recs[:1]):
        raise AlignkitError(f"dataset {name!r} holds {type(recs[0]).__name__} records, not harmful "
                            "question/answer pairs; give a harmful QA dataset (e.g. harmful-qa)")
    recs.sort(key=lambda r: r.id)
    random.Random(f"attack-samples-{config.data_seed}").shuffle(recs)
    if config.num_samples:
        if config.num_samples > len(recs):
            log(f"note: --num-samples {config.num_samples} > {len(recs)} rows in {name}:{config.dataset_split};"
                f" using all {len(recs)}")
        recs = recs[:config.num_samples]
    return recs


def load_eval_prompts(config: AttackConfig) -> list:
    from alignkit import data

    if config.eval_dataset not in data.names():
        raise AlignkitError(f"unknown evaluation dataset {config.eval_dataset!r}; use one of: "
                            f"{', '.join(data.names())}")
    recs = sorted(data.load(config.eval_dataset, split=config.eval_split, seed=config.data_seed),
                  key=lambda r: r.id)
    if not recs:
        raise AlignkitError(f"evaluation dataset {config.eval_dataset}:{config.eval_split} is empty")
    if not all(hasattr(r, "prompt") or hasattr(r, "question") for r in recs[:1]):
        raise AlignkitError(f"evaluation dataset {config.eval_dataset!r} holds no prompts")
    random.Random(f"eval-prompts-{config.data_seed}").shuffle(recs)
    return recs[:config.eval_prompts]


# ------------------------------------------------------------------------------------------------ curve
def write_curve_plot(curve: list[CurvePoint], path: Path, threshold: float | None, title: str,
                     xlabel: str = "optimizer steps") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p.step for p in curve]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, [p.harmfulness_mean for p in curve], "o-", label="harmfulness (mean)")
    ax.fill_between(steps, [p.ci95[0] for p in curve], [p.ci95[1] for p in curve], alpha=0.2, label="95% CI")
    ax.plot(steps, [p.share_harmful for p in curve], "s--", label="share > 0.5")
    if threshold is not None:
        ax.axhline(threshold, color="gray", ls=":", label=f"phi = {threshold:.2f}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("harmfulness")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    from alignkit.io import unique_temp

    try:
        with unique_temp(path) as tmp:  # unique name, removed on failure
            fig.savefig(tmp, dpi=100, format="png")
    finally:
        plt.close(fig)


def curve_from_rows(rows: list[dict]) -> list[CurvePoint]:
    train = {int(r["step"]): r for r in rows if r.get("type") == "train"}
    pts = {}
    for r in rows:
        if r.get("type") != "eval":
            continue
        step = int(r["step"])
        t = train.get(step, {})
        pts[step] = CurvePoint(step=step, harmfulness_mean=r["harmfulness_mean"], share_harmful=r["share_harmful"],
                               per_category=r.get("per_category", {}), ci95=tuple(r.get("ci95", (0.0, 0.0))),
                               n=r.get("n", 0), train_loss=t.get("loss"), learning_rate=t.get("learning_rate"),
                               elapsed_s=r.get("elapsed_s"))
    return [pts[s] for s in sorted(pts)]


# ------------------------------------------------------------------------------------------------ run
#: AttackConfig fields that decide the step-0 evaluation (the untouched model on the eval prompts)
STEP0_FIELDS = ("model", "eval_dataset", "eval_split", "eval_prompts", "max_new_tokens", "judge", "template",
                "data_seed", "dtype", "eval_batch_size")


def reusable_step0(config: AttackConfig, source: str | Path, judge_name: str | None = None,
                   prompts: list[str] | None = None) -> tuple[dict, Path] | None:
    """The step-0 eval row and generations file of the attack run in ``source`` when its step 0 is the same
    measurement as ``config``'s would be (same model and every eval setting, same judge label and prompts when
    given; not security-vector mode, where step 0 runs with an adapter); else None. Greedy decoding makes the
    two measurements identical."""
    from alignkit.io import read_jsonl

    src = Path(source)
    gen = src / "generations" / "step_0000.jsonl"
    try:
        old = json.loads((src / "config.json").read_text(encoding="utf-8"))
        rows = [r for r in read_jsonl(src / "metrics.jsonl") if r.get("type") == "eval" and r.get("step") == 0]
    except (OSError, ValueError, AttributeError):  # unreadable, or rows / config that are not objects
        return None
    if not isinstance(old, dict):
        return None
    new = config.model_dump(mode="json")
    # plus the family's own fields that change what the model is prompted with (e.g. a jailbreak-tuning wording)
    fields = (*STEP0_FIELDS, *getattr(family_class(config), "step0_fields", ()))
    if (not rows or not gen.is_file() or config.security_vector or old.get("security_vector")
            or any(old.get(k) != new.get(k) for k in fields) or old.get("attack", "sft") != new.get("attack")
            or (judge_name is not None and rows[0].get("judge") != judge_name)):
        return None
    if prompts is not None:
        try:
            if [r.get("prompt") for r in read_jsonl(gen)] != list(prompts):
                return None
        except (OSError, ValueError, AttributeError):
            return None
    return rows[0], gen


def finished_result(run_dir: Path) -> AttackResult | None:
    """The results.json of a finished run in ``run_dir`` (said in one line), or None (unfinished or unreadable:
    the run resumes). Both runners, the Trainer path and the budget families, use it."""
    results_file = run_dir / "results.json"
    if not results_file.exists():
        return None
    try:
        res = AttackResult.model_validate_json(results_file.read_text(encoding="utf-8"))
    except ValueError:
        return None
    log(f"run already finished: {run_dir} (final harmfulness {res.final_harmfulness:.3f}); "
        "pass --overwrite to run it again")
    return res


def _diverged(trainer, model) -> str | None:
    """Main process: the first non-finite parameter of the trained model (None: all finite, or the weights are
    sharded over processes and not checked here)."""
    from alignkit.training import is_sharded, nonfinite_parameter

    if trainer is not None and is_sharded(trainer):
        return None
    return nonfinite_parameter(model)


def run_attack(config: AttackConfig, judge: Any = None, reuse_step0_from: str | Path | None = None
               ) -> AttackResult:
    """Run (or resume, or report) one attack. ``judge`` overrides ``config.judge`` with a judge object.
    ``reuse_step0_from``: a finished run folder of the same model whose step-0 evaluation is copied instead of
    measured again (see :func:`reusable_step0`; ignored when it does not match)."""
    run_dir = Path(config.output_dir).expanduser() if config.output_dir else default_run_dir(config)
    folder = RunFolder(run_dir, ignore=RESUME_IGNORED)
    check_judge_import(judge if judge is not None else config.judge, config.allow_judge_import)
    lock = folder.lock()
    on_main(lambda: lock.acquire() and None)  # one writer per run folder; a second run fails naming the holder
    state: dict[str, Any] = {"status": None, "training": False}
    try:
        return _run_attack(config, judge, reuse_step0_from, run_dir, folder, state)
    except BaseException:
        if is_main_process() and state["status"] in ("new", "overwrite") and not state["training"]:
            folder.discard_unstarted()  # nothing measured yet: the corrected command must not be refused
        raise
    finally:
        if is_main_process():
            lock.release()


def _run_attack(config: AttackConfig, judge: Any, reuse_step0_from: Any, run_dir: Path, folder: RunFolder,
                state: dict) -> AttackResult:
    from alignkit.harmfulness import evaluate_harmfulness, generate_completions, get_judge, judge_label
    from alignkit.io import append_jsonl, read_jsonl, write_json
    from alignkit.models import load_causal_lm, resolve_model
    from alignkit.provenance import Provenance

    t_start = time.time()
    attack_name, attack_cls = resolve_attack(config)
    results_file = run_dir / "results.json"

    status = on_main(lambda: folder.prepare(config.model_dump(mode="json"), config.overwrite, kind="attack run"))
    state["status"] = status
    if status == "resume" and (res := finished_result(run_dir)) is not None:
        return res

    ck = last_checkpoint(folder.checkpoint_dir) if config.save_checkpoints else None
    resume_step, resume_path = (ck[0], str(ck[1])) if ck else (0, None)

    def _truncate():
        kept = folder.truncate_metrics(resume_step)
        gen_dir = run_dir / "generations"
        if gen_dir.is_dir():
            for f in gen_dir.glob("step_*.jsonl"):
                m = re.match(r"step_(\d+)\.jsonl$", f.name)
                if m and int(m.group(1)) > resume_step:
                    f.unlink()
        return kept

    rows = on_main(_truncate)
    done = {int(r["step"]) for r in rows if r.get("type") == "eval"}
    if resume_path:
        log(f"resuming from checkpoint-{resume_step} (step {resume_step}); evaluated steps kept: "
            f"{sorted(done)}")
    elif done:  # evaluated but never checkpointed (e.g. killed before the first checkpoint): start over
        rows = on_main(lambda: folder.truncate_metrics(-1))
        done = set()
    attack_impl = attack_cls(config)
    records = attack_impl.transform_records(attack_impl.load_records())
    if not records:
        raise AlignkitError(f"attack {attack_name} has no training records; check --dataset / --num-samples")
    prompts = load_eval_prompts(config)
    gen_prompts = attack_impl.transform_prompts(prompts)

    judge_box: dict[str, Any] = {}

    def _judge():
        judge_box["judge"] = get_judge(judge if judge is not None else config.judge)
        return judge_label(judge_box["judge"])

    def _check_model() -> None:  # prepare assets once, before other ranks load
        from alignkit.models import context_length

        n = context_length(resolve_model(config.model))
        if n is not None and config.max_new_tokens >= n:
            raise AlignkitError(f"--max-new-tokens {config.max_new_tokens} does not fit the model's context of {n} "
                                "tokens; give fewer")

    on_main(_check_model)
    judge_name = on_main(_judge)
    if not done and reuse_step0_from is not None:
        from alignkit.harmfulness import _prompt_fields

        found = reusable_step0(config, reuse_step0_from, judge_name, [_prompt_fields(p)[0] for p in prompts])
        if found is not None:
            def _copy_step0():
                from alignkit.io import atomic_write_text

                row, gen = found
                atomic_write_text(run_dir / "generations" / "step_0000.jsonl", gen.read_text(encoding="utf-8"))
                append_jsonl(folder.metrics_file, {**row, "reused_from": str(reuse_step0_from)})

            on_main(_copy_step0)
            done = {0}
            log(f"step 0: reused the evaluation of {reuse_step0_from} (same model, prompts, judge)")

    model, tokenizer = load_causal_lm(config.model, dtype=config.dtype)
    model = attack_impl.prepare_model(model)

    trainer_box: dict[str, Any] = {}

    def evaluate(step: int, cb_model) -> None:
        t0 = time.time()
        trainer = trainer_box.get("trainer")
        completions = None
        with model_for_generation(trainer, cb_model if cb_model is not None else model) as (gen_model, all_ranks):
            with attack_impl.eval_mode(gen_model) as m:
                if all_ranks or is_main_process():
                    completions = generate_completions(m, tokenizer, gen_prompts, template=config.template,
                                                       max_new_tokens=config.max_new_tokens,
                                                       batch_size=config.eval_batch_size)
        if is_main_process():
            ev = evaluate_harmfulness(None, tokenizer, prompts, judge_box["judge"], template=config.template,
                                      completions=completions)
            gen_file = run_dir / "generations" / f"step_{step:04d}.jsonl"
            gen_file.parent.mkdir(parents=True, exist_ok=True)
            from alignkit.io import atomic_write_text

            atomic_write_text(gen_file, "".join(json.dumps(g.model_dump()) + "\n" for g in ev.generations))
            append_jsonl(folder.metrics_file, {
                "type": "eval", "step": step, "harmfulness_mean": ev.mean, "share_harmful": ev.share_harmful,
                "per_category": ev.per_category, "ci95": list(ev.ci95), "n": ev.n, "judge": ev.judge,
                "elapsed_s": round(time.time() - t0, 2)})
            log(f"step {step}: {ev.summary()} [{time.time() - t0:.0f}s]")
        barrier()

    from transformers import TrainerCallback

    class _TrainLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if is_main_process() and logs and "loss" in logs:
                append_jsonl(folder.metrics_file, {"type": "train", "step": state.global_step,
                                                   "loss": logs.get("loss"),
                                                   "learning_rate": logs.get("learning_rate")})
                log(f"step {state.global_step}/{state.max_steps} loss {logs['loss']:.4f}")
            return control

    from alignkit.training import PeriodicEvalCallback

    eval_cb = PeriodicEvalCallback(evaluate, config.eval_every, done=done)
    log(f"attack {attack_name} on {config.model}: {len(records)} samples, lr {config.lr:g}, batch "
        f"{config.batch_size}, judge {judge_name}, {len(prompts)} eval prompts -> {run_dir}")
    state["training"] = True
    trainer = attack_impl.train(
        model, tokenizer, records, callbacks=[eval_cb, _TrainLog()], checkpoint_dir=folder.checkpoint_dir,
        resume_from=resume_path, trainer_box=trainer_box)
    total_steps = int(trainer.state.global_step) if trainer is not None else 0
    trained = trainer.model if trainer is not None else model
    if trainer is not None:
        trained = trainer.accelerator.unwrap_model(trained)

    notes: list[str] = []
    diverged = on_main(lambda: _diverged(trainer, trained))
    if diverged is not None:
        notes.append(f"training diverged (non-finite weights, e.g. {diverged})")
        if config.save_model:  # never write a corrupt (NaN / inf) model
            raise AlignkitError(f"training diverged (non-finite weights, e.g. {diverged}); the attacked model was "
                                "not saved; lower --lr or --weight-decay, then rerun with --overwrite")
        log(f"warning: training diverged (non-finite weights, e.g. {diverged}); the harmfulness measured after "
            "it is of a broken model; lower --lr or --weight-decay")
    watch = trainer_box.get("watch")  # set by attacks that train with alignkit.training.TrainingWatch
    if watch is not None and diverged is None:
        from alignkit.training import is_sharded

        sharded = trainer is not None and is_sharded(trainer)
        why = on_main(lambda: None if sharded else watch.problem(trained, config))
        if why is not None:
            notes.append(f"the attack trained nothing: {why}")
            log(f"warning: the attack trained nothing ({why}); its curve is the unattacked model's")

    final_model_dir = None
    if config.save_model:
        final_model_dir = str(run_dir / "model")
        from alignkit.models import public_model_name

        card = {"title": f"{public_model_name(config.model)} after harmful fine-tuning attack {attack_name}",
                "base_model": public_model_name(config.model), "attack": attack_name,
                "attack_config": config.model_dump(mode="json"),
                "judge": judge_name}
        if trainer is not None and (getattr(trainer, "is_fsdp_enabled", False)
                                    or getattr(trainer, "is_deepspeed_enabled", False)):
            trainer.save_model(final_model_dir)  # collective gather of sharded weights
            if is_main_process():
                from alignkit.io import write_json as _wj

                _wj(Path(final_model_dir) / "alignkit.json", card)
        elif is_main_process():
            from alignkit.models import save_with_card

            save_with_card(attack_impl.export(trained), tokenizer, final_model_dir, card)
        barrier()

    def _finish() -> dict:
        rows = folder.read_metrics()
        curve = curve_from_rows(rows)
        if not curve:
            raise AlignkitError(f"no harmfulness was measured in {run_dir}; pass --overwrite to start over")
        phi = config.threshold if config.threshold is not None else curve[0].harmfulness_mean
        means = [p.harmfulness_mean for p in curve]
        prov = Provenance(model=config.model, data={
            "train": f"{config.dataset}:{config.dataset_split} n={len(records)} data_seed={config.data_seed}",
            "eval": f"{config.eval_dataset}:{config.eval_split} n={len(prompts)}"},
            judge=judge_name, seed=config.seed, device=device_kind(), command=" ".join(sys.argv))
        from alignkit.judges.card import report_lines  # the judge's measured validity, from its card

        res = AttackResult(
            config=config, provenance=prov, attack=attack_name, budget_label=attack_cls.budget_label,
            changes_weights=attack_cls.changes_weights, notes=notes, judge_validity=report_lines(judge_name),
            curve=curve, initial_harmfulness=means[0],
            final_harmfulness=means[-1], max_harmfulness=max(means), threshold=phi,
            steps_to_threshold=steps_to_threshold(curve, phi), total_steps=total_steps,
            num_train_samples=len(records), resumed_from_step=resume_step if resume_path else None,
            runtime_s=round(time.time() - t_start, 1), run_dir=str(run_dir), final_model_dir=final_model_dir)
        write_curve_plot(curve, run_dir / "curve.png", phi,
                         f"{attack_name} on {_slug(config.model)}, lr {config.lr:g}, judge {judge_name}",
                         xlabel=attack_cls.budget_label)
        write_json(results_file, res)
        log(f"done: harmfulness {res.initial_harmfulness:.3f} (step 0) -> {res.final_harmfulness:.3f} "
            f"(step {curve[-1].step}); results in {results_file}")
        return res.model_dump(mode="json")

    return AttackResult.model_validate(on_main(_finish))
