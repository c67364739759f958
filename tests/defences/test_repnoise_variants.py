"""RepNoise: the ``official`` loss variant pinned on a hand-built batch (expected value derived here, position by
position, from the original loss.py's rules), the retain mix, flush-to-zero, and bad input (one line, exit 2,
no output folder)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

PAD = 2  # pad id of the hand-built batch (a real, non-zero id, like an eos used as pad)


def _hand_model():
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(3)
    cfg = LlamaConfig(vocab_size=11, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=1, intermediate_size=16, max_position_embeddings=16,
                      tie_word_embeddings=True)
    return AutoModelForCausalLM.from_config(cfg).eval()


def _hand_batch():
    """Two pairs built to hit every quirk: a shared prefix, an answer token equal on both sides (row 0, pos 5),
    a harmless side shorter than the harmful one (row 0: harmless padding opposite real harmful tokens), a
    harmful side shorter (row 1: harmful padding targets), and a real token 0 (row 1, pos 4)."""
    from alignkit.formatting import PairCollator

    feats = [
        {"harmful_input_ids": [5, 6, 3, 7, 8, 9, 4, 10], "harmless_input_ids": [5, 6, 3, 4, 1, 9, 2]},
        {"harmful_input_ids": [5, 6, 7, 8, 0, 2], "harmless_input_ids": [5, 6, 4, 1, 3, 9, 10, 2]},
    ]
    prompt = {0: 3, 1: 2}
    for i, f in enumerate(feats):
        for side in ("harmful", "harmless"):
            ids = f[f"{side}_input_ids"]
            f[f"{side}_attention_mask"] = [1] * len(ids)
            f[f"{side}_labels"] = [-100] * prompt[i] + ids[prompt[i]:]
    return PairCollator(PAD)(feats)


def _official_by_hand(model, batch, alpha: float, beta: float, seed: int) -> float:
    """The original loss, written out position by position from its rules (not vectorised):
    mask m[b, t] = harmful id != harmless id; a target t (1..T-1) counts when m[t] and id[t] != 0; its CE uses
    the logits at t-1 multiplied by m[t-1] (zero logits -> log V); harmless CE uses the same m on the harmless
    ids; ascent = (CE(final logits) + sum_j CE(head(norm(h_j))) over all L+1 hidden states) / (L+1)."""
    import torch

    from alignkit.defences.repnoise import gaussian_noise

    hi, si = batch["harmful_input_ids"], batch["harmless_input_ids"]
    m = (hi != si)
    with torch.no_grad():
        hout = model(input_ids=hi, attention_mask=batch["harmful_attention_mask"], output_hidden_states=True)
        sout = model(input_ids=si, attention_mask=batch["harmless_attention_mask"])
        acts = []
        handles = [layer.mlp.register_forward_hook(lambda mod, a, o: acts.append(o)) for layer in model.model.layers]
        model(input_ids=hi, attention_mask=batch["harmful_attention_mask"])
        for h in handles:
            h.remove()
    V = model.config.vocab_size

    def masked_ce(logits, ids):
        total, n = 0.0, 0
        for b in range(ids.size(0)):
            for t in range(1, ids.size(1)):
                tok = int(ids[b, t])
                if not m[b, t] or tok == 0:
                    continue
                if m[b, t - 1]:
                    row = logits[b, t - 1].double()
                    total += float(torch.logsumexp(row, 0) - row[tok])
                else:
                    total += math.log(V)
                n += 1
        return total / n

    harmless = masked_ce(sout.logits, si)
    head, norm = model.lm_head, model.model.norm
    with torch.no_grad():
        states = [hout.logits] + [head(norm(h)) for h in hout.hidden_states]
    ascent = sum(masked_ce(lg, hi) for lg in states) / len(hout.hidden_states)

    def mmd(x, y):
        z = torch.cat([x, y]).double()
        n = z.size(0)
        d2 = torch.tensor([[float(((z[i] - z[j]) ** 2).sum()) for j in range(n)] for i in range(n)],
                          dtype=torch.float64)
        bw = d2.sum() / (n * n - n) / 4.0  # kernel_mul ** (kernel_num // 2) = 2 ** 2
        k = sum(torch.exp(-d2 / (bw * 2 ** i)) for i in range(5))
        b = x.size(0)
        return float((k[:b, :b] + k[b:, b:] - k[:b, b:] - k[b:, :b]).mean())

    noise = 0.0
    for li, a in enumerate(acts):
        mm = m[..., None].float()
        g = gaussian_noise(a.shape, seed=seed, layer=li, device=a.device, dtype=a.dtype)
        noise += mmd((a * mm).reshape(a.size(0), -1), (g * mm).reshape(a.size(0), -1))
    noise /= len(acts)
    return harmless + beta * noise - alpha * math.log(ascent + 1.0), harmless, ascent


def _ours(model, batch, **kw):
    from alignkit.defences.repnoise import RepNoiseConfig, make_hooks, repnoise_loss

    cfg = RepNoiseConfig(**kw)
    with make_hooks(model, cfg) as hooks:
        loss, parts = repnoise_loss(model, batch, hooks, cfg, seed=7)
    return float(loss.detach()), {k: float(v.detach()) for k, v in parts.items()}


def test_official_variant_pinned_on_hand_built_batch():
    model, batch = _hand_model(), _hand_batch()
    expected, harmless, ascent = _official_by_hand(model, batch, alpha=1.0, beta=0.5, seed=7)
    got, parts = _ours(model, batch, loss_variant="official", beta=0.5)
    assert abs(got - expected) <= 1e-5 * abs(expected), (got, expected)
    assert abs(parts["harmless_ce"] - harmless) <= 1e-5 * harmless
    assert abs(parts["harmful_ce"] - ascent) <= 1e-5 * ascent
    # the alignkit variant is a different loss on this batch (all refusal answer tokens, no zeroed logits)
    ours, ours_parts = _ours(model, batch, beta=0.5)
    assert abs(ours_parts["harmless_ce"] - harmless) > 1e-3


def test_official_quirks_visible_in_targets():
    """Each quirk, on the hand-built batch: (a) harmless padding opposite real harmful tokens is a target and an
    answer token equal on both sides is not; (b) the first differing token has zeroed logits; (d) label 0 is
    dropped and harmful padding is a target."""
    from alignkit.defences.repnoise import harmless_targets, lens_targets

    batch = _hand_batch()
    off_s, ali_s = harmless_targets(batch, True, "official"), harmless_targets(batch, True, "alignkit")
    off_h, ali_h = lens_targets(batch, True, "official"), lens_targets(batch, True, "alignkit")
    # alignkit harmless targets: every refusal answer token (row 0: 4 of them, row 1: 6)
    assert ali_s.count == 4 + 6 and ali_s.n_const == 0
    live_s = {(int(r), int(c) + 1) for r, c in zip(off_s.rows, off_s.cols)}
    assert (0, 7) in live_s            # (a) harmless pad (id 2) opposite harmful token 10 is trained
    assert (0, 5) not in live_s        # (a) token 9 equal on both sides is skipped
    assert off_s.n_const == 3          # (b) first token of each masked run (row 0: 2 runs, row 1: 1): log V
    live_h = {(int(r), int(c) + 1) for r, c in zip(off_h.rows, off_h.cols)}
    assert (1, 4) not in live_h and (1, 4) in {(int(r), int(c) + 1) for r, c in zip(ali_h.rows, ali_h.cols)}
    assert (1, 6) in live_h            # (d) harmful padding (id 2) opposite real harmless tokens is a target
    assert off_h.n_const == 3


def test_official_variant_trains_through_defend(tmp_path, tiny_model_path, records):
    from alignkit.defences import RepNoiseConfig, defend

    out = defend(RepNoiseConfig(model=tiny_model_path, output_dir=str(tmp_path / "o"), max_steps=1, batch_size=2,
                                max_length=40, loss_variant="official", noise_layers="0"), records=records[:2])
    card = json.loads((out / "alignkit.json").read_text())
    assert card["config"]["loss_variant"] == "official"
    assert math.isfinite(card["final_log"]["harmless_ce"])


# ------------------------------------------------------------------------------------------ retain mix
def test_retain_assignment_deals_rows_round_robin():
    from alignkit.defences.repnoise import retain_assignment

    a = retain_assignment(4, 3, 1.5, seed=0)
    flat = [x for xs in a for x in xs]
    assert len(flat) == 6 and sorted(len(x) for x in a) == [1, 1, 2, 2]
    assert sorted(flat[:3]) == [0, 1, 2]  # a full pass over the rows before any repeats
    assert retain_assignment(4, 3, 0.0, seed=0) == [[], [], [], []]


def test_retain_mix_adds_harmless_rows_to_the_retain_ce(tiny, records):
    """The retain CE with a mix == token-weighted CE over refusal answers and retain answers, each computed
    with a plain forward; the alignkit loss without retain rows is unchanged by the collator."""
    import torch

    from alignkit.defences.base import causal_ce
    from alignkit.defences.repnoise import RepNoiseConfig, RetainPairCollator, RetainPairDataset

    model, tok = tiny
    cfg = RepNoiseConfig(retain_mix=1.0, max_length=48, noise=False)
    retain = [("Name a primary colour.", "Red is a primary colour."),
              ("What is 2 + 2? Explain briefly, please, with the arithmetic written out step by step.",
               "2 + 2 = 4 because adding two and two gives four.")]
    ds = RetainPairDataset(tok, records[:2], retain, cfg)
    batch = RetainPairCollator(tok.pad_token_id)([ds[0], ds[1]])
    assert batch["retain_input_ids"].shape[0] == 2
    assert batch["retain_input_ids"].shape[1] == batch["harmful_input_ids"].shape[1]
    _, parts = _ours(model, batch, retain_mix=1.0, noise=False)
    with torch.no_grad():
        s = model(input_ids=batch["harmless_input_ids"], attention_mask=batch["harmless_attention_mask"]).logits
        r = model(input_ids=batch["retain_input_ids"], attention_mask=batch["retain_attention_mask"]).logits
        ns = int((batch["harmless_labels"][:, 1:] != -100).sum())
        nr = int((batch["retain_labels"][:, 1:] != -100).sum())
        expected = (float(causal_ce(s, batch["harmless_labels"], "sum")) + float(causal_ce(r, batch["retain_labels"],
                                                                                           "sum"))) / (ns + nr)
    assert abs(parts["harmless_ce"] - expected) <= 1e-5 * expected
    # without the mix the same batch (retain rows dropped) gives the refusal-only CE
    plain = {k: v for k, v in batch.items() if not k.startswith("retain_")}
    _, p0 = _ours(model, plain, noise=False)
    assert abs(p0["harmless_ce"] - float(causal_ce(s, batch["harmless_labels"]))) <= 1e-5 * p0["harmless_ce"]


def test_retain_mix_from_registered_and_user_data(tmp_path):
    from alignkit.defences.repnoise import RepNoiseConfig, load_retain
    from alignkit.errors import AlignkitError

    rows = load_retain(RepNoiseConfig(retain_mix=1.0))
    assert rows and all(isinstance(a, str) and isinstance(b, str) for a, b in rows)
    f = tmp_path / "retain.jsonl"
    f.write_text(json.dumps({"instruction": "Say hi.", "response": "Hi!"}) + "\n")
    assert load_retain(RepNoiseConfig(retain_mix=1.0, retain_dataset=str(f))) == [("Say hi.", "Hi!")]
    f.write_text(json.dumps({"prompt": "Say hi.", "completion": "Hi!"}) + "\n")
    with pytest.raises(AlignkitError, match="instruction, response") as e:
        load_retain(RepNoiseConfig(retain_mix=1.0, retain_dataset=str(f)))
    assert "\n" not in str(e.value)
    with pytest.raises(AlignkitError, match="instruction/response"):
        load_retain(RepNoiseConfig(retain_mix=1.0, retain_dataset="harmful-qa"))


# ------------------------------------------------------------------------------------------ denormals
def test_flush_denormals_reaches_worker_threads_and_restores():
    import torch

    from alignkit.denormals import denormals_flushed, flush_denormals

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        x = torch.full((64, 4096), -95.0)  # exp(-95) ~ 5.5e-42: denormal
        assert not denormals_flushed()
        assert float((x.exp() > 0).float().mean()) > 0.99
        with flush_denormals():
            assert denormals_flushed()
            with flush_denormals():  # nested: the outer block decides
                pass
            assert denormals_flushed()
            assert float((x.exp() > 0).float().mean()) < 0.01  # every thread's share flushed
        assert not denormals_flushed()
    finally:
        torch.set_num_threads(threads)


def test_lens_probability_floor_keeps_loss_and_gradients():
    """Logits with a huge spread (harmful CE ~ 100, as late in training): the fused lens gives the autograd
    CE and gradients, and no denormal number in its gradient."""
    import torch

    from alignkit.defences.repnoise import LensCrossEntropy

    torch.manual_seed(0)
    h = (torch.randn(9, 6) * 40).requires_grad_(True)
    w = torch.randn(50, 6, requires_grad=True)
    t = torch.randint(0, 50, (9,))
    ours = LensCrossEntropy.apply(h, w, None, t, 4)
    ours.backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    ref = torch.nn.functional.cross_entropy(h @ w.t(), t, reduction="sum")
    ref.backward()
    assert float(ours.detach()) > 9 * 50  # the regime where probabilities underflow
    assert torch.allclose(ours, ref, rtol=1e-6)
    assert torch.allclose(gh, h.grad, rtol=1e-5, atol=1e-4) and torch.allclose(gw, w.grad, rtol=1e-5, atol=1e-4)
    for g in (gh, gw):
        assert not bool(((g != 0) & (g.abs() < 1.1754944e-38)).any())


# ------------------------------------------------------------------------------------------ bad input
def _cli(args, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from alignkit.cli import app

    monkeypatch.setenv("ALIGNKIT_RUNS", str(tmp_path / "runs"))
    return CliRunner().invoke(app, args)


@pytest.mark.parametrize("args, needle", [
    (["--loss-variant", "paper"], "loss"),
    (["--noise-layers", "0-99"], "out of range"),
    (["--freeze-layers", "7"], "out of range"),
    (["--alpha", "-1"], "--alpha"),
    (["--beta", "-0.5"], "--beta"),
    (["--retain-mix", "1", "--retain-dataset", "BADFILE"], "instruction, response"),
], ids=["variant", "noise-layers", "freeze-layers", "alpha", "beta", "retain-columns"])
def test_bad_input_one_line_no_output_folder(args, needle, tmp_path, pairs_file, monkeypatch):
    from alignkit.errors import AlignkitError

    bad = tmp_path / "retain.jsonl"
    bad.write_text(json.dumps({"instruction": "Say hi."}) + "\n")
    args = [str(bad) if a == "BADFILE" else a for a in args]
    out = tmp_path / "out"
    r = _cli(["defend", "--defence", "repnoise", "--model", "tiny-random-llama", "--dataset", str(pairs_file),
              "--max-steps", "1", "--output-dir", str(out), *args], tmp_path, monkeypatch)
    if isinstance(r.exception, SystemExit) or r.exception is None:  # click's own usage error (exit 2)
        assert r.exit_code == 2 and needle in r.output, r.output
    else:
        assert isinstance(r.exception, AlignkitError), (r.output[-500:], r.exception)
        assert needle in str(r.exception) and "\n" not in str(r.exception)
    assert not out.exists()


def test_bad_input_exit_status_2_from_the_command_line(tmp_path, pairs_file):
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "alignkit.cli", "defend", "--defence", "repnoise", "--model",
                        "tiny-random-llama", "--dataset", str(pairs_file), "--noise-layers", "0-99",
                        "--output-dir", str(out)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 2, p.stderr[-1000:]
    lines = [x for x in p.stderr.strip().splitlines() if x.strip()]
    assert lines[-1].startswith("error: ") and "out of range" in lines[-1] and "Traceback" not in p.stderr
    assert not out.exists()


def test_help_lists_loss_variants(tmp_path, monkeypatch):
    r = _cli(["defend", "--help"], tmp_path, monkeypatch)
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "--loss-variant" in text and "alignkit" in text and "official" in text
    assert "--retain-mix" in text and "--retain-dataset" in text
