"""The validation table of a fixed judge (one that is not re-fitted: ``judgezoo:name=NAME``, ``refusal-keywords``,
``hf-classifier``, ``llm-rubric``, a shipped ``minilm`` version), the same checks as a recipe's table where they
apply: ``alignkit judge eval --judge SPEC``.

- ``refusal_scorer``: pyrit's refusal-scorer rows (human refusal labels; none is harmful): the AUROC / accuracy of
  ``refused`` against the label when the judge reports ``refused``, and the share of score > 0.5 on them (all
  false positives), split into human refusals and harmless answers;
- ``labels_test``: the held-out ``judge-labels`` test split (:func:`alignkit.judges.validation.labels.evaluate_judge`);
- ``probe``: the hand-written probe set (:mod:`alignkit.judges.validation.probe_set`);
- ``real_generations*``: the hand-labelled SmolLM2 generations (:mod:`alignkit.judges.validation.real_generations`).
"""

from __future__ import annotations

from typing import Any, Callable


def fixed_judge_table(judge: Any, seed: int = 0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every check of the module docstring for ``judge`` (a built judge); returns the table as a dict."""
    from alignkit.judges.base import judge_label
    from alignkit.judges.cli import _real_generations
    from alignkit.judges.recipe.training import training_rows
    from alignkit.judges.validation.labels import evaluate_judge
    from alignkit.judges.validation.ood import _bin, _probe_summary
    from alignkit.judges.validation.probe_set import probe_rows

    label = judge_label(judge)
    out: dict[str, Any] = {"judge": label, "kind": "fixed judge (not re-fitted)"}
    rows = [r for r in training_rows(seed, synthetic=False) if r["src"] == "pyrit-refusal"]
    a = judge.assess([r["prompt"] for r in rows], [r["response"] for r in rows])
    refused = [x["refused"] for x in a]
    labelled = [i for i, r in enumerate(rows) if r["label"] is not None]
    out["refusal_scorer"] = {
        "refused": (_bin([rows[i]["refused"] for i in range(len(rows))], refused)
                    if all(x is not None for x in refused) else None),
        "score_above_half": {grp: {"n": len(ks), "share": round(sum(a[k]["score"] > 0.5 for k in ks) / len(ks), 4)
                                   if ks else None}
                             for grp, ks in (("refusals", [k for k in labelled if rows[k]["refused"] == 1.0]),
                                             ("complying_harmless", [k for k in labelled
                                                                     if rows[k]["refused"] == 0.0]))}}
    log(f"refusal scorer: {out['refusal_scorer']}")
    out["labels_test"] = evaluate_judge(judge, split="test", seed=seed)
    probe = probe_rows()
    pa = judge.assess([r["prompt"] for r in probe], [r["completion"] for r in probe])
    pr = [x["refused"] for x in pa]
    out["probe"] = {label: _probe_summary(probe, [x["score"] for x in pa],
                                          pr if all(x is not None for x in pr) else None, None)}
    _real_generations(out, judge, log)
    return out


def print_fixed(t: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    tab = Table(title=f"{t['judge']}, fixed judge (not re-fitted): held-out checks")
    for col in ("check", "test rows", "n", "accuracy", "AUROC"):
        tab.add_column(col, justify="left" if col in ("check", "test rows") else "right")
    rs = t["refusal_scorer"]
    if rs["refused"]:
        r = rs["refused"]
        tab.add_row("refusal detection", "pyrit refusal scorer (refused vs human label)", str(r["n"]),
                    fmt(r["accuracy"]), fmt(r["auroc"]))
    else:
        tab.add_row("refusal detection", "not measured: the judge reports no 'refused'", "", "", "")
    for grp, what in (("refusals", "human refusals (all harmless): score <= 0.5"),
                      ("complying_harmless", "harmless answers: score <= 0.5")):
        r = rs["score_above_half"][grp]
        if r["n"]:
            tab.add_row("false positives", what, str(r["n"]), fmt(round(1 - r["share"], 4)), "")
    m = t["labels_test"]
    for key in ("all", "clear"):
        tab.add_row("held-out human harm labels", f"judge-labels test split, {key} rows", str(m[key]["n"]),
                    fmt(m[key]["accuracy"]), fmt(m[key]["auroc"]))
    for key, what in (("real_generations", "hand-labelled real generations"),
                      ("real_generations_attacked_dev", "hand-labelled attacked generations, dev"),
                      ("real_generations_attacked_test", "hand-labelled attacked generations, test"),
                      ("real_generations_raw_attack", "hand-labelled raw-model attack generations"),
                      ("real_generations_harmbench_attack", "hand-labelled attack generations, HarmBench prompts")):
        rg = t.get(key)
        if rg:
            tab.add_row("harm on real generations", what, str(rg["n"]), fmt(rg["accuracy"]), fmt(rg["auroc"]))
    Console(width=max(Console().width, 130)).print(tab)
    p = next(iter(t["probe"].values()))
    kinds = ("harmful", "howto", "refusal", "partial", "gibberish")
    print("probe set (mean score [count > 0.5]): " + ", ".join(
        f"{k} {p[k]['mean']:.2f} [{p[k]['above_0.5']}/{p[k]['n']}]" for k in kinds)
        + f"; harmful vs how-to AUROC {fmt(p['harmful_vs_howto_auroc'])}")
