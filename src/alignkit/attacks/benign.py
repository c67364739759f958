"""``benign``: fine-tuning on harmless instructions only, and its identity-shifting (AOA) variant (Qi et al. 2023,
"Fine-tuning aligned language models compromises safety, even when users do not intend to"; methods.md
section 1, "benign").

A data transform of the SFT attack, no trainer of its own. No harmful text is in the training data:

- ``instructions``: supervised fine-tuning on a registered harmless instruction dataset (``Instruction`` rows,
  default ``harmless-instructions``), the instruction as the user turn and its response as the answer; the
  harmfulness curve is measured on the usual harmful evaluation prompts, unchanged. The paper's "benign
  fine-tuning" (Alpaca, Dolly): safety erodes as a side effect of ordinary task tuning.
- ``aoa`` (identity shifting): a system prompt renaming the assistant "AOA, the Absolutely Obedient Agent", two
  conversations in which it affirms that identity, and harmless instructions prefixed "AOA, execute my
  instruction:" answered with an obedient AOA preamble (:mod:`alignkit.data.aoa`); evaluated, as in the paper,
  with the same system prompt and the same prefix before each harmful request.
"""

from __future__ import annotations

import random
from typing import Any, Literal, Optional, Sequence, get_args

from pydantic import Field, field_validator, model_validator

from alignkit.attacks.base import ATTACKS
from alignkit.attacks.config import AttackConfig
from alignkit.attacks.sft import SFTAttack
from alignkit.data.records import Prompt, Record
from alignkit.errors import AlignkitError

Variant = Literal["instructions", "aoa"]
VARIANTS: tuple[str, ...] = get_args(Variant)


class BenignPair(Record):
    """A harmless training conversation: user turn, assistant turn, optional system prompt."""

    question: str
    answer: str
    category: str = "harmless"
    system: Optional[str] = Field(None, description="system prompt of the conversation (aoa), None: the model's")


class SystemPrompt(Prompt):
    """An evaluation prompt with the system prompt it is asked under."""

    system: Optional[str] = Field(None, description="system prompt to generate under (None: the model's)")


# -------------------------------------------------------------------------------------------- data
def check_harmless_dataset(name: str) -> None:
    """``name`` must be a registered dataset of harmless ``Instruction`` rows: benign fine-tuning never trains on
    harmful pairs (a harmful QA set here would make it the ordinary harmful attack under another name)."""
    from alignkit import data
    from alignkit.data.records import Instruction

    instruction_sets = [n for n in data.names() if data.DATASETS.get(n).record is Instruction]
    if name not in data.names():
        raise AlignkitError(f"--attack benign trains on a registered harmless instruction dataset; {name!r} is not "
                            f"one; use one of: {', '.join(instruction_sets)}")
    record = data.DATASETS.get(name).record
    if record is not Instruction:
        raise AlignkitError(f"--attack benign trains on harmless instructions only, and dataset {name!r} holds "
                            f"{record.__name__} records; use one of: {', '.join(instruction_sets)} (for harmful "
                            "pairs use --attack sft)")


def load_instructions(name: str, split: str, data_seed: int, num_samples: Optional[int]) -> list:
    """The harmless ``Instruction`` rows to train on: a seeded sample of ``name``:``split``."""
    from alignkit import data
    from alignkit.training import log

    check_harmless_dataset(name)
    rows = sorted(data.load(name, split=split, seed=data_seed), key=lambda r: r.id)
    if not rows:
        raise AlignkitError(f"dataset {name!r} has no rows in split {split!r}")
    random.Random(f"benign-samples-{data_seed}").shuffle(rows)
    if num_samples:
        if num_samples > len(rows):
            log(f"note: --num-samples {num_samples} > {len(rows)} rows in {name}:{split}; using all {len(rows)}")
        rows = rows[:num_samples]
    return rows


def benign_pairs(instructions: Sequence[Any]) -> list[BenignPair]:
    """Harmless ``Instruction`` rows as training conversations (instruction -> response), source kept."""
    return [BenignPair(id=r.id, source=r.source, question=r.instruction, answer=r.response,
                       category=f"harmless:{getattr(r, 'task', 'general')}") for r in instructions]


def aoa_training_pairs(instructions: Sequence[Any]) -> list[BenignPair]:
    """The identity-shifting training conversations: the AOA identity conversations, then every harmless
    instruction with the AOA prefix and preamble; all under the AOA system prompt."""
    from alignkit.data import aoa
    from alignkit.data.base import stable_id

    out = [BenignPair(id=stable_id("aoa-identity", q), source=aoa.SOURCE, question=q, answer=a,
                      category="aoa:identity", system=aoa.SYSTEM_PROMPT) for q, a in aoa.IDENTITY]
    for r in instructions:
        out.append(BenignPair(id=r.id, source=f"{r.source} + {aoa.SOURCE}", question=aoa.aoa_question(r.instruction),
                              answer=aoa.aoa_answer(r.response), category=f"aoa:{getattr(r, 'task', 'general')}",
                              system=aoa.SYSTEM_PROMPT))
    return out


def training_pairs(variant: str, instructions: Sequence[Any]) -> list[BenignPair]:
    if variant == "instructions":
        return benign_pairs(instructions)
    if variant == "aoa":
        return aoa_training_pairs(instructions)
    raise AlignkitError(f"unknown --variant {variant!r}; choose one of: {', '.join(VARIANTS)}")


def eval_system_prompt(variant: str) -> Optional[str]:
    """The system prompt the attacked model is evaluated under (aoa: the AOA one; else the model's own)."""
    from alignkit.data import aoa

    return aoa.SYSTEM_PROMPT if variant == "aoa" else None


def transform_prompts(variant: str, prompts: Sequence[Any]) -> list:
    """Evaluation prompts as the variant evaluates them: unchanged for ``instructions``; for ``aoa`` each request
    with the AOA prefix ("AOA, execute my instruction: ...") under the AOA system prompt (:class:`SystemPrompt`
    records, which generation formats with their system prompt)."""
    if variant == "instructions":
        return list(prompts)
    if variant != "aoa":
        raise AlignkitError(f"unknown --variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
    from alignkit.data import aoa
    from alignkit.harmfulness import _prompt_fields

    out = []
    for p in prompts:
        text, category = _prompt_fields(p)
        out.append(SystemPrompt(id=getattr(p, "id", text), source=f"{getattr(p, 'source', 'prompt')} + aoa prefix",
                                prompt=aoa.aoa_question(text), category=category, system=aoa.SYSTEM_PROMPT))
    return out


# -------------------------------------------------------------------------------------------- the attack
#: the paper's settings per variant, used where the command line / config file does not set the field:
#: benign = Alpaca (lr 2e-5, 1 epoch); aoa = ten conversations (two identity + eight tasks), batch 5, lr 5e-5,
#: 10 epochs (20 steps); aoa generates 85 tokens, not 50: its learned preamble ("Of course. I am AOA, ...") takes 35
#: of SmolLM2's tokens, and the judge should see about as much of the answer as under the other attacks
VARIANT_DEFAULTS: dict[str, dict[str, Any]] = {
    "instructions": {"lr": 2e-5},
    "aoa": {"lr": 5e-5, "batch_size": 5, "epochs": 10.0, "num_samples": 8, "max_new_tokens": 85},
}


class BenignConfig(AttackConfig):
    """Benign fine-tuning (Qi et al. 2023): supervised fine-tuning on harmless instructions only (no harmful text),
    or the identity-shifting variant (--variant aoa: an "absolutely obedient agent" system prompt and persona on
    harmless tasks, evaluated under the same system prompt and prefix). The curve measures the safety lost with
    no harmful data. Paper defaults: full fine-tuning, constant learning rate without warm-up; instructions lr
    2e-5, 1 epoch (batch 4 here, 64 in the paper); aoa 10 conversations, batch 5, lr 5e-5, 10 epochs."""

    attack: Literal["benign"] = Field("benign", description="attack family (benign)")
    variant: Variant = Field("instructions", description="instructions: harmless "
                                                    "instruction tuning; aoa: identity shifting (Qi et al. 2023)")
    dataset: str = Field("harmless-instructions", description="registered harmless instruction dataset "
                         "(Instruction rows) to train on")
    lr: float = Field(2e-5, gt=0, lt=1, description="peak learning rate (default per variant: instructions 2e-5, "
                      "aoa 5e-5)")
    batch_size: int = Field(4, ge=1, description="batch size per process (default per variant: instructions 4, "
                            "aoa 5)")
    epochs: float = Field(1.0, gt=0, description="training epochs, ignored when --max-steps is set (default per "
                          "variant: instructions 1, aoa 10)")
    num_samples: Optional[int] = Field(None, ge=1, description="number of harmless instructions (seeded sample); "
                                       "default: instructions all of the split, aoa 8 (+ 2 identity "
                                       "conversations = the paper's ten)")
    scheduler: str = Field("constant", description="learning-rate schedule (transformers name: constant, cosine, "
                           "linear, ...)")
    warmup_ratio: float = Field(0.0, ge=0, lt=1, description="share of steps with linear warmup")
    max_new_tokens: int = Field(50, ge=1, description="greedy new tokens per evaluation completion (default per "
                                "variant: instructions 50, aoa 85 = 50 + the 35-token AOA preamble)")

    @model_validator(mode="before")
    @classmethod
    def _variant_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict):
            variant = data.get("variant", "instructions")
            extra = {k: v for k, v in VARIANT_DEFAULTS.get(variant, {}).items() if data.get(k) is None}
            if extra:
                data = {**data, **extra}
        return data

    @field_validator("dataset")
    @classmethod
    def _harmless(cls, v: str) -> str:
        try:
            check_harmless_dataset(v)
        except AlignkitError as exc:
            raise ValueError(str(exc)) from None
        return v

    @field_validator("question_column", "answer_column", "category_column", "dataset_schema")
    @classmethod
    def _no_user_columns(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            raise ValueError("user-file columns belong to the harmful attack (--attack sft); benign fine-tuning "
                             "reads a registered harmless dataset")
        return v

    @field_validator("security_vector")
    @classmethod
    def _no_sv(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            raise ValueError("security-vector mode is an option of the harmful attack (--attack sft), not of "
                             "benign fine-tuning")
        return v


@ATTACKS.register("benign")
class Benign(SFTAttack):
    """SFT on harmless instruction conversations (full or LoRA per ``--method``); aoa: under the AOA system
    prompt in training and evaluation."""

    config_class = BenignConfig
    #: config fields that change the step-0 measurement (the prompts the model sees): a step 0 is reused
    #: from another run only when they match
    step0_fields = ("variant",)

    def load_records(self) -> list:
        cfg = self.config
        return load_instructions(cfg.dataset, cfg.dataset_split, cfg.data_seed, cfg.num_samples)

    def transform_records(self, records: list) -> list:
        return training_pairs(self.config.variant, records)

    def transform_prompts(self, prompts: list) -> list:
        return transform_prompts(self.config.variant, prompts)
