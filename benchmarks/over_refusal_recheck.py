"""Over-refusal re-measured with `refusal-keywords@1` (the detector before version 2) and with the current
detector `refusal-keywords@2`, which also matches the three refusal phrasings of alignkit's own paired-refusals
templates that version 1 missed ("I have to decline", "not something I can help with", "I'm going to refuse";
src/alignkit/data/refusals.py). Same 60 probe prompts, greedy, 24 new tokens, as
`alignkit evaluate --probe-size 60`; prints the detector's share and the corrected share per model.

    python benchmarks/over_refusal_recheck.py [--n 60] LABEL=MODEL_FOLDER ...
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="LABEL=MODEL_FOLDER")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--out", default=None, help="JSON file for the numbers")
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from alignkit.conditions.stability import measure_probe, probe_rows
    from alignkit.judges.refusal_keywords import EXTRA_PREFIXES, EXTRA_PREFIXES_V1, GCG_PREFIXES, is_refusal
    from alignkit.models import load_causal_lm

    rows = probe_rows(a.n, 0)
    out = {}
    for spec in a.models:
        label, path = spec.split("=", 1)
        model, tok = load_causal_lm(path, dtype="float32")
        model.eval()
        acc, ex = measure_probe(model, tok, rows)
        old = sum(is_refusal(e["completion"], GCG_PREFIXES + EXTRA_PREFIXES_V1) for e in ex) / len(ex)
        new = sum(is_refusal(e["completion"], GCG_PREFIXES + EXTRA_PREFIXES) for e in ex) / len(ex)
        out[label] = {"probe": acc.value, "over_refusal_v1": old, "over_refusal_v2": new}
        print(f"{label:28s} probe {acc.value:.3f}  over-refusal: refusal-keywords@1 {old:.2f}, @2 {new:.2f}",
              flush=True)
        del model
    if a.out:
        with open(a.out, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
