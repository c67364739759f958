"""Where the parts RepNoise and Vaccine need live in a Hugging Face decoder-only model, by name mapping.

``find_parts(model)`` returns the decoder layers, each layer's MLP block, the final norm and the LM head of
the *unwrapped* model (look them up on ``accelerator.unwrap_model(model)``: DDP / FSDP / DeepSpeed wrap the
top module but call the very same sub-modules, so hooks on them fire under every wrapper).

Known layouts (``model_type`` -> path of the layer list, MLP attribute, final norm)::

    llama, mistral, mixtral*, qwen2, qwen3, gemma, gemma2, gemma3_text, phi3, olmo, olmo2, granite, cohere,
    starcoder2, stablelm, smollm3, ...     model.layers[i].mlp,        model.norm
    phi                                    model.layers[i].mlp,        model.final_layernorm
    gpt_neox                               gpt_neox.layers[i].mlp,     gpt_neox.final_layer_norm
    gpt2, gpt_bigcode, falcon, bloom*      transformer.h[i].mlp,       transformer.ln_f
    gptj                                   transformer.h[i].mlp,       transformer.ln_f

(*: MoE blocks are used as "the MLP" when exposed as ``mlp``.) Models of another type are probed the same way
(a layer list with an ``mlp`` child plus a known final-norm name); anything else raises
:class:`AlignkitError` naming what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from alignkit.errors import AlignkitError

_BASES = ("model", "gpt_neox", "transformer", "decoder", "base_model")
_LAYER_LISTS = ("layers", "h", "blocks")
_NORMS = ("norm", "final_layernorm", "final_layer_norm", "ln_f", "final_norm")
_MLPS = ("mlp", "feed_forward", "ffn")


@dataclass
class ModelParts:
    layers: list[Any]          # decoder layers, in order (L of them)
    mlps: list[Any]            # the MLP block of each layer
    norm: Any                  # final norm applied before the LM head
    lm_head: Any               # output embedding (nn.Linear)
    embeddings: Any            # input embedding module
    layer_path: str            # e.g. "model.layers"
    mlp_attr: str              # e.g. "mlp"

    @property
    def num_layers(self) -> int:
        return len(self.layers)


def unwrap(model):
    """Strip DDP / FSDP / DeepSpeed / compile wrappers (``.module`` / ``._orig_mod``) and peft wrappers' outer
    shell is kept (its base model is probed below)."""
    seen = 0
    while seen < 8:
        seen += 1
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif hasattr(model, "module") and not hasattr(model, "config"):
            model = model.module
        else:
            break
    return model


def _peft_inner(model):
    # PeftModel -> LoraModel -> the transformers model
    if hasattr(model, "peft_config") and hasattr(model, "base_model"):
        inner = model.base_model
        if hasattr(inner, "model"):
            return inner.model
    return model


def find_parts(model) -> ModelParts:
    model = _peft_inner(unwrap(model))
    mtype = getattr(getattr(model, "config", None), "model_type", type(model).__name__)
    lm_head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if lm_head is None:
        raise AlignkitError(f"model type {mtype!r} has no output embedding (LM head); RepNoise needs a causal LM")
    for base_name in _BASES:
        base = getattr(model, base_name, None)
        if base is None:
            continue
        if base_name == "model" and hasattr(base, "decoder") and not any(hasattr(base, n) for n in _LAYER_LISTS):
            base = base.decoder  # opt-style
        for ln in _LAYER_LISTS:
            layers = getattr(base, ln, None)
            if layers is None or not hasattr(layers, "__len__") or len(layers) == 0:
                continue
            mlp_attr = next((a for a in _MLPS if hasattr(layers[0], a)), None)
            if mlp_attr is None:
                raise AlignkitError(
                    f"model type {mtype!r}: its decoder layers ({type(layers[0]).__name__}) have no MLP block "
                    f"named {'/'.join(_MLPS)}; this architecture is not supported by RepNoise/Vaccine (supported: "
                    "Llama, Mistral, Qwen2/3, Gemma, Phi, GPT-NeoX, GPT-2, Falcon, ...)")
            norm = next((getattr(base, n) for n in _NORMS if getattr(base, n, None) is not None), None)
            if norm is None:
                raise AlignkitError(f"model type {mtype!r}: no final norm found (looked for "
                                    f"{', '.join(_NORMS)} on {base_name}); not supported by RepNoise")
            emb = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
            return ModelParts(layers=list(layers), mlps=[getattr(layer, mlp_attr) for layer in layers], norm=norm,
                              lm_head=lm_head, embeddings=emb, layer_path=f"{base_name}.{ln}", mlp_attr=mlp_attr)
    raise AlignkitError(f"model type {mtype!r} ({type(model).__name__}) is not a supported decoder-only layout: no "
                        f"layer list ({'/'.join(_LAYER_LISTS)}) under {'/'.join(_BASES)}; supported: Llama, "
                        "Mistral, Qwen2/3, Gemma, Phi, GPT-NeoX, GPT-2, Falcon, ...")


def first_tensor(output):
    """The hidden-state tensor of a module output (tensor, tuple or ModelOutput)."""
    if isinstance(output, tuple):
        return output[0]
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state
    return output


def parse_layers(spec: str | list[int] | None, n: int, what: str = "layers") -> list[int]:
    """``"0-9,12"`` / ``[0, 1]`` / ``"all"`` / ``""`` -> sorted layer indices in [0, n); negative = from the end."""
    if spec is None or spec == "" or spec == "all":
        return list(range(n))
    if isinstance(spec, (list, tuple)):
        parts = [str(x) for x in spec]
    else:
        parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    out: set[int] = set()
    for p in parts:
        try:
            if "-" in p[1:]:
                a, b = p[0] + p[1:].split("-", 1)[0], p[1:].split("-", 1)[1]
                lo, hi = int(a), int(b)
                lo, hi = (lo + n if lo < 0 else lo), (hi + n if hi < 0 else hi)
                rng = range(lo, hi + 1)
            else:
                i = int(p)
                rng = range(i + n if i < 0 else i, (i + n if i < 0 else i) + 1)
        except ValueError:
            raise AlignkitError(f"bad {what} spec {spec!r}: use indices and ranges like '0-9,12'") from None
        for i in rng:
            if not 0 <= i < n:
                raise AlignkitError(f"{what} spec {spec!r}: index {i} is out of range; the model has {n} layers "
                                    f"(0..{n - 1})")
            out.add(i)
    if not out:
        raise AlignkitError(f"{what} spec {spec!r} selects no layer")
    return sorted(out)
