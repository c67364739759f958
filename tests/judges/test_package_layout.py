"""The judges package: one home for the recipe and one for validation, no import cycle with harmfulness.py, and
nothing of the retired versions left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import alignkit.judges as J

ROOT = Path(J.__file__).parent


def test_judges_never_import_harmfulness():
    """harmfulness.py imports judges (judge_label, incoherence); judges/ never imports harmfulness.py."""
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if "alignkit.harmfulness" in p.read_text()]
    assert offenders == []
    code = ("import sys, alignkit.judges, alignkit.judges.cli, alignkit.judges.card; "
            "import alignkit.judges.validation.ood, alignkit.judges.recipe.training; "
            "print('alignkit.harmfulness' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_recipe_and_validation_homes():
    assert {p.stem for p in (ROOT / "recipe").glob("*.py")} >= {"features", "lm_features", "heads", "training",
                                                                  "synthetic", "offtopic"}
    assert {p.stem for p in (ROOT / "validation").glob("*.py")} >= {"ood", "probe_set", "real_generations",
                                                                      "human_ceiling", "labels", "fixed"}
    assert (ROOT / "validation" / "data" / "real_generations" / "rows.jsonl").is_file()
    # a version is one module plus its card beside its weights
    for v in ("3", "5"):
        assert (ROOT / f"minilm{v}.py").is_file() and (ROOT / "weights" / f"minilm_judge_v{v}.card.json").is_file()
