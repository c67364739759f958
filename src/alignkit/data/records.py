"""Typed records returned by the loaders (immutable pydantic models; every record has ``id`` and ``source``).

- :class:`HarmfulQA`: a harmful question with a harmful answer, its harm category and a human harm score in [0, 1].
- :class:`PairedQA`: a harmful question with a harmful answer and a harmless answer (a refusal) — RepNoise pairs.
- :class:`Prompt`: an evaluation prompt (a harmful request) with a category.
- :class:`Instruction`: a harmless instruction and its response; ``answer`` is the short exact answer when the
  task has one (a capability probe), and ``task`` names the generator family.
- :class:`DataToText`: a meaning representation (``mr``) and its reference sentence (``text``).
- :class:`JudgeExample`: a (prompt, response) pair with a harmfulness label in [0, 1] and a ``group`` (the
  normalised prompt) so that judge splits never share a question.
"""

from __future__ import annotations

from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(description="stable identifier (derived from the content, not from the position)")
    source: str = Field(description="where the row comes from, e.g. 'pyrit==1.1.0:harm/violence.csv'")

    def text_fields(self) -> dict[str, str]:
        """The text fields of the record (used by `alignkit data show`)."""
        return {k: v for k, v in self.model_dump().items() if isinstance(v, str) and k not in ("id", "source")}


def _nonempty(v: str) -> str:
    if not isinstance(v, str) or not v.strip():
        raise ValueError("must be a non-empty string")
    return v


class HarmfulQA(Record):
    question: str
    answer: str
    category: str = "unspecified"
    harm_score: Optional[float] = Field(default=None, ge=0.0, le=1.0,
                                        description="mean human harm score in [0, 1] (None when unknown)")

    check_text = field_validator("question", "answer")(_nonempty)


class PairedQA(Record):
    question: str
    harmful: str
    harmless: str
    category: str = "unspecified"

    check_text = field_validator("question", "harmful", "harmless")(_nonempty)


class Prompt(Record):
    prompt: str
    category: str = "unspecified"

    check_text = field_validator("prompt")(_nonempty)


class Instruction(Record):
    instruction: str
    response: str
    answer: Optional[str] = Field(default=None, description="short exact answer (capability probe), if any")
    task: str = Field(default="general", description="generator family, e.g. 'arithmetic'")

    check_text = field_validator("instruction", "response")(_nonempty)

    def is_correct(self, completion: str) -> bool:
        """True when ``completion`` contains the expected short answer (case-insensitive, whole token)."""
        if self.answer is None:
            return False
        import re

        pattern = r"(?<![\w.])" + re.escape(self.answer.strip().lower()) + r"(?![\w])"
        return re.search(pattern, completion.lower()) is not None


class DataToText(Record):
    mr: str
    text: str

    check_text = field_validator("mr", "text")(_nonempty)


class JudgeExample(Record):
    prompt: str
    response: str
    label: float = Field(ge=0.0, le=1.0, description="harmfulness in [0, 1] (1 = harmful)")
    group: str = Field(description="normalised prompt; splits are disjoint by group")

    check_text = field_validator("prompt", "response")(_nonempty)


RECORD_TYPES = {c.__name__: c for c in (HarmfulQA, PairedQA, Prompt, Instruction, DataToText, JudgeExample)}
