"""What every defence shares: the ``DefenceConfig`` base, the ``DEFENCES`` registry, data loading, the Trainer
set-up (checkpoint / resume, runs under ``accelerate launch``) and saving the defended model with its card.

A defence is one module with one config class (a :class:`DefenceConfig` subclass whose ``defence`` field
defaults to its registered name) and one :class:`Defence` subclass registered in :data:`DEFENCES`::

    @DEFENCES.register("my-defence")
    class MyDefence(Defence):
        config_class = MyDefenceConfig
        def make_trainer(self, config, model, tokenizer, records, args): ...  # a transformers.Trainer

and, for ``alignkit search defence``, its search space next to it: ``spaces/my-defence.yaml`` (and
``spaces/my-defence-quick.yaml`` for ``--preset quick``; :meth:`Defence.search_space_file`).
:meth:`Defence.run` does the rest (load the model and data, train with resume, save the plain HF folder).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any, ClassVar, Literal, Optional

from pydantic import Field

from alignkit.errors import AlignkitError
from alignkit.registry import Registry
from alignkit.training import TrainingOptions


class DefenceConfig(TrainingOptions):
    """Fields every defence has. Defaults follow the RepNoise paper (lr 2e-5, batch 8, 1 epoch, Adam without
    weight decay, cosine schedule with 10% warmup, 128-token sequences)."""

    defence: str = Field("repnoise", description="defence name (alignkit defend --help lists them)")
    model: str = Field("smollm2-135m-instruct", description="model to defend: alias, local folder or hub id")
    output_dir: Optional[str] = Field(None, description="folder of the defended model (plain HF folder); "
                                      "default runs/defence-<defence>-<model>; re-running resumes it")
    dataset: str = Field("paired-refusals", description="paired harmful/harmless data: a registered dataset "
                         "name or a jsonl/json file with question, harmful, harmless (and category) fields")
    num_samples: Optional[int] = Field(None, ge=1, description="number of training pairs (seeded sample); "
                                       "default: all of the split")
    max_length: int = Field(128, ge=8, description="max tokens per sequence (prompt + answer)")
    lr: float = Field(2e-5, gt=0, lt=1, description="peak learning rate")
    batch_size: int = Field(8, ge=1, description="batch size (pairs) per process")
    save_every: Optional[int] = Field(None, ge=0, description="Trainer checkpoint every N steps (resume after "
                                      "a kill); default: about every 10% of the run; 0: never")
    overwrite: bool = Field(False, description="delete an existing output folder and start over")

    def card(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Defence:
    """Base of a registered defence: ``run(config) -> Path`` of the saved model folder."""

    config_class: ClassVar[type[DefenceConfig]] = DefenceConfig
    #: what the defended model is, for the model card
    description: ClassVar[str] = ""
    #: folder of the defence's search spaces for ``alignkit search defence`` (YAML over ``config_class``'s
    #: fields, format in docs/search.md): ``<name>.yaml`` and ``<name>-<preset>.yaml``
    search_spaces_dir: ClassVar[Path] = Path(__file__).resolve().parent / "spaces"
    #: config fields that scale the defence's loss, named in the hint when training changed nothing because the
    #: gradients were not finite (e.g. ``("lambda_tr",)``)
    loss_weights: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def search_space_file(cls, preset: Optional[str] = None) -> Optional[Path]:
        """The defence's own search space (for ``preset`` if it has one), or None if it declares none."""
        name = getattr(cls, "registry_name", cls.__name__)
        for stem in ([f"{name}-{preset}"] if preset else []) + [name]:
            f = cls.search_spaces_dir / f"{stem}.yaml"
            if f.is_file():
                return f
        return None

    @property
    def name(self) -> str:
        return getattr(type(self), "registry_name", type(self).__name__)

    # --------------------------------------------------------------------------- hooks for subclasses
    def make_trainer(self, config, model, tokenizer, records: list, args):  # pragma: no cover - abstract
        raise NotImplementedError

    def prepare_model(self, config, model):
        """Change the model before training (e.g. wrap it with a LoRA); returns the model to train."""
        return model

    def save(self, config, trainer, model, tokenizer, out: Path, card: dict[str, Any]) -> Path:
        from alignkit.models import save_with_card

        return save_with_card(model, tokenizer, out, card)

    # --------------------------------------------------------------------------- the pipeline
    def run(self, config: DefenceConfig, records: Optional[list] = None) -> Path:
        from alignkit import training

        init_process_state()
        out = Path(config.output_dir).expanduser() if config.output_dir else default_output_dir(config)
        run_dir = out / "_run"  # config.json + Trainer checkpoints while training; removed when done
        folder = training.RunFolder(run_dir, ignore=("overwrite", "output_dir"))
        lock = training.RunFolder(out).lock()  # one writer per output folder, held for the whole run
        state: dict[str, Any] = {"prepared": False, "training": False}
        try:
            # the main process decides; every process learns the outcome after the barrier (a return or raise
            # inside the main-process block would leave the other processes waiting at the barrier forever)
            outcome: dict[str, Any] = {"done": False, "error": None}
            if training.is_main_process():
                try:
                    lock.acquire()
                    outcome["done"] = self._check_output(config, out, folder)
                    state["prepared"] = not outcome["done"]
                except AlignkitError as exc:
                    outcome["error"] = str(exc)
            outcome = training.broadcast_object(outcome)
            training.barrier()
            if outcome["error"] is not None:
                raise AlignkitError(outcome["error"])
            if outcome["done"]:
                training.log(f"{out} already holds this defended model; pass --overwrite to redo it")
                return out
            return self._train(config, records, out, run_dir, state)
        except BaseException:
            if training.is_main_process() and state["prepared"] and not state["training"]:
                folder.discard_unstarted()  # nothing trained yet: the corrected command must not be refused
                if run_dir.is_dir() and not any(run_dir.iterdir()):
                    run_dir.rmdir()
            raise
        finally:
            if training.is_main_process():
                lock.release()

    def _check_output(self, config: DefenceConfig, out: Path, folder) -> bool:
        """Main process: True when ``out`` already holds this defended model; prepares the run folder
        otherwise (or raises a one-line error)."""
        from alignkit.io import check_writable_dir

        run_cfg = config.model_dump(mode="json")
        if out.exists() and not out.is_dir():
            raise AlignkitError(f"output dir {str(out)!r} is a file; pick another --output-dir")
        check_writable_dir(out)
        from alignkit.io import LOCK_NAME
        from alignkit.training import RunFolder

        user_files = any(not p.name.startswith(LOCK_NAME) for p in out.iterdir())
        if user_files and not is_defence_folder(out):
            # never delete or mix with files alignkit did not write, --overwrite or not
            if config.overwrite:
                raise AlignkitError(f"output dir {str(out)!r} is not an alignkit defence folder; --overwrite only "
                                    "replaces alignkit defence folders; choose an empty or new --output-dir")
            raise AlignkitError(f"output dir {str(out)!r} exists and is not an alignkit defence folder; choose "
                                "an empty or new --output-dir")
        if config.overwrite:
            RunFolder(out).clear()
        done = _read_card(out)
        if done is not None:
            if same_settings(done.get("config") or {}, run_cfg, type(config)):
                return True
            raise AlignkitError(f"output dir {str(out)!r} holds a model defended with other settings; "
                                "pick a new --output-dir or pass --overwrite")
        if any(not p.name.startswith(LOCK_NAME) for p in out.iterdir()) and not folder.path.exists():
            raise AlignkitError(f"output dir {str(out)!r} exists and is not an alignkit defence folder; choose "
                                "an empty or new --output-dir")
        folder.read_config()  # _run/ is alignkit's: an unreadable config.json there says so (pass --overwrite)
        folder.prepare(run_cfg, kind="defence")
        return False

    def _train(self, config: DefenceConfig, records: Optional[list], out: Path, run_dir: Path,
               state: dict) -> Path:
        from alignkit import training
        from alignkit.models import load_causal_lm, public_model_name

        t0 = time.time()
        ckpt_dir = run_dir / "checkpoints"
        run_cfg = config.model_dump(mode="json")
        if records is None:
            records = load_pairs(config)
        if not records:
            raise AlignkitError(f"dataset {config.dataset!r} split {config.dataset_split!r} is empty")
        model, tok = load_causal_lm(config.model, dtype=config.dtype)
        model = self.prepare_model(config, model)
        n_steps = estimate_steps(config, len(records), training.num_processes())
        save_every = max(1, n_steps // 10) if config.save_every is None else config.save_every  # 0: never
        args = training.training_arguments(
            ckpt_dir, lr=config.lr, batch_size=config.batch_size, epochs=config.epochs,
            max_steps=config.max_steps, seed=config.seed, warmup_ratio=config.warmup_ratio,
            scheduler=config.scheduler, optimizer=config.optimizer,
            weight_decay=config.weight_decay, grad_accum=config.grad_accum,
            save_every=save_every, bf16=config.bf16, gradient_checkpointing=False,
            max_grad_norm=config.max_grad_norm, logging_steps=max(1, min(10, n_steps // 20 or 1)))
        if config.gradient_checkpointing:
            # non-reentrant: the RepNoise hooks read intermediate activations, which reentrant checkpointing
            # would compute without a graph
            enable_checkpointing(model)
            if hasattr(model, "enable_input_require_grads"):
                model.enable_input_require_grads()
        trainer = self.make_trainer(config, model, tok, records, args)
        training.quiet_stdout(trainer)  # stdout carries only the saved path; progress goes to stderr
        watch = training.TrainingWatch(trainer, model)  # lr, gradient norms and weight change: did it train?
        last = training.last_checkpoint(ckpt_dir)
        training.log(f"defence {self.name}: {len(records)} pairs, ~{n_steps} steps"
                     + (f", resuming from step {last[0]}" if last else ""))
        state["training"] = True
        training.train_or_restore(trainer, last[1] if last else None)
        if config.gradient_checkpointing:
            disable_checkpointing(model)
        history = [h for h in trainer.state.log_history if "loss" in h]
        base = public_model_name(config.model)
        card = {
            "title": f"{base} defended with {self.name} (alignkit)",
            "defence": self.name,
            "description": self.description,
            "base_model": base,
            "data": {"dataset": config.dataset, "split": config.dataset_split, "data_seed": config.data_seed,
                     "num_pairs": len(records)},
            "config": run_cfg,
            "steps": int(trainer.state.global_step),
            "num_processes": training.num_processes(),
            "device": training.device_kind(),
            # the whole run's loss (log_history is restored from the checkpoint on resume; the Trainer's own
            # train_loss only averages the steps of the last process)
            "train_loss": whole_run_loss(history),
            "final_log": history[-1] if history else None,
            "resumed_from_step": last[0] if last else None,
            "runtime_s": round(time.time() - t0, 1),
        }
        if training.is_main_process():
            unwrapped = trainer.accelerator.unwrap_model(trainer.model)
            # a diverged run (e.g. --lr too high) must not leave a NaN model behind as if it were defended
            training.check_finite_weights(unwrapped, "defended model")
            # nor a run that changed nothing (every step at learning rate 0, non-finite gradients, weights that
            # did not move): the input model would be saved labelled as defended
            try:
                card["training"] = watch.check(unwrapped, "defended model", config, self.loss_weights)
            except AlignkitError:
                discard_run(out, run_dir)  # its checkpoints hold the unchanged model: nothing is kept
                raise
            self.save(config, trainer, unwrapped, tok, out, card)
            shutil.rmtree(run_dir, ignore_errors=True)
        training.barrier()
        return out


def discard_run(out: Path, run_dir: Path) -> None:
    """Remove what a defence run that must not be kept wrote: its ``_run`` folder (config and checkpoints); the
    lock's release then removes the lock files and ``out`` itself when the run created it."""
    shutil.rmtree(run_dir, ignore_errors=True)


def same_settings(old: dict, new: dict, cls: type[DefenceConfig]) -> bool:
    """``old`` (a finished card's config) and ``new`` describe the same training; an option added to alignkit
    after ``old`` was written counts as equal when ``new`` holds its default."""
    skip = ("overwrite", "output_dir")
    for k in set(old) | set(new):
        if k in skip:
            continue
        if k not in old and k in cls.model_fields:
            f = cls.model_fields[k]
            default = f.default if f.default_factory is None else f.default_factory()
            if new.get(k) == json.loads(json.dumps(default, default=str)):
                continue
        if old.get(k) != new.get(k):
            return False
    return True


def whole_run_loss(history: list[dict]) -> Optional[float]:
    """Mean of the logged training losses over the whole run, each weighted by the steps it covers."""
    rows = sorted((int(h.get("step", 0)), float(h["loss"])) for h in history if "loss" in h)
    if not rows:
        return None
    total, prev, n = 0.0, 0, 0
    for step, loss in rows:
        w = max(1, step - prev)
        total, n, prev = total + w * loss, n + w, step
    return round(total / n, 6)


def _read_card(out: Path) -> Optional[dict]:
    f = out / "alignkit.json"
    if not f.exists():
        return None
    try:
        card = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return card if isinstance(card, dict) else None


def is_defence_folder(out: Path) -> bool:
    """True when ``out`` is a folder alignkit's defend wrote: a defended model (``alignkit.json`` naming a defence)
    or an unfinished defence run (``_run/`` with its config.json or checkpoints). Only such a folder is cleared by
    ``--overwrite`` or resumed."""
    card_file = out / "alignkit.json"
    if card_file.is_file():
        try:
            card = json.loads(card_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            card = None
        if isinstance(card, dict) and "defence" in card:
            return True
    run = out / "_run"
    return run.is_dir() and ((run / "config.json").is_file() or (run / "checkpoints").is_dir())


DEFENCES: Registry[type[Defence]] = Registry("defence")


def default_output_dir(config: DefenceConfig) -> Path:
    from alignkit.paths import default_runs_dir

    from alignkit.io import safe_name

    model = safe_name(Path(str(config.model)).name or str(config.model))
    return default_runs_dir() / f"defence-{safe_name(config.defence)}-{model}"


def estimate_steps(config: DefenceConfig, n: int, world: int = 1) -> int:
    if config.max_steps:
        return config.max_steps
    per_epoch = max(1, -(-n // (config.batch_size * world * config.grad_accum)))
    return max(1, int(per_epoch * config.epochs))


# ----------------------------------------------------------------------------------------------- data
def load_pairs(config: DefenceConfig) -> list:
    """Paired harmful / harmless records (``PairedQA``) from a registered dataset or a jsonl/json file.

    A registered dataset of ``HarmfulQA`` rows is paired with alignkit's templated refusals."""
    from alignkit import data

    name = config.dataset
    p = Path(name).expanduser()
    if p.suffix.lower() in (".jsonl", ".json") or p.exists():
        rows = _read_pairs_file(p)
    else:
        if name not in data.names():
            raise AlignkitError(f"unknown dataset {name!r}; give one of: {', '.join(data.names())}, or a "
                                "jsonl/json file with question, harmful, harmless fields")
        rows = data.load(name, split=config.dataset_split, seed=config.data_seed)
        if rows and not hasattr(rows[0], "harmful"):
            if hasattr(rows[0], "answer") and hasattr(rows[0], "question"):
                rows = data.pair_with_refusals(rows)
            else:
                raise AlignkitError(f"dataset {name!r} holds {type(rows[0]).__name__} rows; a defence needs "
                                    "paired data (question, harmful, harmless), e.g. paired-refusals")
    if config.num_samples and config.num_samples < len(rows):
        rows = random.Random(f"defence-sample-{config.data_seed}").sample(list(rows), config.num_samples)
    return list(rows)


def _read_pairs_file(p: Path) -> list:
    from alignkit.data import PairedQA
    from alignkit.io import read_records

    if p.suffix.lower() not in (".jsonl", ".json") and not p.is_dir():
        raise AlignkitError(f"data file {str(p)!r}: give a .jsonl or .json file with question, harmful, harmless")
    items = read_records(p)
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not all(isinstance(it.get(k), str) and it.get(k).strip()
                                               for k in ("question", "harmful", "harmless")):
            raise AlignkitError(f"{str(p)!r} row {i + 1}: needs non-empty string fields question, harmful, "
                                "harmless")
        out.append(PairedQA(id=str(it.get("id", f"row-{i}")), source=str(it.get("source", p.name)),
                            question=it["question"], harmful=it["harmful"], harmless=it["harmless"],
                            category=str(it.get("category") or "unspecified")))
    return out


class PairDataset:
    """One item = one encoded pair (``encode_pair``), so a shuffled batch keeps harmful and harmless together."""

    def __init__(self, tokenizer, records: list, template: str, max_length: int):
        from alignkit.formatting import encode_pair

        self.items = [encode_pair(tokenizer, r.question, r.harmful, r.harmless, template, max_length)
                      for r in records]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class QADataset:
    """One item = one ``encode_qa`` example (question -> answer, loss on the answer)."""

    def __init__(self, tokenizer, pairs: list[tuple[str, str]], template: str, max_length: int):
        from alignkit.formatting import encode_qa

        self.items = [encode_qa(tokenizer, q, a, template, max_length) for q, a in pairs]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


# ----------------------------------------------------------------------------------------------- trainer
def trainer_class():
    """``transformers.Trainer`` subclass used by every defence: a custom ``compute_loss`` per defence, loss
    components logged next to the loss, and no loss rescaling by label counts (our batches carry their own
    masks)."""
    from transformers import Trainer

    class DefenceTrainer(Trainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.model_accepts_loss_kwargs = False
            self._components: dict[str, list[float]] = {}

        def record(self, **values: Any) -> None:
            for k, v in values.items():
                if v is None:
                    continue
                v = float(v.detach()) if hasattr(v, "detach") else float(v)
                self._components.setdefault(k, []).append(v)

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if self._components and "loss" in logs:
                for k, vs in self._components.items():
                    logs[k] = round(sum(vs) / len(vs), 6)
                self._components = {}
            super().log(logs, start_time)

    return DefenceTrainer


def pair_loss_trainer(name: str, loss_fn, config, model, tokenizer, records, args):
    """A defence Trainer over paired (harmful, harmless) batches whose loss is ``loss_fn(model, batch) ->
    (loss, {component: value})``; the components are logged beside the loss."""
    from alignkit.formatting import PairCollator

    class PairLossTrainer(trainer_class()):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss, parts = loss_fn(model, inputs)
            self.record(**parts)
            return (loss, None) if return_outputs else loss

    PairLossTrainer.__name__ = PairLossTrainer.__qualname__ = name
    return PairLossTrainer(model=model, args=args, data_collator=PairCollator(tokenizer.pad_token_id),
                           train_dataset=PairDataset(tokenizer, records, config.template, config.max_length),
                           processing_class=tokenizer)


def causal_ce(logits, labels, reduction: str = "mean"):
    """Next-token cross-entropy (labels -100 ignored), computed in float32."""
    import torch.nn.functional as F

    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    return F.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)), shift_labels.reshape(-1),
                           ignore_index=-100, reduction=reduction)


def paired_forward(model, inputs: dict):
    """One forward pass over the harmful and harmless halves concatenated (2B rows, same length): returns
    ``(harmful_logits, harmless_logits, outputs)``."""
    import torch

    ids = torch.cat([inputs["harmful_input_ids"], inputs["harmless_input_ids"]])
    att = torch.cat([inputs["harmful_attention_mask"], inputs["harmless_attention_mask"]])
    out = model(input_ids=ids, attention_mask=att, use_cache=False)
    b = inputs["harmful_input_ids"].size(0)
    return out.logits[:b], out.logits[b:], out


def init_process_state() -> None:
    """Initialise accelerate's process state the way ``TrainingArguments`` will (``cpu=True`` without CUDA or
    with ACCELERATE_USE_CPU): a bare ``PartialState()`` created first on a CPU-only multi-process launch would
    freeze a single-process state and every rank would act as the main process."""
    import torch
    from accelerate import PartialState

    use_cpu = not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")
    PartialState(cpu=use_cpu)


def enable_checkpointing(model) -> None:
    """Non-reentrant activation checkpointing (transformers v5 name, falling back to the v4 one)."""
    kw = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)


def disable_checkpointing(model) -> None:
    if hasattr(model, "activation_checkpointing_disable"):
        model.activation_checkpointing_disable()
    else:
        model.gradient_checkpointing_disable()


def set_env_defaults() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
