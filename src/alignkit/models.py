"""Model names, loading and saving.

Anywhere alignkit accepts a model, it accepts one of the offline asset names below, a local folder
(a plain Hugging Face folder with safetensors) or a hub id (needs network). Loading is safe by default:
safetensors only (``use_safetensors=True`` for local folders) and ``trust_remote_code=False``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from alignkit.errors import AlignkitError

CAUSAL_LM_ALIASES = ("smollm2-135m-instruct", "tiny-random-llama")
ENCODER_ALIASES = ("minilm-l6",)
MODEL_ALIASES = CAUSAL_LM_ALIASES + ENCODER_ALIASES


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """Map an alias to its prepared cache folder, keep local folders, pass anything else on as a hub id."""
    name = str(name_or_path)
    if name in MODEL_ALIASES:
        from alignkit import assets

        return str(assets.prepare(name))
    p = Path(name).expanduser()
    if p.exists():
        if not p.is_dir():
            raise AlignkitError(f"model path {name!r} is a file; give a model folder (with config.json) "
                                f"or one of: {', '.join(MODEL_ALIASES)}")
        if not (p / "config.json").exists():
            raise AlignkitError(f"model folder {name!r} has no config.json; give a Hugging Face model folder")
        return str(p)
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or name.endswith(
        (".json", ".safetensors", ".bin", ".gguf"))
    if looks_like_path:
        raise AlignkitError(f"model folder {name!r} does not exist; give an existing folder, a hub id, "
                            f"or one of: {', '.join(MODEL_ALIASES)}")
    if "/" not in name:
        raise AlignkitError(f"unknown model {name!r}; use one of: {', '.join(MODEL_ALIASES)}, "
                            "a local folder, or a hub id like 'org/name'")
    _check_hub_reachable(name)
    return name  # hub id


def _check_hub_reachable(name: str) -> None:
    """Fail in seconds, with one line, when a hub id cannot be fetched: not in the local hub cache and either
    offline mode is on or the hub's host does not answer (huggingface_hub would otherwise retry for ~45 s)."""
    import socket
    from urllib.parse import urlparse

    try:
        from huggingface_hub import constants, try_to_load_from_cache

        if isinstance(try_to_load_from_cache(name, "config.json"), str):
            return  # cached: transformers loads it without network
        offline, endpoint = constants.HF_HUB_OFFLINE, constants.ENDPOINT
    except Exception:  # noqa: BLE001 - an invalid repo id etc.: let the loader report it
        return
    if offline:
        raise AlignkitError(f"model {name!r} is a hub id, not in the local hub cache, and HF_HUB_OFFLINE is set; "
                            "unset it (with network), or give a local folder / an alias from 'alignkit assets list'")
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return  # behind a proxy a direct connection says nothing: let huggingface_hub try
    host = urlparse(endpoint).hostname or "huggingface.co"
    port = urlparse(endpoint).port or (443 if endpoint.startswith("https") else 80)
    try:
        socket.create_connection((host, port), timeout=float(os.environ.get("ALIGNKIT_HUB_TIMEOUT", "5"))).close()
    except OSError:
        raise AlignkitError(f"model {name!r} is a hub id but {host} cannot be reached (no network?); give a local "
                            "folder or an alias from 'alignkit assets list'") from None


def _hub_error(name: str, exc: Exception) -> AlignkitError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return AlignkitError(f"could not load model {name!r} from the hub ({first[:160]}); check the id, "
                         "your network and that it has safetensors weights, or give a local folder / an alias from "
                         "'alignkit assets list'")


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    return tok


def load_causal_lm(name_or_path: str | os.PathLike, *, dtype: str = "float32", device: str | None = None,
                   trust_remote_code: bool = False) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a causal LM. The tokenizer always has a pad token."""
    import torch
    from transformers import AutoModelForCausalLM

    name = str(name_or_path)
    path = resolve_model(name)
    if name in ENCODER_ALIASES:
        raise AlignkitError(f"{name!r} is a sentence encoder, not a causal LM; use one of: "
                            f"{', '.join(CAUSAL_LM_ALIASES)}")
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16,
                   "auto": "auto"}.get(dtype)
    if torch_dtype is None:
        raise AlignkitError(f"unknown dtype {dtype!r}; use float32, bfloat16, float16 or auto")
    local = Path(path).exists()
    if local:
        check_weights(path)
    try:
        tok = load_tokenizer(path, trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                                     use_safetensors=True)
    except AlignkitError:
        raise
    except OSError as exc:
        if local:
            raise AlignkitError(f"could not load model folder {path!r}: {str(exc).splitlines()[0][:200]} "
                                "(alignkit loads safetensors weights only)") from None
        raise _hub_error(name, exc) from None
    except ValueError as exc:
        raise AlignkitError(f"model {name!r} is not a causal LM that transformers can load: "
                            f"{str(exc).splitlines()[0][:200]}") from None
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    if device:
        model.to(device)
    return model, tok


def check_weights(folder: str | os.PathLike) -> None:
    """One-line error for a local model folder without complete safetensors weights (truncated copy, pickle
    .bin weights only)."""
    from alignkit.io import safetensors_ok

    p = Path(folder)
    weights = sorted(p.glob("*.safetensors"))
    if not weights:
        pickled = sorted(x.name for x in p.glob("*.bin")) + sorted(x.name for x in p.glob("*.pt"))
        raise AlignkitError(f"model folder {str(p)!r} has no .safetensors weights"
                            + (f" (only pickle files: {', '.join(pickled[:3])}); convert them to safetensors"
                               if pickled else "; give a Hugging Face model folder saved with safetensors"))
    for f in weights:
        if not safetensors_ok(f):
            raise AlignkitError(f"model weights {str(f)!r} are truncated or corrupt; copy or save the model again")


def context_length(path: str | os.PathLike) -> int | None:
    """The context window (max_position_embeddings / n_positions) in a local model folder's config.json."""
    try:
        cfg = json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    n = context_length_from(cfg)
    text = cfg.get("text_config")
    return n if n is not None or not isinstance(text, dict) else context_length_from(text)


def context_length_from(cfg: dict) -> int | None:
    for k in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        if isinstance(cfg.get(k), int) and cfg[k] > 0:
            return cfg[k]
    return None


def public_model_name(name_or_path: str | os.PathLike) -> str:
    """How a model card names a model: an alias or hub id as given; for a local folder, the alias / hub id
    its own alignkit card names as its base, else the folder's name - never an absolute local path."""
    name = str(name_or_path)
    if name in MODEL_ALIASES:
        return name
    p = Path(name).expanduser()
    if p.is_dir():
        try:
            card = json.loads((p / "alignkit.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            card = {}
        base = card.get("base_model") if isinstance(card, dict) else None
        if isinstance(base, str) and base and not Path(base).is_absolute() and not base.startswith((".", "~")):
            return base
        return p.resolve().name or "model"
    return name  # a hub id


def load_encoder(name: str = "minilm-l6") -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    path = resolve_model(name)
    try:
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModel.from_pretrained(path, use_safetensors=True)
    except OSError as exc:
        raise _hub_error(name, exc) from None
    return model, tok


def save_with_card(model, tokenizer, out_dir: str | os.PathLike, card: dict[str, Any]) -> Path:
    """Save a plain Hugging Face folder (safetensors) with a model card and ``alignkit.json``."""
    from alignkit import __version__
    from alignkit.io import atomic_write_text, write_json

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    card = {"alignkit_version": __version__, **card}
    if card.get("base_model"):
        card["base_model"] = public_model_name(card["base_model"])
    write_json(out / "alignkit.json", card)
    header = ["---", "library_name: transformers", "tags: [alignkit]"]
    if card.get("base_model"):
        header.append(f"base_model: {json.dumps(card['base_model'])}")
    lines = [*header, "---", "",
             f"# {card.get('title', 'alignkit model')}", ""]
    for k, v in card.items():
        if k == "title":
            continue
        if isinstance(v, (dict, list)):
            v = "\n\n```json\n" + json.dumps(v, indent=2, default=str) + "\n```"
        lines.append(f"- **{k}**: {v}")
    lines += ["", "Load with `AutoModelForCausalLM.from_pretrained(folder)`; no custom code is needed.", ""]
    atomic_write_text(out / "README.md", "\n".join(lines))
    return out
