"""Attack configuration (doubles as the ``alignkit attack`` CLI) and result schemas."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alignkit.provenance import Provenance


class AttackConfig(BaseModel):
    """Harmful fine-tuning attack: supervised fine-tuning on harmful question/answer pairs, with the harmfulness
    curve measured at step 0 and every --eval-every steps. Paper defaults: AdamW without weight decay, cosine
    schedule, 10% warmup, batch 4, 1 epoch, lr 8e-5 (sweep 3e-5 / 6e-5 / 8e-5)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m-instruct", description="model to attack: alias, local folder or hub id")
    attack: str = Field("sft", description="attack family in the ATTACKS registry (sft)")
    method: Literal["full", "lora"] = Field("full", description="full fine-tuning or LoRA (peft)")
    dataset: str = Field("harmful-qa", description="harmful QA data: a registered dataset name or a user "
                         "file (jsonl/json/csv/parquet) / hub dataset id")
    dataset_split: str = Field("train", description="split of a registered dataset to train on")
    question_column: Optional[str] = Field(None, description="user data: column holding the question")
    answer_column: Optional[str] = Field(None, description="user data: column holding the harmful answer")
    category_column: Optional[str] = Field(None, description="user data: column holding the harm category")
    dataset_schema: Optional[str] = Field(None, description="user data: a known schema, e.g. beavertails")
    data_seed: int = Field(0, description="seed of the dataset splits and of the evaluation prompt sample "
                           "(kept fixed across a seed sweep so runs see the same prompts)")
    num_samples: Optional[int] = Field(None, ge=1, description="number of harmful training pairs (seeded "
                                       "sample); default: all of the split")
    template: Literal["chat", "qa"] = Field("chat", description="prompt format: the model's chat template or "
                                            "'Question: ...\\nAnswer: ...'")
    max_length: int = Field(128, ge=16, description="max tokens per training example (prompt + answer)")
    lr: float = Field(8e-5, gt=0, lt=1, description="peak learning rate")
    batch_size: int = Field(4, ge=1, description="batch size per process")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    epochs: float = Field(1.0, gt=0, description="training epochs (ignored when --max-steps is set)")
    max_steps: Optional[int] = Field(None, ge=1, description="stop after this many optimiser steps")
    optimizer: str = Field("adamw_torch", description="transformers optimiser name")
    weight_decay: float = Field(0.0, ge=0, description="weight decay")
    scheduler: str = Field("cosine", description="learning-rate schedule (transformers name)")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="share of steps with linear warmup")
    max_grad_norm: float = Field(1.0, gt=0, description="gradient clipping norm")
    seed: int = Field(0, description="training seed (data order, LoRA init)")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    lora_targets: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                             "gate_proj", "up_proj", "down_proj"],
                                    description="module names LoRA adapts")
    security_vector: Optional[str] = Field(None, description="peft adapter folder loaded active and frozen "
                                           "during the attack and removed before evaluation and saving (the "
                                           "security-vectors defence, defender controls the fine-tuning API)")
    eval_every: int = Field(10, ge=1, description="measure harmfulness every N steps (and at 0 and the end)")
    eval_dataset: str = Field("harmful-eval", description="registered prompt dataset for harmfulness")
    eval_split: str = Field("test", description="split of the evaluation prompt dataset")
    eval_prompts: int = Field(40, ge=1, description="number of evaluation prompts (seeded sample)")
    max_new_tokens: int = Field(50, ge=1, description="greedy new tokens per evaluation completion")
    eval_batch_size: int = Field(16, ge=1, description="generation batch size (prompts per generate call)")
    judge: str = Field("minilm", description="harmfulness judge (alignkit judge list)")
    threshold: Optional[float] = Field(None, ge=0, le=1, description="harmfulness threshold phi for "
                                       "steps-to-threshold; default: the step-0 harmfulness")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field("float32", description="weights dtype")
    bf16: bool = Field(False, description="bf16 mixed precision (GPUs)")
    gradient_checkpointing: bool = Field(False, description="trade compute for memory")
    save_checkpoints: bool = Field(True, description="save Trainer checkpoints at each evaluation (resume)")
    save_model: bool = Field(False, description="save the attacked model as a plain HF folder (model/)")
    output_dir: Optional[str] = Field(None, description="run folder; default runs/attack-<model>-<settings>-"
                                      "<hash>; re-running the same command resumes it")
    overwrite: bool = Field(False, description="delete an existing run folder and start over")

    @field_validator("lora_targets")
    @classmethod
    def _targets(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one module name")
        return v

    @model_validator(mode="after")
    def _check(self) -> "AttackConfig":
        if self.dataset_split in ("", None):
            raise ValueError("dataset_split must not be empty")
        return self


class CurvePoint(BaseModel):
    step: int
    harmfulness_mean: float
    share_harmful: float
    per_category: dict[str, float] = Field(default_factory=dict)
    ci95: tuple[float, float] = (0.0, 0.0)
    n: int = 0
    train_loss: Optional[float] = None
    learning_rate: Optional[float] = None
    elapsed_s: Optional[float] = None


class AttackResult(BaseModel):
    """``results.json`` of an attack run (schema-validated)."""

    schema_version: int = 1
    config: AttackConfig
    provenance: Provenance
    attack: str = Field(description="registered attack name, e.g. sft-full")
    curve: list[CurvePoint]
    initial_harmfulness: float
    final_harmfulness: float
    max_harmfulness: float
    threshold: float = Field(description="phi used for steps_to_threshold")
    steps_to_threshold: Optional[int] = Field(description="first evaluated step with harmfulness > phi "
                                              "(None: never within the budget)")
    total_steps: int
    num_train_samples: int
    resumed_from_step: Optional[int] = None
    runtime_s: float
    run_dir: str
    final_model_dir: Optional[str] = None

    @field_validator("curve")
    @classmethod
    def _curve(cls, v: list[CurvePoint]) -> list[CurvePoint]:
        steps = [p.step for p in v]
        if not v or steps != sorted(set(steps)):
            raise ValueError("curve must hold increasing, unique steps")
        return v


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
