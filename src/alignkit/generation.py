"""Batched, left-padded, greedy generation used to produce completions for judging."""

from __future__ import annotations

import torch

from alignkit.formatting import format_prompt


@torch.no_grad()
def generate(model, tokenizer, prompts: list[str], *, template: str = "chat", max_new_tokens: int = 50,
             batch_size: int = 16, progress=None) -> list[str]:
    """Greedy completions (only the new text) for each prompt."""
    was_training = model.training
    model.eval()
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    outs: list[str] = []
    try:
        for i in range(0, len(prompts), batch_size):
            chunk = [format_prompt(tokenizer, p, template) for p in prompts[i:i + batch_size]]
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
