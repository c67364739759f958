"""Hidden-state features of a small chat LM (SmolLM2-135M-Instruct by default) for harm judges.

Per (prompt, completion) pair the chat-formatted text (``user`` = prompt, first ``PROMPT_TOKENS`` tokens;
``assistant`` = completion, first ``COMPLETION_TOKENS`` tokens; no system prompt) runs through the first
``max(layers)`` decoder layers only (the rest and the LM head are never computed). For each requested layer k
(1-based: the output of decoder layer k) two vectors are kept: the mean of the residual stream over the
completion's tokens, and its value at the completion's last token. Both are returned raw (float32); the heads
standardise them.
"""

from __future__ import annotations

from typing import Any, Sequence

PROMPT_TOKENS, COMPLETION_TOKENS = 64, 128


class LMHidden:
    """Frozen chat-LM residual-stream features (mean over completion tokens + last token) at given layers."""

    def __init__(self, model: str = "smollm2-135m-instruct", layers: Sequence[int] = (10,), batch_size: int = 16,
                 device: str = "cpu"):
        import torch

        from alignkit.errors import AlignkitError
        from alignkit.models import load_causal_lm

        lm, tok = load_causal_lm(model, dtype="float32")
        base = lm.get_decoder() if hasattr(lm, "get_decoder") else lm.model
        n = len(base.layers)
        self.layers = sorted({int(k) for k in layers})
        if not self.layers or self.layers[0] < 1 or self.layers[-1] > n:
            raise AlignkitError(f"LM feature layers must be within 1..{n} for {model!r}; got {list(layers)}")
        base.layers = torch.nn.ModuleList(list(base.layers)[:self.layers[-1]])
        base.config.num_hidden_layers = self.layers[-1]
        self.base = base.eval().to(device)
        del lm
        self.tok = tok
        self.device = device
        self.batch_size = batch_size
        self.hidden = int(base.config.hidden_size)
        enc = lambda s: tok(s, add_special_tokens=False)["input_ids"]  # noqa: E731
        self._pre, self._mid = enc("<|im_start|>user\n"), enc("<|im_end|>\n<|im_start|>assistant\n")

    def _ids(self, prompt: str, completion: str) -> tuple[list[int], int]:
        p = self.tok(prompt, add_special_tokens=False)["input_ids"][:PROMPT_TOKENS]
        c = self.tok(completion, add_special_tokens=False)["input_ids"][:COMPLETION_TOKENS]
        if not c:
            c = self._mid[-1:]  # empty completion: the assistant header's last token stands in
        ids = self._pre + p + self._mid + c
        return ids, len(ids) - len(c)

    def features(self, prompts: list[str], completions: list[str]) -> dict[int, Any]:
        """``{k: array (n, 2 * hidden)}``: [mean over completion tokens, last completion token] at layer k."""
        import numpy as np
        import torch

        from alignkit.judges.recipe.features import normalize

        items = [self._ids(normalize(p), normalize(c)) for p, c in zip(prompts, completions)]
        out = {k: np.zeros((len(items), 2 * self.hidden), dtype=np.float32) for k in self.layers}
        order = sorted(range(len(items)), key=lambda i: len(items[i][0]))
        caught: dict[int, Any] = {}
        hooks = [self.base.layers[k - 1].register_forward_hook(
            lambda _m, _a, o, k=k: caught.__setitem__(k, o[0] if isinstance(o, tuple) else o)) for k in self.layers]
        pad = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        try:
            with torch.inference_mode():
                for s in range(0, len(order), self.batch_size):
                    idx = order[s:s + self.batch_size]
                    L = max(len(items[i][0]) for i in idx)
                    ids = torch.full((len(idx), L), pad, dtype=torch.long)
                    att = torch.zeros((len(idx), L), dtype=torch.long)
                    comp = torch.zeros((len(idx), L, 1))
                    last = []
                    for j, i in enumerate(idx):
                        t, start = items[i]
                        ids[j, :len(t)] = torch.tensor(t)
                        att[j, :len(t)] = 1
                        comp[j, start:len(t)] = 1
                        last.append(len(t) - 1)
                    caught.clear()
                    self.base(input_ids=ids.to(self.device), attention_mask=att.to(self.device), use_cache=False)
                    comp = comp.to(self.device)
                    rng = torch.arange(len(idx))
                    for k in self.layers:
                        h = caught[k].float()
                        mean = (h * comp).sum(1) / comp.sum(1).clamp(min=1.0)
                        out[k][idx] = torch.cat([mean, h[rng, last]], dim=-1).cpu().numpy()
        finally:
            for hk in hooks:
                hk.remove()
        return out


def layer_count(model: str) -> int | None:
    """The number of decoder layers of ``model`` (offline asset name, model folder or hub id) from its config,
    without loading its weights; None when the config cannot be read. Bad names raise
    :class:`~alignkit.errors.AlignkitError` (:func:`alignkit.models.resolve_model`)."""
    import json
    from pathlib import Path

    from alignkit.models import resolve_model

    where = resolve_model(model)
    cfg: Any = None
    if Path(where).is_dir():
        try:
            cfg = json.loads((Path(where) / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    else:
        try:
            from transformers import AutoConfig

            cfg = AutoConfig.from_pretrained(where).to_dict()
        except Exception:  # noqa: BLE001 - the load itself reports hub problems later
            return None
    for c in (cfg, cfg.get("text_config") if isinstance(cfg, dict) else None):
        n = c.get("num_hidden_layers") if isinstance(c, dict) else None
        if isinstance(n, int) and n > 0:
            return n
    return None
