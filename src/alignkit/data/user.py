"""User data: JSONL / JSON / CSV files and hub datasets -> :class:`HarmfulQA` records.

    load_user("my_pairs.jsonl")                                   # columns question/answer[/category]
    load_user("pairs.csv", columns={"question": "q", "answer": "a", "category": "topic"})
    load_user("beavertails_sample.jsonl", schema="beavertails")   # prompt/response/category/is_safe
    load_user("PKU-Alignment/BeaverTails", schema="beavertails", split="30k_train")   # needs network

- A local path is read with ``datasets.load_dataset("json"|"csv", data_files=path)`` (extensions
  ``.jsonl``, ``.json``, ``.csv``); anything that is not an existing file and does not look like a file path
  is treated as a hub dataset id and read with ``datasets.load_dataset(id, split=split or "train")``.
- ``columns`` maps record fields to the file's columns: ``question`` and ``answer`` (required), ``category``,
  ``harm_score`` and ``is_safe`` (optional). Without it, the first present of question/prompt/instruction,
  answer/response/output, category are used.
- Schema ``beavertails``: columns prompt, response, category (a dict of ``{category: bool}`` -> the first true
  category, or a string), is_safe. With ``harmful_only=True`` (default) only ``is_safe == False`` rows are
  kept; ``harm_score`` = 1.0 for unsafe rows and 0.0 for safe ones.
- Rows are de-duplicated on (normalised question, normalised answer).
- Every problem (missing file, unsupported extension, non-UTF-8 bytes, unparsable file, missing columns,
  empty text, unreachable hub id) raises a one-line :class:`AlignkitError`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from alignkit.data.base import normalize_category, normalize_text, stable_id
from alignkit.data.records import HarmfulQA
from alignkit.errors import AlignkitError

SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv"}
DEFAULT_CANDIDATES = {"question": ("question", "prompt", "instruction"),
                      "answer": ("answer", "response", "output"),
                      "category": ("category",), "harm_score": ("harm_score",), "is_safe": ("is_safe",)}
SCHEMAS: dict[str, dict[str, str]] = {
    "beavertails": {"question": "prompt", "answer": "response", "category": "category", "is_safe": "is_safe"},
}
FIELDS = ("question", "answer", "category", "harm_score", "is_safe")


def _looks_like_path(s: str) -> bool:
    p = Path(s)
    return (bool(p.suffix) and " " not in p.suffix) or s.startswith((".", "/", "~")) or s.count("/") > 1 \
        or "\\" in s


def _check_utf8(path: Path) -> None:
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AlignkitError(f"{path}: not valid UTF-8 (byte {e.start}); re-save the file as UTF-8") from None
    if "\x00" in data.decode("utf-8"):
        raise AlignkitError(f"{path}: contains NUL bytes; is it a text file?")


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def _read_file(path: Path) -> tuple[list[dict], list[str]]:
    builder = SUFFIXES[path.suffix.lower()]
    if builder == "json":  # name the line of a bad record (datasets' own error does not)
        from alignkit.io import read_records

        read_records(path)
    _check_utf8(path)
    if not path.read_text(encoding="utf-8").strip():
        raise AlignkitError(f"{path}: the file is empty")
    import datasets

    cache = tempfile.mkdtemp(prefix="alignkit-user-")
    try:
        datasets.disable_progress_bars()
        ds = datasets.load_dataset(builder, data_files=str(path), split="train", cache_dir=cache)
        columns = list(ds.column_names)
        rows = ds.to_list()
        del ds
    except AlignkitError:
        raise
    except Exception as e:  # datasets raises many kinds on malformed input
        kind = "JSON lines" if builder == "json" else "CSV"
        raise AlignkitError(f"{path}: could not parse as {kind} ({type(e).__name__}: {_first_line(e)})") from None
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return rows, columns


def _read_hub(hub_id: str, split: str | None) -> tuple[list[dict], list[str]]:
    import datasets

    try:
        datasets.disable_progress_bars()
        ds = datasets.load_dataset(hub_id, split=split or "train")
        return ds.to_list(), list(ds.column_names)
    except Exception as e:
        raise AlignkitError(f"could not load hub dataset {hub_id!r}: it is not a local file and the hub "
                            f"refused or is unreachable ({type(e).__name__}: {_first_line(e)})") from None


def _resolve_columns(columns: dict | None, schema: str | None, present: list[str], where: str) -> dict[str, str]:
    if schema is not None:
        if schema not in SCHEMAS:
            raise AlignkitError(f"unknown schema {schema!r}; choose one of: {', '.join(sorted(SCHEMAS))}")
        mapping = dict(SCHEMAS[schema])
    else:
        mapping = {}
        for field, cands in DEFAULT_CANDIDATES.items():
            for c in cands:
                if c in present:
                    mapping[field] = c
                    break
    if columns:
        unknown = set(columns) - set(FIELDS)
        if unknown:
            raise AlignkitError(f"columns has unknown field(s) {', '.join(sorted(unknown))}; "
                                f"fields are: {', '.join(FIELDS)}")
        mapping.update({k: v for k, v in columns.items() if v})
    for field in ("question", "answer"):
        if field not in mapping:
            raise AlignkitError(f"{where}: no column for {field!r} (columns: {', '.join(present) or 'none'}); "
                                f"name it with --{field}-column COLUMN (Python: columns={{'{field}': 'COLUMN'}})")
    missing = [f"{c!r} (for {f})" for f, c in mapping.items() if c not in present]
    if missing:
        raise AlignkitError(f"{where}: missing column(s) {', '.join(missing)}; "
                            f"the file has: {', '.join(present) or 'none'}")
    return mapping


def _category(value: Any) -> str:
    if isinstance(value, dict):
        for k, v in value.items():
            if _truthy(v):
                return normalize_category(k)
        return "unspecified"
    if value is None or (isinstance(value, str) and not value.strip()):
        return "unspecified"
    return normalize_category(value)


def _truthy(v: Any) -> bool:
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes", "y", "t")
    return bool(v)


def _text(row: dict, col: str, i: int, where: str, field: str) -> str:
    v = row.get(col)
    if v is None or not isinstance(v, (str, int, float)) or isinstance(v, bool) or not str(v).strip():
        raise AlignkitError(f"{where}: row {i + 1} has an empty or non-text {field!r} (column {col!r})")
    return str(v).strip()


def load_user(path_or_hub_id: str | Path, columns: dict[str, str] | None = None, schema: str | None = None,
              split: str | None = None, harmful_only: bool = True) -> list[HarmfulQA]:
    """Read a user file or hub dataset of harmful question/answer pairs (see the module docstring)."""
    ref = str(path_or_hub_id).strip()
    if not ref:
        raise AlignkitError("empty data path or hub id")
    path = Path(ref).expanduser()
    if path.is_dir():
        raise AlignkitError(f"{path} is a directory; pass a .jsonl, .json or .csv file")
    if path.exists() or _looks_like_path(ref):
        if path.suffix.lower() not in SUFFIXES:
            raise AlignkitError(f"{path}: unsupported file type {path.suffix or '(none)'!r}; "
                                f"use {', '.join(SUFFIXES)}")
        if not path.is_file():
            raise AlignkitError(f"file not found: {path}")
        rows, present = _read_file(path)
        where, source = str(path), f"user:{path.name}"
    else:
        rows, present = _read_hub(ref, split)
        where, source = ref, f"hub:{ref}" + (f":{split}" if split else "")
    if not rows:
        raise AlignkitError(f"{where}: no rows")
    mapping = _resolve_columns(columns, schema, present, where)

    out: list[HarmfulQA] = []
    seen: set[tuple[str, str]] = set()
    for i, row in enumerate(rows):
        is_safe = None
        if "is_safe" in mapping:
            is_safe = _truthy(row.get(mapping["is_safe"]))
            if harmful_only and is_safe:
                continue
        q = _text(row, mapping["question"], i, where, "question")
        a = _text(row, mapping["answer"], i, where, "answer")
        key = (normalize_text(q), normalize_text(a))
        if key in seen:
            continue
        seen.add(key)
        score = None
        if "harm_score" in mapping and row.get(mapping["harm_score"]) not in (None, ""):
            try:
                score = float(row[mapping["harm_score"]])
            except (TypeError, ValueError):
                raise AlignkitError(f"{where}: row {i + 1}: harm_score {row[mapping['harm_score']]!r} "
                                    f"is not a number") from None
            if not 0.0 <= score <= 1.0:
                raise AlignkitError(f"{where}: row {i + 1}: harm_score {score} is outside [0, 1]")
        elif is_safe is not None:
            score = 0.0 if is_safe else 1.0
        cat = _category(row.get(mapping["category"])) if "category" in mapping else "unspecified"
        out.append(HarmfulQA(id=stable_id("user", *key), source=source, question=q, answer=a, category=cat,
                             harm_score=score))
    if not out:
        raise AlignkitError(f"{where}: no rows left" + (" (every row has is_safe true: nothing harmful to train "
                                                        "on; give unsafe rows)" if "is_safe" in mapping else ""))
    return out
