"""A defence that changed nothing is never saved as defended (issue 28): every step at learning rate 0,
non-finite gradient norms, or weights that did not move -> one line, exit 2, no folder. Warm-up is rounded so
that a short run still trains."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest


def _cli(args, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alignkit.cli import app

    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    return CliRunner().invoke(app, args)


def test_warmup_rule_matches_transformers_except_the_cap():
    from transformers import TrainingArguments

    from alignkit.training import training_arguments, warmup_steps

    for ratio in (0.0, 0.1, 0.3, 0.5):
        for n in range(2, 40):
            hf = TrainingArguments(output_dir="/tmp/x", warmup_steps=ratio, report_to=[]).get_warmup_steps(n)
            want = min(hf, n - 1)
            assert warmup_steps(ratio, n) == want, (ratio, n)
    assert warmup_steps(0.1, 1) == 0  # transformers: ceil(0.1) = 1 warm-up step = the whole run at lr 0
    assert warmup_steps(0.9, 2) == 1 and warmup_steps(5, 3) == 2
    args = training_arguments("/tmp/x", lr=1e-4, batch_size=1, max_steps=1, warmup_ratio=0.1)
    assert args.get_warmup_steps(1) == 0


class _FakeTrainer:
    def __init__(self, model, history=()):
        self.model = model
        self.state = SimpleNamespace(log_history=list(history))

    def add_callback(self, cb):
        self.cb = cb


def _watch(history):
    import torch

    from alignkit.training import TrainingWatch

    model = torch.nn.Linear(4, 4)
    return model, TrainingWatch(_FakeTrainer(model, history), model)


def test_watch_messages():
    import torch

    opts = SimpleNamespace(warmup_ratio=0.1)
    model, w = _watch([])
    assert "no optimizer step ran" in w.problem(model, opts)
    model, w = _watch([{"step": 1, "learning_rate": 0.0, "grad_norm": 1.0}])
    msg = w.problem(model, opts)
    assert "every optimizer step (1) ran at learning rate 0" in msg and "--warmup-ratio 0" in msg
    model, w = _watch([{"step": 1, "learning_rate": 0.0, "grad_norm": 1.0},
                       {"step": 2, "learning_rate": 1e-4, "grad_norm": math.inf}])
    msg = w.problem(model, opts, ("lambda_tr",))
    assert "gradient norm was inf" in msg and "--lambda-tr" in msg
    model, w = _watch([{"step": 1, "learning_rate": 1e-4, "grad_norm": 0.0}])
    assert "gradient was 0" in w.problem(model, opts)
    model, w = _watch([{"step": 1, "learning_rate": 1e-4, "grad_norm": 1.0}])
    assert "moved by 0 (relative L2 change; floor 1e-07)" in w.problem(model, opts)
    with torch.no_grad():
        model.weight.mul_(1 + 1e-8)  # below float32 resolution: still "nothing"
    assert "moved by" in w.problem(model, opts)
    with torch.no_grad():
        model.weight.add_(1e-3)
    assert w.problem(model, opts) is None
    s = w.check(model, "defended model", opts)
    assert s["steps"] == 1 and s["steps_at_nonzero_lr"] == 1 and s["weight_change"] > 1e-7


def test_one_step_run_trains_and_moves_weights(tmp_path, monkeypatch, pairs_file, tiny_model_path):
    """--max-steps 1 with the default 10% warm-up used to train at lr 0 and save the input model as defended."""
    from safetensors.torch import load_file

    out = tmp_path / "rn"
    r = _cli(["defend", "--defence", "repnoise", "--model", "tiny-random-llama", "--dataset", str(pairs_file),
              "--max-steps", "1", "--num-samples", "4", "--batch-size", "2", "--output-dir", str(out)],
             tmp_path, monkeypatch)
    assert r.exit_code == 0, r.output[-2000:]
    card = json.loads((out / "alignkit.json").read_text())
    assert card["training"]["steps_at_nonzero_lr"] == 1 and card["training"]["weight_change"] > 1e-7
    base = load_file(str(Path(tiny_model_path) / "model.safetensors"))
    new = load_file(str(out / "model.safetensors"))
    moved = sum(float((new[k].float() - base[k].float()).abs().max()) > 0 for k in base if k in new)
    assert moved > 0  # compared with the undefended model in the same run
    assert not (out / ".alignkit.lock").exists() and not (out / "_run").exists()


def test_tar_with_infinite_gradients_is_not_saved(tmp_path, monkeypatch, pairs_file):
    out = tmp_path / "tar"
    r = _cli(["defend", "--defence", "tar", "--model", "tiny-random-llama", "--dataset", str(pairs_file),
              "--max-steps", "2", "--num-samples", "4", "--batch-size", "2", "--lambda-tr", "1e30",
              "--output-dir", str(out)], tmp_path, monkeypatch)
    from alignkit.errors import AlignkitError

    assert isinstance(r.exception, AlignkitError), r.output[-2000:]
    msg = str(r.exception)
    assert "\n" not in msg and "training changed nothing" in msg and "gradient norm was inf" in msg, msg
    assert "--lambda-tr" in msg
    assert not out.exists()  # nothing saved, no run folder, no lock file


def test_run_lock_leaves_nothing(tmp_path):
    from alignkit.io import LOCK_NAME, RunLock

    d = tmp_path / "a" / "b"
    with RunLock(d):
        assert (d / LOCK_NAME).exists()
    assert not (tmp_path / "a").exists()  # created by the lock, empty: removed
    d.mkdir(parents=True)
    (d / "x.txt").write_text("kept")
    with RunLock(d):
        pass
    assert sorted(p.name for p in d.iterdir()) == ["x.txt"]
    lk = RunLock(d)
    lk.acquire()
    lk.acquire()  # re-entrant
    lk.release()
    assert (d / LOCK_NAME).exists()
    lk.release()
    assert not (d / LOCK_NAME).exists()


def test_refused_defence_leaves_no_lock(tmp_path, monkeypatch, pairs_file):
    out = tmp_path / "d"
    r = _cli(["defend", "--defence", "repnoise", "--model", "tiny-random-llama", "--dataset",
              str(tmp_path / "missing.jsonl"), "--max-steps", "1", "--output-dir", str(out)], tmp_path, monkeypatch)
    assert r.exit_code != 0
    assert not out.exists()
