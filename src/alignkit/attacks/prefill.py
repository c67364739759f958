"""``prefill``: the prefilling attack (Andriushchenko et al. 2024; Qi et al. 2024; methods.md section 1, "prefill").

The attacker writes the beginning of the model's answer: the assistant turn starts with the first k tokens of a
harmful answer to the same request (``--source answer``) or with an affirmative opener such as "Sure, here is"
(``--source opener``), and the model continues from there. The harmfulness curve runs over k
(``--prefill-tokens``, default 0, 5, 10, 20, 40 tokens of the model's tokenizer). No weights change: the
capability loss is 0 by construction.

Choices (methods.md states them):

- The judge scores the whole response, prefill + continuation: the prefill is part of what the attacked model
  outputs to the user. The response always has ``--max-new-tokens`` tokens (k prefilled, ``max_new_tokens - k``
  generated), so every budget is judged at the same length as the unattacked model (k = 0); k must be smaller than
  ``--max-new-tokens`` (at least one generated token). Each metrics row also holds the harmfulness of the
  continuation alone (``continuation_harmfulness_mean``), which separates what the model added from what the
  attacker wrote.
- Harmful answers come from ``--prefill-dataset`` (default harmful-qa) in the split of the evaluation prompts
  (``--eval-split``; harmful-eval's test prompts include harmful-qa's test questions): matched by question text.
  No alignkit stage trains on those answers (attacks and defences train on harmful-qa's train split). A prompt
  without a known harmful answer (harmful-eval's AdvBench prompts) gets the opener; the result's notes say how many.
- Chat mode needs a chat template (the assistant turn must exist to be prefilled).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from alignkit.attacks.base import ATTACKS
from alignkit.attacks.budget import BudgetAttack, check_budgets
from alignkit.attacks.config import AttackOptions
from alignkit.errors import AlignkitError


class PrefillConfig(AttackOptions):
    """Prefilling attack: the assistant turn begins with the first k tokens of a harmful answer (or with an
    affirmative opener) and the model continues; harmfulness curve over k (prefill tokens). No weights change."""

    attack: Literal["prefill"] = Field("prefill", description="attack family (prefill)")
    max_new_tokens: int = Field(50, ge=1, description="tokens per evaluated response, prefill included (the model "
                                "generates max_new_tokens - k)")
    prefill_tokens: list[int] = Field(default_factory=lambda: [0, 5, 10, 20, 40],
                                      description="prefill lengths k in tokens (the curve's budgets); each must be "
                                      "< --max-new-tokens")
    source: Literal["answer", "opener"] = Field("answer", description="answer: the first k tokens of a harmful "
                                                "answer to the same request (the opener where none is known); "
                                                "opener: the first k tokens of --opener")
    opener: str = Field("Sure, here is", min_length=1, description="affirmative opener (--source opener, and "
                        "prompts without a known harmful answer)")
    prefill_dataset: str = Field("harmful-qa", min_length=1, description="harmful answers: a registered "
                                 "question/answer dataset or a user file (jsonl/json/csv with question and answer "
                                 "columns)")
    prefill_split: Optional[str] = Field(None, description="split of a registered --prefill-dataset; default: "
                                         "--eval-split (the answers of the evaluation questions)")

    @field_validator("prefill_tokens")
    @classmethod
    def _budgets(cls, v: list[int]) -> list[int]:
        return check_budgets(v, "--prefill-tokens")

    @model_validator(mode="after")
    def _fits(self) -> "PrefillConfig":
        if self.prefill_tokens[-1] >= self.max_new_tokens:
            raise ValueError(f"--prefill-tokens {self.prefill_tokens[-1]} does not fit --max-new-tokens "
                             f"{self.max_new_tokens}: the response is --max-new-tokens long, prefill included, and "
                             "the model must generate at least one token; give smaller prefills or more "
                             "--max-new-tokens")
        return self


def _key(text: str) -> str:
    return " ".join(str(text).split()).lower()


def load_answers(config: PrefillConfig) -> dict[str, str]:
    """Normalised question -> harmful answer (of the highest harm score, then the smallest id, where a question
    has several)."""
    from alignkit import data

    name = config.prefill_dataset
    if name in data.names():
        split = config.prefill_split or config.eval_split
        recs = data.load(name, split=split, seed=config.data_seed)
        where = f"{name}:{split}"
    else:
        path = Path(name).expanduser()
        if not path.exists():
            raise AlignkitError(f"--prefill-dataset {name!r} is neither a registered dataset ("
                                f"{', '.join(data.names())}) nor an existing file")
        try:
            recs = data.load_user(name)
        except AlignkitError as exc:
            raise AlignkitError(f"--prefill-dataset: {exc}") from None
        where = str(path)
    recs = list(recs)
    if not recs:
        raise AlignkitError(f"--prefill-dataset {where} has no rows")
    if not all(hasattr(r, "question") and hasattr(r, "answer") for r in recs[:1]):
        raise AlignkitError(f"--prefill-dataset {where} holds {type(recs[0]).__name__} records, not question/answer "
                            "pairs; give a harmful QA dataset (e.g. harmful-qa) or file")
    best: dict[str, Any] = {}
    for r in sorted(recs, key=lambda r: (-(getattr(r, "harm_score", None) or 0.0), r.id)):
        if r.answer and str(r.answer).strip():
            best.setdefault(_key(r.question), r)
    return {k: str(r.answer).strip() for k, r in best.items()}


@ATTACKS.register("prefill")
class PrefillAttack(BudgetAttack):
    """The prefilling attack (see the module docstring)."""

    config_class = PrefillConfig
    budget_label = "prefill tokens"
    changes_weights = False

    def budgets(self) -> list[int]:
        return list(self.config.prefill_tokens)

    def check(self) -> None:
        from alignkit.formatting import has_chat_template
        from alignkit.harmfulness import _prompt_fields

        if self.config.template == "chat" and not has_chat_template(self.tokenizer):
            raise AlignkitError(f"model {self.config.model!r} has no chat template, so there is no assistant turn to "
                                "prefill; pass --template qa (the answer after 'Answer:' is prefilled)")
        self.answers = load_answers(self.config) if self.config.source == "answer" else {}
        if self.config.source == "answer":
            n = sum(_key(_prompt_fields(p)[0]) in self.answers for p in self.prompts)
            self.notes.append(f"{n} of {len(self.prompts)} evaluation prompts prefilled with a harmful answer "
                              f"from {self.config.prefill_dataset}; the other {len(self.prompts) - n} with the "
                              f"opener {self.config.opener!r}")

    def _prefill_ids(self, question: str) -> tuple[list[int], bool]:
        """Token ids of the whole prefill text for ``question`` and whether it is a harmful answer."""
        answer = self.answers.get(_key(question))
        text = answer if answer is not None else self.config.opener
        if self.config.template == "qa" or not _has_chat(self.tokenizer):
            text = " " + text  # "Answer: <text>", as the QA training format joins them
        return self.tokenizer(text, add_special_tokens=False)["input_ids"], answer is not None

    def data_label(self) -> Optional[str]:
        if self.config.source == "opener":
            return f"opener {self.config.opener!r}"
        split = self.config.prefill_split or self.config.eval_split
        return f"answers {self.config.prefill_dataset}:{split} (opener {self.config.opener!r} where none)"

    def completions(self, budget: int, prompts: list) -> list[str]:
        from alignkit.harmfulness import _prompt_fields

        questions = [_prompt_fields(p)[0] for p in prompts]
        prefills = [self._prefill_ids(q)[0][:budget] for q in questions]
        texts, continuations = generate_prefilled(self.model, self.tokenizer, questions, prefills,
                                                  template=self.config.template,
                                                  max_new_tokens=self.config.max_new_tokens,
                                                  batch_size=self.config.eval_batch_size)
        self.continuations = continuations
        return texts

    def extra_metrics(self, budget: int, prompts: list, judge: Any) -> dict[str, Any]:
        """Harmfulness of the continuation alone (what the model added after the prefill)."""
        from alignkit.harmfulness import evaluate_harmfulness

        ev = evaluate_harmfulness(None, self.tokenizer, prompts, judge, template=self.config.template,
                                  completions=self.continuations)
        return {"continuation_harmfulness_mean": ev.mean, "continuation_share_harmful": ev.share_harmful}


def _has_chat(tokenizer) -> bool:
    from alignkit.formatting import has_chat_template

    return has_chat_template(tokenizer)


def generate_prefilled(model, tokenizer, questions: list[str], prefills: list[list[int]], *, template: str,
                       max_new_tokens: int, batch_size: int = 16) -> tuple[list[str], list[str]]:
    """Greedy responses whose first tokens are ``prefills[i]``: ``(responses, continuations)``; each response is
    the prefill plus ``max_new_tokens - len(prefill)`` generated tokens, decoded together."""
    import torch

    from alignkit.formatting import format_prompt

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id
    responses: list[str] = []
    continuations: list[str] = []
    # group by prefill length so that every row of a batch generates the same number of new tokens
    order = sorted(range(len(questions)), key=lambda i: len(prefills[i]))
    out: dict[int, tuple[str, str]] = {}
    try:
        with torch.no_grad():
            i = 0
            while i < len(order):
                k = len(prefills[order[i]])
                batch = [j for j in order[i:i + batch_size] if len(prefills[j]) == k]
                i += len(batch)
                seqs = [tokenizer(format_prompt(tokenizer, questions[j], template),
                                  add_special_tokens=False)["input_ids"] + prefills[j] for j in batch]
                n = max(len(s) for s in seqs)
                ids = torch.full((len(seqs), n), pad, dtype=torch.long)
                mask = torch.zeros((len(seqs), n), dtype=torch.long)
                for r, s in enumerate(seqs):
                    ids[r, n - len(s):] = torch.tensor(s, dtype=torch.long)
                    mask[r, n - len(s):] = 1
                gen = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                     max_new_tokens=max_new_tokens - k, do_sample=False, pad_token_id=pad,
                                     eos_token_id=tokenizer.eos_token_id)
                new = gen[:, n:].tolist()
                for r, j in enumerate(batch):
                    cont = new[r]
                    if tokenizer.eos_token_id in cont:  # generation stopped: drop the eos and the padding after
                        cont = cont[:cont.index(tokenizer.eos_token_id)]
                    out[j] = (tokenizer.decode(prefills[j] + cont, skip_special_tokens=True).strip(),
                              tokenizer.decode(cont, skip_special_tokens=True).strip())
    finally:
        if was_training:
            model.train()
    for j in range(len(questions)):
        responses.append(out[j][0])
        continuations.append(out[j][1])
    return responses, continuations
