"""Shared training utilities (attacks and defences): Trainer setup, periodic-evaluation callbacks, run folders
with resume, and multi-process helpers.

Everything here runs the same way on one CPU process, under ``accelerate launch --num_processes 2 --cpu``
(DDP on gloo) and under FSDP / DeepSpeed accelerate configs on GPUs: evaluation runs on the main process
with the unwrapped model while the others wait at a barrier (or, when the weights are sharded, on every
process with ``synced_gpus`` so that the collective all-gathers line up), and only the main process writes.

- :class:`RunFolder`: a run's output folder: ``config.json`` check (same config -> resume, other config ->
  one-line :class:`AlignkitError`), ``metrics.jsonl`` truncation on resume, last complete Trainer checkpoint.
- :func:`training_arguments`: ``TrainingArguments`` with alignkit's defaults (AdamW, no weight decay, cosine,
  10% warmup, checkpoint every ``save_every`` steps keeping the last 2, no external loggers).
- :class:`AlignkitTrainer`: a ``transformers.Trainer`` that can checkpoint only the trainable parameters
  (needed when frozen adapters sit on a trained base model, e.g. security vectors).
- :class:`PeriodicEvalCallback`: calls ``fn(step, model)`` at step 0 and every ``every`` steps and at the last
  step, before the checkpoint of that step is written, skipping steps already done (resume).
- :class:`TrainingWatch`: did the run train? (a step at a non-zero learning rate with a finite gradient norm,
  weights that moved beyond :data:`WEIGHT_CHANGE_FLOOR`); every defence checks it before saving, attacks can too.
- :func:`warmup_steps`: transformers' warm-up rule capped at ``steps - 1``, so a short run still trains.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alignkit.errors import AlignkitError
from alignkit.io import read_jsonl, write_json

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
TRAINABLE_WEIGHTS = "alignkit_trainable.safetensors"


# ----------------------------------------------------------------------------------------------- options
class TrainingOptions(BaseModel):
    """The training options attacks (:class:`~alignkit.attacks.AttackConfig`) and defences
    (:class:`~alignkit.defences.DefenceConfig`) share; each subclass sets its own defaults and help."""

    # allow_inf_nan=False: every float option of every attack and defence (subclasses inherit it) must be a
    # finite number ("--lr nan", "--epochs inf", "--rho inf" are one-line errors before anything loads)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field("smollm2-135m-instruct", description="model: alias, local folder or hub id")
    dataset: str = Field("harmful-qa", description="training data: a registered dataset name or a file")
    dataset_split: str = Field("train", min_length=1, description="split of a registered dataset")
    data_seed: int = Field(0, ge=0, description="seed of the dataset splits and samples")
    num_samples: Optional[int] = Field(None, ge=1, description="number of training examples (seeded sample); "
                                       "default: all of the split")
    template: Literal["chat", "qa"] = Field("chat", description="prompt format: the model's chat template "
                                            "or 'Question: ...\\nAnswer: ...'")
    max_length: int = Field(128, ge=16, description="max tokens per training example (prompt + answer)")
    lr: float = Field(8e-5, gt=0, lt=1, description="peak learning rate")
    batch_size: int = Field(4, ge=1, description="batch size per process")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    epochs: float = Field(1.0, gt=0, description="training epochs (ignored when --max-steps is set)")
    max_steps: Optional[int] = Field(None, ge=1, description="stop after this many optimiser steps")
    optimizer: str = Field("adamw_torch", description="transformers optimiser name (e.g. adamw_torch, sgd, "
                           "adafactor)")
    weight_decay: float = Field(0.0, ge=0, description="weight decay (0: Adam without decay, as the papers)")
    scheduler: str = Field("cosine", description="learning-rate schedule (transformers name: cosine, linear, "
                           "constant, ...)")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="share of steps with linear warmup")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    seed: int = Field(0, ge=0, description="training seed (data order, initialisation, noise)")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field("float32", description="weights dtype")
    bf16: bool = Field(False, description="bf16 mixed precision (GPUs; on a CPU-only machine it runs CPU "
                       "autocast, usually slower, and says so on stderr)")
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward (saves memory)")
    output_dir: Optional[str] = Field(None, description="run folder; re-running the same command resumes it")
    overwrite: bool = Field(False, description="delete an existing run folder and start over")

    @field_validator("optimizer")
    @classmethod
    def _optimizer(cls, v: str) -> str:
        names = optimizer_names()
        if names and v not in names:
            raise ValueError(f"unknown optimizer {v!r}; choose from {', '.join(names)}")
        return v

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, v: str) -> str:
        names = scheduler_names()
        if names and v not in names:
            raise ValueError(f"unknown scheduler {v!r}; choose from {', '.join(names)}")
        return v


def optimizer_names() -> list[str]:
    """transformers' optimiser names (``TrainingArguments(optim=...)``)."""
    try:
        from transformers.training_args import OptimizerNames
    except ImportError:  # pragma: no cover
        return []
    return [o.value for o in OptimizerNames]


def scheduler_names() -> list[str]:
    """transformers' learning-rate schedule names (``TrainingArguments(lr_scheduler_type=...)``)."""
    try:
        from transformers.trainer_utils import SchedulerType
    except ImportError:  # pragma: no cover
        return []
    return [o.value for o in SchedulerType]



# ----------------------------------------------------------------------------------------------- processes
def use_cpu() -> bool:
    import torch

    return not torch.cuda.is_available() or os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true")


def _state():
    """accelerate's process state; created with the same ``cpu`` flag TrainingArguments will use (the state is a
    singleton: whoever creates it first decides, and a CPU run must say cpu=True to become MULTI_CPU/gloo)."""
    from accelerate import PartialState

    return PartialState(cpu=use_cpu())


def is_main_process() -> bool:
    return _state().is_main_process


def num_processes() -> int:
    return _state().num_processes


def barrier() -> None:
    st = _state()
    if st.num_processes > 1:
        st.wait_for_everyone()


def broadcast_object(obj: Any) -> Any:
    """The main process's ``obj`` on every process (identity on one process)."""
    st = _state()
    if st.num_processes <= 1:
        return obj
    from accelerate.utils import broadcast_object_list

    box = [obj if st.is_main_process else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def log(msg: str) -> None:
    """A progress line on stderr from the main process only."""
    if is_main_process():
        print(msg, file=sys.stderr, flush=True)


def device_kind() -> str:
    try:
        import torch

        if torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true"):
            return f"cuda x{num_processes()}"
    except Exception:  # noqa: BLE001
        pass
    return "cpu" if num_processes() == 1 else f"cpu x{num_processes()}"


def is_sharded(trainer) -> bool:
    """True when the weights are sharded over processes (FSDP or DeepSpeed ZeRO-3)."""
    if getattr(trainer, "is_fsdp_enabled", False):
        return True
    if getattr(trainer, "is_deepspeed_enabled", False):
        try:
            return trainer.accelerator.state.deepspeed_plugin.zero_stage == 3
        except AttributeError:
            return True
    return False


class _SyncedGenerate:
    """Delegates to a (sharded) model, adding ``synced_gpus=True`` to ``generate`` so all ranks keep stepping."""

    def __init__(self, model):
        self._model = model

    def __getattr__(self, name):
        return getattr(self._model, name)

    def generate(self, *args, **kwargs):
        kwargs.setdefault("synced_gpus", True)
        return self._model.generate(*args, **kwargs)


@contextlib.contextmanager
def model_for_generation(trainer, model):
    """Yield ``(model_to_generate_with, all_ranks)``: the unwrapped model (main process only) or, when sharded,
    the wrapped model on every rank with synced generation."""
    if trainer is not None and is_sharded(trainer):
        yield _SyncedGenerate(trainer.model_wrapped), True
        return
    if trainer is not None:
        model = trainer.accelerator.unwrap_model(model if model is not None else trainer.model)
    yield model, False


# ----------------------------------------------------------------------------------------------- run folder
def config_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:8]


def checkpoint_problem(path: str | Path) -> str | None:
    """Why a Trainer checkpoint folder cannot be resumed from (None: complete). A checkpoint counts only when
    its ``trainer_state.json`` parses and every weights / optimiser file in it is complete."""
    from alignkit.io import json_file_ok, safetensors_ok, torch_file_ok

    path = Path(path)
    state = path / "trainer_state.json"
    if not state.exists():
        return "no trainer_state.json"
    if not json_file_ok(state):
        return "trainer_state.json does not parse"
    for f in path.glob("*.safetensors"):
        if not safetensors_ok(f):
            return f"{f.name} is truncated"
    for f in list(path.glob("*.pt")) + list(path.glob("*.pth")):
        if not torch_file_ok(f):
            return f"{f.name} is truncated"
    for f in path.glob("*.json"):
        if not json_file_ok(f):
            return f"{f.name} does not parse"
    return None


def checkpoints(folder: str | Path) -> list[tuple[int, Path]]:
    """Trainer checkpoint folders (``checkpoint-N`` with a trainer_state.json) sorted by step, complete or not."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in folder.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir() and (p / "trainer_state.json").exists():
            out.append((int(m.group(1)), p))
    return sorted(out)


def last_checkpoint(folder: str | Path, report: Callable[[str], None] | None = None) -> tuple[int, Path] | None:
    """The newest complete checkpoint. A torn one (a kill while writing) is skipped with a note on stderr
    (``report``, default :func:`log`) and the previous one is used."""
    report = report or log
    for step, path in reversed(checkpoints(folder)):
        why = checkpoint_problem(path)
        if why is None:
            return step, path
        report(f"checkpoint-{step} is incomplete ({why}); falling back to the previous checkpoint")
    return None


class RunFolder:
    """A run's output folder with resume semantics.

    ``prepare(config_dict, overwrite)`` (main process): a fresh folder gets ``config.json``; an existing one
    must hold the same config (except ``ignore`` keys) or a one-line :class:`AlignkitError` asks for a new
    ``--output-dir`` or ``--overwrite``.
    """

    def __init__(self, path: str | Path, ignore: Iterable[str] = ()):
        self.path = Path(path)
        self.ignore = set(ignore)

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def _comparable(self, cfg: dict) -> dict:
        return {k: v for k, v in cfg.items() if k not in self.ignore}

    def lock(self):
        """The folder's :class:`alignkit.io.RunLock` (take it on the main process before :meth:`prepare`)."""
        from alignkit.io import RunLock

        if getattr(self, "_lock", None) is None:
            self._lock = RunLock(self.path)
        return self._lock

    def _entries(self) -> list[Path]:
        from alignkit.io import LOCK_NAME

        return [p for p in self.path.iterdir() if not p.name.startswith(LOCK_NAME)] if self.path.is_dir() else []

    def clear(self) -> None:
        """Delete the folder's contents (keeps the lock files of the run that holds it)."""
        for p in self._entries():
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()

    def read_config(self) -> dict | None:
        """The folder's ``config.json`` as a dict; None when it is missing; a one-line :class:`AlignkitError`
        when it is unreadable (cut, not JSON, not an object)."""
        if not self.config_file.exists():
            return None
        try:
            old = json.loads(self.config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
            old = None
        if not isinstance(old, dict):
            raise AlignkitError(f"config.json in {str(self.path)!r} is unreadable; pass --overwrite to start over "
                                "or pick a new --output-dir")
        return old

    def is_alignkit_run(self) -> bool:
        """True when the folder is one alignkit wrote: a ``config.json`` holding a run config (model, lr, seed),
        or a ``config.json`` next to alignkit's run files (metrics.jsonl, checkpoints/, results.json). Only
        such a folder is ever cleared by ``--overwrite``."""
        if not self.config_file.is_file():
            return False
        try:
            old = json.loads(self.config_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            old = None
        if isinstance(old, dict) and {"model", "lr", "seed"} <= set(old):
            return True
        return any((self.path / n).exists() for n in ("metrics.jsonl", "checkpoints", "results.json"))

    def prepare(self, config: dict, overwrite: bool = False, kind: str = "run") -> str:
        """Returns "new", "resume" or "overwrite" (main process only)."""
        from alignkit.io import check_writable_dir

        if self.path.exists() and not self.path.is_dir():
            raise AlignkitError(f"output dir {str(self.path)!r} is a file; pick another --output-dir")
        existing = self.config_file.exists()
        if existing and not self.is_alignkit_run():
            existing = False  # a config.json alignkit did not write: the folder is the user's (refused below)
        if existing and overwrite:
            self.clear()
            existing = False
            status = "overwrite"
        elif existing:
            old = self.read_config() or {}
            new = json.loads(json.dumps(config, default=str))
            if self._comparable(old) != self._comparable(new):
                diff = sorted(k for k in set(self._comparable(old)) | set(self._comparable(new))
                              if old.get(k) != new.get(k))
                raise AlignkitError(f"output dir {str(self.path)!r} holds a different {kind} (differs in: "
                                    f"{', '.join('--' + d.replace('_', '-') for d in diff[:6]) or 'config'}); pick "
                                    "a new --output-dir or pass --overwrite")
            status = "resume"
        else:
            if self._entries():
                if overwrite:
                    raise AlignkitError(f"output dir {str(self.path)!r} is not an alignkit {kind} folder; "
                                        f"--overwrite only replaces alignkit {kind} folders; choose an empty or "
                                        "new --output-dir")
                raise AlignkitError(f"output dir {str(self.path)!r} exists and is not an alignkit {kind} "
                                    "folder; choose an empty or new --output-dir")
            status = "new"
        check_writable_dir(self.path)
        if not existing:
            write_json(self.config_file, config)
        return status

    def discard_unstarted(self) -> bool:
        """After a run failed before any work was saved (no checkpoint, no metrics): remove what it wrote
        (config.json), so that the corrected command is not refused as 'a different run'. Returns True when
        removed."""
        if checkpoints(self.checkpoint_dir) or (self.metrics_file.exists() and self.metrics_file.stat().st_size):
            return False
        for p in self._entries():
            if p.is_dir() and not any(p.iterdir()):
                p.rmdir()
            elif p == self.config_file or p == self.metrics_file:
                p.unlink()
        return True

    def read_metrics(self) -> list[dict]:
        """The rows of ``metrics.jsonl`` ([] when missing; a torn last line is dropped); a one-line
        :class:`AlignkitError` when the file is unreadable (not UTF-8, rows that are not metric objects)."""
        bad = AlignkitError(f"metrics.jsonl in {str(self.path)!r} is unreadable; pass --overwrite to start over "
                            "or pick a new --output-dir")
        try:
            rows = read_jsonl(self.metrics_file)
        except (OSError, ValueError):
            raise bad from None
        for r in rows:
            if not isinstance(r, dict) or "step" not in r:
                raise bad
            try:
                int(r["step"])
            except (TypeError, ValueError):
                raise bad from None
            if r.get("type") == "eval" and not all(k in r for k in ("harmfulness_mean", "share_harmful")):
                raise bad
        return rows

    def truncate_metrics(self, upto_step: int) -> list[dict]:
        """Drop metric rows after ``upto_step`` (written after the last checkpoint, so redone on resume)."""
        from alignkit.io import atomic_write_text

        rows = self.read_metrics()
        keep = [r for r in rows if int(r.get("step", 0)) <= upto_step]
        if len(keep) != len(rows) or (self.metrics_file.exists() and not self.metrics_file.read_text().endswith(
                "\n") and rows):
            atomic_write_text(self.metrics_file, "".join(json.dumps(r, default=str) + "\n" for r in keep))
        elif not rows and self.metrics_file.exists():
            atomic_write_text(self.metrics_file, "")
        return keep


# ----------------------------------------------------------------------------------------------- trainer
def nonfinite_parameter(model) -> str | None:
    """The name of the first parameter holding a NaN or an infinity (None: every weight is finite)."""
    import torch

    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.numel() and not bool(torch.isfinite(p.detach()).all()):
                return name
    return None


def check_finite_weights(model, what: str = "model") -> None:
    """Refuse to save a model whose training diverged: a one-line :class:`AlignkitError` when a weight is NaN or
    infinite (a corrupt model must never be written)."""
    name = nonfinite_parameter(model)
    if name is not None:
        raise AlignkitError(f"training diverged (non-finite weights, e.g. {name}); the {what} was not saved; lower "
                            "--lr or the loss weights / --weight-decay, then rerun with --overwrite")


def warmup_steps(ratio_or_steps: float, num_training_steps: int) -> int:
    """Warm-up steps of a run of ``num_training_steps`` optimizer steps: transformers' rule (``ceil(ratio * steps)``
    for a ratio below 1, the number itself otherwise), capped at ``steps - 1``. The linear warm-up trains its first
    step at learning rate 0, so without the cap a run whose steps all fall in the warm-up (``--max-steps 1`` with
    ``--warmup-ratio 0.1``: ceil(0.1) = 1 warm-up step) would train nothing; with it the last step always trains
    at a non-zero rate. Runs of more steps get exactly transformers' schedule."""
    n = max(0, int(num_training_steps))
    w = int(ratio_or_steps) if ratio_or_steps >= 1 else math.ceil(n * ratio_or_steps)
    return max(0, min(w, n - 1))


_ARGS_CLASS = None


def _training_arguments_class():
    """``TrainingArguments`` whose warm-up follows :func:`warmup_steps` (created once, on first use, so that
    importing this module does not import transformers; reachable as ``alignkit.training.AlignkitTrainingArguments``
    so the copy the Trainer pickles into a checkpoint loads again)."""
    global _ARGS_CLASS
    if _ARGS_CLASS is None:
        from dataclasses import dataclass

        from transformers import TrainingArguments

        @dataclass
        class AlignkitTrainingArguments(TrainingArguments):
            def get_warmup_steps(self, num_training_steps: int) -> int:
                return warmup_steps(self.warmup_steps, num_training_steps)

        AlignkitTrainingArguments.__module__ = __name__
        AlignkitTrainingArguments.__qualname__ = "AlignkitTrainingArguments"
        _ARGS_CLASS = AlignkitTrainingArguments
    return _ARGS_CLASS


def __getattr__(name: str):
    if name == "AlignkitTrainingArguments":
        return _training_arguments_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def training_arguments(output_dir: str | Path, *, lr: float, batch_size: int, epochs: float = 1.0,
                       max_steps: int | None = None, seed: int = 0, warmup_ratio: float = 0.1,
                       scheduler: str = "cosine", optimizer: str = "adamw_torch", weight_decay: float = 0.0,
                       grad_accum: int = 1, save_every: int | None = None, save_total_limit: int = 2,
                       bf16: bool = False, gradient_checkpointing: bool = False, logging_steps: int = 1,
                       max_grad_norm: float = 1.0, **extra: Any):
    """``TrainingArguments`` with alignkit's defaults; checkpoints every ``save_every`` steps (None: never)."""
    TrainingArguments = _training_arguments_class()
    if bf16 and use_cpu():
        log("note: --bf16 on a CPU-only machine: bf16 autocast runs on the CPU (usually slower than float32 "
            "there); drop --bf16 to train in float32")
    return TrainingArguments(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=grad_accum,
        learning_rate=lr,
        weight_decay=weight_decay,
        lr_scheduler_type=scheduler,
        warmup_steps=warmup_ratio,
        optim=optimizer,
        num_train_epochs=epochs,
        max_steps=max_steps if max_steps else -1,
        seed=seed,
        data_seed=seed,
        save_strategy="steps" if save_every else "no",
        save_steps=save_every or 500,
        save_total_limit=save_total_limit,
        logging_steps=logging_steps,
        report_to=[],
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        use_cpu=use_cpu(),
        bf16=bf16,
        **({"gradient_checkpointing": True} if gradient_checkpointing else {}),
        max_grad_norm=max_grad_norm,
        ddp_find_unused_parameters=False,
        **extra,
    )


def make_trainer(model, args, train_dataset, data_collator, *, tokenizer=None, callbacks=(),
                 trainable_only_checkpoints: bool = False):
    from transformers import Trainer

    class AlignkitTrainer(Trainer):
        """Trainer whose checkpoints can hold only the trainable parameters (for frozen adapters on a trained
        base, where save_pretrained would write the adapters alone)."""

        def _save(self, output_dir=None, state_dict=None):
            if not trainable_only_checkpoints or self.is_fsdp_enabled or self.is_deepspeed_enabled:
                return super()._save(output_dir, state_dict)
            if not self.args.should_save:
                return
            output_dir = Path(output_dir or self.args.output_dir)
            output_dir.mkdir(parents=True, exist_ok=True)
            save_trainable(self.accelerator.unwrap_model(self.model), output_dir / TRAINABLE_WEIGHTS)

        def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
            f = Path(resume_from_checkpoint) / TRAINABLE_WEIGHTS
            if trainable_only_checkpoints and f.exists():
                load_trainable(model if model is not None else self.model, f)
                return
            return super()._load_from_checkpoint(resume_from_checkpoint, model)

    from transformers.trainer_callback import PrinterCallback

    trainer = AlignkitTrainer(model=model, args=args, train_dataset=train_dataset, data_collator=data_collator,
                              processing_class=tokenizer, callbacks=list(callbacks))
    trainer.remove_callback(PrinterCallback)  # alignkit logs its own progress lines
    return trainer


def save_trainable(model, path: Path) -> None:
    """safetensors of the parameters with requires_grad (shared storage saved once)."""
    from safetensors.torch import save_file

    seen: set[int] = set()
    tensors = {}
    for name, p in model.named_parameters():
        if not p.requires_grad or p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        tensors[name] = p.detach().cpu().contiguous()
    from alignkit.io import unique_temp

    with unique_temp(path) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})


def load_trainable(model, path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    state = load_file(str(path), device="cpu")
    params = dict(model.named_parameters())
    missing = [k for k in state if k not in params]
    if missing:
        raise AlignkitError(f"checkpoint {str(path.parent)!r} does not match the model (unknown parameter "
                            f"{missing[0]!r}); pass --overwrite to start over")
    with torch.no_grad():
        for k, v in state.items():
            params[k].copy_(v.to(params[k].device, params[k].dtype))


def stderr_progress_callback():
    """A ``TrainerCallback`` that writes one progress line per logged step to stderr (main process), instead of
    the Trainer's ``PrinterCallback``, which prints log dicts on stdout (stdout is for a command's result)."""
    from transformers import TrainerCallback

    class _StderrProgress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                extra = "".join(f" {k} {float(v):.4g}" for k, v in logs.items()
                                if k not in ("loss", "epoch", "grad_norm", "learning_rate")
                                and isinstance(v, (int, float)))
                log(f"step {state.global_step}/{state.max_steps} loss {float(logs['loss']):.4f}{extra}")
            return control

    return _StderrProgress()


def quiet_stdout(trainer) -> None:
    """Replace the Trainer's stdout log printer with :func:`stderr_progress_callback`."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(stderr_progress_callback())


def train_or_restore(trainer, resume_from: str | Path | None):
    """``trainer.train(resume_from_checkpoint=...)``, except when that checkpoint is already the last step
    (a kill after the final checkpoint, before the model was saved): then its weights and state are loaded
    and no step is trained (``Trainer.train`` would train one step past ``max_steps``)."""
    if resume_from is not None:
        try:
            st = json.loads((Path(resume_from) / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            st = {}
        if int(st.get("max_steps") or 0) > 0 and int(st.get("global_step") or 0) >= int(st["max_steps"]):
            from transformers.trainer_callback import TrainerState

            trainer._load_from_checkpoint(str(resume_from))
            trainer.state = TrainerState.load_from_json(str(Path(resume_from) / "trainer_state.json"))
            return trainer
    from alignkit.denormals import flush_denormals

    with flush_denormals():  # denormal softmax probabilities late in ascent-style training / attacks: slow on CPUs
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from is not None else None)
    return trainer


# ----------------------------------------------------------------------------------------------- did it train?
#: relative L2 change of the trainable weights (over the whole run) at or below which a run "changed nothing":
#: about float32's machine epsilon (1.19e-7), the size of the weights' own rounding
WEIGHT_CHANGE_FLOOR = 1e-7
#: elements compared per trainable tensor (an evenly strided sample; tiny models are compared whole)
WEIGHT_SAMPLE = 4096


def weights_sample(model, names: Optional[Iterable[str]] = None) -> dict[str, Any]:
    """A float32 CPU copy of an evenly strided sample (at most :data:`WEIGHT_SAMPLE` elements) of every trainable
    parameter (or of the parameters in ``names``, trainable now or not), by name: enough to tell whether and how
    much training moved the weights without a second copy of the model."""
    import torch

    wanted = None if names is None else set(names)
    out = {}
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.numel() or (not p.requires_grad if wanted is None else name not in wanted):
                continue
            flat = p.detach().reshape(-1)
            stride = max(1, flat.numel() // WEIGHT_SAMPLE)
            out[name] = flat[::stride][:WEIGHT_SAMPLE].to("cpu", torch.float32, copy=True)
    return out


def weight_change(before: dict[str, Any], model) -> Optional[float]:
    """Relative L2 change ``|after - before| / |before|`` of the sampled weights (:func:`weights_sample`); None when
    no sampled tensor can be compared (e.g. weights sharded over processes)."""
    after = weights_sample(model, before)
    num = den = 0.0
    seen = 0
    for name, b in before.items():
        a = after.get(name)
        if a is None or a.shape != b.shape:
            continue
        seen += 1
        num += float(((a.double() - b.double()) ** 2).sum())
        den += float((b.double() ** 2).sum())
    if not seen:
        return None
    if den == 0.0:
        return math.inf if num > 0 else 0.0
    return math.sqrt(num / den) if math.isfinite(num) else math.inf


def _float(v: Any) -> Optional[float]:
    if v is None:
        return None
    try:
        return float(v.item() if hasattr(v, "item") else v)
    except (TypeError, ValueError):
        return None


class TrainingWatch:
    """Evidence that a Trainer run trained: per optimizer step the learning rate it ran at and the gradient norm
    before clipping (a callback plus a wrapper around the Trainer's gradient-norm hook), and a sample of the
    trainable weights before training to measure how far they moved.

    Create it after the Trainer and before ``train`` (``watch = TrainingWatch(trainer)``); after training,
    :meth:`problem` says in one sentence why the run changed nothing (or None), :meth:`check` raises that as an
    :class:`AlignkitError`, and :meth:`summary` is the evidence for a model card or a result file. A run resumed
    from a checkpoint also counts the steps of the earlier process that its ``log_history`` holds, and the weights
    are compared with the model as it was before the checkpoint was loaded (the whole run's change).

    What counts as "trained" (all three): at least one optimizer step at a learning rate above 0 whose gradient
    norm was finite and above 0, and a relative L2 change of the trainable weights above
    :data:`WEIGHT_CHANGE_FLOOR`."""

    def __init__(self, trainer, model=None, *, floor: float = WEIGHT_CHANGE_FLOOR):
        self.floor = floor
        self.trainer = trainer
        self.recorded: dict[int, dict[str, Optional[float]]] = {}
        self._pending_norm: Optional[float] = None
        self.before = weights_sample(model if model is not None else trainer.model)
        trainer.add_callback(self._callback())
        hook = getattr(trainer, "_get_grad_norm", None)
        if callable(hook):
            def _get_grad_norm(*a, **kw):
                g = hook(*a, **kw)
                self._pending_norm = _float(g)
                return g

            trainer._get_grad_norm = _get_grad_norm

    def _callback(self):
        from transformers import TrainerCallback

        watch = self

        class _Watch(TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, optimizer=None, **kw):
                lr = None
                if optimizer is not None:
                    lrs = [_float(g.get("lr")) for g in getattr(optimizer, "param_groups", [])]
                    lrs = [x for x in lrs if x is not None]
                    lr = max(lrs) if lrs else None
                watch.recorded[int(state.global_step) + 1] = {"lr": lr, "grad_norm": watch._pending_norm}
                watch._pending_norm = None
                return control

        return _Watch()

    def steps(self) -> dict[int, dict[str, Optional[float]]]:
        """Every optimizer step known: recorded here, or logged by an earlier process of a resumed run."""
        out: dict[int, dict[str, Optional[float]]] = {}
        for h in getattr(getattr(self.trainer, "state", None), "log_history", None) or []:
            if "learning_rate" in h and "step" in h:
                out[int(h["step"])] = {"lr": _float(h.get("learning_rate")), "grad_norm": _float(h.get("grad_norm"))}
        out.update(self.recorded)
        return dict(sorted(out.items()))

    def summary(self, model) -> dict[str, Any]:
        steps = self.steps()
        lrs = [s["lr"] for s in steps.values() if s["lr"] is not None]
        norms = [s["grad_norm"] for s in steps.values() if s["grad_norm"] is not None]
        change = weight_change(self.before, model)
        return {"steps": len(steps), "steps_at_nonzero_lr": sum(1 for x in lrs if x > 0),
                "nonfinite_grad_norm_steps": sum(1 for x in norms if not math.isfinite(x)),
                "max_lr": max(lrs) if lrs else None,
                "weight_change": None if change is None else (change if math.isfinite(change) else "inf"),
                "weight_change_floor": self.floor}

    def problem(self, model, options: Any = None, loss_weights: Iterable[str] = ()) -> Optional[str]:
        """Why the run changed nothing (one sentence naming the options to change), or None when it trained.
        ``options``: the run's :class:`TrainingOptions` (for the hints); ``loss_weights``: option names (e.g.
        ``lambda_tr``) that scale the loss, named in the hint for non-finite gradients."""
        steps = self.steps()
        n = len(steps)
        if not n:
            return "no optimizer step ran: give --max-steps >= 1 or more training data"
        at_lr = {k: s for k, s in steps.items() if s["lr"] is None or s["lr"] > 0}
        if not at_lr:
            hint = "give a larger --lr"
            ratio = getattr(options, "warmup_ratio", 0) or 0
            if ratio > 0:
                w = warmup_steps(ratio, n)
                hint = (f"--warmup-ratio {ratio:g} makes {w} of the {n} steps warm-up; give --max-steps >= {w + 1} "
                        "or --warmup-ratio 0")
            return f"every optimizer step ({n}) ran at learning rate 0: {hint}"
        norms = [s["grad_norm"] for s in at_lr.values()]
        good = [g for g in norms if g is None or (math.isfinite(g) and g > 0)]
        if not good:
            weights = ", ".join("--" + w.replace("_", "-") for w in loss_weights)
            which = f"the loss weights ({weights})" if weights else "the loss weights"
            if any(g is not None and not math.isfinite(g) for g in norms):
                bad = next(g for g in norms if g is not None and not math.isfinite(g))
                return (f"the gradient norm was {bad} at every step that trained ({len(norms)} of {n}), so "
                        f"clipping zeroed every update and no weight changed: lower {which} or --lr")
            return (f"the gradient was 0 at every step that trained ({len(norms)} of {n}): the loss does not "
                    f"depend on the trainable weights; check {which} and the frozen layers")
        change = weight_change(self.before, model)
        if change is not None and not (change > self.floor):
            return (f"the trainable weights moved by {change:.2g} (relative L2 change; floor {self.floor:g}) over "
                    f"{n} steps: give a larger --lr or more steps (--max-steps / --epochs)")
        return None

    def check(self, model, what: str = "model", options: Any = None, loss_weights: Iterable[str] = ()) -> dict:
        """Raise a one-line :class:`AlignkitError` when the run changed nothing ("training changed nothing, so the
        <what> was not saved: <why>"); returns :meth:`summary` otherwise (and notes non-finite steps on stderr)."""
        why = self.problem(model, options, loss_weights)
        if why is not None:
            raise AlignkitError(f"training changed nothing, so the {what} was not saved: {why}")
        summary = self.summary(model)
        if summary["nonfinite_grad_norm_steps"]:
            log(f"note: {summary['nonfinite_grad_norm_steps']} of {summary['steps']} steps had a non-finite "
                "gradient norm (their update was zeroed by clipping)")
        return summary


class PeriodicEvalCallback:
    """Factory for a ``TrainerCallback`` that runs ``fn(step, model, trainer)`` at step 0, every ``every`` steps
    and at the final step; steps in ``done`` are skipped. ``fn`` is called on every process (it decides who
    generates); the callback asks the Trainer to checkpoint right after the final evaluation too."""

    def __new__(cls, fn: Callable[[int, Any], None], every: int, done: Iterable[int] = (),
                trainer_ref: Callable[[], Any] | None = None):
        from transformers import TrainerCallback

        done_steps = set(int(s) for s in done)

        class _Cb(TrainerCallback):
            def _maybe(self, state, model, final=False):
                step = int(state.global_step)
                due = step == 0 or (every and step % every == 0) or final
                if due and step not in done_steps:
                    fn(step, model)
                    done_steps.add(step)

            def on_train_begin(self, args, state, control, model=None, **kw):
                if state.global_step == 0:
                    self._maybe(state, model)
                return control

            def on_step_end(self, args, state, control, model=None, **kw):
                final = state.global_step >= state.max_steps
                self._maybe(state, model, final=final)
                if final and args.save_strategy != "no":
                    control.should_save = True
                return control

        cb = _Cb()
        cb.done_steps = done_steps
        return cb
