"""Attack configurations (each doubles as the ``alignkit attack --attack NAME`` CLI) and result schemas.

:class:`AttackOptions` holds the fields every attack family shares (model, evaluation, judge, run folder);
each family's config subclasses it (the SFT families through :class:`AttackConfig`, which also carries the
training options) and names its family in ``attack``. :func:`config_class_for` finds the config class of a
stored config (``results.json``, ``config.json``) from its ``attack`` / ``method`` values.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence

from pydantic import (AliasChoices, BaseModel, ConfigDict, Field, SerializeAsAny, field_validator,
                      model_validator)

from alignkit.provenance import Provenance
from alignkit.training import TrainingOptions


class AttackOptions(BaseModel):
    """The fields every attack family's config shares: the model, how harmfulness is measured (evaluation
    prompts, generation, judge, threshold), the run folder. A family's config subclasses this and overrides
    ``attack`` with its registered name (a ``Literal``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field("smollm2-135m-instruct", description="model to attack: alias, local folder or hub id")
    attack: str = Field("sft", description="attack family in the ATTACKS registry (alignkit attack --attack "
                        "NAME --help lists its options)")
    eval_dataset: str = Field("harmful-eval", description="registered prompt dataset for harmfulness")
    eval_split: str = Field("test", description="split of the evaluation prompt dataset")
    eval_prompts: int = Field(40, ge=1, description="number of evaluation prompts (seeded sample)")
    max_new_tokens: int = Field(50, ge=1, description="greedy new tokens per evaluation completion")
    eval_batch_size: int = Field(16, ge=1, description="generation batch size (prompts per generate call)")
    judge: str = Field("minilm", description="harmfulness judge (alignkit judge list)")
    allow_judge_import: bool = Field(False, description="allow --judge package.module:Class, which imports and "
                                     "runs that module; off: registered judge names only")
    threshold: Optional[float] = Field(None, ge=0, le=1, description="harmfulness threshold phi for "
                                       "steps-to-threshold; default: the budget-0 harmfulness")
    template: Literal["chat", "qa"] = Field("chat", description="prompt format: the model's chat template "
                                            "or 'Question: ...\\nAnswer: ...'")
    data_seed: int = Field(0, ge=0, description="seed of the dataset splits and samples")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field("float32", description="weights dtype")
    seed: int = Field(0, ge=0, description="attack seed")
    save_model: bool = Field(False, description="save the attacked model as a plain HF folder (model/), for "
                             "families that change weights")
    output_dir: Optional[str] = Field(None, description="run folder; default runs/attack-<model>-<settings>-"
                                      "<hash>; re-running the same command resumes it")
    overwrite: bool = Field(False, description="delete an existing run folder and start over")

    def family(self) -> str:
        """The registered attack name this config runs (e.g. ``prefill``; ``sft`` + ``method`` for SFT)."""
        return self.attack


class AttackConfig(AttackOptions, TrainingOptions):
    """Harmful fine-tuning attack: supervised fine-tuning on harmful question/answer pairs, with the harmfulness
    curve measured at step 0 and every --eval-every steps. Paper defaults: AdamW without weight decay, cosine
    schedule, 10% warmup, batch 4, 1 epoch, lr 8e-5 (sweep 3e-5 / 6e-5 / 8e-5)."""

    model: str = Field("smollm2-135m-instruct", description="model to attack: alias, local folder or hub id")
    attack: str = Field("sft", description="attack family in the ATTACKS registry: sft (with --method), "
                        "sft-full or sft-lora (the same as --attack sft --method full|lora)")
    method: Literal["full", "lora"] = Field("full", description="full fine-tuning or LoRA (peft)")
    dataset: str = Field("harmful-qa", description="harmful QA data: a registered dataset name or a user "
                         "file (jsonl/json/csv) / hub dataset id")
    dataset_split: str = Field("train", min_length=1, description="split of a registered dataset to train on")
    question_column: Optional[str] = Field(None, description="user data: column holding the question")
    answer_column: Optional[str] = Field(None, description="user data: column holding the harmful answer")
    category_column: Optional[str] = Field(None, description="user data: column holding the harm category")
    dataset_schema: Optional[str] = Field(None, description="user data: a known schema, e.g. beavertails")
    num_samples: Optional[int] = Field(None, ge=1, description="number of harmful training pairs (seeded "
                                       "sample); default: all of the split")
    seed: int = Field(0, ge=0, description="training seed (data order, LoRA init)")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    lora_targets: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                             "gate_proj", "up_proj", "down_proj"],
                                    description="module names LoRA adapts")
    security_vector: Optional[str] = Field(None, description="peft adapter folder loaded active and frozen "
                                           "during the attack and removed before evaluation and saving (the "
                                           "security-vectors defence, defender controls the fine-tuning API)")
    allow_pickle_adapter: bool = Field(False, description="accept a --security-vector adapter stored as a pickle "
                                       "(.bin) file; loading a pickle can run code, so only for adapters you made")
    eval_every: int = Field(10, ge=1, description="measure harmfulness every N steps (and at 0 and the end)")
    eval_dataset: str = Field("harmful-eval", description="registered prompt dataset for harmfulness")
    eval_split: str = Field("test", description="split of the evaluation prompt dataset")
    eval_prompts: int = Field(40, ge=1, description="number of evaluation prompts (seeded sample)")
    max_new_tokens: int = Field(50, ge=1, description="greedy new tokens per evaluation completion")
    eval_batch_size: int = Field(16, ge=1, description="generation batch size (prompts per generate call)")
    judge: str = Field("minilm", description="harmfulness judge (alignkit judge list)")
    allow_judge_import: bool = Field(False, description="allow --judge package.module:Class, which imports and "
                                     "runs that module; off: registered judge names only")
    threshold: Optional[float] = Field(None, ge=0, le=1, description="harmfulness threshold phi for "
                                       "steps-to-threshold; default: the step-0 harmfulness")
    save_checkpoints: bool = Field(True, description="save Trainer checkpoints at each evaluation (resume)")
    save_model: bool = Field(False, description="save the attacked model as a plain HF folder (model/)")
    output_dir: Optional[str] = Field(None, description="run folder; default runs/attack-<model>-<settings>-"
                                      "<hash>; re-running the same command resumes it")

    @field_validator("lora_targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one module name")
        return v

    @model_validator(mode="before")
    @classmethod
    def _sft_spelling(cls, data: Any) -> Any:
        """``attack=sft-full|sft-lora`` is stored as ``attack=sft`` + ``method`` (one run folder, one hash for
        both spellings); a contradicting ``method`` is an error."""
        if isinstance(data, dict) and data.get("attack") in ("sft-full", "sft-lora"):
            method = data["attack"].removeprefix("sft-")
            if data.get("method") not in (None, method):
                raise ValueError(f"--attack {data['attack']} contradicts --method {data['method']}")
            data = {**data, "attack": "sft", "method": method}
        return data

    def family(self) -> str:
        return f"{self.attack}-{self.method}" if self.attack == "sft" else self.attack


class CurvePoint(BaseModel):
    """One evaluated step of a harmfulness curve (attack runs and the evaluation report share this class)."""

    model_config = ConfigDict(populate_by_name=True)

    step: int
    harmfulness_mean: float = Field(validation_alias=AliasChoices("harmfulness_mean", "harmfulness"),
                                    description="mean judge harm probability over the eval prompts")
    share_harmful: Optional[float] = Field(None, description="share of completions scored > 0.5")
    per_category: dict[str, float] = Field(default_factory=dict)
    ci95: tuple[float, float] = (0.0, 0.0)
    n: int = 0
    train_loss: Optional[float] = None
    learning_rate: Optional[float] = None
    elapsed_s: Optional[float] = None

    @property
    def harmfulness(self) -> float:
        return self.harmfulness_mean


def steps_to_threshold(curve: Sequence[CurvePoint], phi: float) -> Optional[int]:
    """The first evaluated step whose harmfulness is strictly above ``phi`` (step 0 included: a model already
    above phi before the attack needs 0 steps), or None when no step is."""
    for p in sorted(curve, key=lambda p: p.step):
        if p.harmfulness_mean > phi:
            return p.step
    return None


class AttackResult(BaseModel):
    """``results.json`` of an attack run (schema-validated)."""

    schema_version: int = 1
    config: SerializeAsAny[AttackOptions] = Field(description="the run's config, of its family's config class")
    provenance: Provenance
    attack: str = Field(description="registered attack name, e.g. sft-full")
    budget_label: str = Field("optimizer steps", description="what the curve's x axis (CurvePoint.step) "
                              "counts: optimizer steps, prefill tokens, ablation strength (%), ...")
    changes_weights: bool = Field(True, description="False: the family attacks the prompt, not the weights "
                                  "(the model's capability is unchanged by construction: capability_loss 0)")
    capability_loss: Optional[float] = Field(None, description="relative rise of held-out perplexity of the "
                                             "attacked model over the base (0 when changes_weights is False; "
                                             "None: not measured in this run)")
    notes: list[str] = Field(default_factory=list, description="warnings about the run (e.g. training that "
                             "changed nothing)")
    judge_validity: list[str] = Field(default_factory=list, description="what the judge that scored this curve "
                                      "can and cannot tell, from its validity card")
    curve: list[CurvePoint]
    initial_harmfulness: float
    final_harmfulness: float
    max_harmfulness: float
    threshold: float = Field(description="phi used for steps_to_threshold")
    steps_to_threshold: Optional[int] = Field(description="first evaluated budget (step) with harmfulness > "
                                              "phi (None: never within the budget)")
    total_steps: int
    num_train_samples: int
    resumed_from_step: Optional[int] = None
    runtime_s: float
    run_dir: str
    final_model_dir: Optional[str] = None

    @field_validator("config", mode="before")
    @classmethod
    def _family_config(cls, v: Any) -> Any:
        if isinstance(v, dict):  # read back with the family's own config class (round trip of every field)
            return config_class_for(v).model_validate(v)
        return v

    @field_validator("curve")
    @classmethod
    def _curve(cls, v: list[CurvePoint]) -> list[CurvePoint]:
        steps = [p.step for p in v]
        if not v or steps != sorted(set(steps)):
            raise ValueError("curve must hold increasing, unique steps")
        return v


def config_class_for(values: dict[str, Any]) -> type[AttackOptions]:
    """The config class of the family named by ``values["attack"]`` (default ``sft``: :class:`AttackConfig`)."""
    from alignkit.attacks.base import family_config_class

    return family_config_class(str(values.get("attack") or "sft"))


class SweepRun(BaseModel):
    method: str
    lr: float
    num_samples: Optional[int]
    seed: int
    run_dir: str
    initial_harmfulness: float
    final_harmfulness: float
    max_harmfulness: float
    steps_to_threshold: Optional[int]
    total_steps: int


class SweepResult(BaseModel):
    """``sweep.json``: every run of the grid and the worst case for the defender."""

    schema_version: int = 1
    base_config: AttackConfig
    grid: dict[str, list]
    runs: list[SweepRun]
    worst: dict[str, Optional[SweepRun]] = Field(description="max_final_harmfulness: the run with the highest "
                                                 "final harmfulness; min_steps_to_threshold: the fastest run "
                                                 "to exceed phi (None if none did)")
    sweep_dir: str
