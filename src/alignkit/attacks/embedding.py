"""Embedding-space attack (Schwinn et al. 2024, "Soft prompt threats"; docs/methods.md section 1, "embedding").

A suffix of ``k`` continuous vectors is placed in the prompt's input embeddings, right after the user's
instruction and before the end-of-turn / assistant header of the chat template (``qa`` template: after the
question, before ``"\\nAnswer:"``), and optimised with the model frozen to maximise the likelihood of an
affirmative target (default ``"Sure, here is"``; ``{request}`` in the target is replaced by the prompt). The
model's weights never change. Two modes:

- ``per-prompt``: each evaluation prompt gets its own suffix, optimised on that prompt;
- ``universal``: one suffix optimised on training prompts (minibatches), evaluated on held-out prompts.

Optimiser: signed gradient descent with a fixed step (the paper's code: ``x -= step_size * sign(grad)``) or
Adam. Optional L2 bound: after every step each suffix vector is projected back to within ``eps`` of its
nearest real token embedding (``eps_center="nearest"``) or of its own initial vector (``"init"``).

Everything here is a plain function on tensors (tested on its own); :class:`EmbeddingAttack` at the bottom wires
it into the attack runner.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Literal, Optional, Sequence

import torch
import torch.nn.functional as F

from alignkit.errors import AlignkitError
from alignkit.formatting import format_prompt, has_chat_template

_MARK = "\ue000ALIGNKIT_SUFFIX\ue000"  # private-use sentinel: where the suffix goes in the formatted prompt


# --------------------------------------------------------------------------------------------- prompt pieces
@dataclass
class PromptParts:
    """Token ids of one attacked prompt: ``before`` (template up to and including the instruction), ``after``
    (end of the user turn and the assistant header) and ``target`` (the affirmative answer start)."""

    before: list[int]
    after: list[int]
    target: list[int]


def split_prompt(tokenizer, question: str, template: str = "chat") -> tuple[list[int], list[int]]:
    """Token ids before and after the suffix slot of the formatted prompt (the slot is right after the user's
    instruction). ``before + after`` is the unattacked prompt."""
    text = format_prompt(tokenizer, question.strip() + _MARK, template)
    if text.count(_MARK) != 1:
        raise AlignkitError("the model's chat template changes the user's message (it does not keep the text as "
                            "given), so the embedding suffix cannot be placed; use --template qa")
    before, after = text.split(_MARK)
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"] if s else []  # noqa: E731
    return enc(before), enc(after)


_HOW = re.compile(r"^(?:please\s+)?(?:(?:tell|show|teach)\s+me\s+|explain\s+)?how\s+(?:to\s+|(?:do|can|could|would|"
                  r"should|might|may)\s+(?:i|we|you|one|someone|people|a\s+person)\s+)", re.IGNORECASE)


def request_text(question: str, max_words: int = 16) -> str:
    """A prompt as the object of "how to ...": its first sentence, at most ``max_words`` words, end punctuation
    dropped, a leading "how do I" / "how can I" / "tell me how to" (and the like) dropped, first letter
    lower-cased ("How can I pick a lock?" -> "pick a lock"; "Write a phishing email" -> "write a phishing email")."""
    q = re.split(r"(?<=[.?!])\s+|\n", question.strip(), maxsplit=1)[0]
    q = " ".join(q.split()[:max_words]).rstrip("?.!:;, ").strip()
    q = _HOW.sub("", q, count=1).strip() or q
    return q[:1].lower() + q[1:] if q else q


def target_for(question: str, target: str) -> str:
    """The affirmative target for ``question``: ``target`` with ``{request}`` replaced by the request."""
    return target.replace("{request}", request_text(question))


def encode_parts(tokenizer, questions: Sequence[str], target: str, template: str = "chat") -> list[PromptParts]:
    out = []
    for q in questions:
        before, after = split_prompt(tokenizer, q, template)
        t = target_for(q, target)
        if not (template == "chat" and has_chat_template(tokenizer)):
            t = " " + t  # qa answers start after "Answer:" with a space (formatting._answer_text)
        ids = tokenizer(t, add_special_tokens=False)["input_ids"]
        if not ids:
            raise AlignkitError("the attack target is empty; give a non-empty --target")
        out.append(PromptParts(before, after, ids))
    return out


# --------------------------------------------------------------------------------------------- suffix init
def embedding_matrix(model) -> torch.Tensor:
    return model.get_input_embeddings().weight


def init_token_ids(tokenizer, k: int, init: str = "!", random_tokens: bool = False, seed: int = 0,
                   vocab_size: int | None = None) -> list[int]:
    """``k`` token ids to start from: the tokens of ``init`` repeated (``"!"`` x k, as GCG), or ``k`` random
    ordinary tokens drawn with ``seed`` (special tokens excluded)."""
    if k < 1:
        raise AlignkitError("the suffix needs at least one vector; give --suffix-length >= 1")
    if random_tokens:
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        n = vocab_size or len(tokenizer)
        rng = random.Random(f"embedding-init-{seed}")
        ids: list[int] = []
        while len(ids) < k:
            i = rng.randrange(n)
            if i not in special:
                ids.append(i)
        return ids
    ids = tokenizer(init, add_special_tokens=False)["input_ids"]
    if not ids:
        raise AlignkitError(f"--init {init!r} has no tokens; give a non-empty text such as '!'")
    return [ids[i % len(ids)] for i in range(k)]


def init_suffix(model, token_ids: Sequence[int], n: int = 1) -> torch.Tensor:
    """``(n, k, d)`` float32 suffix: the embeddings of ``token_ids``, one copy per suffix."""
    E = embedding_matrix(model).detach()
    s = E[torch.tensor(list(token_ids), device=E.device)].float()
    return s.unsqueeze(0).repeat(n, 1, 1).contiguous()


# --------------------------------------------------------------------------------------------- projection
@torch.no_grad()
def project(suffix: torch.Tensor, eps: float, centers: torch.Tensor | None = None,
            vocab: torch.Tensor | None = None, chunk: int = 4096) -> torch.Tensor:
    """Project every vector of ``suffix`` (``(..., d)``, in place) into the L2 ball of radius ``eps`` around
    its centre: the matching row of ``centers`` (same shape), or, with ``vocab`` (``(V, d)``), its nearest row of
    ``vocab``. The union of equal balls around all token embeddings is left by moving to the nearest ball, so
    the ``vocab`` form is the exact projection onto "within eps of some real token"."""
    flat = suffix.reshape(-1, suffix.shape[-1])
    if centers is None:
        if vocab is None:
            raise ValueError("give centers or vocab")
        V = vocab.to(flat.dtype)
        vn = (V * V).sum(-1)
        best_d = torch.full((flat.shape[0],), float("inf"), device=flat.device)
        best_i = torch.zeros(flat.shape[0], dtype=torch.long, device=flat.device)
        for s in range(0, V.shape[0], chunk):
            d = vn[s:s + chunk].unsqueeze(0) - 2 * flat @ V[s:s + chunk].T  # ||v||^2 dropped: same argmin
            m, i = d.min(dim=1)
            better = m < best_d
            best_d = torch.where(better, m, best_d)
            best_i = torch.where(better, i + s, best_i)
        c = V[best_i]
    else:
        c = centers.reshape(-1, suffix.shape[-1]).to(flat.dtype)
    delta = flat - c
    norm = delta.norm(dim=-1, keepdim=True)
    scale = torch.clamp(eps / norm.clamp_min(1e-12), max=1.0)
    flat.copy_(c + delta * scale)
    return suffix


def distance_to_vocab(suffix: torch.Tensor, vocab: torch.Tensor) -> torch.Tensor:
    """L2 distance of every suffix vector to its nearest row of ``vocab`` (``suffix.shape[:-1]``)."""
    flat = suffix.reshape(-1, suffix.shape[-1]).float()
    d = torch.cdist(flat, vocab.float()).min(dim=1).values
    return d.reshape(suffix.shape[:-1])


# --------------------------------------------------------------------------------------------- loss
def _sequences(model, parts: Sequence[PromptParts], suffixes: torch.Tensor, with_target: bool
               ) -> list[torch.Tensor]:
    """Per prompt the input embeddings ``before + suffix + after (+ target)``; ``suffixes`` ``(n|1, k, d)``."""
    emb = model.get_input_embeddings()
    dev = emb.weight.device
    out = []
    for i, p in enumerate(parts):
        ids = lambda x: torch.tensor(x, dtype=torch.long, device=dev)  # noqa: E731
        s = suffixes[i if suffixes.shape[0] > 1 else 0].to(emb.weight.dtype)
        pieces = [emb(ids(p.before)), s, emb(ids(p.after))]
        if with_target:
            pieces.append(emb(ids(p.target)))
        out.append(torch.cat([x for x in pieces if x.shape[0]], dim=0))
    return out


def left_pad(seqs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ``(B, L, d)`` embeddings (zeros at padding) and their ``(B, L)`` attention mask."""
    n = max(s.shape[0] for s in seqs)
    d = seqs[0].shape[-1]
    x = seqs[0].new_zeros(len(seqs), n, d)
    mask = torch.zeros(len(seqs), n, dtype=torch.long, device=seqs[0].device)
    for i, s in enumerate(seqs):
        x[i, n - s.shape[0]:] = s
        mask[i, n - s.shape[0]:] = 1
    return x, mask


class PrefixCache:
    """The attention keys / values of every prompt's ``before`` part, computed once without gradients: the
    suffix is the first thing that changes, so each optimisation step runs the model only on
    ``suffix + after + target`` on top of this cache (the same loss, a fraction of the compute for long
    instructions). One entry per prompt; :meth:`batch` left-pads a subset into one cache."""

    def __init__(self, model, parts: Sequence[PromptParts]):
        emb = model.get_input_embeddings()
        dev = emb.weight.device
        self.config = model.config
        self.kv: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        with torch.no_grad():
            for p in parts:
                if not p.before:
                    raise ValueError("prompt without tokens before the suffix")
                x = emb(torch.tensor([p.before], dtype=torch.long, device=dev))
                out = model(inputs_embeds=x, use_cache=True, logits_to_keep=1)
                self.kv.append([(k.detach(), v.detach()) for k, v, *_ in out.past_key_values])

    def batch(self, indices: Sequence[int]) -> tuple[object, torch.Tensor]:
        """A ``DynamicCache`` of the prompts ``indices``, left-padded (zero keys / values under a 0 mask),
        and its ``(B, L)`` attention mask."""
        from transformers import DynamicCache

        lens = [self.kv[i][0][0].shape[-2] for i in indices]
        n = max(lens)
        mask = torch.zeros(len(indices), n, dtype=torch.long, device=self.kv[indices[0]][0][0].device)
        for j, L in enumerate(lens):
            mask[j, n - L:] = 1
        layers = []
        for layer in range(len(self.kv[indices[0]])):
            ks, vs = [], []
            for i, L in zip(indices, lens):
                k, v = self.kv[i][layer]
                ks.append(F.pad(k, (0, 0, n - L, 0)))
                vs.append(F.pad(v, (0, 0, n - L, 0)))
            layers.append((torch.cat(ks), torch.cat(vs)))
        return DynamicCache(ddp_cache_data=layers, config=self.config), mask


def target_losses(model, parts: Sequence[PromptParts], suffixes: torch.Tensor,
                  prefix: tuple[object, torch.Tensor] | None = None) -> torch.Tensor:
    """Per prompt the mean cross-entropy of the target tokens given ``before + suffix + after`` (``(B,)``).

    Left padding puts every target at the end, so the LM head runs only on the last ``max target`` positions.
    ``prefix``: :meth:`PrefixCache.batch` of the same prompts; then only ``suffix + after + target`` is run
    (padding between the cached part and the rest is masked)."""
    if prefix is None:
        seqs = _sequences(model, parts, suffixes, with_target=True)
        x, mask = left_pad(seqs)
        pos = (mask.cumsum(-1) - 1).clamp_min(0)
        cache = None
    else:
        cache, pmask = prefix
        seqs = _sequences(model, [PromptParts([], p.after, p.target) for p in parts], suffixes, with_target=True)
        x, rmask = left_pad(seqs)
        full = torch.cat([pmask, rmask], dim=1)
        pos = (full.cumsum(-1) - 1).clamp_min(0)[:, pmask.shape[1]:]
        mask = full
    t_max = max(len(p.target) for p in parts)
    out = model(inputs_embeds=x, attention_mask=mask, position_ids=pos, past_key_values=cache,
                use_cache=cache is not None, logits_to_keep=t_max + 1)
    logits = out.logits[:, :-1].float()  # position j predicts token j+1: the last t_max tokens
    labels = torch.full((len(parts), t_max), -100, dtype=torch.long, device=logits.device)
    for i, p in enumerate(parts):
        labels[i, t_max - len(p.target):] = torch.tensor(p.target, device=logits.device)
    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=-100,
                         reduction="none").reshape(labels.shape)
    return ce.sum(-1) / (labels != -100).sum(-1)


def attack_inputs(model, parts: Sequence[PromptParts], suffixes: torch.Tensor | None) -> list[torch.Tensor]:
    """The embeddings a generation starts from: ``before + suffix + after`` (no suffix: the clean prompt)."""
    if suffixes is None:
        d = embedding_matrix(model).shape[1]
        suffixes = torch.zeros(1, 0, d, device=embedding_matrix(model).device)
    with torch.no_grad():
        return [s.detach() for s in _sequences(model, parts, suffixes, with_target=False)]


# --------------------------------------------------------------------------------------------- optimisation
@dataclass
class OptimState:
    """What a snapshot holds: the suffix after ``step`` optimisation steps (and Adam's moments)."""

    step: int
    suffix: torch.Tensor
    exp_avg: torch.Tensor | None = None
    exp_avg_sq: torch.Tensor | None = None


class frozen:
    """``with frozen(model):`` eval mode and no parameter gradients; restored afterwards."""

    def __init__(self, model):
        self.model = model

    def __enter__(self):
        self.flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.training = self.model.training
        for p, _ in self.flags:
            p.requires_grad_(False)
        self.model.eval()
        return self.model

    def __exit__(self, *exc):
        for p, flag in self.flags:
            p.requires_grad_(flag)
        self.model.train(self.training)


def universal_batch(n_train: int, batch_size: int, step: int, seed: int) -> list[int]:
    """The training prompts of universal step ``step`` (0-based): epochs of seeded permutations, consecutive
    slices of ``batch_size``. A pure function of (step, seed), so a resumed run draws the same batches."""
    b = min(batch_size, n_train)
    per_epoch = n_train // b
    epoch, j = divmod(step, per_epoch)
    order = list(range(n_train))
    random.Random(f"embedding-universal-{seed}-{epoch}").shuffle(order)
    return order[j * b:(j + 1) * b]


def optimise(model, parts: Sequence[PromptParts], state: OptimState, *, max_steps: int, universal: bool,
             optimizer: Literal["sign", "adam"] = "sign", step_size: float = 0.01, batch_size: int = 8,
             eps: float | None = None, eps_center: Literal["nearest", "init"] = "nearest",
             init: torch.Tensor | None = None, seed: int = 0, snapshot_steps: Iterable[int] = (),
             on_snapshot: Callable[[OptimState, float], None] | None = None,
             on_step: Callable[[int, float], None] | None = None, cache_prefix: bool = True) -> OptimState:
    """Optimise ``state.suffix`` from ``state.step`` to ``max_steps`` steps with the model frozen.

    per-prompt (``universal=False``): ``state.suffix`` is ``(len(parts), k, d)``; each step takes one update of
    every suffix on its own prompt's loss (prompts go through the model ``batch_size`` at a time; the updates
    are element-wise, so the suffixes do not interact). universal: ``state.suffix`` is ``(1, k, d)``; each step
    is one update on the mean loss of a minibatch of ``batch_size`` training prompts (:func:`universal_batch`).

    ``on_step(step, loss)``: after the loss of the suffix after ``step`` updates is known (every step up to
    ``max_steps``; loss: mean target loss over the prompts of that step). ``on_snapshot(state, loss)``: for every
    step in ``snapshot_steps``, with the suffix after that many updates. ``init``: the initial suffix (centre of
    ``eps_center="init"``; default ``state.suffix``). ``cache_prefix``: run the fixed part before the suffix once
    (:class:`PrefixCache`); the same loss and gradient up to float rounding."""
    n = len(parts)
    if n == 0:
        raise AlignkitError("no prompts to optimise the embedding suffix on")
    if state.suffix.shape[0] != (1 if universal else n):
        raise ValueError(f"suffix of shape {tuple(state.suffix.shape)} for {n} prompts (universal={universal})")
    snaps = set(int(s) for s in snapshot_steps)
    x = state.suffix.detach().clone().float().requires_grad_(True)
    centers = (init if init is not None else state.suffix).detach().clone() if eps is not None else None
    vocab = embedding_matrix(model).detach() if eps is not None and eps_center == "nearest" else None
    m = state.exp_avg.clone() if state.exp_avg is not None else torch.zeros_like(x)
    v = state.exp_avg_sq.clone() if state.exp_avg_sq is not None else torch.zeros_like(x)
    b1, b2, adam_eps = 0.9, 0.999, 1e-8
    adam = optimizer == "adam"
    with frozen(model):
        cache = PrefixCache(model, parts) if cache_prefix else None
        batch = (lambda idx: cache.batch(idx)) if cache is not None else (lambda idx: None)  # noqa: E731
        for step in range(state.step, max_steps + 1):
            last = step == max_steps  # only the loss of the final suffix: no gradient, no update
            x.grad = None
            with torch.set_grad_enabled(not last):
                if universal:
                    idx = universal_batch(n, batch_size, step, seed)
                    loss = target_losses(model, [parts[i] for i in idx], x, batch(idx)).mean()
                    if not last:
                        loss.backward()
                    loss_value = float(loss.detach())
                else:
                    total = 0.0
                    for s in range(0, n, batch_size):
                        idx = list(range(s, min(n, s + batch_size)))
                        losses = target_losses(model, [parts[i] for i in idx], x[s:s + len(idx)], batch(idx))
                        if not last:
                            losses.sum().backward()  # each suffix gets the gradient of its own prompt's loss
                        total += float(losses.detach().sum())
                    loss_value = total / n
            if not math.isfinite(loss_value):
                raise AlignkitError(f"the embedding attack's loss became {loss_value} at step {step}; lower "
                                    "--step-size")
            if on_step is not None:
                on_step(step, loss_value)
            if step in snaps and on_snapshot is not None:
                on_snapshot(OptimState(step, x.detach().clone(), m.clone() if adam else None,
                                       v.clone() if adam else None), loss_value)
            if last:
                break
            g = x.grad.detach()
            with torch.no_grad():
                if not adam:
                    x -= step_size * g.sign()
                else:  # Adam (bias-corrected), element-wise: per-prompt suffixes stay independent
                    t = step + 1
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    x -= step_size * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + adam_eps)
                if eps is not None:
                    project(x.data, eps, centers=centers if eps_center == "init" else None, vocab=vocab)
    return OptimState(max_steps, x.detach().clone(), m if adam else None, v if adam else None)


# --------------------------------------------------------------------------------------------- snapshots
class SnapshotStore:
    """Suffix snapshots in a run folder: ``<dir>/step_XXXX.safetensors`` (``suffix`` and, for Adam, its
    moments), written atomically; an incomplete file is ignored."""

    def __init__(self, folder: str | Path):
        self.dir = Path(folder)

    def path(self, step: int) -> Path:
        return self.dir / f"step_{step:04d}.safetensors"

    def save(self, st: OptimState, meta: dict[str, str] | None = None) -> Path:
        from safetensors.torch import save_file

        from alignkit.io import unique_temp

        tensors = {"suffix": st.suffix.detach().cpu().contiguous()}
        if st.exp_avg is not None:
            tensors["exp_avg"] = st.exp_avg.detach().cpu().contiguous()
            tensors["exp_avg_sq"] = st.exp_avg_sq.detach().cpu().contiguous()
        p = self.path(st.step)
        with unique_temp(p) as tmp:
            save_file(tensors, str(tmp), metadata={"step": str(st.step), **(meta or {})})
        return p

    def steps(self) -> list[int]:
        from alignkit.io import safetensors_ok

        out = []
        for f in self.dir.glob("step_*.safetensors") if self.dir.is_dir() else []:
            try:
                s = int(f.stem.split("_", 1)[1])
            except ValueError:
                continue
            if safetensors_ok(f):
                out.append(s)
        return sorted(out)

    def load(self, step: int, device=None) -> OptimState:
        from safetensors.torch import load_file

        t = load_file(str(self.path(step)), device=str(device or "cpu"))
        return OptimState(step, t["suffix"], t.get("exp_avg"), t.get("exp_avg_sq"))


def state_dict_hash(model) -> str:
    """sha256 over every parameter and buffer (names, dtypes, shapes, bytes): equal before and after an attack
    that leaves the weights alone."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# --------------------------------------------------------------------------------------------- the attack family
from pydantic import Field, field_validator  # noqa: E402

from alignkit.attacks.base import ATTACKS  # noqa: E402
from alignkit.attacks.budget import BudgetAttack, check_budgets  # noqa: E402
from alignkit.attacks.config import AttackOptions  # noqa: E402


class EmbeddingConfig(AttackOptions):
    """Embedding-space attack (Schwinn et al. 2024): k continuous vectors placed after the user's instruction are
    optimised, with the model frozen, toward an affirmative target ("Sure, here is"); per prompt or one universal
    suffix fitted on training prompts and evaluated on the held-out evaluation prompts. Harmfulness curve over
    optimisation steps (0 = the unattacked prompt). No weights change."""

    attack: Literal["embedding"] = Field("embedding", description="attack family (embedding)")
    steps: list[int] = Field(default_factory=lambda: [0, 10, 25, 50, 100],
                             description="optimisation steps at which the suffix is evaluated (the curve's budgets; "
                             "0 = no suffix); optimised once up to the largest, a snapshot kept at each")
    mode: Literal["per-prompt", "universal"] = Field("per-prompt", description="per-prompt: each evaluation prompt "
                                                     "gets its own suffix; universal: one suffix fitted on "
                                                     "--train-dataset prompts, evaluated on the held-out "
                                                     "evaluation prompts")
    suffix_length: int = Field(20, ge=1, description="k, the number of suffix vectors (the paper: 20)")
    init: str = Field("!", min_length=1, description="initial suffix: the embeddings of this text's tokens, "
                      "repeated to k vectors ('!' x k as GCG and the paper)")
    init_random: bool = Field(False, description="start from k random vocabulary tokens drawn with --seed "
                              "instead of --init")
    target: str = Field("Sure, here is", min_length=1, description="affirmative target whose likelihood the suffix "
                        "maximises; '{request}' is replaced by the prompt (end punctuation dropped, first letter "
                        "lower-cased), e.g. 'Sure, here is how to {request}'")
    optimizer: Literal["sign", "adam"] = Field("sign", description="sign: signed gradient descent, x -= "
                                               "step_size * sign(grad) (the paper's code); adam: Adam")
    step_size: float = Field(0.01, gt=0, le=10, description="step size (sign: the change of every coordinate "
                             "per step; adam: the learning rate)")
    eps: Optional[float] = Field(None, gt=0, description="L2 bound: after every step each suffix vector is "
                                 "projected to within eps of its centre (--eps-center); default: unbounded")
    eps_center: Literal["nearest", "init"] = Field("nearest", description="centre of the --eps ball: the nearest "
                                                   "real token embedding, or the vector's initial embedding")
    batch_size: int = Field(8, ge=1, description="prompts per forward/backward pass (universal: the minibatch "
                            "of each step)")
    train_dataset: str = Field("harmful-qa", min_length=1, description="universal mode: training prompts, a "
                               "registered dataset or a jsonl/json/csv file with a prompt or question column")
    train_split: str = Field("train", min_length=1, description="split of a registered --train-dataset")
    train_prompts: int = Field(50, ge=1, description="universal mode: number of training prompts (seeded "
                               "sample; prompts also in the evaluation set are dropped)")

    @field_validator("steps")
    @classmethod
    def _budgets(cls, v: list[int]) -> list[int]:
        return check_budgets(v, "--steps")


def _key(text: str) -> str:
    return " ".join(str(text).split()).lower()


def load_train_questions(config: EmbeddingConfig) -> list[str]:
    """The universal suffix's training prompts: a registered dataset split or a user file, seeded sample."""
    from alignkit import data

    name = config.train_dataset
    if name in data.names():
        recs = sorted(data.load(name, split=config.train_split, seed=config.data_seed), key=lambda r: r.id)
        texts = [getattr(r, "prompt", None) or getattr(r, "question", None) or "" for r in recs]
        where = f"{name}:{config.train_split}"
    else:
        from alignkit.io import read_records

        path = Path(name).expanduser()
        if not path.is_file():
            raise AlignkitError(f"--train-dataset {name!r} is neither a registered dataset ({', '.join(data.names())})"
                                " nor an existing file")
        rows = read_records(path)
        texts = [str(r.get("prompt") or r.get("question") or "") if isinstance(r, dict) else "" for r in rows]
        where = str(path)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise AlignkitError(f"--train-dataset {where} has no prompts (rows with a non-empty prompt or question); a "
                            "universal suffix needs training prompts")
    random.Random(f"embedding-train-{config.data_seed}").shuffle(texts)
    return texts


@ATTACKS.register("embedding")
class EmbeddingAttack(BudgetAttack):
    """The embedding-space attack (see the module docstring)."""

    config_class = EmbeddingConfig
    budget_label = "optimisation steps"
    changes_weights = False

    def budgets(self) -> list[int]:
        return list(self.config.steps)

    def _questions(self, prompts) -> list[str]:
        from alignkit.harmfulness import _prompt_fields

        return [_prompt_fields(p)[0] for p in prompts]

    def check(self) -> None:
        cfg = self.config
        if not self.prompts:
            raise AlignkitError(f"evaluation dataset {cfg.eval_dataset}:{cfg.eval_split} has no prompts")
        self.eval_parts = encode_parts(self.tokenizer, self._questions(self.prompts), cfg.target, cfg.template)
        self.init_ids = init_token_ids(self.tokenizer, cfg.suffix_length, cfg.init, cfg.init_random, cfg.seed,
                                       vocab_size=embedding_matrix(self.model).shape[0])
        self.train_questions: list[str] = []
        if cfg.mode == "universal":
            held_out = {_key(q) for q in self._questions(self.prompts)}
            texts = load_train_questions(cfg)
            kept = [t for t in texts if _key(t) not in held_out]
            if not kept:
                raise AlignkitError(f"every --train-dataset prompt is also an evaluation prompt; a universal suffix "
                                    f"is evaluated on held-out prompts, so give training prompts outside "
                                    f"{cfg.eval_dataset}:{cfg.eval_split}")
            if len(kept) < len(texts):
                self.notes.append(f"{len(texts) - len(kept)} training prompts that are also evaluation prompts "
                                  "were dropped")
            self.train_questions = kept[:cfg.train_prompts]
            self.num_train_samples = len(self.train_questions)
            if len(self.train_questions) < cfg.train_prompts:
                self.notes.append(f"--train-prompts {cfg.train_prompts}: only {len(self.train_questions)} available")
            self.train_parts = encode_parts(self.tokenizer, self.train_questions, cfg.target, cfg.template)
        self.store = SnapshotStore(self.run_dir / "suffix")

    def data_label(self) -> str | None:
        cfg = self.config
        if cfg.mode == "universal":
            return (f"universal suffix fitted on {cfg.train_dataset}:{cfg.train_split} n={self.num_train_samples} "
                    f"data_seed={cfg.data_seed}; target {cfg.target!r}")
        return f"per-prompt suffixes on the evaluation prompts; target {cfg.target!r}"

    def setup(self, run_dir: Path) -> None:
        """Optimise once up to the largest budget, saving the suffix at every budget (``suffix/step_XXXX
        .safetensors``); a resumed run continues from the last saved snapshot and skips what is saved."""
        from alignkit.io import append_jsonl
        from alignkit.training import log

        cfg = self.config
        budgets = [b for b in self.budgets() if b > 0]
        have = set(self.store.steps())
        if not budgets or all(b in have for b in budgets):
            return
        universal = cfg.mode == "universal"
        parts = self.train_parts if universal else self.eval_parts
        init = init_suffix(self.model, self.init_ids, 1 if universal else len(parts))
        start = max([b for b in have if b < budgets[-1]], default=0)
        state = self.store.load(start) if start else OptimState(0, init)
        if state.suffix.shape != init.shape:
            raise AlignkitError(f"the suffix snapshot {self.store.path(start)} does not match this run (shape "
                                f"{tuple(state.suffix.shape)}, expected {tuple(init.shape)}); pass --overwrite")
        if start:
            log(f"embedding: resuming the optimisation from the snapshot at step {start}")
        metrics = run_dir / "metrics.jsonl"
        t0 = time.time()
        meta = {"mode": cfg.mode, "k": str(cfg.suffix_length), "optimizer": cfg.optimizer}

        def snapshot(st: OptimState, loss: float) -> None:
            if st.step in have:  # the snapshot this run resumed from
                return
            append_jsonl(metrics, {"type": "train", "step": st.step, "loss": loss,
                                   "elapsed_s": round(time.time() - t0, 1)})
            if st.step > 0:
                self.store.save(st, meta)
            log(f"embedding: step {st.step}/{budgets[-1]} target loss {loss:.4f} [{time.time() - t0:.0f}s]")

        def progress(step: int, loss: float) -> None:  # every 10 steps (budgets are logged by snapshot)
            if step % 10 == 0 and step not in budgets and step > 0:
                log(f"embedding: step {step}/{budgets[-1]} target loss {loss:.4f} [{time.time() - t0:.0f}s]")

        optimise(self.model, parts, state, max_steps=budgets[-1], universal=universal, optimizer=cfg.optimizer,
                 step_size=cfg.step_size, batch_size=cfg.batch_size, eps=cfg.eps, eps_center=cfg.eps_center,
                 init=init, seed=cfg.seed, snapshot_steps=[0, *budgets], on_snapshot=snapshot,
                 on_step=progress)

    def completions(self, budget: int, prompts: list) -> list[str]:
        from alignkit.generation import generate_from_embeds

        cfg = self.config
        if budget == 0:  # the unattacked prompt: plain generation, as every family's budget 0
            return super().completions(budget, prompts)
        if list(prompts) != list(self.prompts):
            raise ValueError("the embedding attack evaluates its own evaluation prompts")
        suffix = self.store.load(budget, device=embedding_matrix(self.model).device).suffix
        inputs = attack_inputs(self.model, self.eval_parts, suffix)
        return generate_from_embeds(self.model, self.tokenizer, inputs, max_new_tokens=cfg.max_new_tokens,
                                    batch_size=cfg.eval_batch_size)

    def extra_metrics(self, budget: int, prompts: list, judge) -> dict:
        """The mean target loss on the evaluation prompts at this budget (0: the prompt without a suffix)."""
        with torch.no_grad():
            if budget == 0:
                d = embedding_matrix(self.model).shape[1]
                suffix = torch.zeros(1, 0, d, device=embedding_matrix(self.model).device)
            else:
                suffix = self.store.load(budget, device=embedding_matrix(self.model).device).suffix
            losses = torch.cat([target_losses(self.model, self.eval_parts[i:i + self.config.batch_size],
                                              suffix if suffix.shape[0] == 1 else
                                              suffix[i:i + self.config.batch_size])
                                for i in range(0, len(self.eval_parts), self.config.batch_size)])
        return {"eval_target_loss": float(losses.mean())}
