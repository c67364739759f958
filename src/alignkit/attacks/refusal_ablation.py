"""``refusal-ablation``: directional ablation of the refusal direction by weight orthogonalisation.

Method (docs/methods.md section 1, "refusal-ablation"; Arditi et al. 2024, "Refusal in language models is
mediated by a single direction", with the searchable per-layer kernel popularised by abliteration tools):

1. **Directions.** For harmful and harmless instructions (train splits), the residual stream entering every
   decoder layer is read at the post-instruction positions (the chat-template tokens after the instruction,
   e.g. ``<|im_end|>\\n<|im_start|>assistant\\n``). Per position and layer, the candidate direction is the
   difference of the two means (:func:`difference_in_means`).
2. **Selection** on validation prompts (:func:`select_direction`): per candidate, ablating it from every
   layer must lower the refusal score of harmful prompts the most, while the next-token KL divergence on
   harmless prompts stays under a bound and adding the direction to harmless prompts raises their refusal
   score; candidates in the last 20% of layers are left out. The refusal score is the log-odds of the
   refusal tokens (``"I"``, ``"As"``) at the first generated position (no generation needed).
3. **Orthogonalisation** (:func:`orthogonalize`): every matrix that writes to the residual stream (token
   embeddings, attention output projection, MLP down projection) loses its component along the unit direction
   ``r``, scaled by a per-layer weight: ``W <- W - w r r^T W`` (``nn.Linear`` weights are ``[out, in]`` and the
   residual is the output side; embedding rows are residual vectors). A tied ``lm_head`` is untied first and
   keeps the original embedding matrix as its unembedding.
4. The edited model is an ordinary Hugging Face folder (safetensors, no hooks, no custom code).

Searchable (:class:`AblationParams`): the direction layer as a float (a fraction interpolates the two
neighbouring layers' directions) and, separately for attention and MLP, a per-layer weight kernel
(peak, position, width, floor); :func:`layer_weights`. The attack's budget is the ablation strength, a
global multiplier on every weight (0 = the untouched model, 1 = the full kernel).
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Optional, Sequence

import torch
from pydantic import Field, field_validator

from alignkit.attacks.base import ATTACKS
from alignkit.attacks.budget import BudgetAttack, check_budgets
from alignkit.attacks.config import AttackOptions
from alignkit.errors import AlignkitError

#: the paper's refusal tokens (first token of "I cannot ..." / "As an AI ...")
DEFAULT_REFUSAL_TOKENS = ("I", "As")
#: part of the shared-cache key of directions / selections: bump when their computation changes
CACHE_VERSION = 3


# ------------------------------------------------------------------------------------------------ model parts
def decoder_layers(model) -> Sequence[Any]:
    """The decoder blocks of a decoder-only transformers model (Llama-style ``model.model.layers``)."""
    base = getattr(model, "model", None)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise AlignkitError(f"refusal-ablation supports Llama-style decoder models (model.model.layers); "
                            f"{type(model).__name__} has none")
    return layers


def residual_writers(model) -> dict[str, list[torch.nn.Module]]:
    """``{"attn": [o_proj per layer], "mlp": [down_proj per layer]}``: the modules whose output is added to the
    residual stream."""
    out: dict[str, list[torch.nn.Module]] = {"attn": [], "mlp": []}
    for i, layer in enumerate(decoder_layers(model)):
        attn = getattr(getattr(layer, "self_attn", None), "o_proj", None)
        mlp = getattr(getattr(layer, "mlp", None), "down_proj", None)
        if not isinstance(attn, torch.nn.Linear) or not isinstance(mlp, torch.nn.Linear):
            raise AlignkitError(f"refusal-ablation needs self_attn.o_proj and mlp.down_proj linear layers; layer {i} "
                                f"of {type(model).__name__} lacks them")
        out["attn"].append(attn)
        out["mlp"].append(mlp)
    return out


def check_layer(model, layer: float, what: str = "--direction-layer") -> None:
    n = len(decoder_layers(model))
    if not (0 <= layer <= n - 1):
        raise AlignkitError(f"{what} {layer:g} is outside the model's layers 0..{n - 1}; give a layer in that range")


# ------------------------------------------------------------------------------------------------ prompts
def post_instruction_length(tokenizer, template: str = "chat") -> int:
    """Number of tokens the prompt format puts after the instruction (>= 1)."""
    from alignkit.formatting import format_prompt

    marker = "Xq7Zr"
    text = format_prompt(tokenizer, marker, template)
    cut = text.rfind(marker)
    if cut < 0:
        return 1
    full = tokenizer(text, add_special_tokens=False)["input_ids"]
    head = tokenizer(text[:cut + len(marker)], add_special_tokens=False)["input_ids"]
    if full[:len(head)] != head:  # the boundary merged into one token: count the tail alone
        return max(1, len(tokenizer(text[cut + len(marker):], add_special_tokens=False)["input_ids"]))
    return max(1, len(full) - len(head))


def encode_prompts(tokenizer, instructions: Sequence[str], template: str = "chat") -> list[list[int]]:
    from alignkit.formatting import format_prompt

    return [tokenizer(format_prompt(tokenizer, q, template), add_special_tokens=False)["input_ids"]
            for q in instructions]


def pick_prompts(texts: Sequence[str], n: int, seed: str, *, tokenizer=None, max_tokens: int | None = None,
                 exclude: Sequence[str] = ()) -> list[str]:
    """``n`` unique texts (seeded order), leaving out ``exclude`` and, when ``max_tokens`` is given, texts
    longer than that many tokens (the instruction alone)."""
    seen, out = {" ".join(t.split()).lower() for t in exclude}, []
    for t in texts:
        key = " ".join(t.split()).lower()
        if not key or key in seen:
            continue
        seen.add(key)
        out.append(t)
    out.sort()
    random.Random(seed).shuffle(out)
    if max_tokens is not None and tokenizer is not None:
        out = [t for t in out if len(tokenizer(t, add_special_tokens=False)["input_ids"]) <= max_tokens]
    return out[:n]


def _batches(ids: list[list[int]], batch_size: int, pad_id: int) -> Iterator[tuple[list[int], dict]]:
    """Left-padded batches of similar length; yields (original indices, model inputs with position ids)."""
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        n = max(len(ids[i]) for i in idx)
        input_ids = torch.full((len(idx), n), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), n), dtype=torch.long)
        for j, i in enumerate(idx):
            input_ids[j, n - len(ids[i]):] = torch.tensor(ids[i])
            mask[j, n - len(ids[i]):] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        yield idx, {"input_ids": input_ids, "attention_mask": mask, "position_ids": pos}


def _device(model) -> torch.device:
    return next(model.parameters()).device


# ------------------------------------------------------------------------------------------------ directions
@torch.no_grad()
def mean_activations(model, ids: list[list[int]], n_positions: int, *, batch_size: int = 16,
                     pad_id: int = 0) -> torch.Tensor:
    """Mean residual stream entering each decoder layer at the last ``n_positions`` tokens:
    ``[n_positions, n_layers, d]`` (float32)."""
    n_layers = len(decoder_layers(model))
    total: torch.Tensor | None = None
    dev = _device(model)
    base = model.model
    for _, batch in _batches(ids, batch_size, pad_id):
        out = base(**{k: v.to(dev) for k, v in batch.items()}, output_hidden_states=True, use_cache=False)
        # hidden_states[l] (l < n_layers) is the input of layer l; the last entry is after the final norm
        hs = torch.stack([h[:, -n_positions:, :].float() for h in out.hidden_states[:n_layers]], dim=2)
        s = hs.sum(0)  # [n_positions, n_layers, d]
        total = s if total is None else total + s
    assert total is not None
    return (total / len(ids)).cpu()


def difference_in_means(model, tokenizer, harmful: Sequence[str], harmless: Sequence[str], *,
                        template: str = "chat", n_positions: int | None = None, batch_size: int = 16
                        ) -> torch.Tensor:
    """Candidate refusal directions ``mean(harmful) - mean(harmless)``, ``[n_positions, n_layers, d]``
    (not normalised; index ``-1`` on the first axis is the last prompt token)."""
    if not harmful or not harmless:
        raise AlignkitError("refusal-ablation needs harmful and harmless instructions to compute directions; "
                            "one of the prompt sets is empty")
    n_positions = n_positions or post_instruction_length(tokenizer, template)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    mu_h = mean_activations(model, encode_prompts(tokenizer, harmful, template), n_positions,
                            batch_size=batch_size, pad_id=pad)
    mu_s = mean_activations(model, encode_prompts(tokenizer, harmless, template), n_positions,
                            batch_size=batch_size, pad_id=pad)
    return mu_h - mu_s


def direction_at(directions: torch.Tensor, layer: float, position: int = -1) -> torch.Tensor:
    """The unit direction at a (fractional) layer: linear interpolation of the two neighbouring layers'
    directions at ``position``, normalised."""
    per_layer = directions[position]
    n = per_layer.shape[0]
    if not (0 <= layer <= n - 1):
        raise AlignkitError(f"--direction-layer {layer:g} is outside the model's layers 0..{n - 1}; give a layer "
                            "in that range")
    lo = int(math.floor(layer))
    hi = min(lo + 1, n - 1)
    frac = float(layer) - lo
    v = per_layer[lo] * (1 - frac) + per_layer[hi] * frac
    norm = v.norm()
    if not torch.isfinite(norm) or norm <= 0:
        raise AlignkitError(f"the refusal direction at layer {layer:g} is zero or not finite; the harmful and "
                            "harmless prompts give the same activations there")
    return v / norm


# ------------------------------------------------------------------------------------------------ kernel
def layer_weights(n_layers: int, *, peak: float = 1.0, position: float = 0.0, width: float | None = None,
                  floor: float = 1.0) -> list[float]:
    """Per-layer ablation weight: ``peak`` at layer ``position``, falling linearly to ``floor`` at distance
    ``width``, 0 beyond it. ``width=None``: every layer, at ``peak`` (``floor`` ignored) - the paper's full
    ablation."""
    if width is None:
        return [float(peak)] * n_layers
    out = []
    for i in range(n_layers):
        d = abs(i - position)
        if d > width:
            out.append(0.0)
        elif width <= 0:
            out.append(float(peak))
        else:
            out.append(float(peak + (floor - peak) * d / width))
    return out


@dataclass
class AblationParams:
    """What to ablate and how strongly (everything a searcher tunes; ``strength`` is the curve's budget)."""

    direction_layer: float
    direction_position: int = -1
    attn_peak: float = 1.0
    attn_position: float = 0.0
    attn_width: Optional[float] = None
    attn_floor: float = 1.0
    mlp_peak: float = 1.0
    mlp_position: float = 0.0
    mlp_width: Optional[float] = None
    mlp_floor: float = 1.0
    embedding_weight: float = 1.0
    strength: float = 1.0

    def weights(self, n_layers: int) -> dict[str, list[float]]:
        s = self.strength
        return {
            "attn": [s * w for w in layer_weights(n_layers, peak=self.attn_peak, position=self.attn_position,
                                                  width=self.attn_width, floor=self.attn_floor)],
            "mlp": [s * w for w in layer_weights(n_layers, peak=self.mlp_peak, position=self.mlp_position,
                                                 width=self.mlp_width, floor=self.mlp_floor)],
            "embedding": [s * self.embedding_weight],
        }


# ------------------------------------------------------------------------------------------------ weights
def untie_lm_head(model) -> bool:
    """Give a tied ``lm_head`` its own copy of the embedding matrix (so orthogonalising the embeddings leaves
    the unembedding as it was). Returns True when it was tied."""
    head = model.get_output_embeddings()
    emb = model.get_input_embeddings()
    if head is None or head.weight is not emb.weight and head.weight.data_ptr() != emb.weight.data_ptr():
        return False
    head.weight = torch.nn.Parameter(emb.weight.detach().clone())
    model.config.tie_word_embeddings = False
    text_cfg = getattr(model.config, "get_text_config", None)
    if callable(text_cfg):
        with contextlib.suppress(Exception):
            text_cfg().tie_word_embeddings = False
    # transformers 5 re-ties from _tied_weights_keys on save/load unless the config says otherwise
    return True


@torch.no_grad()
def orthogonalize(model, direction: torch.Tensor, weights: dict[str, list[float]]) -> None:
    """In place: ``W <- W - w r r^T W`` for every o_proj / down_proj (``weights["attn"|"mlp"][layer]``) and the
    embedding rows ``e <- e - w (e.r) r`` (``weights["embedding"][0]``); biases of those layers likewise."""
    writers = residual_writers(model)
    r32 = direction.float()
    for kind in ("attn", "mlp"):
        for mod, w in zip(writers[kind], weights[kind]):
            if w == 0:
                continue
            W = mod.weight
            r = r32.to(W.device)
            Wf = W.float()
            Wf -= w * torch.outer(r, r @ Wf)
            W.copy_(Wf.to(W.dtype))
            if mod.bias is not None:
                b = mod.bias.float()
                mod.bias.copy_((b - w * (b @ r) * r).to(mod.bias.dtype))
    we = weights["embedding"][0]
    if we != 0:
        untie_lm_head(model)
        E = model.get_input_embeddings().weight
        r = r32.to(E.device)
        Ef = E.float()
        Ef -= we * torch.outer(Ef @ r, r)
        E.copy_(Ef.to(E.dtype))


@contextlib.contextmanager
def ablation_hooks(model, direction: torch.Tensor, weights: dict[str, list[float]]) -> Iterator[None]:
    """The same edit as :func:`orthogonalize`, as forward hooks (nothing is changed in the weights): each
    residual writer's output ``y`` becomes ``y - w (y.r) r``."""
    handles = []

    def make(w: float):
        def hook(_mod, _inp, out):
            r = direction.to(device=out.device, dtype=out.dtype)
            return out - w * (out @ r).unsqueeze(-1) * r
        return hook

    writers = residual_writers(model)
    try:
        for kind in ("attn", "mlp"):
            for mod, w in zip(writers[kind], weights[kind]):
                if w != 0:
                    handles.append(mod.register_forward_hook(make(w)))
        if weights["embedding"][0] != 0:
            handles.append(model.get_input_embeddings().register_forward_hook(make(weights["embedding"][0])))
        yield
    finally:
        for h in handles:
            h.remove()


@contextlib.contextmanager
def addition_hook(model, layer: int, vector: torch.Tensor) -> Iterator[None]:
    """Activation addition: ``vector`` added to the residual stream entering ``layer`` at every position."""
    block = decoder_layers(model)[layer]

    def pre(_mod, args, kwargs):
        if args:
            h = args[0]
            return (h + vector.to(device=h.device, dtype=h.dtype),) + tuple(args[1:]), kwargs
        h = kwargs["hidden_states"]
        return args, {**kwargs, "hidden_states": h + vector.to(device=h.device, dtype=h.dtype)}

    handle = block.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


# ------------------------------------------------------------------------------------------------ scores
def refusal_token_ids(tokenizer, words: Sequence[str]) -> list[int]:
    """The first token id of each refusal word (as the model's answer would start with it)."""
    ids = []
    for w in words:
        toks = tokenizer(w, add_special_tokens=False)["input_ids"]
        if not toks:
            raise AlignkitError(f"refusal token {w!r} encodes to no tokens; give a word such as 'I'")
        ids.append(int(toks[0]))
    return sorted(set(ids))


@torch.no_grad()
def next_token_logprobs(model, ids: list[list[int]], *, batch_size: int = 16, pad_id: int = 0) -> torch.Tensor:
    """Log-probabilities of the next token after each prompt, ``[n, vocab]`` (float32, input order)."""
    dev = _device(model)
    out = torch.empty(0)
    rows: dict[int, torch.Tensor] = {}
    for idx, batch in _batches(ids, batch_size, pad_id):
        logits = model(**{k: v.to(dev) for k, v in batch.items()}, use_cache=False, logits_to_keep=1).logits
        lp = torch.log_softmax(logits[:, -1, :].float(), dim=-1).cpu()
        for j, i in enumerate(idx):
            rows[i] = lp[j]
    if rows:
        out = torch.stack([rows[i] for i in range(len(ids))])
    return out


def refusal_scores(logprobs: torch.Tensor, token_ids: Sequence[int]) -> torch.Tensor:
    """Per prompt: ``log p(refusal) - log(1 - p(refusal))``, p = total probability of the refusal tokens."""
    lp = torch.logsumexp(logprobs[:, list(token_ids)], dim=-1)
    p = lp.exp().clamp(max=1 - 1e-7)
    return lp - torch.log1p(-p)


def _next_token_kl(base_logprobs: torch.Tensor, new_logprobs: torch.Tensor) -> float:
    """Mean KL(base || new) of next-token distributions over prompts."""
    return float(torch.nn.functional.kl_div(new_logprobs, base_logprobs, reduction="batchmean", log_target=True))


# ------------------------------------------------------------------------------------------------ selection
@dataclass
class Candidate:
    position: int
    layer: int
    refusal: float = float("nan")       # mean refusal score on harmful val prompts, direction ablated
    kl: float = float("nan")            # KL on harmless val prompts, direction ablated
    steering: float = float("nan")      # mean refusal score on harmless val prompts, direction added
    passed: bool = False


@dataclass
class Selection:
    position: int
    layer: int
    candidates: list[Candidate]
    base_refusal_harmful: float
    base_refusal_harmless: float
    reason: str
    seconds: float = 0.0
    layers_scored: list[int] = field(default_factory=list)


def select_direction(model, tokenizer, directions: torch.Tensor, val_harmful: Sequence[str],
                     val_harmless: Sequence[str], *, template: str = "chat", refusal_tokens: Sequence[str] =
                     DEFAULT_REFUSAL_TOKENS, kl_bound: float = 0.1, prune_last: float = 0.2, stride: int = 2,
                     positions: Sequence[int] = (-1,), batch_size: int = 16, max_checks: int = 5,
                     kl_fn=None) -> Selection:
    """Pick the (position, layer) candidate as the paper does: lowest refusal score on harmful prompts with the
    direction ablated from every layer, among candidates below the last ``prune_last`` share of layers whose
    ablation keeps the harmless next-token KL under ``kl_bound`` and whose addition at its own layer raises the
    harmless refusal score above 0 (the paper's check that the direction induces refusal).

    Cost control (documented deviation): layers are scored every ``stride`` layers, then the neighbours of the
    best are scored too; only ``positions`` (default: the last token) are candidates; KL and steering are
    computed in order of the refusal score until one candidate passes; induced refusal is checked for at most
    ``max_checks`` candidates under the KL bound (0 = all of them, as the paper), after which the first candidate
    under the bound is taken.
    """
    t0 = time.time()
    if not val_harmful or not val_harmless:
        raise AlignkitError("refusal-ablation needs harmful and harmless validation prompts to select a direction; "
                            "one of the prompt sets is empty")
    kl_fn = kl_fn or _next_token_kl
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    tok_ids = refusal_token_ids(tokenizer, refusal_tokens)
    ids_h = encode_prompts(tokenizer, val_harmful, template)
    ids_s = encode_prompts(tokenizer, val_harmless, template)
    n_pos, n_layers, _ = directions.shape
    # candidate layers 0 .. max_layer-1 (at least two: layer 0 reads the template tokens' embeddings alone)
    max_layer = max(min(2, n_layers), int(math.floor(n_layers * (1 - prune_last))))
    stride = max(1, int(stride))

    def lp(ids):
        return next_token_logprobs(model, ids, batch_size=batch_size, pad_id=pad)

    base_h, base_s = lp(ids_h), lp(ids_s)
    full = {"attn": [1.0] * n_layers, "mlp": [1.0] * n_layers, "embedding": [1.0]}
    cands: dict[tuple[int, int], Candidate] = {}

    def score(p: int, l: int) -> Candidate:
        if (p, l) not in cands:
            r = direction_at(directions, l, p)
            with ablation_hooks(model, r, full):
                s = float(refusal_scores(lp(ids_h), tok_ids).mean())
            cands[(p, l)] = Candidate(position=p, layer=l, refusal=s)
        return cands[(p, l)]

    norms = directions.norm(dim=-1)  # [n_pos, n_layers]

    def usable(p: int, l: int) -> bool:  # e.g. layer 0 at template tokens: the same embedding for every prompt
        return bool(norms[p, l] > 1e-6 * float(norms.max()))

    for p in positions:
        for l in [l for l in range(max_layer) if usable(p, l)][::stride]:
            score(p, l)
    if not cands:
        raise AlignkitError("every candidate refusal direction is zero: the harmful and harmless prompts give the same "
                            "activations at the post-instruction positions; check the prompt sets")
    if stride > 1:  # refine around the best coarse layers
        best = sorted(cands.values(), key=lambda c: c.refusal)[:2]
        for c in best:
            for l in range(max(0, c.layer - stride + 1), min(max_layer, c.layer + stride)):
                if usable(c.position, l):
                    score(c.position, l)
    ranked = sorted(cands.values(), key=lambda c: c.refusal)
    chosen, reason = None, ""
    steered = 0
    for c in ranked:  # KL for every candidate in order until one passes; induced refusal for <= max_checks of them
        r = direction_at(directions, c.layer, c.position)
        with ablation_hooks(model, r, full):
            c.kl = kl_fn(base_s, lp(ids_s))
        if not c.kl < kl_bound:
            continue
        if max_checks and steered >= max_checks:
            break
        raw = directions[c.position, c.layer]
        with addition_hook(model, c.layer, raw):
            c.steering = float(refusal_scores(lp(ids_s), tok_ids).mean())
        steered += 1
        if c.steering > 0:
            c.passed = True
            chosen, reason = c, "lowest harmful refusal score with KL under the bound and refusal induced"
            break
    if chosen is None:
        under = [c for c in ranked if c.kl == c.kl and c.kl < kl_bound]
        # none under the bound: the candidate that disturbs harmless prompts least (the lowest refusal score whatever
        # its KL wrecked RepNoise's model at layer 4: 94% incoherent answers, which a judge reads as refusals)
        chosen = under[0] if under else min(ranked, key=lambda c: c.kl if c.kl == c.kl else float("inf"))
        reason = (f"none of the {steered} candidates under the KL bound checked induced refusal when added; lowest "
                  "refusal score with KL under the bound" if under
                  else f"no candidate kept KL under the bound {kl_bound:g}; the lowest KL ({chosen.kl:.3f}): no usable "
                  "direction")
    return Selection(position=chosen.position, layer=chosen.layer, candidates=ranked,
                     base_refusal_harmful=float(refusal_scores(base_h, tok_ids).mean()),
                     base_refusal_harmless=float(refusal_scores(base_s, tok_ids).mean()), reason=reason,
                     seconds=round(time.time() - t0, 2), layers_scored=sorted({c.layer for c in ranked}))


# ------------------------------------------------------------------------------------------------ prompt sources
def load_instructions(source: str, split: str, *, seed: int = 0, option: str = "--harmful-prompts") -> list[str]:
    """Instruction texts from a registered dataset (its ``split``) or a user file: ``.txt`` (one per line) or
    ``.jsonl`` / ``.json`` objects with a ``prompt``, ``question``, ``instruction`` or ``text`` field."""
    from pathlib import Path

    from alignkit import data

    if source in data.names():
        recs = data.load(source, split=split, seed=seed)
        out = [getattr(r, "question", None) or getattr(r, "prompt", None) or getattr(r, "instruction", None)
               or "" for r in recs]
        where = f"{source}:{split}"
    else:
        p = Path(source).expanduser()
        if not p.is_file():
            raise AlignkitError(f"{option} {source!r} is neither a registered dataset ({', '.join(data.names())}) nor "
                                "an existing file (.txt one prompt per line, .jsonl/.json with a prompt field)")
        if p.suffix.lower() in (".jsonl", ".json"):
            from alignkit.io import read_records

            out = []
            for i, row in enumerate(read_records(p)):
                text = next((row[k] for k in ("prompt", "question", "instruction", "text")
                             if isinstance(row.get(k), str)), None)
                if text is None:
                    raise AlignkitError(f"{option} {str(p)!r} row {i + 1}: no prompt, question, instruction or "
                                        "text field")
                out.append(text)
        else:
            try:
                out = p.read_text(encoding="utf-8").splitlines()
            except UnicodeDecodeError:
                raise AlignkitError(f"{option} {str(p)!r} is not UTF-8 text; re-save it as UTF-8") from None
        where = str(p)
    out = [str(t).strip() for t in out if t and str(t).strip()]
    if not out:
        raise AlignkitError(f"{option} {where} holds no prompts; give a file with one prompt per line or a "
                            "dataset split with rows")
    return out


# ------------------------------------------------------------------------------------------------ the attack
class RefusalAblationConfig(AttackOptions):
    """Refusal-direction ablation (Arditi et al. 2024): difference-in-means directions from harmful vs harmless
    instructions, one chosen on validation prompts, projected out of every matrix writing to the residual stream
    (embeddings, attention output, MLP output) with a per-layer weight kernel; harmfulness curve over the
    ablation strength (% of the kernel). The edited model is a plain Hugging Face folder (--save-model)."""

    attack: Literal["refusal-ablation"] = Field("refusal-ablation", description="attack family (refusal-ablation)")
    strengths: list[int] = Field(default_factory=lambda: [0, 25, 50, 75, 100],
                                 description="ablation strengths in % of the kernel's weights (the curve's budgets; "
                                 "0 = the untouched model)")
    harmful_prompts: str = Field("harmful-qa", min_length=1, description="harmful instructions for the directions: "
                                 "a registered dataset or a file (.txt one per line, .jsonl/.json)")
    harmful_split: str = Field("train", min_length=1, description="split of a registered --harmful-prompts")
    harmless_prompts: str = Field("harmless-instructions", min_length=1, description="harmless instructions for "
                                  "the directions: a registered dataset or a file")
    harmless_split: str = Field("train", min_length=1, description="split of a registered --harmless-prompts")
    val_harmful_prompts: str = Field("harmful-eval", min_length=1, description="harmful validation instructions "
                                     "(direction selection): a registered dataset or a file")
    val_harmful_split: str = Field("eval", min_length=1, description="split of a registered --val-harmful-prompts")
    val_harmless_prompts: str = Field("harmless-instructions", min_length=1, description="harmless validation "
                                      "instructions (selection's KL and steering checks); never the ones the "
                                      "directions used")
    val_harmless_split: str = Field("train", min_length=1, description="split of a registered "
                                    "--val-harmless-prompts")
    n_train: int = Field(64, ge=1, description="harmful and harmless instructions each for the directions")
    n_val: int = Field(16, ge=1, description="harmful and harmless validation instructions each for selection")
    max_prompt_tokens: int = Field(64, ge=1, description="leave out instructions longer than this many tokens "
                                   "(direction and validation prompts; keeps the forward passes short)")
    refusal_tokens: list[str] = Field(default_factory=lambda: list(DEFAULT_REFUSAL_TOKENS),
                                      description="words whose first token starts a refusal (refusal score = "
                                      "log-odds of these at the first response position)")
    kl_bound: float = Field(0.1, gt=0, description="selection: a candidate's ablation must keep the harmless "
                            "next-token KL divergence below this")
    prune_last: float = Field(0.2, ge=0, lt=1, description="selection: leave out candidate layers in this last "
                              "share of the model")
    selection_stride: int = Field(2, ge=1, description="selection: score every N-th layer, then the neighbours of "
                                  "the best two (1 = every layer, as the paper)")
    selection_checks: int = Field(5, ge=0, description="selection: check induced refusal for at most this many "
                                  "candidates under the KL bound, best refusal score first (0 = all, as the paper)")
    selection_positions: int = Field(1, ge=0, description="selection: candidates at the last N post-instruction "
                                     "positions (0 = all of them, as the paper)")
    layer_units: Literal["layers", "depth"] = Field("layers", description="unit of --direction-layer and the "
                                                    "kernels' positions and widths: layer indices, or fractions of "
                                                    "the depth (0 = first layer, 1 = last; a search space that "
                                                    "fits every model)")
    direction_layer: Optional[float] = Field(None, ge=0, description="use the direction at this layer (a fraction "
                                             "interpolates two layers) instead of selecting one")
    direction_position: Optional[int] = Field(None, le=-1, description="post-instruction position of "
                                              "--direction-layer's direction (-1 = last prompt token); default: the "
                                              "selected one, or -1")
    attn_peak: float = Field(1.0, ge=0, description="attention output kernel: weight at its peak layer")
    attn_position: Optional[float] = Field(None, ge=0, description="attention kernel: peak layer (default: the "
                                           "direction's layer)")
    attn_width: Optional[float] = Field(None, gt=0, description="attention kernel: distance in layers at which "
                                        "the weight reaches --attn-floor (0 beyond); default: every layer at "
                                        "--attn-peak")
    attn_floor: float = Field(1.0, ge=0, description="attention kernel: weight at --attn-width from the peak")
    mlp_peak: float = Field(1.0, ge=0, description="MLP output kernel: weight at its peak layer")
    mlp_position: Optional[float] = Field(None, ge=0, description="MLP kernel: peak layer (default: the "
                                          "direction's layer)")
    mlp_width: Optional[float] = Field(None, gt=0, description="MLP kernel: distance in layers at which the "
                                       "weight reaches --mlp-floor (0 beyond); default: every layer at --mlp-peak")
    mlp_floor: float = Field(1.0, ge=0, description="MLP kernel: weight at --mlp-width from the peak")
    embedding_weight: float = Field(1.0, ge=0, description="weight of the token-embedding orthogonalisation")
    batch_size: int = Field(16, ge=1, description="prompts per forward pass (directions and selection)")
    share_directions: bool = Field(True, description="reuse (and store) directions and selections in "
                                   "$ALIGNKIT_HOME/cache/refusal-ablation, keyed by the model's weights, the prompts "
                                   "and these settings (a search's trials compute them once)")

    @field_validator("strengths")
    @classmethod
    def _budgets(cls, v: list[int]) -> list[int]:
        return check_budgets(v, "--strengths")

    @field_validator("refusal_tokens")
    @classmethod
    def _tokens(cls, v: list[str]) -> list[str]:
        if not v or not all(t.strip() for t in v):
            raise ValueError("give at least one non-empty --refusal-tokens word, e.g. I")
        return v


def _key(text: str) -> str:
    return " ".join(text.split()).lower()


@ATTACKS.register("refusal-ablation")
class RefusalAblation(BudgetAttack):
    """Refusal-direction ablation (see the module docstring)."""

    config_class = RefusalAblationConfig
    budget_label = "ablation strength (%)"
    changes_weights = True

    def budgets(self) -> list[int]:
        return list(self.config.strengths)

    # ---- inputs
    def _prompt_sets(self) -> dict[str, list[str]]:
        from alignkit.harmfulness import _prompt_fields

        from alignkit import data

        c, tok = self.config, self.tokenizer
        # never fit or select on an evaluation prompt: the whole evaluation split is left out, not only the sample
        held_out = [_prompt_fields(p)[0] for p in self.prompts]
        if c.eval_dataset in data.names():
            held_out += [_prompt_fields(p)[0] for p in data.load(c.eval_dataset, split=c.eval_split, seed=c.data_seed)]
        seed = c.data_seed

        def src(name, split, opt):
            return load_instructions(name, split, seed=seed, option=opt)

        harmful = pick_prompts(src(c.harmful_prompts, c.harmful_split, "--harmful-prompts"), c.n_train,
                               f"ra-harmful-{seed}", tokenizer=tok, max_tokens=c.max_prompt_tokens, exclude=held_out)
        harmless = pick_prompts(src(c.harmless_prompts, c.harmless_split, "--harmless-prompts"), c.n_train,
                                f"ra-harmless-{seed}", tokenizer=tok, max_tokens=c.max_prompt_tokens,
                                exclude=held_out)
        val_h = pick_prompts(src(c.val_harmful_prompts, c.val_harmful_split, "--val-harmful-prompts"), c.n_val,
                             f"ra-val-harmful-{seed}", tokenizer=tok, max_tokens=c.max_prompt_tokens,
                             exclude=held_out + harmful)
        val_s = pick_prompts(src(c.val_harmless_prompts, c.val_harmless_split, "--val-harmless-prompts"), c.n_val,
                             f"ra-val-harmless-{seed}", tokenizer=tok, max_tokens=c.max_prompt_tokens,
                             exclude=held_out + harmless)
        for name, got in (("--harmful-prompts", harmful), ("--harmless-prompts", harmless),
                          ("--val-harmful-prompts", val_h), ("--val-harmless-prompts", val_s)):
            if not got:
                raise AlignkitError(f"{name}: no prompt left after leaving out the evaluation prompts, the direction "
                                    f"prompts and those longer than --max-prompt-tokens {c.max_prompt_tokens}; give "
                                    "other prompts or raise --max-prompt-tokens")
        return {"harmful": harmful, "harmless": harmless, "val_harmful": val_h, "val_harmless": val_s}

    def check(self) -> None:
        c = self.config
        n = len(decoder_layers(self.model))
        residual_writers(self.model)
        self.scale = float(n - 1) if c.layer_units == "depth" else 1.0
        top, unit = (1, "fractions of the depth 0..1") if c.layer_units == "depth" else (n - 1, f"layers 0..{n - 1}")
        for opt, v in (("--direction-layer", c.direction_layer), ("--attn-position", c.attn_position),
                       ("--mlp-position", c.mlp_position)):
            if v is not None and v > top:
                raise AlignkitError(f"{opt} {v:g} is outside the model's {unit}; give a value in that range")
        self.n_post = post_instruction_length(self.tokenizer, c.template)
        if c.direction_position is not None and -c.direction_position > self.n_post:
            raise AlignkitError(f"--direction-position {c.direction_position} is outside the {self.n_post} "
                                f"post-instruction positions of the {c.template} format; give -1..-{self.n_post}")
        refusal_token_ids(self.tokenizer, c.refusal_tokens)
        self.sets = self._prompt_sets()
        self.num_train_samples = len(self.sets["harmful"]) + len(self.sets["harmless"])
        self._edited: dict[int, Any] = {}

    # ---- directions and selection (cached in the run folder)
    #: config fields that decide the directions / the selection (with the model's weights and the held-out prompts)
    DIRECTION_FIELDS = ("model", "template", "data_seed", "dtype", "eval_dataset", "eval_split",
                        "harmful_prompts", "harmful_split", "harmless_prompts", "harmless_split", "n_train",
                        "max_prompt_tokens")
    SELECTION_FIELDS = ("val_harmful_prompts", "val_harmful_split", "val_harmless_prompts", "val_harmless_split",
                        "n_val", "refusal_tokens", "kl_bound", "prune_last", "selection_stride", "selection_positions",
                        "selection_checks")

    def _keys(self) -> tuple[str, str]:
        from alignkit.conditions.context import model_fingerprint
        from alignkit.models import resolve_model
        from alignkit.training import config_hash

        values = self.config.model_dump(mode="json")
        d = {k: values[k] for k in self.DIRECTION_FIELDS}
        d["weights"] = model_fingerprint(resolve_model(self.config.model))
        d["code"] = CACHE_VERSION
        d["prompts"] = config_hash({k: self.sets[k] for k in ("harmful", "harmless")})
        dkey = config_hash(d)
        skey = config_hash({"directions": dkey, **{k: values[k] for k in self.SELECTION_FIELDS},
                            "prompts": config_hash({k: self.sets[k] for k in ("val_harmful", "val_harmless")})})
        return dkey, skey

    def setup(self, run_dir) -> None:
        """Directions and (unless --direction-layer is given) the selection, each computed once: read back from
        the run folder, else from the shared cache ``$ALIGNKIT_HOME/cache/refusal-ablation`` (same weights, prompts
        and settings; --share-directions), else computed and written to both."""
        import json
        from pathlib import Path

        from safetensors.torch import load_file, save_file

        from alignkit.io import atomic_write_text, unique_temp
        from alignkit.paths import alignkit_home

        c = self.config
        dkey, skey = self._keys()
        places = [Path(run_dir)]
        if c.share_directions:
            places.append(alignkit_home() / "cache" / "refusal-ablation")
        self.timings: dict[str, float] = {}

        def read(name: str):
            for place in places:
                f = place / name
                try:
                    if name.endswith(".safetensors"):
                        return load_file(str(f))["directions"] if f.is_file() else None
                    return json.loads(f.read_text(encoding="utf-8")) if f.is_file() else None
                except (OSError, ValueError, KeyError):
                    continue
            return None

        def write(name: str, obj) -> None:
            for place in places:
                place.mkdir(parents=True, exist_ok=True)
                if name.endswith(".safetensors"):
                    with unique_temp(place / name) as tmp:
                        save_file({"directions": obj.contiguous()}, str(tmp))
                else:
                    atomic_write_text(place / name, json.dumps(obj, indent=1, default=float))

        directions = read(f"directions-{dkey}.safetensors")
        if directions is None:
            t0 = time.time()
            directions = difference_in_means(self.model, self.tokenizer, self.sets["harmful"], self.sets["harmless"],
                                             template=c.template, n_positions=self.n_post, batch_size=c.batch_size)
            self.timings["directions_s"] = round(time.time() - t0, 2)
            write(f"directions-{dkey}.safetensors", directions)
        else:
            self.notes.append("directions reused from an earlier computation (same weights, prompts and settings)")
        self.directions = directions
        if c.direction_layer is not None:
            self.layer, self.position = float(c.direction_layer) * self.scale, c.direction_position or -1
            how = "given by --direction-layer"
        else:
            sel = read(f"selection-{skey}.json")
            if sel is None:
                npos = self.n_post if c.selection_positions == 0 else min(c.selection_positions, self.n_post)
                s = select_direction(self.model, self.tokenizer, directions, self.sets["val_harmful"],
                                     self.sets["val_harmless"], template=c.template, refusal_tokens=c.refusal_tokens,
                                     kl_bound=c.kl_bound, prune_last=c.prune_last, stride=c.selection_stride,
                                     positions=tuple(range(-npos, 0)), batch_size=c.batch_size,
                                     max_checks=c.selection_checks)
                self.timings["selection_s"] = s.seconds
                sel = {"layer": s.layer, "position": s.position, "reason": s.reason,
                       "base_refusal_harmful": s.base_refusal_harmful, "base_refusal_harmless": s.base_refusal_harmless,
                       "seconds": s.seconds, "candidates": [vars(x) for x in s.candidates]}
                write(f"selection-{skey}.json", sel)
            self.layer, self.position = float(sel["layer"]), int(sel["position"])
            how = f"selected on validation prompts ({sel['reason']})"
            if c.direction_position is not None:
                self.position = c.direction_position
        atomic_write_text(Path(run_dir) / "selection.json", json.dumps(
            {"layer": self.layer, "position": self.position, "how": how, "directions": f"directions-{dkey}.safetensors",
             "prompts": {k: len(v) for k, v in self.sets.items()}, "timings": self.timings}, indent=1))
        self.notes.append(f"refusal direction: layer {self.layer:g}, post-instruction position {self.position}, "
                          f"{how}")

    def params(self, strength: float) -> AblationParams:
        c, k = self.config, self.scale

        def layers(v):
            return None if v is None else v * k

        return AblationParams(
            direction_layer=self.layer, direction_position=self.position,
            attn_peak=c.attn_peak, attn_position=self.layer if c.attn_position is None else c.attn_position * k,
            attn_width=layers(c.attn_width), attn_floor=c.attn_floor,
            mlp_peak=c.mlp_peak, mlp_position=self.layer if c.mlp_position is None else c.mlp_position * k,
            mlp_width=layers(c.mlp_width), mlp_floor=c.mlp_floor, embedding_weight=c.embedding_weight,
            strength=strength)

    def attacked_model(self, budget: int):
        if budget == 0:
            return self.model
        if budget not in self._edited:
            import copy

            self._edited.clear()  # budgets come in increasing order: keep one edited copy
            m = copy.deepcopy(self.model)
            p = self.params(budget / 100.0)
            orthogonalize(m, direction_at(self.directions, p.direction_layer, p.direction_position),
                          p.weights(len(decoder_layers(m))))
            self._edited[budget] = m
        return self._edited[budget]

    def extra_metrics(self, budget: int, prompts: list, judge: Any) -> dict[str, Any]:
        """The next-token KL on the harmless validation prompts at this strength (0 at strength 0)."""
        if budget == 0:
            return {"harmless_kl": 0.0}
        from alignkit.attacks.capability import next_token_kl

        kl = next_token_kl(self.model, self.attacked_model(budget), self.tokenizer, self.sets["val_harmless"],
                           template=self.config.template, batch_size=self.config.batch_size)
        return {"harmless_kl": round(kl, 6)}

    def data_label(self) -> Optional[str]:
        c = self.config
        return (f"directions {c.harmful_prompts}:{c.harmful_split} vs {c.harmless_prompts}:{c.harmless_split} "
                f"n={c.n_train}+{c.n_train}; selection {c.val_harmful_prompts}:{c.val_harmful_split} vs "
                f"{c.val_harmless_prompts}:{c.val_harmless_split} n={c.n_val}+{c.n_val}")
