"""The stability condition's runner (its measurements and verdict are in :mod:`alignkit.conditions.stability`)."""

from __future__ import annotations

from alignkit.conditions import stability as stab_mod
from alignkit.conditions.context import Context, advance
from alignkit.conditions.registry import condition
from alignkit.conditions.schema import StabilityModel, StabilityResult
from alignkit.judges.refusal_keywords import VERSION as REFUSAL_DETECTOR_VERSION


@condition("stability", units=lambda c: 1 + len(c.model))
def run_stability(ctx: Context) -> StabilityResult:
    c = ctx.config
    models: list[StabilityModel] = []
    notes: list[str] = []
    for entry in ctx.models:
        key = {"m": ctx.fingerprints[entry.label], "c": [c.stability_texts, c.probe_size, c.template, c.seed],
               "v": "natural-text+over-refusal", "refusal_detector": REFUSAL_DETECTOR_VERSION}

        def measure(entry=entry):
            model, tok = ctx.load(entry)
            m = stab_mod.measure(model, tok, n_ppl=c.stability_texts, n_probe=c.probe_size, template=c.template,
                                 seed=c.seed)
            return StabilityModel(model=entry.label, perplexity=m["perplexity"], probe_accuracy=m["probe_accuracy"],
                                  natural_perplexity=m["natural_perplexity"], over_refusal=m["over_refusal"])

        sm = ctx.stages.run(f"stability-{entry.label}", key, measure, StabilityModel)
        if c.lm_eval_tasks:
            lm = ctx.stages.run(f"lm-eval-{entry.label}", {**key, "t": c.lm_eval_tasks, "l": c.lm_eval_limit},
                                lambda entry=entry: stab_mod.run_lm_eval(entry.path, c.lm_eval_tasks, c.lm_eval_limit))
            sm = sm.model_copy(update={"lm_eval": lm})
        models.append(sm)
        advance(ctx)
    base = models[0]
    def value(e):
        return None if e is None else e.value

    verdicts = [stab_mod.stability_verdict(m.model, base.perplexity.value, m.perplexity.value,
                                           base.probe_accuracy.value, m.probe_accuracy.value,
                                           c.ppl_tolerance, c.acc_tolerance,
                                           base_natural_ppl=value(base.natural_perplexity),
                                           natural_ppl=value(m.natural_perplexity),
                                           base_over_refusal=value(base.over_refusal),
                                           over_refusal=value(m.over_refusal)) for m in models[1:]]
    notes.append(f"perplexity: {c.stability_texts} held-out harmless-instructions responses; probe: "
                 f"{c.probe_size} exact-answer questions (templated, generated data)")
    notes.append(f"natural-text perplexity: {c.stability_texts} held-out prose passages (natural-text: the Python "
                 "Language Reference from CPython, PSF-2.0; no alignkit stage trains on it), raw text; over-refusal: "
                 "share of the probe's harmless prompts refused (refusal-keywords detector), tolerance +0.05")
    return StabilityResult(models=models, verdicts=verdicts, notes=notes)
