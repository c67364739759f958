"""Representation Noising (RepNoise; Rosati et al. 2024), faithful and fast.

Loss per batch of paired harmful / harmless sequences (methods.md section 2, code convention for the names)::

    L = CE_stab(x_s) + beta * (1/|S|) * sum_{l in S} MMD(H_l(x_h) * m, N(0, I) * m)
                     - alpha * log( (1/(L+1)) * sum_{j=0..L} CE_lens_j(x_h; m) + 1 )

- ``CE_stab``: next-token cross-entropy on the harmless (refusal) sequences, answer tokens only (the
  ``harmless_labels`` of :func:`alignkit.formatting.encode_pair`).
- ``H_l``: output of the MLP block of decoder layer ``l`` (post-MLP, before the residual add) for the harmful
  sequences; ``S`` = every layer, or ``noise_layers``. Each sequence's masked activations are flattened to one
  vector of length T*d; the noise is an equal-shaped standard normal tensor masked the same way.
- MMD: multi-kernel Gaussian, 5 bandwidths: base = mean pairwise squared distance over the 2B vectors
  (diagonal excluded; treated as a constant, as the original's ``L2_distance.data``) / 2^(5//2), times 2^i.
  ``MMD = mean(K_XX + K_YY - K_XY - K_YX)``. Squared distances come from the Gram matrix in float64.
- ``CE_lens_j``: cross-entropy of the harmful answer tokens predicted from hidden state ``j`` through the final
  norm and the LM head, ``j = 0`` (embeddings, the input of layer 0) .. ``L``, i.e. every entry of HF's
  ``output_hidden_states``. **The last entry is already normed** in HF (``hidden_states[-1] ==
  last_hidden_state == norm(h_L)``), so for ``j = L`` the LM head is applied to it directly: ``CE_lens_L`` is
  the CE of the model's final logits. (The original code applied the norm a second time to that entry and also
  added a separate final-logits CE, dividing L+2 terms by L+1; we follow the formula, documented in
  docs/defences.md.) The CE is a token mean over the target positions ``t`` whose token is masked by ``m`` and
  is a harmful answer token (``harmful_labels != -100``), predicted from position ``t - 1``.
- ``m``: the difference mask (``diff_mask``: positions where the harmful and harmless ids differ). With
  ``use_mask=False`` the attention mask of the harmful sequence is used instead (noise and ascent on every
  real token).

Ablations: ``noise=False`` (ascent only), ``ascent=False`` (noise only), ``use_mask=False``,
``logit_lens=False`` (ascent on the final logits only), ``noise_layers`` (subset for the noise term),
``freeze_layers`` / ``freeze_embeddings`` (the paper's depth study).

Efficiency (same loss, see tests/defences/test_repnoise_equivalence.py):

- forward hooks are registered **once** per training run (:class:`RepNoiseHooks`, a context manager that
  removes them at the end) on the modules of the *unwrapped* model, so they fire under DDP / FSDP / DeepSpeed
  wrappers; they capture only the harmful half of the batch and only while a RepNoise forward is running
  (recomputation under gradient checkpointing does not re-capture);
- the logit lens is computed on the target positions only, for all L+1 hidden states at once, in row chunks,
  by a fused linear + cross-entropy autograd function (:class:`LensCrossEntropy`) that computes the gradients
  chunk by chunk in the forward pass: no (L+1) x B x T x V logits tensor ever exists, at most ``chunk`` x V;
- it runs inside a forward hook of the LM head (prepended), i.e. while FSDP / ZeRO-3 hold the gathered
  weights; the harmful forward keeps a single logit position (``logits_to_keep=1``);
- optional (non-reentrant) gradient checkpointing.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field

from alignkit.defences.arch import find_parts, first_tensor, parse_layers
from alignkit.defences.base import DEFENCES, Defence, DefenceConfig, trainer_class
from alignkit.errors import AlignkitError

KERNEL_MUL = 2.0
KERNEL_NUM = 5
#: log-probabilities at or below this are flushed to probability 0 in the fused lens backward
PROB_FLOOR_LOG = -87.0
LOSS_VARIANTS = ("alignkit", "official")


class RepNoiseConfig(DefenceConfig):
    """RepNoise: harmless CE + beta * MMD(MLP outputs of harmful text, Gaussian noise) - alpha * log(logit-lens
    CE on harmful answers + 1). Paper defaults (code convention: alpha weighs the ascent, beta the noise; the
    paper's main text swaps the two names)."""

    defence: str = Field("repnoise", description="defence name")
    alpha: float = Field(1.0, ge=0, description="weight of the gradient-ascent (logit-lens) term")
    beta: float = Field(0.001, ge=0, description="weight of the noise (MMD) term")
    noise: bool = Field(True, description="include the noise (MMD) term; --no-noise = ascent-only ablation")
    ascent: bool = Field(True, description="include the ascent term; --no-ascent = noise-only ablation")
    use_mask: bool = Field(True, description="restrict noise and ascent to positions where harmful and harmless "
                           "ids differ; --no-use-mask uses the attention mask (every real token)")
    logit_lens: bool = Field(True, description="ascent on every hidden state through the final norm + LM head; "
                             "--no-logit-lens = final logits only")
    noise_layers: str = Field("all", description="layers whose MLP outputs are noised, e.g. '0-9,12' or 'all'")
    freeze_layers: str = Field("", description="decoder layers to freeze, e.g. '0-14' (depth study); '' = none")
    freeze_embeddings: bool = Field(False, description="freeze the input embeddings (and a tied LM head)")
    loss_variant: Literal["alignkit", "official"] = Field(
        "alignkit", description="'alignkit': the formula (harmless CE on all refusal answer tokens, every target "
        "trained, L+1 lens terms); 'official': the original loss.py's masking and term structure, quirks "
        "included (docs/defences.md lists each difference and its measured effect)")
    retain_mix: float = Field(0.0, ge=0, le=10, description="extension of the paper: harmless (instruction, "
                              "answer) rows added to the retain CE per refusal pair (0: refusals only)")
    retain_dataset: str = Field("harmless-instructions", description="retain data for --retain-mix: a "
                                "registered dataset of instructions, or a jsonl/json file with instruction and "
                                "response fields")
    lens_chunk_rows: int = Field(0, ge=0, description="rows per chunk of the fused logit-lens CE; 0 = about "
                                 "2^25 / vocab (128 MB of float32 logits)")


# ---------------------------------------------------------------------------------------------- pure pieces
def gaussian_noise(shape, *, seed: int, layer: int, device, dtype):
    """Standard normal noise for one layer of one step: reproducible from (seed, layer) on any device."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed((int(seed) * 1_000_003 + int(layer) * 7_919 + 17) % (2 ** 63 - 1))
    return torch.randn(shape, generator=gen, device=device, dtype=torch.float32).to(dtype)


def mmd_multi_kernel(x, y, kernel_mul: float = KERNEL_MUL, kernel_num: int = KERNEL_NUM):
    """Multi-kernel Gaussian MMD between the rows of ``x`` and ``y`` (B x D each); squared distances from the
    Gram matrix in float64 (no (2B)^2 x D tensor), bandwidth detached."""
    import torch

    total = torch.cat([x, y], dim=0).double()
    n = total.size(0)
    sq = (total * total).sum(1)
    gram = total @ total.t()
    d2 = (sq[:, None] + sq[None, :] - 2.0 * gram).clamp_min(0.0)
    d2 = d2 * (1.0 - torch.eye(n, dtype=d2.dtype, device=d2.device))  # exact zeros on the diagonal
    bandwidth = d2.detach().sum() / (n * n - n)
    bandwidth = bandwidth / (kernel_mul ** (kernel_num // 2))
    k = sum(torch.exp(-d2 / (bandwidth * kernel_mul ** i)) for i in range(kernel_num))
    b = x.size(0)
    mmd = (k[:b, :b] + k[b:, b:] - k[:b, b:] - k[b:, :b]).mean()
    return mmd.to(x.dtype)


class Targets:
    """Next-token CE targets of one side of a batch: ``rows, cols`` index the predicting position ``t - 1``,
    ``tokens`` the target token at ``t``; ``n_const`` more targets whose predicting logits are all zero (the
    official code's ``mask[:-1]`` quirk), each contributing ``log V`` to the CE sum and nothing to the gradient.
    A CE mean is ``(sum over (rows, cols) + n_const * log V) / count``."""

    def __init__(self, rows, cols, tokens, n_const: int = 0):
        self.rows, self.cols, self.tokens, self.n_const = rows, cols, tokens, int(n_const)

    @property
    def count(self) -> int:
        return int(self.tokens.numel()) + self.n_const

    @classmethod
    def from_mask(cls, ids, target_mask, live_mask=None) -> "Targets":
        """``target_mask`` (B x T-1): targets ``ids[:, 1:]`` counted; ``live_mask`` (B x T-1, default all): the
        predicting logits at ``t - 1`` are kept (else zeroed -> ``n_const``)."""
        import torch

        live = target_mask if live_mask is None else target_mask & live_mask
        rows, cols = torch.nonzero(live, as_tuple=True)
        n_const = 0 if live_mask is None else int((target_mask & ~live_mask).sum())
        return cls(rows, cols, ids[:, 1:][rows, cols], n_const)


def official_mask(batch: dict, use_mask: bool):
    """The original code's mask: ``harmful ids != harmless ids`` (no attention-mask logic); with
    ``use_mask=False`` the harmful attention mask."""
    if not use_mask:
        return batch["harmful_attention_mask"].ne(0)
    return batch["harmful_input_ids"].ne(batch["harmless_input_ids"])


def lens_targets(batch: dict, use_mask: bool, variant: str = "alignkit") -> Targets:
    """Targets of the ascent (logit-lens) CE on the harmful sequences.

    alignkit: harmful answer tokens at masked positions (``diff_mask``), every one trained. official: tokens at
    masked positions whose id is not 0 (the original turns masked-out labels into 0 and ignores label 0, so a
    real token 0 is dropped too); the logits of the position before are multiplied by the mask, so the first
    token of each masked run is predicted from all-zero logits (``n_const``)."""
    ids = batch["harmful_input_ids"]
    if variant == "official":
        m = official_mask(batch, use_mask)
        return Targets.from_mask(ids, m[:, 1:] & ids[:, 1:].ne(0), m[:, :-1])
    if use_mask:
        tgt = (batch["diff_mask"][:, 1:] != 0) & (batch["harmful_labels"][:, 1:] != -100)
    else:
        tgt = batch["harmful_attention_mask"][:, 1:] != 0
    return Targets.from_mask(ids, tgt)


def harmless_targets(batch: dict, use_mask: bool, variant: str = "alignkit") -> Targets:
    """Targets of the retain (harmless) CE on the harmless sequences. alignkit: every refusal answer token
    (``harmless_labels``). official: the harmful side's mask applied to the harmless ids (quirks (a), (b), (d)
    of docs/defences.md: harmless padding opposite real harmful tokens is a target, answer tokens equal to the
    harmful token at that position are not, label 0 is ignored, zeroed logits before each masked run)."""
    ids = batch["harmless_input_ids"]
    if variant == "official":
        m = official_mask(batch, use_mask)
        return Targets.from_mask(ids, m[:, 1:] & ids[:, 1:].ne(0), m[:, :-1])
    return Targets.from_mask(ids, batch["harmless_labels"][:, 1:] != -100)


def noise_mask(batch: dict, use_mask: bool, variant: str = "alignkit"):
    if variant == "official":
        return official_mask(batch, use_mask)
    return (batch["diff_mask"] if use_mask else batch["harmful_attention_mask"]).ne(0)


class LensCrossEntropy:
    """Sum of cross-entropies of ``h @ W.T + b`` against ``targets``, chunked over rows, gradients computed in
    the forward pass (the Liger-kernel trick, in plain torch): peak extra memory ``chunk x V``."""

    @staticmethod
    def apply(h, weight, bias, targets, chunk: int):
        return _lens_ce_fn().apply(h, weight, bias, targets, chunk)


_LENS_FN = None


def _lens_ce_fn():
    global _LENS_FN
    if _LENS_FN is not None:
        return _LENS_FN
    import torch

    class _LensCE(torch.autograd.Function):
        @staticmethod
        def forward(ctx, h, weight, bias, targets, chunk):
            need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
            need_b = bias is not None and ctx.needs_input_grad[2]
            n = h.size(0)
            loss = torch.zeros((), dtype=torch.float64, device=h.device)
            grad_h = torch.empty_like(h) if need_h else None
            grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
            grad_b = torch.zeros(bias.shape, dtype=torch.float32, device=bias.device) if need_b else None
            for s in range(0, n, chunk):
                hc = h[s:s + chunk]
                tc = targets[s:s + chunk]
                logits = hc @ weight.t()
                if bias is not None:
                    logits = logits + bias
                logits = logits.float()
                lse = torch.logsumexp(logits, dim=-1)
                loss += (lse - logits.gather(1, tc[:, None]).squeeze(1)).double().sum()
                if need_h or need_w or need_b:
                    # d CE_sum / d logits = softmax - onehot
                    # probabilities below exp(-87) (~1.6e-38) are set to exactly 0 before exp: they would be
                    # denormal floats, on which many CPUs run the two matmuls below 100x slower; at float32
                    # precision they contribute nothing (a probability floor, independent of FTZ flags)
                    logits.sub_(lse[:, None])
                    torch.nn.functional.threshold_(logits, PROB_FLOOR_LOG, float("-inf"))
                    logits.exp_()
                    logits[torch.arange(tc.numel(), device=tc.device), tc] -= 1.0
                    g = logits.to(h.dtype)
                    if need_h:
                        grad_h[s:s + chunk] = g @ weight
                    if need_w:
                        grad_w.addmm_(logits.t(), hc.float())
                    if need_b:
                        grad_b += logits.sum(0)
                del logits
            ctx.save_for_backward(*(t for t in (grad_h, grad_w, grad_b) if t is not None))
            ctx.flags = (need_h, need_w, need_b)
            ctx.wdtype = weight.dtype
            return loss.float()

        @staticmethod
        def backward(ctx, grad_out):
            saved = list(ctx.saved_tensors)
            need_h, need_w, need_b = ctx.flags
            gh = gw = gb = None
            if need_h:
                t = saved.pop(0)
                gh = t * grad_out.to(t.dtype)
            if need_w:
                gw = (saved.pop(0) * grad_out).to(ctx.wdtype)
            if need_b:
                gb = (saved.pop(0) * grad_out).to(ctx.wdtype)
            return gh, gw, gb, None, None

    _LENS_FN = _LensCE
    return _LENS_FN


def default_chunk_rows(vocab: int) -> int:
    return max(16, (1 << 25) // max(1, vocab))


# ---------------------------------------------------------------------------------------------- hooks
class RepNoiseHooks:
    """Forward hooks registered once on the unwrapped model (``with RepNoiseHooks(model, ...) as hooks``) and
    removed on exit. One forward runs the harmful rows (the first ``n_rows``), then the harmless / retain rows,
    concatenated. While ``hooks.start(...)`` is active the hooks capture, for the harmful rows, the MLP outputs of
    the noise layers, the input of layer 0, the outputs of layers 0..L-2, and for every row the output of the
    final norm; inside the LM head's forward (while sharded weights are gathered) they compute the logit-lens CE
    sum of the harmful rows and the retain CE sum of the other rows with the fused chunked CE. The model itself
    is called with ``logits_to_keep=1``: no B x T x V logits tensor exists."""

    def __init__(self, model, *, noise_layers: Optional[list[int]] = None, capture_mlp: bool = True,
                 lens: str = "all", chunk_rows: int = 0, variant: str = "alignkit"):
        self.parts = find_parts(model)
        n = self.parts.num_layers
        self.noise_layers = list(range(n)) if noise_layers is None else list(noise_layers)
        self.capture_mlp = capture_mlp
        if lens not in ("all", "final", "none"):
            raise ValueError(lens)
        if variant not in LOSS_VARIANTS:
            raise AlignkitError(f"unknown loss variant {variant!r}; choose one of {', '.join(LOSS_VARIANTS)}")
        self.lens = lens
        self.variant = variant
        self.vocab = self.parts.lm_head.weight.shape[0]
        self.chunk_rows = chunk_rows or default_chunk_rows(self.vocab)
        self.handles: list[Any] = []
        self.registrations = 0
        self.n_rows = 0
        self._reset()
        self.active = False

    def _reset(self):
        self.mlp_out: dict[int, Any] = {}
        self.hidden: dict[int, Any] = {}
        self.final = None
        self.lens_sum = None
        self.retain_sum = None
        self.targets: Optional[Targets] = None
        self.retain_targets: Optional[Targets] = None

    # ---------------------------------------------------------------- registration
    def __enter__(self) -> "RepNoiseHooks":
        self.register()
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def register(self) -> None:
        if self.handles:
            return
        p = self.parts
        if self.capture_mlp:
            for li in self.noise_layers:
                self.handles.append(p.mlps[li].register_forward_hook(self._mlp_hook(li)))
        if self.lens == "all":
            self.handles.append(p.layers[0].register_forward_pre_hook(self._input_hook, with_kwargs=True))
            for li in range(p.num_layers - 1):
                self.handles.append(p.layers[li].register_forward_hook(self._layer_hook(li + 1)))
        self.handles.append(p.norm.register_forward_hook(self._norm_hook))
        self.handles.append(p.lm_head.register_forward_hook(self._head_hook, prepend=True))
        self.registrations += 1

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
        self._reset()

    @property
    def num_hooks(self) -> int:
        return len(self.handles)

    # ---------------------------------------------------------------- collection window
    def start(self, n_rows: int, lens_targets: Optional[Targets], retain_targets: Optional[Targets]) -> None:
        """Open the capture window: the first ``n_rows`` rows are harmful; ``retain_targets`` index the rows
        after them (row 0 = the first row after the harmful ones)."""
        self._reset()
        self.n_rows = n_rows
        self.targets = lens_targets if self.lens != "none" else None
        self.retain_targets = retain_targets
        self.active = True

    def stop(self) -> None:
        self.active = False

    def _mlp_hook(self, li: int):
        def hook(module, args, output):
            if self.active:
                self.mlp_out[li] = first_tensor(output)[: self.n_rows]
        return hook

    def _layer_hook(self, j: int):
        def hook(module, args, output):
            if self.active:
                self.hidden[j] = first_tensor(output)[: self.n_rows]
        return hook

    def _input_hook(self, module, args, kwargs):
        if self.active:
            h = args[0] if args else kwargs.get("hidden_states")
            self.hidden[0] = h[: self.n_rows]

    def _norm_hook(self, module, args, output):
        if self.active and self.final is None:
            self.final = first_tensor(output)

    def _head_hook(self, module, args, output):
        if self.active and self.final is not None:
            self.compute(module)

    # ---------------------------------------------------------------- the fused CEs
    def _ce_sum(self, feats, head, targets: Targets, n_states: int = 1):
        """CE sum over ``feats`` (n_states x targets rows) + the constant ``log V`` terms."""
        import math

        bias = getattr(head, "bias", None)
        total = LensCrossEntropy.apply(feats, head.weight, bias, targets.tokens.repeat(n_states),
                                       self.chunk_rows)
        if targets.n_const:
            total = total + n_states * targets.n_const * math.log(self.vocab)
        return total

    def compute(self, head=None) -> None:
        """Both CE sums; run inside the LM head's forward (the hook does) or after the forward when no hook
        fired (unsharded models only)."""
        import math

        head = head if head is not None else self.parts.lm_head
        if self.retain_sum is None and self.retain_targets is not None:
            t = self.retain_targets
            if t.tokens.numel():
                self.retain_sum = self._ce_sum(self.final[self.n_rows:][t.rows, t.cols], head, t)
            else:
                self.retain_sum = self.final.sum() * 0.0 + t.n_const * math.log(self.vocab)
        if self.lens_sum is None and self.targets is not None:
            self.compute_lens(head)

    def compute_lens(self, head) -> None:
        import math

        import torch

        t = self.targets
        final = self.final[: self.n_rows]
        n_states = self.num_lens_states
        if t.tokens.numel() == 0:
            self.lens_sum = final.sum() * 0.0 + n_states * t.n_const * math.log(self.vocab)
            return
        rows, cols = t.rows, t.cols
        if self.lens == "all":
            n = self.parts.num_layers
            missing = [j for j in range(n) if j not in self.hidden]
            if missing:
                raise AlignkitError(f"RepNoise hooks captured no hidden state for layer(s) {missing[:5]}; "
                                    "this model's layers are not called as modules")
            # hidden states 0..L-1 are raw residual streams: final norm, then LM head; the last is already normed
            raw = torch.cat([self.hidden[j][rows, cols] for j in range(n)], dim=0)
            last = final[rows, cols]
            if self.variant == "official":
                # the original: final-logits CE + every hidden state through norm + head (the last normed twice)
                feats = torch.cat([last, self.parts.norm(raw), self.parts.norm(last)], dim=0)
            else:
                feats = torch.cat([self.parts.norm(raw), last], dim=0)
        else:
            feats = final[rows, cols]
        self.lens_sum = self._ce_sum(feats, head, t, n_states)

    @property
    def num_lens_states(self) -> int:
        """Hidden states whose lens CE enters the sum (alignkit L+1; official L+2: the final logits too)."""
        if self.lens != "all":
            return 1
        return self.parts.num_layers + (2 if self.variant == "official" else 1)

    @property
    def lens_divisor(self) -> int:
        """What the sum of per-state mean CEs is divided by (official: L+1 for its L+2 terms)."""
        if self.lens != "all":
            return 1
        return self.parts.num_layers + 1

    def _finish(self) -> None:
        if (self.targets is not None and self.lens_sum is None) or \
                (self.retain_targets is not None and self.retain_sum is None):
            if self.final is None:
                raise AlignkitError("RepNoise hooks captured no final-norm output; unsupported model layout")
            self.compute()

    def lens_mean(self):
        """Mean over lens states of each state's token-mean CE (official: sum over L+2 states / (L+1))."""
        self._finish()
        return self.lens_sum / max(1, self.targets.count) / self.lens_divisor

    def retain_mean(self):
        self._finish()
        return self.retain_sum / max(1, self.retain_targets.count)

    def mmd_mean(self, batch: dict, use_mask: bool, seed: int):
        m = noise_mask(batch, use_mask, self.variant)
        total = None
        for li in self.noise_layers:
            h = self.mlp_out.get(li)
            if h is None:
                raise AlignkitError(f"RepNoise hooks captured no MLP output for layer {li}")
            mm = m[..., None].to(h.dtype)
            noise = gaussian_noise(h.shape, seed=seed, layer=li, device=h.device, dtype=h.dtype)
            term = mmd_multi_kernel((h * mm).reshape(h.size(0), -1), (noise * mm).reshape(h.size(0), -1))
            total = term if total is None else total + term
        return total / len(self.noise_layers)


# ---------------------------------------------------------------------------------------------- the loss
def retain_targets(batch: dict, use_mask: bool, variant: str, b: int) -> Targets:
    """Targets of the retain CE over the rows after the harmful ones: the harmless (refusal) rows, then the
    ``retain_*`` rows of a retain mix (their answer tokens) when the batch has them."""
    import torch

    t = harmless_targets(batch, use_mask, variant)
    if "retain_input_ids" not in batch or batch["retain_input_ids"].size(0) == 0:
        return t
    r = Targets.from_mask(batch["retain_input_ids"], batch["retain_labels"][:, 1:] != -100)
    return Targets(torch.cat([t.rows, r.rows + b]), torch.cat([t.cols, r.cols]), torch.cat([t.tokens, r.tokens]),
                   t.n_const + r.n_const)


def repnoise_loss(model, batch: dict, hooks: RepNoiseHooks, config: RepNoiseConfig, seed: int
                  ) -> tuple[Any, dict[str, Any]]:
    """The RepNoise loss of one paired batch (``model`` may be wrapped; ``hooks`` sit on its unwrapped
    modules). One forward over [harmful; harmless; retain] rows. Returns ``(loss, components)``."""
    import torch

    b = batch["harmful_input_ids"].size(0)
    variant = getattr(config, "loss_variant", "alignkit")
    parts: dict[str, Any] = {}
    need_harmful = config.noise or config.ascent
    ids = [batch["harmless_input_ids"]]
    att = [batch["harmless_attention_mask"]]
    if "retain_input_ids" in batch and batch["retain_input_ids"].size(0):
        ids.append(batch["retain_input_ids"])
        att.append(batch["retain_attention_mask"])
    n_harm = b if need_harmful else 0
    if need_harmful:
        ids.insert(0, batch["harmful_input_ids"])
        att.insert(0, batch["harmful_attention_mask"])
    lens_t = lens_targets(batch, config.use_mask, variant) if config.ascent else None
    hooks.start(n_harm, lens_t, retain_targets(batch, config.use_mask, variant, b))
    try:
        model(input_ids=torch.cat(ids), attention_mask=torch.cat(att), use_cache=False, logits_to_keep=1)
        stab = hooks.retain_mean()
        loss = stab
        parts["harmless_ce"] = stab
        if config.noise:
            mmd = hooks.mmd_mean(batch, config.use_mask, seed)
            loss = loss + config.beta * mmd
            parts["noise_mmd"] = mmd
        if config.ascent:
            lens = hooks.lens_mean()
            loss = loss - config.alpha * torch.log(lens + 1.0)
            parts["harmful_ce"] = lens
    finally:
        hooks.stop()
        hooks._reset()
    return loss, parts


def make_hooks(model, config: RepNoiseConfig) -> RepNoiseHooks:
    parts = find_parts(model)
    layers = parse_layers(config.noise_layers, parts.num_layers, "--noise-layers")
    lens = "none" if not config.ascent else ("all" if config.logit_lens else "final")
    return RepNoiseHooks(model, noise_layers=layers, capture_mlp=config.noise, lens=lens,
                         chunk_rows=config.lens_chunk_rows, variant=getattr(config, "loss_variant", "alignkit"))


def freeze(model, config) -> list[str]:
    """Freeze ``freeze_layers`` (and the embeddings); returns the frozen parameter names."""
    parts = find_parts(model)
    frozen: list[str] = []
    if config.freeze_layers:
        for li in parse_layers(config.freeze_layers, parts.num_layers, "--freeze-layers"):
            for name, p in parts.layers[li].named_parameters():
                p.requires_grad_(False)
                frozen.append(f"layers.{li}.{name}")
    if config.freeze_embeddings and parts.embeddings is not None:
        for p in parts.embeddings.parameters():
            p.requires_grad_(False)
        frozen.append("embeddings")
    if frozen and not any(p.requires_grad for p in model.parameters()):
        raise AlignkitError("--freeze-layers/--freeze-embeddings froze every parameter; nothing left to train")
    return frozen


# ---------------------------------------------------------------------------------------------- retain mix
def load_retain(config) -> list[tuple[str, str]]:
    """``round(retain_mix * pairs)`` harmless (instruction, response) rows are mixed into the retain CE. The
    rows come from a registered dataset of instructions (default ``harmless-instructions``, train split) or a
    jsonl/json file with ``instruction`` and ``response`` fields. Bad data -> one-line :class:`AlignkitError`."""
    import json
    from pathlib import Path

    from alignkit import data

    name = config.retain_dataset
    p = Path(name).expanduser()
    if p.suffix in (".jsonl", ".json") or p.exists():
        if not p.is_file():
            raise AlignkitError(f"--retain-dataset file {str(p)!r} does not exist")
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix == ".json":
                items = json.loads(text)
                items = (items.get("data") or items.get("rows") or []) if isinstance(items, dict) else items
            else:
                items = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise AlignkitError(f"could not parse --retain-dataset {str(p)!r}: {str(exc)[:120]}") from None
        out = []
        for i, it in enumerate(items):
            if not isinstance(it, dict) or not all(isinstance(it.get(k), str) and it[k].strip()
                                                   for k in ("instruction", "response")):
                have = sorted(it)[:6] if isinstance(it, dict) else type(it).__name__
                raise AlignkitError(f"--retain-dataset {str(p)!r} row {i + 1}: needs non-empty string fields "
                                    f"instruction, response (has {have})")
            out.append((it["instruction"], it["response"]))
    else:
        if name not in data.names():
            raise AlignkitError(f"unknown --retain-dataset {name!r}; give a registered dataset of instructions "
                                "(e.g. harmless-instructions) or a jsonl/json file with instruction, response fields")
        rows = data.load(name, split="train", seed=config.data_seed)
        if not rows or not (hasattr(rows[0], "instruction") and hasattr(rows[0], "response")):
            raise AlignkitError(f"--retain-dataset {name!r} has no instruction/response rows; use "
                                "harmless-instructions or a jsonl file with instruction, response fields")
        out = [(r.instruction, r.response) for r in rows]
    if not out:
        raise AlignkitError(f"--retain-dataset {name!r} is empty")
    return out


def retain_assignment(n_pairs: int, n_rows: int, mix: float, seed: int) -> list[list[int]]:
    """Which retain rows go with each pair: ``round(mix * n_pairs)`` rows drawn without replacement (cycling
    when the retain data is smaller), dealt round-robin to the pairs, so a shuffled batch of pairs carries about
    ``mix`` retain rows per pair."""
    import random

    n = round(mix * n_pairs)
    rng = random.Random(f"retain-{seed}")
    order: list[int] = []
    while len(order) < n:
        perm = list(range(n_rows))
        rng.shuffle(perm)
        order += perm
    out: list[list[int]] = [[] for _ in range(n_pairs)]
    for j, r in enumerate(order[:n]):
        out[j % n_pairs].append(r)
    return out


class RetainPairDataset:
    """Encoded pairs, each carrying its share of encoded retain rows (``item["retain"]``)."""

    def __init__(self, tokenizer, records: list, retain: list[tuple[str, str]], config):
        from alignkit.defences.base import PairDataset
        from alignkit.formatting import encode_qa

        self.items = PairDataset(tokenizer, records, config.template, config.max_length).items
        if retain and config.retain_mix > 0:
            assign = retain_assignment(len(self.items), len(retain), config.retain_mix, config.seed)
            for item, idx in zip(self.items, assign):
                item["retain"] = [encode_qa(tokenizer, retain[k][0], retain[k][1], config.template,
                                            config.max_length) for k in idx]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


class RetainPairCollator:
    """``PairCollator`` plus ``retain_input_ids / retain_attention_mask / retain_labels`` (possibly 0 rows), every
    tensor right-padded to one common length so the rows can share one forward."""

    def __init__(self, pad_token_id: int):
        from alignkit.formatting import PairCollator

        self.pad = pad_token_id
        self.pairs = PairCollator(pad_token_id)

    def __call__(self, feats: list[dict]) -> dict:
        import torch

        from alignkit.formatting import pad_right

        retain = [r for f in feats for r in f.get("retain", [])]
        out = self.pairs([{k: v for k, v in f.items() if k != "retain"} for f in feats])
        n = out["harmful_input_ids"].size(1)
        m = max([n] + [len(r["input_ids"]) for r in retain])
        if m > n:
            fill = {"input_ids": self.pad, "attention_mask": 0, "labels": -100}
            for k, v in list(out.items()):
                value = 0 if k == "diff_mask" else fill[k.split("_", 1)[1]]
                out[k] = torch.cat([v, torch.full((v.size(0), m - n), value, dtype=v.dtype)], dim=1)
        if retain:
            out["retain_input_ids"] = pad_right([r["input_ids"] for r in retain], self.pad, m)
            out["retain_attention_mask"] = pad_right([r["attention_mask"] for r in retain], 0, m)
            out["retain_labels"] = pad_right([r["labels"] for r in retain], -100, m)
        else:
            for k in ("input_ids", "attention_mask", "labels"):
                out[f"retain_{k}"] = torch.zeros((0, m), dtype=torch.long)
        return out


def model_num_layers(model: str) -> Optional[int]:
    """Decoder layers of ``model`` from its config alone (no weights); None when it cannot be read."""
    try:
        from transformers import AutoConfig

        from alignkit.models import resolve_model

        cfg = AutoConfig.from_pretrained(resolve_model(model), trust_remote_code=False)
    except Exception:  # noqa: BLE001 - an unreadable model fails later with its own message
        return None
    cfg = getattr(cfg, "text_config", None) or cfg
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(getattr(cfg, key, None), int):
            return getattr(cfg, key)
    return None


def validate(config) -> None:
    """Checks that need the model's config or the retain data, run before the output folder is created."""
    n = model_num_layers(config.model)
    if n is not None:
        if hasattr(config, "noise_layers"):
            parse_layers(config.noise_layers, n, "--noise-layers")
        if getattr(config, "freeze_layers", ""):
            parse_layers(config.freeze_layers, n, "--freeze-layers")
    if getattr(config, "retain_mix", 0) > 0:
        load_retain(config)


def step_seed(config_seed: int, step: int, micro: int, rank: int) -> int:
    return ((config_seed * 1_000_033 + step) * 64 + micro) * 1024 + rank


@DEFENCES.register("repnoise")
class RepNoise(Defence):
    config_class = RepNoiseConfig
    loss_weights = ("alpha", "beta")
    description = ("Representation Noising: harmful-text representations pushed towards Gaussian noise at every "
                   "layer (MMD), gradient ascent on harmful answers through the logit lens, harmless CE kept")

    def run(self, config, records=None):
        validate(config)  # bad layer indices / retain data: one line, before any output folder exists
        return super().run(config, records=records)

    def prepare_model(self, config, model):
        find_parts(model)  # unsupported architecture -> AlignkitError before any training
        parse_layers(config.noise_layers, find_parts(model).num_layers, "--noise-layers")
        freeze(model, config)
        return model

    def make_trainer(self, config, model, tokenizer, records, args):
        return make_repnoise_trainer(config, model, tokenizer, records, args)


def make_repnoise_trainer(config: RepNoiseConfig, model, tokenizer, records, args):
    Base = trainer_class()

    class RepNoiseTrainer(Base):
        """``transformers.Trainer`` with the RepNoise loss. Hooks are registered once when training starts (on
        the unwrapped model) and removed when it ends."""

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.rn_config = config
            self.hooks: Optional[RepNoiseHooks] = None
            self._micro = (-1, 0)

        def train(self, *a, **kw):
            self.hooks = make_hooks(self.model, self.rn_config)
            with self.hooks:
                return super().train(*a, **kw)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            step = int(self.state.global_step)
            micro = self._micro[1] + 1 if self._micro[0] == step else 0
            self._micro = (step, micro)
            seed = step_seed(self.rn_config.seed, step, micro, int(self.args.process_index))
            loss, parts = repnoise_loss(model, inputs, self.hooks, self.rn_config, seed)
            self.record(**parts)
            return (loss, None) if return_outputs else loss

    retain = load_retain(config) if config.retain_mix > 0 else []
    return RepNoiseTrainer(model=model, args=args, train_dataset=RetainPairDataset(tokenizer, records, retain, config),
                           data_collator=RetainPairCollator(tokenizer.pad_token_id), processing_class=tokenizer)
