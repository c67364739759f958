"""TAR: the first-order meta-gradient equals a hand-derived one (K = 1 SGD attack written out on a copy), the
weights are restored after the simulated attack, and a TAR-defended tiny model resists the same simulated attack
better than the undefended model, in the same run."""

from __future__ import annotations

import copy
import json

import pytest

from defence_support import random_batch


def _small_llama():
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64)
    return AutoModelForCausalLM.from_config(cfg).train()


@pytest.mark.parametrize("tr_kind", ["entropy", "neg-ce"])
def test_first_order_gradient_matches_hand_derivation(tr_kind):
    import torch

    from alignkit.defences.base import causal_ce
    from alignkit.defences.tar import TARConfig, tar_loss

    model = _small_llama()
    frozen = copy.deepcopy(model).eval()
    with torch.no_grad():  # move away from the frozen copy so the distance term has a gradient
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    batch = random_batch(97)
    cfg = TARConfig(inner_steps=1, inner_optimizer="sgd", tr_loss=tr_kind, lambda_tr=2.0, lambda_retain=1.0,
                    retain_rep_weight=0.5)
    lr = 0.5
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    # hand derivation: theta' = theta - lr * grad CE_harmful(theta) on a copy; grad of TR at theta'
    attacked = copy.deepcopy(model)
    ce = causal_ce(attacked(input_ids=batch["harmful_input_ids"],
                            attention_mask=batch["harmful_attention_mask"]).logits, batch["harmful_labels"])
    ce.backward()
    with torch.no_grad():
        for p in attacked.parameters():
            p.sub_(lr * p.grad)
            p.grad = None
    logits = attacked(input_ids=batch["harmful_input_ids"], attention_mask=batch["harmful_attention_mask"]).logits
    if tr_kind == "neg-ce":
        tr = -torch.log(causal_ce(logits, batch["harmful_labels"]) + 1)
    else:
        lp = torch.log_softmax(logits[:, :-1].float(), -1)
        keep = batch["harmful_labels"][:, 1:] != -100
        tr = (lp.exp() * lp).sum(-1)[keep].mean()  # minus the entropy
    tr.backward()
    g_tr = {n: p.grad.clone() for n, p in attacked.named_parameters()}
    ref_model = copy.deepcopy(model)
    ids, att = batch["harmless_input_ids"], batch["harmless_attention_mask"]
    out = ref_model(input_ids=ids, attention_mask=att, output_hidden_states=True)
    with torch.no_grad():
        fh = frozen(input_ids=ids, attention_mask=att, output_hidden_states=True).hidden_states
    m = att.bool()
    dist = sum(((h[m] - f[m]) ** 2).mean() for h, f in zip(out.hidden_states[1:], fh[1:])) / (len(fh) - 1)
    retain = causal_ce(out.logits, batch["harmless_labels"]) + 0.5 * dist
    retain.backward()
    expected = {n: 1.0 * p.grad + 2.0 * g_tr[n] for n, p in ref_model.named_parameters()}

    loss, parts = tar_loss(model, model, frozen, batch, cfg, lr)
    loss.backward()
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), before[n]), f"{n} not restored after the simulated attack"
        scale = float(expected[n].abs().max()) + 1e-8
        assert float((p.grad - expected[n]).abs().max()) <= 1e-4 * scale, n
    assert abs(float(loss.detach()) - (float(retain.detach()) + 2.0 * float(tr.detach()))) <= 1e-5 * abs(float(loss.detach()))
    assert abs(float(parts["tr_loss"]) - float(tr)) <= 1e-5 * abs(float(tr))


def test_tar_resists_the_simulated_attack_better_than_undefended(tmp_path, tiny_model_path, records):
    """TAR through defend() (Trainer/accelerate path) on tiny-random-llama, then the same 3-step Adam attack on
    the TAR model and on the undefended model: TAR's harmful CE after the attack is higher."""
    import torch

    from alignkit.defences import defend
    from alignkit.defences.base import PairDataset
    from alignkit.defences.tar import TARConfig, harmful_ce, simulate_attack
    from alignkit.formatting import PairCollator
    from alignkit.models import load_causal_lm

    cfg = TARConfig(model=tiny_model_path, output_dir=str(tmp_path / "tar"), max_steps=6, batch_size=4,
                    max_length=48, lr=1e-2, warmup_ratio=0.0, scheduler="constant", inner_steps=1,
                    inner_lrs="8e-5", tr_loss="neg-ce", lambda_retain=0.2, retain_rep_weight=0.1)
    out = defend(cfg, records=records[:8])
    card = json.loads((out / "alignkit.json").read_text())
    assert card["defence"] == "tar" and card["steps"] == 6
    assert {"tr_loss", "attacked_harmful_ce", "retain_ce", "rep_distance"} <= set(card["final_log"])

    after = {}
    for name, path in (("undefended", tiny_model_path), ("tar", str(out))):
        model, tok = load_causal_lm(path)
        model.train()
        ds = PairDataset(tok, records[:8], "chat", 48)
        batch = PairCollator(tok.pad_token_id)([ds[i] for i in range(8)])
        torch.manual_seed(0)
        simulate_attack(model, batch, steps=3, lr=8e-5, optimizer="adam")
        with torch.no_grad():
            after[name] = float(harmful_ce(model, batch)[0])
    assert after["tar"] > after["undefended"] + 0.3, after


def test_tar_bad_input(tmp_path, pairs_file):
    from alignkit.defences import defend
    from alignkit.defences.tar import TARConfig
    from alignkit.errors import AlignkitError

    with pytest.raises(AlignkitError, match="--inner-lrs"):
        defend(TARConfig(model="tiny-random-llama", dataset=str(pairs_file), inner_lrs="fast",
                         output_dir=str(tmp_path / "x")))
    assert not (tmp_path / "x").exists()
