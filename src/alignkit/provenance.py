"""Provenance attached to every result: which model, data, judge, seed and library versions produced it."""

from __future__ import annotations

import datetime as _dt
import platform
from importlib import metadata

from pydantic import BaseModel, Field, field_validator

_LIBS = ["alignkit", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "gymnasium",
         "stable-baselines3"]


def library_versions() -> dict[str, str]:
    out = {}
    for lib in _LIBS:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = platform.python_version()
    return out


class Provenance(BaseModel):
    """Who/what produced a result. Stored in every results.json."""

    model: str = Field(description="model name, folder or hub id")
    data: dict[str, str] = Field(default_factory=dict, description="dataset names -> split/size/source")
    judge: str | None = Field(default=None, description="judge name and version, e.g. 'minilm@1'")
    seed: int = 0
    versions: dict[str, str] = Field(default_factory=library_versions)
    created: str = Field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    device: str = "cpu"
    command: str | None = None

    @field_validator("command")
    @classmethod
    def _mask_credentials(cls, v: str | None) -> str | None:  # e.g. a --storage URL's password is never stored
        from alignkit.io import redact_command

        return None if v is None else redact_command(v)
