"""``alignkit matrix`` options (the config doubles as the CLI) and how they resolve into the matrix's plan: the
rows (undefended + each defence, its config per seed), the columns (an attack suite, alignkit.attacks.suite) and
the folder's signature (what a re-run must share to resume it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator

from alignkit.errors import AlignkitError

#: the label of the row of the model as given (no defence)
UNDEFENDED = "undefended"

#: ``--preset quick``: the fields it sets (unless given explicitly). Two defences (RepNoise, the method alignkit is
#: built around, and safety SFT, the control every immunization must beat) x the quick attack suite x one seed, at
#: the demo --fast evaluation budget (16 prompts x 32 tokens, 30 natural-text passages)
PRESETS: dict[str, dict[str, Any]] = {
    "quick": {"defences": "repnoise,safety-sft", "attacks": "quick", "seeds": [0], "eval_prompts": 16,
              "max_new_tokens": 32, "capability_texts": 30},
}

#: ``--preset quick``: every defence trains 12 steps (no checkpoints), with its quick search space's fixed values
#: (defences/spaces/<name>-quick.yaml: batch 4, 64 tokens, 100 pairs) and these per-defence settings: RepNoise at
#: the demo's point (lr 1.2e-4, alpha 1.47, beta 0.075, retain mix 1: weakly resistant, stable and trainable on
#: smollm2-135m, docs/results.md) and safety SFT as the demo aligns its base (lr 1e-4, one harmless instruction per
#: refusal). Other defences keep their config defaults at that budget.
QUICK_DEFENCE_STEPS = 12
QUICK_DEFENCE_OPTIONS: dict[str, dict[str, Any]] = {
    "repnoise": {"lr": 1.2e-4, "alpha": 1.47, "beta": 0.075, "retain_mix": 1.0},
    "safety-sft": {"lr": 1e-4, "harmless_mix": 1.0},
}

#: the settings every cell shares (a folder made with other values is refused)
SHARED = ("model", "judge", "eval_prompts", "max_new_tokens", "eval_batch_size", "template", "data_seed", "dtype",
          "capability_data", "capability_texts", "phi", "phi_margin")


class MatrixConfig(BaseModel):
    """Defences x attacks in one command: every defence trained once per seed, every attack family of the suite
    run on the undefended model and on each defended one, one cached cell per (defence, attack, seed);
    results.json + report.md/html with a heat-map of harmfulness after attack, the capability cost of each
    defence and the resistance verdict per cell. Re-running the same command resumes; several processes may run
    it on one folder at the same time (each takes the cells no other holds)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = Field("smollm2-135m-instruct", description="the undefended model (every defence starts from it): "
                       "alias, local folder or hub id")
    defences: str = Field("all", description="comma list of registered defences (alignkit defend --help), or all")
    attacks: str = Field("full", description="attack suite: quick, full, sft, or a comma list of registered attack "
                         "families (alignkit attack --help)")
    seeds: list[int] = Field(default_factory=lambda: [0], description="seeds: each defence is trained and each "
                             "attack run once per seed; cells report the mean and spread over them")
    output_dir: Optional[str] = Field(None, description="matrix folder (default runs/matrix-<model>); re-running the "
                                      "same command resumes it")
    preset: Optional[Literal["quick"]] = Field(None, description="quick: repnoise,safety-sft x the quick attack "
                                               "suite x seed 0 at short budgets (docs/matrix.md); options given "
                                               "explicitly override it")
    judge: str = Field("minilm", description="harmfulness judge (alignkit judge list)")
    allow_judge_import: bool = Field(False, description="allow --judge package.module:Class, which imports and runs "
                                     "that module")
    eval_prompts: int = Field(40, ge=1, description="harmful evaluation prompts per harmfulness measurement")
    max_new_tokens: int = Field(50, ge=1, description="greedy new tokens per evaluation completion")
    eval_batch_size: int = Field(16, ge=1, description="generation batch size")
    template: Literal["chat", "qa"] = Field("chat", description="prompt format of the defences and the attacks")
    data_seed: int = Field(0, ge=0, description="seed of the data splits and evaluation prompt samples")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field("float32", description="weights dtype")
    attack_budget: Optional[Literal["quick", "default"]] = Field(None, description="budget of every attack: quick "
                                                                 "or default (the paper's); default: quick for the "
                                                                 "quick suite or --preset quick, else default")
    attack_options: Optional[str] = Field(None, description="per-family attack options: a YAML/JSON file or inline "
                                          "JSON mapping family -> {option: value}, e.g. "
                                          "'{\"prefill\": {\"prefill_tokens\": [0, 8]}}'")
    defence_options: Optional[str] = Field(None, description="per-defence options: a YAML/JSON file or inline JSON "
                                           "mapping defence -> {option: value}, e.g. '{\"repnoise\": {\"max_steps\": "
                                           "12}}'")
    phi: Optional[float] = Field(None, ge=0, le=1, description="harmfulness threshold of the verdicts; default per "
                                 "attack: the undefended model's pre-attack (budget-0) harmfulness under it + "
                                 "--phi-margin")
    phi_margin: Optional[float] = Field(None, ge=0, le=1, description="margin added to the undefended pre-attack "
                                        "harmfulness; default: the judge's measured noise (0.09 without one)")
    capability_data: Literal["natural-text", "harmless-instructions"] = Field(
        "natural-text", description="capability cost of a defence: perplexity of held-out natural-text passages or "
        "harmless-instructions responses, relative to the undefended model")
    capability_texts: int = Field(50, ge=1, description="held-out texts for the capability cost")
    search_trials: int = Field(0, ge=0, description="also run a 'search attack' of this many trials on the "
                               "undefended model and each defended one (first seed) and plot the attack budget "
                               "each defence buys; 0: no searches")
    search_attack: str = Field("sft", description="attack family the searches search (--search-trials)")
    retry_failed: bool = Field(False, description="run the cells (and defences) recorded as failed again; default: "
                               "a failed cell stays failed on re-runs")
    poll_s: float = Field(5.0, gt=0, le=600, description="seconds between looks at cells another process holds")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one seed")
        if any(s < 0 for s in v):
            raise ValueError("seeds must be >= 0")
        if len(set(v)) != len(v):
            raise ValueError("a seed appears twice")
        return list(v)

    @field_validator("attack_options", "defence_options", mode="before")
    @classmethod
    def _mapping_as_text(cls, v: Any) -> Any:
        if isinstance(v, dict):  # given as a mapping (Python, or --config FILE.yaml): kept as canonical JSON
            return json.dumps(v, sort_keys=True)
        return v

    def out_dir(self) -> Path:
        if self.output_dir:
            return Path(self.output_dir).expanduser()
        from alignkit.io import safe_name
        from alignkit.paths import default_runs_dir

        return default_runs_dir() / f"matrix-{safe_name(Path(self.model).name or self.model, max_len=40)}"


def with_preset(config: MatrixConfig) -> MatrixConfig:
    """``config`` with its preset's values for every field the user did not set."""
    if not config.preset:
        return config
    values = {k: v for k, v in PRESETS[config.preset].items() if k not in config.model_fields_set}
    return config.model_copy(update=values)


def read_options(text: Optional[str], option: str) -> dict[str, dict[str, Any]]:
    """``--attack-options`` / ``--defence-options``: inline JSON or a YAML/JSON file, a mapping name -> mapping."""
    if text is None or not str(text).strip():
        return {}
    text = str(text).strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise AlignkitError(f"--{option}: not valid JSON ({str(exc).splitlines()[0][:80]}); give a mapping like "
                                "'{\"name\": {\"option\": value}}' or a YAML file") from None
    else:
        path = Path(text).expanduser()
        if not path.is_file():
            raise AlignkitError(f"--{option}: {text!r} is neither inline JSON nor an existing file")
        try:
            import yaml

            from alignkit.config import _yaml_loader

            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader())  # noqa: S506 (SafeLoader)
        except Exception as exc:  # noqa: BLE001 - yaml errors are not ValueErrors
            raise AlignkitError(f"--{option}: could not parse {text!r} ({str(exc).splitlines()[0][:100]})") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in data.items()):
        raise AlignkitError(f"--{option} must map each name to a mapping of options, e.g. "
                            "{\"repnoise\": {\"max_steps\": 12}}")
    return data


def defence_names(spec: str) -> list[str]:
    """The defences of ``--defences`` (``all``: every registered one); unknown names: one line naming them."""
    from alignkit.defences import DEFENCES

    known = DEFENCES.names()
    spec = str(spec or "").strip()
    if spec == "all":
        return known
    names = [p.strip() for p in spec.split(",") if p.strip()]
    if spec in ("", "none"):
        return []
    bad = [n for n in names if n not in known]
    if bad:
        raise AlignkitError(f"unknown defence {bad[0]!r} in --defences; choose from: {', '.join(known)} (or all)")
    if UNDEFENDED in names:
        raise AlignkitError(f"--defences: {UNDEFENDED!r} is always the first row; leave it out")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise AlignkitError(f"defence {dup[0]!r} appears twice in --defences; name each once")
    return names


def _quick_space_fixed(defence: str) -> dict[str, Any]:
    """The ``fixed`` values of a defence's quick search space (batch, length, pairs)."""
    from alignkit.defences import DEFENCES

    f = DEFENCES.get(defence).search_space_file("quick")
    if f is None:
        return {}
    import yaml

    try:
        raw = yaml.safe_load(Path(f).read_text(encoding="utf-8"))
    except Exception:  # noqa: BLE001
        return {}
    fixed = raw.get("fixed") if isinstance(raw, dict) else None
    return dict(fixed) if isinstance(fixed, dict) else {}


class Plan(BaseModel):
    """A resolved matrix: what runs where (built before anything is written)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    config: MatrixConfig
    out: Path
    defences: list[str]
    attacks: list[str]
    attack_configs: dict[str, Any] = Field(description="family -> its config (model/seed/output set per cell)")
    defence_configs: dict[str, Any] = Field(description="defence -> its config (seed/output set per seed)")
    signature: dict[str, Any]


def _dump(cfg: BaseModel, drop: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in cfg.model_dump(mode="json").items() if k not in drop}


def resolve(config: MatrixConfig) -> Plan:
    """Preset applied, defences / attacks / their configs resolved and checked: every bad input raises here,
    before a file is written."""
    from pydantic import ValidationError

    from alignkit.attacks.base import check_judge_import, family_class_by_name
    from alignkit.attacks.suite import resolve_suite
    from alignkit.config import validation_message
    from alignkit.defences import DEFENCES
    from alignkit.harmfulness import judge_cache_name
    from alignkit.models import resolve_model

    config = with_preset(config)
    check_judge_import(config.judge, config.allow_judge_import)
    defences = defence_names(config.defences)
    attack_opts = read_options(config.attack_options, "attack-options")
    defence_opts = read_options(config.defence_options, "defence-options")
    stray = sorted(set(defence_opts) - set(defences))
    if stray:
        raise AlignkitError(f"--defence-options names {stray[0]!r}, which is not in --defences "
                            f"({', '.join(defences) or 'none'})")
    base = {"judge": config.judge, "allow_judge_import": config.allow_judge_import,
            "eval_prompts": config.eval_prompts, "max_new_tokens": config.max_new_tokens,
            "eval_batch_size": config.eval_batch_size, "template": config.template, "data_seed": config.data_seed,
            "dtype": config.dtype, "save_model": False}
    budget = config.attack_budget or ("quick" if config.preset == "quick" else None)
    suite = resolve_suite(config.attacks, config.model, base, budget=budget, overrides=attack_opts)
    family_class_by_name(config.search_attack)  # an unknown --search-attack: one line naming the families
    defence_configs = {}
    for name in defences:
        cls = DEFENCES.get(name).config_class
        values: dict[str, Any] = {}
        if config.preset == "quick":
            values.update(_quick_space_fixed(name))
            values.update({"max_steps": QUICK_DEFENCE_STEPS, "save_every": 0}, **QUICK_DEFENCE_OPTIONS.get(name, {}))
        values.update(defence_opts.get(name, {}))
        values.update(model=config.model, template=config.template, dtype=config.dtype, data_seed=config.data_seed,
                      defence=name)
        values = {k: v for k, v in values.items() if k in cls.model_fields or k in defence_opts.get(name, {})}
        try:
            defence_configs[name] = cls(**values)
        except ValidationError as exc:
            raise AlignkitError(f"defence {name}: {validation_message(exc)}") from None
    resolve_model(config.model)  # an unknown model: one line, before the folder exists
    drop_a = ("model", "seed", "output_dir", "overwrite", "save_model", "eval_batch_size", "allow_judge_import",
              "security_vector")
    drop_d = ("model", "seed", "output_dir", "overwrite", "save_every")
    shared = {k: getattr(config, k) for k in SHARED}
    shared["judge"] = judge_cache_name(config.judge)
    signature = {"kind": "matrix", **shared,
                 "attacks": {e.name: _dump(e.config, drop_a) for e in suite},
                 "defences": {n: _dump(c, drop_d) for n, c in defence_configs.items()}}
    return Plan(config=config, out=config.out_dir(), defences=defences, attacks=[e.name for e in suite],
                attack_configs={e.name: e.config for e in suite}, defence_configs=defence_configs,
                signature=json.loads(json.dumps(signature, default=str)))


def signature_difference(old: dict[str, Any], new: dict[str, Any]) -> Optional[str]:
    """The first setting in which a folder's signature ``old`` and this run's ``new`` differ (None: none). The
    defences and attacks of both may differ in which names they hold (a matrix can grow); a name in both must have
    the same settings."""
    def show(v: Any) -> str:
        return json.dumps(v, default=str)[:60]

    for k in sorted(set(old) | set(new)):
        if k in ("attacks", "defences"):
            continue
        if old.get(k) != new.get(k):
            return f"--{k.replace('_', '-')} is {show(old.get(k))} there, {show(new.get(k))} here"
    for group, what in (("defences", "defence"), ("attacks", "attack")):
        a, b = old.get(group) or {}, new.get(group) or {}
        for name in sorted(set(a) & set(b)):
            if a[name] != b[name]:
                keys = sorted(k for k in set(a[name]) | set(b[name]) if a[name].get(k) != b[name].get(k))
                k = keys[0] if keys else "config"
                return (f"{what} {name}'s --{k.replace('_', '-')} is {show(a[name].get(k))} there, "
                        f"{show(b[name].get(k))} here")
    return None
