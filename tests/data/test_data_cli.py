"""`alignkit data list` / `show` through the module's standalone entry point (same error handling as the root CLI)."""

import subprocess
import sys

from alignkit.data.cli import main


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for name in ("harmful-qa", "paired-refusals", "judge-labels", "harmful-eval", "advbench", "harmbench",
                 "strongreject", "donotanswer", "harmless-instructions", "data2text"):
        assert name in out
    assert "train 245, eval 36, test 57" in out and "Apache-2.0" in out and "MIT" in out


def test_show_counts_per_split_and_category(capsys):
    assert main(["show", "harmful-qa", "--n", "2", "--width", "40"]) == 0
    out = capsys.readouterr().out
    assert "violence" in out and "train" in out and "eval" in out and "test" in out
    assert "first 2 of 245 rows of split 'train'" in out
    assert "question: " in out and "..." in out


def test_show_errors_exit_2(capsys):
    assert main(["show", "nope"]) == 2
    from alignkit import data

    assert capsys.readouterr().err.strip() == f"error: unknown dataset 'nope'; choose one of: {', '.join(data.names())}"
    assert main(["show", "advbench", "--split", "train"]) == 2
    assert capsys.readouterr().err.strip() == "error: dataset 'advbench' has no split 'train'; choose one of: test, all"
    assert main(["show", "advbench", "--n", "-1"]) == 2
    assert "error: --n must be 0 or more" in capsys.readouterr().err


def test_app_is_mounted_under_alignkit_data(capsys):
    """The data commands are reachable through the root CLI (not only through this module's own app)."""
    from alignkit.cli import main as root_main

    root_main(["data", "list"])
    out = capsys.readouterr().out
    assert "harmful-qa" in out and "paired-refusals" in out


def test_module_entry_point_exit_code():
    r = subprocess.run([sys.executable, "-m", "alignkit.data.cli", "show", "nope"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: unknown dataset 'nope'") and "Traceback" not in r.stderr
