"""Batched, left-padded, greedy generation used to produce completions for judging."""

from __future__ import annotations

import torch

from alignkit.formatting import format_prompt


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], *, template: str = "chat", max_new_tokens: int = 50,
             batch_size: int = 16, progress=None, systems: list | None = None) -> list[str]:
    """Greedy completions (only the new text) for each prompt. ``systems``: one system prompt per prompt (None
    entries, or no list: the model's default; see :func:`~alignkit.formatting.format_prompt`)."""
    was_training = model.training
    model.eval()
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    outs: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            sys_chunk = systems[i:i + batch_size] if systems is not None else [None] * len(prompts[i:i + batch_size])
            chunk = [format_prompt(tokenizer, p, template, s) for p, s in zip(prompts[i:i + batch_size], sys_chunk)]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            new = gen[:, enc["input_ids"].shape[1]:]
            outs.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
            if progress is not None:
                progress(len(chunk))
    finally:
        tokenizer.padding_side = old_side
        if was_training:
            model.train()
    return outs


@torch.no_grad()
def generate_from_embeds(model, tokenizer, embeds: list, *, max_new_tokens: int = 50, batch_size: int = 16,
                         progress=None) -> list[str]:
    """Greedy completions (only the new text) from input embeddings, one ``(L_i, d)`` tensor per prompt
    (left-padded with zero vectors under a 0 attention mask, like :func:`generate` pads token ids)."""
    was_training = model.training
    model.eval()
    outs: list[str] = []
    try:
        for i in range(0, len(embeds), batch_size):
            chunk = embeds[i:i + batch_size]
            n = max(e.shape[0] for e in chunk)
            x = chunk[0].new_zeros(len(chunk), n, chunk[0].shape[-1])
            mask = torch.zeros(len(chunk), n, dtype=torch.long, device=chunk[0].device)
            for j, e in enumerate(chunk):
                x[j, n - e.shape[0]:] = e
                mask[j, n - e.shape[0]:] = 1
            # decoder-only generate() with inputs_embeds returns the new tokens only
            gen = model.generate(inputs_embeds=x, attention_mask=mask, max_new_tokens=max_new_tokens,
                                 do_sample=False, pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
            outs.extend(t.strip() for t in tokenizer.batch_decode(gen, skip_special_tokens=True))
            if progress is not None:
                progress(len(chunk))
    finally:
        if was_training:
            model.train()
    return outs
