"""Plain helpers for the defence tests (imported by name: the conftest modules of other folders share the name
'conftest', so helpers live in this uniquely named module)."""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def random_batch(vocab: int, b: int = 3, t: int = 20, seed: int = 0):
    """A synthetic paired batch (shared prefix, different answers, ragged lengths) for tokenizer-free models."""
    import torch

    from alignkit.formatting import PairCollator

    g = torch.Generator().manual_seed(seed)
    feats = []
    for i in range(b):
        prefix = torch.randint(3, vocab, (6,), generator=g).tolist()
        ha = torch.randint(3, vocab, (t - 6 - i,), generator=g).tolist()
        sa = torch.randint(3, vocab, (t - 8 - 2 * i,), generator=g).tolist()
        feats.append({"harmful_input_ids": prefix + ha, "harmful_attention_mask": [1] * (6 + len(ha)),
                      "harmful_labels": [-100] * 6 + ha, "harmless_input_ids": prefix + sa,
                      "harmless_attention_mask": [1] * (6 + len(sa)), "harmless_labels": [-100] * 6 + sa})
    return PairCollator(0)(feats)
