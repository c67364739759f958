"""`alignkit demo` end to end on tiny-random-llama with a tiny preset: every stage runs in order and the report
is written (the presets' sizes are checked in test_demo_config.py; the real model's run is in docs/results.md)."""

import json

import pytest

TINY_PRESET = {
    "eval_prompts": 4, "max_new_tokens": 8,
    "align": {"lr": 1e-4, "max_steps": 2, "batch_size": 2, "max_length": 40, "harmless_mix": 1.0, "save_every": 0},
    "repnoise": {"lr": 1e-3, "alpha": 1.0, "beta": 0.25, "max_steps": 2, "batch_size": 2, "max_length": 40,
                 "save_every": 0},
    "evaluate": {"attack_lrs": [1e-4], "attack_samples": [8], "attack_steps": 2, "eval_every": 2,
                 "attack_max_length": 40, "stability_texts": 6, "probe_size": 4, "generalization_samples": 8,
                 "train_steps": 2, "train_eval_every": 2, "train_eval_size": 2, "train_lr": 1e-4,
                 "depth_pairs": 6, "attack_checkpoints": False},
}


@pytest.mark.slow
def test_demo_runs_every_stage_on_a_tiny_model(tmp_path, monkeypatch):
    from rich.console import Console

    from alignkit.conditions import demo

    monkeypatch.setitem(demo.PRESETS, "fast", TINY_PRESET)
    out = tmp_path / "demo"
    cfg = demo.DemoConfig(fast=True, model="tiny-random-llama", judge="refusal-keywords", output_dir=str(out))
    report = demo.run_demo(cfg, console=Console(file=open(tmp_path / "console.txt", "w"), width=120))
    res = json.loads((out / "results.json").read_text())
    assert (out / "report.html").stat().st_size > 1000 and (out / "models" / "repnoise" / "model.safetensors").exists()
    verdicts = {(v["condition"], v["model"]): v["verdict"] for v in res["verdicts"]}
    for cond in ("resistance", "stability", "generalization", "trainability"):
        assert verdicts[(cond, "repnoise")] in ("pass", "weak", "fail"), verdicts
    assert res["extra"]["preset"] == "fast" and res["extra"]["raw_model"] == "tiny-random-llama"
    assert set(res["extra"]["stage_seconds"]) >= {"measure", "align", "immunize", "evaluate", "total"}
    assert [m["label"] for m in res["models"]] == ["base", "repnoise"] and report.phi == res["phi"]
    # a second run reuses every finished stage
    again = demo.run_demo(cfg, console=Console(file=open(tmp_path / "console2.txt", "w"), width=120))
    assert again.phi == report.phi
