"""Attack suites: the registered attack families as one named set (docs/matrix.md, "suites").

A suite is a list of :class:`SuiteEntry` ``(name, config)``: every family of the suite with its own typed config
at the suite's budget. It is built from the :data:`~alignkit.attacks.base.ATTACKS` registry, never from a list of
names kept here, so a newly registered family joins ``full`` (and ``quick``) by itself:

- ``full``: every registered family at its paper-default budget (the defaults of its config class);
- ``quick``: every registered family at its quick budget, minus the families another member makes redundant
  (``sft-lora`` beside ``sft-full``: the same harmful data and objective, LoRA's rank-16 update is the weaker of
  the two on a 135M model);
- ``sft``: the fine-tuning families (those that train weights through the Trainer path, ``Attack`` subclasses:
  ``sft-full``, ``sft-lora``, ``jailbreak-tuning``, ``benign``);
- ``NAME,NAME,...``: those registered families (an unknown name is one line listing the suites and the families).

A family's quick budget comes from the family class when it declares one (``suite_budgets = {"quick": {field:
value}}``), else from :data:`QUICK_BUDGETS` below (kept here until the family modules declare their own); the
family a quick suite leaves out as redundant comes from ``suite_redundant_with`` on the class, else
:data:`QUICK_REDUNDANT`. Explicit lists use the paper defaults unless ``budget="quick"`` is passed.

    from alignkit.attacks.suite import resolve_suite
    for e in resolve_suite("quick", "smollm2-135m-instruct", {"eval_prompts": 16, "max_new_tokens": 32}):
        e.name, e.config        # "prefill", PrefillConfig(prefill_tokens=[0, 8, 16], ...)

Why these quick budgets (each sized from the stage times measured on a 2-core CPU for smollm2-135m, the demo's
``--fast`` preset: an evaluation of 16 prompts x 32 tokens ~14 s, an SFT step of 4 x 80 tokens ~3.5 s): the
fine-tuning families train 12 steps on 64 examples (the demo's fast attack, ~1 min each with its two
evaluations); prefill evaluates 0, 8 and 16 tokens of a 32-token response; the embedding attack optimises 25 steps
(the quick search space's budget); refusal ablation fits its directions on 32 + 32 instructions and selects on 8 + 8,
evaluated at strengths 0 and 100 %. About 6-8 minutes per model for the six quick families on that box (an estimate
from the stage times above, not a measurement of the whole suite).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from alignkit.errors import AlignkitError

#: the named suites (see the module docstring)
SUITE_NAMES = ("quick", "full", "sft")

#: quick budgets of the families that do not declare ``suite_budgets`` themselves (family name -> config values)
_SFT_QUICK = {"max_steps": 12, "eval_every": 12, "num_samples": 64, "max_length": 80, "save_checkpoints": False}
QUICK_BUDGETS: dict[str, dict[str, Any]] = {
    "sft-full": dict(_SFT_QUICK),
    "sft-lora": dict(_SFT_QUICK),
    "jailbreak-tuning": {**_SFT_QUICK, "max_length": 160},  # the jailbreak wording makes prompts longer
    "benign": {**_SFT_QUICK, "max_length": 96},
    "prefill": {"prefill_tokens": [0, 8, 16]},
    "embedding": {"steps": [0, 10, 25]},
    "refusal-ablation": {"strengths": [0, 100], "n_train": 32, "n_val": 8},
}

#: families a quick suite leaves out because another member covers them (family -> the member that does)
QUICK_REDUNDANT: dict[str, str] = {"sft-lora": "sft-full"}


class SuiteEntry(BaseModel):
    """One attack of a suite: the registered family name and its config (the suite's budget applied)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    name: str
    config: Any
    budget: str = "default"

    @property
    def budget_label(self) -> str:
        from alignkit.attacks.base import family_class_by_name

        return family_class_by_name(self.name).budget_label


def families() -> list[str]:
    """Every registered attack family, in the order the families registered (sft-full, sft-lora, prefill, then
    attacks/__init__.py's FAMILY_MODULES order)."""
    from alignkit.attacks.base import ATTACKS, ensure_registered

    ensure_registered()
    order = list(getattr(ATTACKS, "_items", {}))
    return sorted(ATTACKS.names(), key=lambda n: order.index(n) if n in order else len(order))


def quick_budget(name: str) -> dict[str, Any]:
    """The config values of family ``name``'s quick budget (the class's ``suite_budgets["quick"]`` if it declares
    them, else :data:`QUICK_BUDGETS`; {} = its defaults)."""
    from alignkit.attacks.base import family_class_by_name

    own = getattr(family_class_by_name(name), "suite_budgets", None)
    if isinstance(own, Mapping) and "quick" in own:
        return dict(own["quick"])
    return dict(QUICK_BUDGETS.get(name, {}))


def redundant_with(name: str) -> Optional[str]:
    """The family that makes ``name`` redundant in a quick suite (None: none)."""
    from alignkit.attacks.base import family_class_by_name

    own = getattr(family_class_by_name(name), "suite_redundant_with", None)
    return own if own is not None else QUICK_REDUNDANT.get(name)


def suite_names(spec: str) -> list[str]:
    """The family names of suite ``spec`` (a suite name or a comma list of registered families), in order."""
    from alignkit.attacks.base import Attack, family_class_by_name

    spec = str(spec or "").strip()
    known = families()
    if spec == "full":
        return known
    if spec == "quick":
        return [n for n in known if not (redundant_with(n) in known)]
    if spec == "sft":
        return [n for n in known if issubclass(family_class_by_name(n), Attack)]
    names = [p.strip() for p in spec.split(",") if p.strip()]
    if not names:
        raise AlignkitError(f"--attacks is empty; give a suite ({', '.join(SUITE_NAMES)}) or registered attack "
                            f"families: {', '.join(known)}")
    bad = [n for n in names if n not in known]
    if bad:
        raise AlignkitError(f"unknown attack {bad[0]!r} in --attacks; give a suite ({', '.join(SUITE_NAMES)}) or "
                            f"registered attack families: {', '.join(known)}")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AlignkitError(f"attack {dup[0]!r} appears twice in --attacks; name each family once")
    return names


def resolve_suite(spec: str, model: str, base_options: Optional[Mapping[str, Any]] = None, *,
                  budget: Optional[str] = None, overrides: Optional[Mapping[str, Mapping[str, Any]]] = None
                  ) -> list[SuiteEntry]:
    """The suite ``spec`` for ``model``: one :class:`SuiteEntry` per family, its config built from (later wins)
    the family's defaults, its quick budget (``budget="quick"``; default: quick for the ``quick`` suite, the paper
    defaults otherwise), the ``base_options`` its config has (shared settings: judge, eval_prompts,
    max_new_tokens, template, seed, ... ; options a family does not have are skipped), and ``overrides[name]``
    (that family's own options). A value a family refuses is one line naming the family."""
    from alignkit.attacks import config_for
    from alignkit.attacks.base import family_config_class
    from alignkit.config import validation_message

    names = suite_names(spec)
    if budget is None:
        budget = "quick" if str(spec).strip() == "quick" else "default"
    if budget not in ("quick", "default"):
        raise AlignkitError(f"unknown suite budget {budget!r}; use quick or default")
    overrides = dict(overrides or {})
    stray = sorted(set(overrides) - set(names))
    if stray:
        raise AlignkitError(f"options given for attack {stray[0]!r}, which is not in the suite "
                            f"({', '.join(names)})")
    out = []
    for name in names:
        cls = family_config_class(name)
        shared = {k: v for k, v in dict(base_options or {}).items() if k in cls.model_fields and k != "attack"}
        values = {**(quick_budget(name) if budget == "quick" else {}), **shared, **dict(overrides.get(name, {})),
                  "model": model}
        values.pop("attack", None)
        try:
            cfg = config_for(name, **values)
        except ValidationError as exc:
            raise AlignkitError(f"attack {name}: {validation_message(exc)}") from None
        out.append(SuiteEntry(name=name, config=cfg, budget=budget))
    return out
