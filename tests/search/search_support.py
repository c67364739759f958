"""Tiny spaces and options for the search tests (tiny-random-llama, the fake judge, seconds per trial)."""

TINY_ATTACK_SPACE = """
params:
  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
  max_steps: {type: int, low: 1, high: 2}
  method: {choices: [full, lora]}
  lora_r: {type: int, low: 2, high: 8, when: {method: lora}}
  template: {choices: [chat, qa]}
fixed:
  num_samples: 8
  max_length: 32
  batch_size: 2
"""

TINY_DEFENCE_SPACE = """
params:
  lr: {type: float, low: 1.0e-5, high: 1.0e-3, log: true}
  alpha: {type: float, low: 0.1, high: 2.0}
fixed:
  max_steps: 1
  batch_size: 2
  num_samples: 4
  max_length: 32
attacks:
  - {lr: 1.0e-3, max_steps: 1, num_samples: 4, max_length: 32, batch_size: 2}
"""

TINY_OPTIONS = dict(model="tiny-random-llama", judge="ak_fake_judge:FakeJudge", allow_judge_import=True,
                    eval_prompts=3, max_new_tokens=4, capability_texts=3)


def run_cli(args: list, monkeypatch, capsys) -> tuple[int, str, str]:
    """``alignkit ARGS`` in-process through the root CLI: (exit status, stdout, stderr); the suite's one in-process
    runner, ``tests/cli_support.py``."""
    from cli_support import run_alignkit

    return run_alignkit(args, monkeypatch, capsys)
