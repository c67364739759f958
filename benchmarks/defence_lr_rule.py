"""The defence table's learning-rate rule (docs/results.md, "Defence table"): for each defence, the largest lr
among the candidates whose natural-text perplexity stays within ``--max-ratio`` (x1.7) of the base's.

The rule looks at stability only (30 held-out natural-text passages, the same rows and code as
``alignkit evaluate``'s stability condition, ``--stability-texts 30``), never at the table's attack, so no
defence is tuned on the harmfulness it is certified on. Candidates are defended models trained with the table's
budget at different lrs (``alignkit defend ... --lr X``); the script only measures them:

    python benchmarks/defence_lr_rule.py --base runs/demo-fast/models/base-safety-sft \\
        --candidate adversarial-loss:5e-4=runs/defence-table/models/adversarial-loss \\
        --candidate adversarial-loss:2e-4=runs/defence-table/models/adversarial-loss-lr2e-4 ...

Prints one line per candidate and the chosen lr per defence (none passing: the smallest candidate, marked);
``--out FILE`` writes the same as JSON (measurements are cached there by model folder, so a re-run with one
more candidate measures only that one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def natural_ppl(path: str, n: int) -> dict:
    from alignkit.conditions.stability import measure_natural_perplexity, natural_rows
    from alignkit.models import load_causal_lm

    model, tok = load_causal_lm(path, dtype="float32")
    model.eval()
    est = measure_natural_perplexity(model, tok, natural_rows(n, 0), seed=0)
    return {"ppl": est.value, "low": est.lo, "high": est.hi}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="the undefended base model folder")
    ap.add_argument("--candidate", action="append", default=[], required=True,
                    help="DEFENCE:LR=MODEL_FOLDER (repeatable)")
    ap.add_argument("--n", type=int, default=30, help="natural-text passages (the table's --stability-texts)")
    ap.add_argument("--max-ratio", type=float, default=1.7, help="largest natural-text perplexity / base's")
    ap.add_argument("--out", default=None, help="JSON file for the measurements and the choice (also a cache)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    import torch

    torch.set_num_threads(a.threads)
    cands = []
    for c in a.candidate:
        try:
            head, path = c.split("=", 1)
            name, lr = head.rsplit(":", 1)
            cands.append((name, float(lr), path))
        except ValueError:
            print(f"error: --candidate {c!r} is not DEFENCE:LR=MODEL_FOLDER", file=sys.stderr)
            return 2
    out = Path(a.out) if a.out else None
    cache = json.loads(out.read_text()).get("measured", {}) if out and out.exists() else {}
    cache = {k: v for k, v in cache.items() if v.get("n") == a.n}

    def get(path):
        key = str(Path(path).resolve())
        if key not in cache:
            cache[key] = {**natural_ppl(path, a.n), "n": a.n}
            if out:
                out.write_text(json.dumps({"measured": cache}, indent=1))
        return cache[key]

    base = get(a.base)
    print(f"base: natural-text ppl {base['ppl']:.2f} [{base['low']:.2f}, {base['high']:.2f}] ({a.n} passages)")
    rows, chosen = [], {}
    for name, lr, path in cands:
        m = get(path)
        ratio = m["ppl"] / base["ppl"]
        ok = ratio <= a.max_ratio
        rows.append({"defence": name, "lr": lr, "model": path, "natural_ppl": m["ppl"], "ratio": ratio, "passes": ok})
        print(f"{name:20s} lr {lr:g}: natural-text ppl {m['ppl']:.2f} (x{ratio:.2f}) {'pass' if ok else 'fail'}")
    for name in dict.fromkeys(r["defence"] for r in rows):
        mine = sorted((r for r in rows if r["defence"] == name), key=lambda r: r["lr"])
        passing = [r for r in mine if r["passes"]]
        pick = passing[-1] if passing else mine[0]
        chosen[name] = {"lr": pick["lr"], "model": pick["model"], "passes": bool(passing)}
        print(f"chosen {name}: lr {pick['lr']:g}" + ("" if passing else " (no candidate passes: the smallest)"))
    if out:
        out.write_text(json.dumps({"measured": cache, "base": base, "max_ratio": a.max_ratio, "candidates": rows,
                                   "chosen": chosen}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
