"""Where alignkit keeps its cache (converted models, trained judges) and its runs."""

from __future__ import annotations

import os
from pathlib import Path


def alignkit_home() -> Path:
    """``$ALIGNKIT_HOME`` or ``~/.cache/alignkit``; created on first use."""
    home = Path(os.environ.get("ALIGNKIT_HOME", Path.home() / ".cache" / "alignkit")).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def models_dir() -> Path:
    d = alignkit_home() / "models"
    d.mkdir(parents=True, exist_ok=True)
    return d


def default_runs_dir() -> Path:
    """Default parent folder for run outputs: ``./runs`` under the current directory."""
    return Path(os.environ.get("ALIGNKIT_RUNS", "runs"))
