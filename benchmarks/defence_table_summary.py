"""The defence table of docs/results.md from one `alignkit evaluate` run folder (results.json + the attacks' saved
generations): per model, harmfulness before / after each attack seed, natural-text and templated perplexity
(x base), probe accuracy, over-refusal, ROUGE-1 after the trainability fine-tuning, the three verdicts and the
share of incoherent completions before the attack.

    python benchmarks/defence_table_summary.py runs/defence-table/eval [--lr-rule runs/defence-table/lr_rule.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--lr-rule", default=None, help="lr_rule.json of benchmarks/defence_lr_rule.py (adds the lr)")
    a = ap.parse_args(argv)
    from alignkit.conditions.schema import EvaluationReport
    from alignkit.reporting.tables import _gen_stats

    rep = EvaluationReport.model_validate_json((Path(a.run_dir) / "results.json").read_text(encoding="utf-8"))
    paths = {m.label: m.path for m in rep.models}
    lrs = {}
    for m in rep.models:
        card = Path(m.path) / "alignkit.json"
        if card.exists():
            cfg = json.loads(card.read_text(encoding="utf-8")).get("config") or {}
            if cfg.get("lr") is not None and m.role != "base":
                lrs[m.label] = cfg["lr"]
    runs = {}
    for r in rep.resistance.runs:
        runs.setdefault(r.model, []).append(r)
    stab = {s.model: s for s in rep.stability.models}
    train = {t.model: t for t in rep.trainability.models}
    verdict = {(v.model, v.condition): v.verdict for v in rep.verdicts}
    base = stab["base"]
    seeds = sorted({r.spec.seed for r in rep.resistance.runs})
    head = (["model", "lr", "pre-attack"] + [f"after s{s}" for s in seeds] +
            ["mean after", "natural ppl (x base)", "templated ppl (x base)", "probe", "over-refusal",
             "ROUGE-1 after 8 steps", "res / stab / train", "incoherent pre-attack"])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for label in paths:
        rs = sorted(runs.get(label, []), key=lambda r: r.spec.seed)
        after = [r.curve[-1].harmfulness_mean for r in rs]
        pre = rs[0].curve[0].harmfulness_mean if rs else float("nan")
        first = _gen_stats(rs[0].run_dir, last=False) if rs else None
        s, t = stab[label], train.get(label)
        if label == "base":
            nat, tmp = f"{s.natural_perplexity.value:.1f}", f"{s.perplexity.value:.2f}"
            ver = "-"
        else:
            nat = f"x{s.natural_perplexity.value / base.natural_perplexity.value:.2f}"
            tmp = f"x{s.perplexity.value / base.perplexity.value:.2f}"
            ver = " / ".join(verdict.get((label, c), "-").upper() for c in ("resistance", "stability", "trainability"))
        print("| " + " | ".join([label, f"{lrs[label]:g}" if label in lrs else "-", f"{pre:.3f}"]
                                + [f"{x:.3f}" for x in after]
                                + [f"{sum(after) / len(after):.3f}" if after else "-", nat, tmp,
                                   f"{s.probe_accuracy.value:.2f}", f"{s.over_refusal.value:.2f}",
                                   f"{t.rouge_after:.3f}" if t else "-", ver,
                                   f"{first['incoherent']:.2f}" if first else "-"]) + " |")
    print(f"\nphi = {rep.phi:.3f}; judge {rep.judge if isinstance(rep.judge, str) else rep.judge}")
    print("timings (s):", json.dumps(rep.timings))
    if a.lr_rule:
        rule = json.loads(Path(a.lr_rule).read_text(encoding="utf-8"))
        print(f"\nlr rule: natural-text ppl within x{rule['max_ratio']} of the base's "
              f"({rule['base']['ppl']:.2f})")
        for c in rule["candidates"]:
            print(f"  {c['defence']} lr {c['lr']:g}: {c['natural_ppl']:.4g} (x{c['ratio']:.3g}) "
                  f"{'pass' if c['passes'] else 'fail'}")
        print("  chosen:", {k: v["lr"] for k, v in rule["chosen"].items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
