"""Faults and misuse around a run folder: a second writer, torn checkpoints, temp files, hostile names."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from attack_support import ROOT, TINY, run_cli


def test_safe_name_keeps_one_path_component():
    from alignkit.io import safe_name

    for hostile in ("../../../../x", "/etc/passwd", "..", ".", "", "a/../../b", "C:\\win\\x", "~/x"):
        s = safe_name(hostile)
        assert s and "/" not in s and "\\" not in s and s not in (".", "..") and not s.startswith("."), (hostile, s)
    assert safe_name("repnoise") == "repnoise" and safe_name("adversarial-loss") == "adversarial-loss"


def test_unique_temp_is_removed_on_failure(tmp_path):
    from alignkit.io import unique_temp

    target = tmp_path / "curve.png"
    with pytest.raises(RuntimeError):
        with unique_temp(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []  # neither the target nor a temp file
    with unique_temp(target) as a, unique_temp(target) as b:
        assert a != b  # two writers never share a temp name
        a.write_bytes(b"A")
        b.write_bytes(b"B")
    assert target.read_bytes() in (b"A", b"B") and [p.name for p in tmp_path.iterdir()] == ["curve.png"]


def test_second_writer_exits_2_naming_the_holder(tmp_path, cli_env, cli_judge):
    """A second process on a locked run folder stops at once (exit 2, one line naming the holder's pid)."""
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from alignkit.io import RunLock; l = RunLock(sys.argv[1]).acquire();"
                               " print('locked', flush=True); time.sleep(120)", str(out)],
        env=cli_env, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        p = run_cli(["attack", "--model", "tiny-random-llama", "--max-steps", "1", "--judge", cli_judge,
                     "--output-dir", str(out)], cli_env, timeout=120)
    finally:
        holder.kill()
        holder.wait()
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2, p.stderr[-2000:]
    assert lines == [lines[-1]] and lines[0].startswith("error: ") and f"pid {holder.pid}" in lines[0], lines
    assert not (out / "config.json").exists()  # the refused run wrote nothing


def test_torn_checkpoint_falls_back_and_says_so(tmp_path, fake_judge, capfd):
    from alignkit.attacks import AttackConfig, attack

    out = tmp_path / "run"
    cfg = AttackConfig(**{**TINY, "num_samples": 8}, output_dir=str(out))
    first = attack(cfg, judge=fake_judge)
    assert [p.step for p in first.curve] == [0, 2, 4]
    # killed after the final checkpoint, before results.json: the rerun trains no step past max_steps
    (out / "results.json").unlink()
    done = attack(cfg, judge=fake_judge)
    assert done.total_steps == 4 and done.resumed_from_step == 4 and done.curve == first.curve
    # a kill while the step-4 checkpoint was written: its trainer_state.json is cut in half
    state = out / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    state.write_text(state.read_text()[: len(state.read_text()) // 2])
    (out / "results.json").unlink()
    capfd.readouterr()
    again = attack(cfg, judge=fake_judge)
    err = capfd.readouterr().err
    assert "checkpoint-4 is incomplete (trainer_state.json does not parse)" in err
    assert "resuming from checkpoint-2" in err
    assert again.resumed_from_step == 2 and [p.step for p in again.curve] == [0, 2, 4]
    assert again.curve[:2] == first.curve[:2]


def test_hostile_model_card_cannot_escape_the_run_folder(tmp_path, tiny_model_path):
    """A model card whose "defence" is '../../../../x' or an absolute path names folders inside --output-dir only."""
    import shutil

    from alignkit.conditions import EvaluateConfig, evaluate

    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "README.md").write_text("keep me")
    models = []
    for i, defence in enumerate(["../../../../escaped", str(victim)]):
        m = tmp_path / f"m{i}"
        shutil.copytree(tiny_model_path, m)
        (m / "alignkit.json").write_text(json.dumps({"defence": defence}))
        models.append(str(m))
    out = tmp_path / "nest" / "deeper" / "ev"
    before = {p for p in tmp_path.rglob("*")}
    rep = evaluate(EvaluateConfig(model=models, base="tiny-random-llama", output_dir=str(out),
                                  conditions=["resistance"], eval_prompts=2, max_new_tokens=2, attack_lrs=[1e-4],
                                  attack_samples=[4], attack_steps=1, eval_every=1, attack_checkpoints=False,
                                  judge="refusal-keywords", attack_max_length=32))
    new = {p for p in tmp_path.rglob("*")} - before
    outside = [p for p in new if out not in p.parents and p != out and p not in out.parents]
    assert outside == [], outside
    assert (victim / "README.md").read_text() == "keep me" and sorted(p.name for p in victim.iterdir()) == ["README.md"]
    labels = [m.label for m in rep.models]
    assert labels[0] == "base" and all("/" not in lbl and not lbl.startswith(".") for lbl in labels), labels
    assert {p.name for p in (out / "attacks" / "resistance").iterdir()} == set(labels)


def test_attack_card_names_the_base_not_a_local_path(tmp_path, tiny_model_path, fake_judge):
    import shutil

    from alignkit.attacks import AttackConfig, attack

    local = tmp_path / "my-base"
    shutil.copytree(tiny_model_path, local)
    res = attack(AttackConfig(**{**TINY, "max_steps": 1, "num_samples": 4, "model": str(local)}, save_model=True,
                              output_dir=str(tmp_path / "run")), judge=fake_judge)
    card = json.loads((tmp_path / "run" / "model" / "alignkit.json").read_text())
    readme = (tmp_path / "run" / "model" / "README.md").read_text()
    assert card["base_model"] == "my-base" and str(tmp_path) not in card["title"]
    header = readme.split("---")[1]
    assert 'base_model: "my-base"' in header and str(tmp_path) not in readme.split("\n# ")[1].splitlines()[0]
    assert res.final_model_dir


@pytest.mark.slow
def test_rerun_finished_defence_under_two_processes_does_not_hang(tmp_path, cli_env, monkeypatch, capsys):
    """The main process finds the finished model and returns; the other process must learn that too instead of
    waiting at a barrier forever."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("launches CPU processes via the multi-GPU launcher; run it on a CPU-only box")
    args = ["defend", "--defence", "safety-sft", "--model", "tiny-random-llama", "--max-steps", "1",
            "--batch-size", "2", "--num-samples", "4", "--max-length", "32", "--save-every", "0",
            "--output-dir", str(tmp_path / "d")]
    from cli_support import run_alignkit

    code, _, err = run_alignkit(args, monkeypatch, capsys, env={"ALIGNKIT_RUNS": tmp_path / "runs"})  # in-process
    assert code == 0, err[-3000:]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "alignkit.cli", *args]
    t0 = time.time()
    p = subprocess.run(cmd, env=cli_env, cwd=str(ROOT), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "already holds this defended model" in p.stderr and p.stdout.strip().splitlines() == [str(tmp_path / "d")]
    print(f"finished-defence rerun under 2 processes: {time.time() - t0:.1f}s")
