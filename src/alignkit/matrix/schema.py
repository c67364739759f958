"""The schema of a matrix's ``results.json`` (:class:`MatrixResult`) and of its per-cell records."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from alignkit.attacks.config import CurvePoint
from alignkit.provenance import Provenance
from alignkit.search.budget_curve import BudgetCurves

SCHEMA_VERSION = "alignkit.matrix/1"


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompliancePt(_M):
    step: int
    compliance: float
    n: int = 0


class Cell(_M):
    """One (row, attack, seed): the attack's curve and its refusal rates, or why it failed."""

    defence: str = Field(description="row: 'undefended' or the defence's name")
    attack: str
    seed: int
    status: Literal["done", "failed"]
    error: Optional[str] = Field(None, description="why the cell failed (the defence's or the attack's error)")
    run_dir: Optional[str] = None
    model_dir: Optional[str] = Field(None, description="the attacked model (the defended model's folder)")
    budget_label: Optional[str] = None
    curve: list[CurvePoint] = Field(default_factory=list)
    compliance: Optional[list[CompliancePt]] = Field(None, description="1 - the judge's refusal rate per evaluated "
                                                     "budget (None: the judge has no refusal head)")
    initial_harmfulness: Optional[float] = None
    final_harmfulness: Optional[float] = None
    initial_refusal_rate: Optional[float] = None
    final_refusal_rate: Optional[float] = None
    notes: list[str] = Field(default_factory=list)
    runtime_s: Optional[float] = None


class Spread(_M):
    """Mean and spread over the seeds that finished."""

    mean: float
    sd: float = Field(description="sample standard deviation over seeds (0 with one seed)")
    lo: float
    hi: float
    n: int


class CellSummary(_M):
    """One (row, attack) over the seeds: harmfulness after attack, refusal rate, the verdicts."""

    defence: str
    attack: str
    budget_label: Optional[str] = None
    seeds_done: list[int] = Field(default_factory=list)
    seeds_failed: list[int] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    harmfulness: Optional[Spread] = Field(None, description="final harmfulness after the attack (None: no seed "
                                          "finished)")
    initial_harmfulness: Optional[Spread] = None
    refusal_rate: Optional[Spread] = Field(None, description="final refusal rate (None: no refusal head or no seed)")
    verdict: str = Field(description="pass | weak | fail (the resistance rule, worst over seeds) | n/a | failed")
    detail: str = ""
    compliance_verdict: Optional[str] = None
    compliance_detail: str = ""


class DefenceRow(_M):
    """A row of the matrix: the defended model per seed and the defence's capability cost."""

    name: str
    model_dirs: dict[str, Optional[str]] = Field(default_factory=dict, description="seed -> defended model folder")
    errors: dict[str, str] = Field(default_factory=dict, description="seed -> why the defence failed")
    perplexity: dict[str, float] = Field(default_factory=dict, description="seed -> held-out perplexity")
    capability_rise: Optional[Spread] = Field(None, description="relative perplexity rise over the undefended "
                                              "model (0.10 = +10%), over seeds")
    config: dict[str, Any] = Field(default_factory=dict)


class Threshold(_M):
    attack: str
    phi: Optional[float]
    source: str
    compliance_phi: Optional[float] = None
    compliance_source: str = ""


class MatrixResult(_M):
    schema_version: str = SCHEMA_VERSION
    config: dict[str, Any]
    model: str
    judge: str
    seeds: list[int]
    rows: list[str] = Field(description="'undefended' then the defences, in order")
    attacks: list[str]
    budget_labels: dict[str, str] = Field(default_factory=dict)
    thresholds: list[Threshold]
    base_perplexity: Optional[float] = None
    defences: list[DefenceRow]
    cells: list[Cell]
    summaries: list[CellSummary]
    budget: Optional[BudgetCurves] = Field(None, description="attack budget curves (--search-trials)")
    search_dirs: dict[str, str] = Field(default_factory=dict)
    judge_validity: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    provenance: Provenance
    runtime_s: float
    run_dir: str
