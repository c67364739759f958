"""Per-stage result files of an evaluation run: a stage whose key matches is reused, so a killed run resumes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel

from alignkit.io import write_json


def stage_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Stages:
    """Per-stage result files ``stages/<name>.json`` = {key, result}; a matching key means 'already done'."""

    def __init__(self, run_dir: Path, overwrite: bool = False):
        self.dir = run_dir / "stages"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.overwrite = overwrite
        self.reused: list[str] = []

    def _file(self, name: str) -> Path:
        return self.dir / (name.replace("/", "_") + ".json")

    def get(self, name: str, key: Any, cls: type[BaseModel] | None = None) -> Any:
        f = self._file(name)
        if self.overwrite or not f.exists():
            return None
        try:
            obj = json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            return None
        if obj.get("key") != stage_hash(key):
            return None
        res = obj.get("result")
        try:
            out = cls.model_validate(res) if cls is not None else res
        except Exception:  # noqa: BLE001 - a stale schema: recompute
            return None
        self.reused.append(name)
        return out

    def put(self, name: str, key: Any, result: Any) -> None:
        if isinstance(result, BaseModel):
            result = json.loads(result.model_dump_json())
        write_json(self._file(name), {"key": stage_hash(key), "name": name, "result": result})

    def run(self, name: str, key: Any, fn: Callable[[], Any], cls: type[BaseModel] | None = None) -> Any:
        cached = self.get(name, key, cls)
        if cached is not None:
            return cached
        out = fn()
        self.put(name, key, out)
        return out
