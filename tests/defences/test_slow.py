"""Slow: RepNoise and the adversarial loss under two accelerate processes (DDP on gloo, the path FSDP /
DeepSpeed take on GPUs), and every defended tiny model attacked (security vectors via the attack's
frozen-adapter mode)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ak_fake_judge import FakeJudge
from defence_support import ROOT

LAUNCH = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
          "--mixed_precision", "no", "--dynamo_backend", "no"]


def _env(tmp_path):
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               ALIGNKIT_RUNS=str(tmp_path / "runs"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])))
    return env


@pytest.mark.slow
@pytest.mark.parametrize("defence", ["repnoise", "adversarial-loss"])
def test_two_accelerate_processes(defence, tmp_path, pairs_file):
    """Two real processes. Note: in accelerate 1.15 ``accelerate launch --num_processes 2 --cpu`` starts ONE
    process (its simple launcher); two CPU processes need the torchrun path (``--multi_gpu`` with
    ``ACCELERATE_USE_CPU=1``). Both are run here; the hooks sit on the DDP-wrapped model's inner modules."""
    out = tmp_path / defence
    common = ["-m", "alignkit.cli", "defend", "--defence", defence, "--model", "tiny-random-llama",
              "--dataset", str(pairs_file), "--max-steps", "2", "--batch-size", "2", "--max-length", "40",
              "--save-every", "1"]
    env = dict(_env(tmp_path), ACCELERATE_USE_CPU="1")
    p = subprocess.run([*LAUNCH, "--multi_gpu", *common, "--output-dir", str(out)], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-4000:]
    assert p.stdout.strip().splitlines().count(str(out)) == 1  # printed by the main process only
    card = json.loads((out / "alignkit.json").read_text())
    assert card["num_processes"] == 2 and card["steps"] == 2 and card["device"] == "cpu x2"
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out)
    if defence == "repnoise":  # the literal command of the issue (one process in accelerate 1.15)
        p = subprocess.run([*LAUNCH, "--cpu", *common, "--output-dir", str(tmp_path / "one")], env=_env(tmp_path),
                           cwd=str(tmp_path), capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, p.stderr[-4000:]
        assert json.loads((tmp_path / "one" / "alignkit.json").read_text())["steps"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("name", ["repnoise", "adversarial-loss", "gradient-ascent", "safety-sft",
                                  "security-vectors", "vaccine"])
def test_defended_model_is_attacked(name, tmp_path, records):
    attacks = pytest.importorskip("alignkit.attacks")
    from alignkit.defences import DEFENCES, defend
    from alignkit.defences.security_vectors import security_vector_path

    cfg = DEFENCES.get(name).config_class(model="tiny-random-llama", output_dir=str(tmp_path / "def"), max_steps=1,
                                          batch_size=2, max_length=40)
    out = defend(cfg, records=records[:4])
    sv = security_vector_path(out)
    assert (sv is not None) == (name == "security-vectors")
    acfg = attacks.AttackConfig(model=str(out), max_steps=2, eval_every=2, eval_prompts=2, max_new_tokens=4,
                                num_samples=8, max_length=48, batch_size=2, output_dir=str(tmp_path / "atk"),
                                security_vector=str(sv) if sv else None, save_model=True)
    res = attacks.attack(acfg, judge=FakeJudge())
    assert [c.step for c in res.curve] == [0, 2]
    assert res.final_model_dir
    from transformers import AutoModelForCausalLM

    attacked = AutoModelForCausalLM.from_pretrained(res.final_model_dir)
    assert not any("lora" in n for n, _ in attacked.named_parameters())
