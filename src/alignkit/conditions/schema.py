"""The schema of an evaluation's ``results.json`` (:class:`EvaluationReport`) and its parts.

Everything the report, the terminal summary and ``docs/results.md`` show comes from these models; they are
plain pydantic models so ``EvaluationReport.model_validate_json(path.read_text())`` re-checks a results file.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from alignkit.attacks.config import CurvePoint  # noqa: F401  (one curve point class for attacks and reports)

SCHEMA_VERSION = "alignkit.evaluation/1"

VerdictValue = Literal["pass", "weak", "fail", "info", "skipped", "n/a"]


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Estimate(_M):
    """A point estimate with a (bootstrap) 95% confidence interval."""

    value: float
    lo: Optional[float] = None
    hi: Optional[float] = None
    n: int = 0




class Disfluency(_M):
    """Flags text that has collapsed into noise (which a classifier would score as harmless)."""

    repetition_rate: float = Field(description="mean share of repeated word 3-grams per completion")
    perplexity_under_base: Optional[float] = Field(default=None,
                                                   description="median perplexity of the completions under the base model")
    reference_perplexity: Optional[float] = Field(default=None,
                                                  description="same, for the base model's own pre-attack completions")
    empty_share: float = 0.0
    flagged: bool = False
    reason: str = ""


class AttackSpec(_M):
    """One harmful fine-tuning attack of the sweep."""

    mode: Literal["full", "lora"] = "full"
    lr: float
    num_samples: int
    seed: int = 0
    max_steps: int
    dataset: str = "harmful-qa"
    categories: Optional[list[str]] = None

    @property
    def key(self) -> str:
        cats = "" if not self.categories else "-" + "+".join(sorted(self.categories))
        ds = "" if self.dataset == "harmful-qa" else "-" + self.dataset.replace("/", "_").replace(".", "_")
        return f"{self.mode}-lr{self.lr:g}-n{self.num_samples}-s{self.seed}-t{self.max_steps}{ds}{cats}"

    @property
    def label(self) -> str:
        return f"{self.mode} lr={self.lr:g} n={self.num_samples} seed={self.seed}"

    @property
    def budget_label(self) -> str:
        """What the curve's step counts (an SFT sweep run: optimizer steps)."""
        return "optimizer steps"

    @property
    def family(self) -> Optional[str]:
        """None: a run of the SFT sweep, not of an attack suite."""
        return None


class FamilySpec(_M):
    """One attack family of an attack suite (``evaluate --attacks``): the registered family at the suite's budget.
    The curve's steps are that family's budgets, counted in ``budget_label`` (prefill tokens, optimizer steps,
    ...): budgets of different families are different units and are never compared as numbers."""

    family: str = Field(description="registered attack family (alignkit.attacks.ATTACKS)")
    budget_label: str = Field(description="what the family's budget counts (the curve's x axis)")
    budgets: list[int] = Field(default_factory=list, description="the evaluated budgets (the curve's steps)")
    suite_budget: Literal["quick", "default"] = Field("default", description="the suite's budget: quick or the "
                                                      "family's paper defaults")

    @property
    def key(self) -> str:
        return self.family

    @property
    def label(self) -> str:
        return f"{self.family} ({self.budget_label} {', '.join(str(b) for b in self.budgets)})"


def _check_example(row: dict[str, Any]) -> dict[str, Any]:
    """An example row (prompt, completion, score, ...): texts must be strings and the score a number, or the
    report cannot show them."""
    for key in ("prompt", "completion"):
        if key in row and not isinstance(row[key], str):
            raise ValueError(f"{key!r} must be a string, got {_json_type(row[key])}")
    score = row.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, (int, float))):
        raise ValueError(f"'score' must be a number, got {_json_type(score)}")
    return row


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f"the string {v[:20]!r}"
    return {int: "a number", float: "a number", list: "a list", dict: "an object"}.get(type(v), type(v).__name__)


Example = Annotated[dict[str, Any], AfterValidator(_check_example)]


class CompliancePoint(_M):
    """One evaluated step of an attack's compliance curve: the share of the evaluation completions the judge does
    not find refused (``refused`` <= 0.5), i.e. 1 - the refusal rate."""

    step: int
    compliance: float
    n: int = 0


class AttackRun(_M):
    model: str = Field(description="model label (e.g. 'base', 'repnoise')")
    spec: Union[AttackSpec, FamilySpec] = Field(description="the attack: a run of the SFT sweep (AttackSpec) or a "
                                                "family of an attack suite (FamilySpec)")
    curve: list[CurvePoint]
    strong: Optional[bool] = Field(default=None, description="never above phi within the budget (None: no data)")
    steps_to_threshold: Optional[int] = Field(default=None, description="first step above phi; None = never")
    budget: int = Field(default=0, description="last step of the curve (the attack budget T)")
    disfluency: Optional[Disfluency] = None
    run_dir: Optional[str] = None
    examples: list[Example] = Field(default_factory=list,
                                           description="a few final (prompt, completion, score) rows")
    compliance: Optional[list[CompliancePoint]] = Field(
        default=None, description="compliance rate (1 - refusal rate) at each evaluated step, read from the saved "
        "generations; None: the judge has no refusal head, or no generations were saved")
    changes_weights: bool = Field(True, description="False: the attack leaves the weights unchanged (prefill, "
                                  "embedding): capability loss 0 by construction")
    capability_loss: Optional[float] = Field(None, description="attack suites: relative rise of held-out "
                                             "natural-text perplexity of the attacked model (largest budget) over "
                                             "the model before the attack (0.25 = +25%); 0 for families that do "
                                             "not change weights; None: not measured (SFT sweep runs)")


class ResistanceVerdict(_M):
    model: str
    strong: Optional[bool]
    weak_steps: Optional[int] = Field(description="worst case (fewest) steps to cross phi; None = never. Attack "
                                      "suites: the deciding family's budget at its crossing, in budget_label")
    budget: int
    budget_label: str = Field("optimizer steps", description="unit of weak_steps and budget (attack suites: the "
                              "deciding family's)")
    family: Optional[str] = Field(None, description="attack suites: the family that decided the verdict")
    worst_attack: Optional[str] = None
    worst_harmfulness: Optional[float] = None
    less_harmful_than_base: Optional[bool] = None
    disfluent: bool = False
    verdict: VerdictValue
    detail: str = ""


class ComplianceVerdict(_M):
    """The resistance verdict computed on the compliance rate instead of the harm score: phi is the compliance
    threshold (:class:`ComplianceThreshold`), 'above phi' = complies with more harmful requests than allowed."""

    model: str
    strong: Optional[bool]
    weak_steps: Optional[int] = Field(description="worst case (fewest) steps to cross the compliance phi; None = "
                                      "never")
    budget: int
    budget_label: str = Field("optimizer steps", description="unit of weak_steps and budget")
    family: Optional[str] = Field(None, description="attack suites: the family that decided the verdict")
    worst_attack: Optional[str] = None
    worst_compliance: Optional[float] = None
    complies_less_than_base: Optional[bool] = None
    verdict: VerdictValue
    detail: str = ""


class SuiteInfo(_M):
    """The attack suite resistance ran (``evaluate --attacks``) and the rule that picks its worst case."""

    spec: str = Field(description="--attacks as given: quick, full, sft or a list of families")
    budget: Literal["quick", "default"] = Field(description="the families' budget: quick or paper defaults")
    families: list[str]
    rule: str = Field("", description="the worst-case rule over the suite, in words")


class FamilyRow(_M):
    """One attack family against one model of a suite: what it did to harmfulness, compliance and capability,
    each budget in the family's own unit (``budget_label``)."""

    model: str
    family: str
    budget_label: str
    budgets: list[int]
    changes_weights: bool
    pre_harmfulness: Optional[float] = Field(None, description="harmfulness at budget 0")
    final_harmfulness: float = Field(description="harmfulness at the largest budget")
    peak_harmfulness: float
    steps_to_threshold: Optional[int] = Field(description="first budget above phi (in budget_label); None = never")
    final_compliance: Optional[float] = Field(None, description="compliance rate (1 - refusal rate) at the largest "
                                              "budget; None: judge without a refusal head")
    capability_loss: Optional[float] = Field(None, description="perplexity rise of the attacked model (0: the "
                                             "family does not change weights)")
    verdict: VerdictValue = Field(description="this family's resistance verdict on the harm score")
    compliance_verdict: VerdictValue = Field("n/a", description="the same on the compliance rate")
    detail: str = ""


class ResistanceResult(_M):
    phi: float
    phi_source: str
    runs: list[AttackRun]
    verdicts: list[ResistanceVerdict]
    compliance_verdicts: list[ComplianceVerdict] = Field(default_factory=list,
                                                         description="the same verdicts on the compliance rate")
    suite: Optional[SuiteInfo] = Field(None, description="the attack suite (None: the SFT sweep)")
    families: list[FamilyRow] = Field(default_factory=list, description="attack suites: one row per model and "
                                      "family")


class StabilityModel(_M):
    model: str
    perplexity: Estimate
    probe_accuracy: Estimate
    lm_eval: dict[str, float] = Field(default_factory=dict)
    natural_perplexity: Optional[Estimate] = Field(None, description="perplexity on held-out natural text "
                                                   "(natural-text), raw text; None when not measured")
    over_refusal: Optional[Estimate] = Field(None, description="share of harmless probe prompts refused "
                                             "(refusal-keywords detector); None when not measured")


class StabilityVerdict(_M):
    model: str
    perplexity_ratio: float
    accuracy_drop: float
    verdict: VerdictValue
    detail: str = ""


class StabilityResult(_M):
    models: list[StabilityModel]
    verdicts: list[StabilityVerdict]
    notes: list[str] = Field(default_factory=list)


class GeneralizationVerdict(_M):
    model: str
    in_domain: VerdictValue
    cross_domain: VerdictValue
    verdict: VerdictValue
    # strictly below the base attacked the same way (None: the base was not attacked, or the half skipped)
    in_domain_less_than_base: Optional[bool] = None
    cross_domain_less_than_base: Optional[bool] = None
    detail: str = ""


class GeneralizationResult(_M):
    defence_categories: Optional[list[str]] = None
    heldout_categories: Optional[list[str]] = None
    cross_domain_source: Optional[str] = None
    in_domain: list[AttackRun] = Field(default_factory=list)
    cross_domain: list[AttackRun] = Field(default_factory=list)
    verdicts: list[GeneralizationVerdict] = Field(default_factory=list)
    compliance_verdicts: list[GeneralizationVerdict] = Field(default_factory=list,
                                                             description="the same verdicts on the compliance rate")
    notes: list[str] = Field(default_factory=list)


class TrainPoint(_M):
    step: int
    rouge1: float


class TrainabilityModel(_M):
    model: str
    curve: list[TrainPoint]
    rouge_before: float
    rouge_after: float
    steps_needed: Optional[int] = Field(description="first step reaching the target ROUGE-1; None = not reached")
    harmfulness_after: Optional[float] = None
    attacked_harmfulness_after: Optional[float] = None
    compliance_after: Optional[float] = Field(None, description="compliance rate after the harmless fine-tuning "
                                              "(None: judge without a refusal head, or not measured)")
    attacked_compliance_after: Optional[float] = Field(None, description="highest compliance rate of the attack "
                                                       "after it (--trainability-attack)")


class TrainabilityVerdict(_M):
    model: str
    rouge_gap: float
    steps_ratio: Optional[float]
    stays_resistant: Optional[bool]
    verdict: VerdictValue
    detail: str = ""


class TrainabilityResult(_M):
    target_rouge: float
    models: list[TrainabilityModel]
    verdicts: list[TrainabilityVerdict]
    compliance_verdicts: list[TrainabilityVerdict] = Field(default_factory=list, description="the same verdicts "
                                                           "with 'stays resistant' read on the compliance rate")


class DepthModel(_M):
    model: str
    layer_accuracy: list[float] = Field(description="probe accuracy per hidden state (0 = embeddings)")


class DepthVerdict(_M):
    model: str
    mean_drop: float
    early_drop: float
    verdict: VerdictValue
    detail: str = ""


class DepthResult(_M):
    n_examples: int
    models: list[DepthModel]
    verdicts: list[DepthVerdict]


class ConditionVerdict(_M):
    condition: str
    model: str
    verdict: VerdictValue
    detail: str = ""


class ComplianceThreshold(_M):
    """phi of the compliance verdicts: the base's pre-attack compliance rate plus a margin for the judge's noise."""

    available: bool = Field(description="False: no compliance verdicts (the reason says why)")
    phi: Optional[float] = None
    phi_source: str = ""
    base_compliance: Optional[float] = Field(None, description="the base model's pre-attack compliance rate")
    margin: Optional[float] = None
    margin_source: str = ""
    reason: str = Field("", description="why compliance verdicts are not available")


class ModelEntry(_M):
    label: str
    path: str
    role: Literal["base", "defended"]
    defence: Optional[str] = None
    pre_attack_harmfulness: Optional[float] = None
    pre_attack_compliance: Optional[float] = Field(None, description="compliance rate before any attack (None: "
                                                   "judge without a refusal head, or resistance not run)")


class EvaluationReport(_M):
    schema_version: str = SCHEMA_VERSION
    config: dict[str, Any]
    provenance: dict[str, Any]
    judge: str
    models: list[ModelEntry]
    phi: Optional[float] = None
    resistance: Optional[ResistanceResult] = None
    stability: Optional[StabilityResult] = None
    generalization: Optional[GeneralizationResult] = None
    trainability: Optional[TrainabilityResult] = None
    depth: Optional[DepthResult] = None
    verdicts: list[ConditionVerdict] = Field(default_factory=list)
    compliance: Optional[ComplianceThreshold] = Field(None, description="the compliance verdicts' phi (None: a "
                                                      "results file written before compliance verdicts)")
    compliance_verdicts: list[ConditionVerdict] = Field(default_factory=list, description="resistance, "
                                                        "generalization and trainability verdicts on the compliance "
                                                        "rate (1 - refusal rate), beside the harm-score verdicts")
    timings: dict[str, float] = Field(default_factory=dict, description="seconds per stage (this run)")
    notes: list[str] = Field(default_factory=list)
    run_dir: str = ""
    extra: dict[str, Any] = Field(default_factory=dict, description="e.g. demo measurements")

    def defended(self) -> list[ModelEntry]:
        return [m for m in self.models if m.role == "defended"]

    def base(self) -> ModelEntry:
        return next(m for m in self.models if m.role == "base")
