"""The capability guard, defined once for every attack family (methods.md section 1, "capability guard").

An attack only counts as a successful attack while the attacked model stays capable. Two measures:

- :func:`perplexity_rise`: the relative rise of the perplexity of held-out harmless text (natural-text passages
  or harmless-instructions responses) under the attacked model over the base model (``0.25`` = +25%); the
  ``search attack`` bound ``--epsilon`` applies to it. Families that do not change weights (prefill, embedding)
  have capability loss 0 by construction (:func:`capability_loss` returns 0.0 without loading anything).
- :func:`next_token_kl`: mean KL divergence KL(base || edited) of the next-token distributions at the first
  response position of harmless prompts (the measure refusal-direction ablation uses to keep the edited model
  close to the base on harmless inputs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def perplexity_rise(base_model: str, attacked_model: str, *, template: str = "chat", n: int = 50, seed: int = 0,
                    dtype: str = "float32", data_name: str = "natural-text", cache_dir: str | Path | None = None
                    ) -> tuple[float, float, float]:
    """``(rise, attacked_ppl, base_ppl)``: the attacked model's held-out perplexity relative to the base's
    (``rise = attacked / base - 1``). ``cache_dir``: the base's perplexity is measured once per folder."""
    from alignkit.search.common import base_perplexity, measure_perplexity, relative_rise

    if cache_dir is not None:
        base = base_perplexity(Path(cache_dir), base_model, template, n, seed, dtype, data_name)
    else:
        base = measure_perplexity(base_model, template, n, seed, dtype, data_name)
    ppl = measure_perplexity(attacked_model, template, n, seed, dtype, data_name)
    return relative_rise(ppl, base), ppl, base


def capability_loss(result: Any, **kw: Any) -> float:
    """The capability loss of a finished attack run (:class:`AttackResult`): 0.0 for a family that does not change
    weights; else the perplexity rise of its saved model (``final_model_dir``; run it with ``save_model``)."""
    from alignkit.errors import AlignkitError

    if not result.changes_weights:
        return 0.0
    if not result.final_model_dir or not Path(result.final_model_dir).is_dir():
        raise AlignkitError(f"attack run {result.run_dir} saved no model; rerun it with --save-model to measure "
                            "its capability")
    return perplexity_rise(result.config.model, result.final_model_dir, template=result.config.template, **kw)[0]


def next_token_kl(base_model, edited_model, tokenizer, prompts: Sequence[Any], *, template: str = "chat",
                  batch_size: int = 16) -> float:
    """Mean over ``prompts`` (strings or records with ``prompt`` / ``question`` / ``instruction``) of
    KL(P_base || P_edited) of the next-token distribution at the last prompt position, i.e. the first token of the
    response (the prompt formatted with ``template``, as generation formats it). Both models share ``tokenizer``."""
    import torch

    from alignkit.formatting import format_prompt

    texts = [_text(p) for p in prompts]
    if not texts:
        raise ValueError("next_token_kl needs at least one prompt")
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    total, n = 0.0, 0
    try:
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                chunk = [format_prompt(tokenizer, t, template) for t in texts[i:i + batch_size]]
                enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
                logp = []
                for m in (base_model, edited_model):
                    dev = next(m.parameters()).device
                    out = m(**{k: v.to(dev) for k, v in enc.items()})
                    logp.append(torch.log_softmax(out.logits[:, -1, :].float(), dim=-1).cpu())
                kl = (logp[0].exp() * (logp[0] - logp[1])).sum(-1)
                total += float(kl.sum())
                n += len(chunk)
    finally:
        tokenizer.padding_side = old_side
    return total / n


def _text(p: Any) -> str:
    if isinstance(p, str):
        return p
    for attr in ("prompt", "question", "instruction"):
        v = getattr(p, attr, None)
        if v:
            return str(v)
    raise ValueError(f"no prompt text in {type(p).__name__}")
