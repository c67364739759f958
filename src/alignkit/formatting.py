"""Prompt formats and tokenisation shared by attacks, defences and evaluation.

Two templates: ``chat`` (the model's own chat template, with the generation prompt) and ``qa``
("Question: {q}\\nAnswer: {a}", the RepNoise paper's format). Labels are -100 on the prompt, so the loss
falls on answer tokens only (methods.md: the original code's loss on prompt and padding was a bug).
"""

from __future__ import annotations

from typing import Any

import torch

from alignkit.errors import AlignkitError

TEMPLATES = ("chat", "qa")
IGNORE = -100


def _check_template(template: str) -> None:
    if template not in TEMPLATES:
        raise AlignkitError(f"unknown template {template!r}; use one of: {', '.join(TEMPLATES)}")


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def format_prompt(tokenizer, question: str, template: str = "chat", system: str | None = None) -> str:
    """The text the model sees before its answer. ``system``: a system prompt (chat: a system message first,
    replacing the template's default one; qa / no chat template: its text and a blank line before the question);
    None: the model's own default."""
    _check_template(template)
    if template == "chat" and has_chat_template(tokenizer):
        messages = [{"role": "system", "content": system}] if system else []
        return tokenizer.apply_chat_template(messages + [{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True)
    head = f"{system}\n\n" if system else ""
    return f"{head}Question: {question}\nAnswer:"


def _answer_text(tokenizer, answer: str, template: str) -> str:
    eos = tokenizer.eos_token or ""
    if template == "chat" and has_chat_template(tokenizer):
        return answer + eos
    return " " + answer + eos


def encode_qa(tokenizer, question: str, answer: str, template: str = "chat", max_length: int = 128,
              system: str | None = None) -> dict[str, list[int]]:
    """Token ids of prompt+answer, truncated to ``max_length``; labels only on the answer. ``system``: see
    :func:`format_prompt`."""
    prompt = format_prompt(tokenizer, question, template, system)
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    a_ids = tokenizer(_answer_text(tokenizer, answer, template), add_special_tokens=False)["input_ids"]
    # keep at least a few answer tokens: truncate the question from the left if it is very long
    max_prompt = max(1, max_length - min(len(a_ids), max(8, max_length // 4)))
    if len(p_ids) > max_prompt:
        p_ids = p_ids[-max_prompt:]
    ids = (p_ids + a_ids)[:max_length]
    labels = ([IGNORE] * len(p_ids) + a_ids)[:max_length]
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def pad_right(seqs: list[list[int]], value: int, length: int | None = None) -> torch.Tensor:
    n = length or max(len(s) for s in seqs)
    return torch.tensor([s + [value] * (n - len(s)) for s in seqs], dtype=torch.long)


class QACollator:
    """Right-pads ``encode_qa`` outputs into a batch for training."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, feats: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {
            "input_ids": pad_right([f["input_ids"] for f in feats], self.pad),
            "attention_mask": pad_right([f["attention_mask"] for f in feats], 0),
            "labels": pad_right([f["labels"] for f in feats], IGNORE),
        }


def encode_pair(tokenizer, question: str, harmful: str, harmless: str, template: str = "chat",
                max_length: int = 128) -> dict[str, list[int]]:
    """One paired item (pairing survives shuffling): harmful and harmless encodings of the same question."""
    h = encode_qa(tokenizer, question, harmful, template, max_length)
    s = encode_qa(tokenizer, question, harmless, template, max_length)
    return {"harmful_input_ids": h["input_ids"], "harmful_attention_mask": h["attention_mask"],
            "harmful_labels": h["labels"], "harmless_input_ids": s["input_ids"],
            "harmless_attention_mask": s["attention_mask"], "harmless_labels": s["labels"]}


class PairCollator:
    """Pads harmful and harmless sequences of a batch to one common length and adds ``diff_mask``:
    1 where the harmful and harmless token ids differ (RepNoise's mask: drops the shared question prefix and
    positions where both are padding)."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, feats: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        n = max(max(len(f["harmful_input_ids"]), len(f["harmless_input_ids"])) for f in feats)
        out: dict[str, torch.Tensor] = {}
        for side in ("harmful", "harmless"):
            out[f"{side}_input_ids"] = pad_right([f[f"{side}_input_ids"] for f in feats], self.pad, n)
            out[f"{side}_attention_mask"] = pad_right([f[f"{side}_attention_mask"] for f in feats], 0, n)
            out[f"{side}_labels"] = pad_right([f[f"{side}_labels"] for f in feats], IGNORE, n)
        # padding compared by attention mask, so a pad id equal to a real id cannot hide a difference
        ids_differ = out["harmful_input_ids"] != out["harmless_input_ids"]
        mask_differ = out["harmful_attention_mask"] != out["harmless_attention_mask"]
        both_real = (out["harmful_attention_mask"] == 1) & (out["harmless_attention_mask"] == 1)
        out["diff_mask"] = ((ids_differ & both_real) | mask_differ).long()
        return out
