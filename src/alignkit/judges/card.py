"""Judge cards: the validity measured for a shipped judge version, carried beside its weights.

A card is a JSON file next to the version's weights (``weights/minilm_judge_v5.card.json`` for ``minilm@5``),
checked by :class:`JudgeCard` when it is read. It holds only numbers measured in earlier sessions (each check
with the command and date that produced it); a check never measured has ``accuracy = auroc = value = None`` and
reads "not measured". Reports never write numbers of their own: :func:`validity_lines` turns the card into the
short "what this judge can tell you" block that ``evaluate``, ``attack`` and ``search`` reports print, and a judge
without a card (``refusal-keywords``, ``hf-classifier``, ``llm-rubric``, ``judgezoo:...``, a custom judge) gets an
honest "not validated here" block.

    from alignkit.judges.card import load_card, validity_lines
    load_card("minilm@5").phi_margin.value      # 0.086
    validity_lines("minilm@5")                 # ["refusal detection: ...", "harmful content: ...", ...]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from alignkit.errors import AlignkitError

WEIGHTS_DIR = Path(__file__).parent / "weights"
CARD_SUFFIX = ".card.json"
NOT_MEASURED = "not measured"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Check(_Strict):
    """One measurement of the judge against labels it was not trained on."""

    name: str = Field(description="short name of the check (e.g. 'harm -> refusal scorer')")
    kind: Literal["refusal", "harm_ood", "harm_real", "probe", "false_positives", "human_ceiling"] = Field(
        description="what the check measures: refusal detection, harm on held-out pyrit categories, harm on "
                    "hand-labelled real generations, the hand-written probe set, false positives, or the human "
                    "ceiling (no judge)")
    what: str = Field(description="the test rows and the labels, in words")
    n: Optional[int] = Field(None, ge=0, description="test rows")
    accuracy: Optional[float] = Field(None, ge=0, le=1, description="accuracy at score 0.5; None: not measured")
    auroc: Optional[float] = Field(None, ge=0, le=1, description="AUROC; None: not measured")
    value: Optional[str] = Field(None, description="a result that is not accuracy / AUROC (e.g. probe counts)")
    reading: Optional[str] = Field(None, description="what the number means for a user, as measured "
                                                     "(e.g. 'near chance')")
    command: str = Field(description="the command that measured it")
    date: str = Field(description="when (YYYY-MM-DD)")
    source: str = Field("docs/judges.md", description="where the full table is")


class PhiMargin(_Strict):
    value: Optional[float] = Field(None, ge=0, le=1, description="95th percentile of |mean A - mean B| over two "
                                                                 "sets of n_prompts unseen refusals; None: not measured")
    n_refusals: Optional[int] = Field(None, ge=0, description="unseen human-labelled refusals it was measured on")
    n_prompts: int = Field(40, ge=1, description="size of each bootstrap set")
    command: str = Field(description="the command that measured it")
    date: str = Field(description="when (YYYY-MM-DD)")


class Speed(_Strict):
    completions_per_s: Optional[float] = Field(None, gt=0, description="completions per second; None: not measured")
    threads: int = Field(1, ge=1, description="torch threads")
    machine: str = Field(description="the CPU and its load during the run")
    command: str = Field(description="the command that measured it")
    date: str = Field(description="when (YYYY-MM-DD)")


class JudgeCard(_Strict):
    """The measured validity of one judge version (``judge``: ``name@version``)."""

    judge: str = Field(description="name@version this card describes")
    status: Literal["default", "kept"] = Field(description="'default', or 'kept' (still shipped, not the default)")
    measures: str = Field(description="what the judge's score is, in one line")
    checks: list[Check] = Field(description="every measured check (and the ones never measured, with no numbers)")
    phi_margin: PhiMargin
    speed: Speed
    use_for: list[str] = Field(description="claims this judge supports, as measured")
    do_not_use_for: list[str] = Field(description="claims it does not support, and what to use instead")


def card_path(judge_label: str) -> Optional[Path]:
    """The card file of a shipped ``minilm`` version (``minilm@5``, ``minilm@5+bf16``), else None (no card)."""
    name, _, version = str(judge_label).partition("@")
    if name != "minilm":
        return None
    from alignkit.judges.minilm import DEFAULT_VERSION, HEADS_JUDGES

    base = (version or DEFAULT_VERSION).split("+")
    if base[0] not in HEADS_JUDGES or any(t != "bf16" for t in base[1:]):
        return None  # retired, unknown, or own weights (minilm@5+<sha>): not the shipped judge's card
    import importlib

    shipped = importlib.import_module(HEADS_JUDGES[base[0]][0]).SHIPPED_WEIGHTS
    return shipped.with_name(shipped.stem + CARD_SUFFIX)


def read_card(path: Path, label: str = "judge") -> JudgeCard:
    """A card file as a :class:`JudgeCard`; a missing or malformed one raises :class:`AlignkitError` naming it."""
    from alignkit.judges.base import validation_message

    path = Path(path)
    if not path.is_file():
        raise AlignkitError(f"{label} card {str(path)!r} is missing; the shipped judge needs its card "
                            "(reinstall alignkit, or restore the file from git)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AlignkitError(f"{label} card {str(path)!r} is not valid JSON ({str(exc).splitlines()[0][:160]}); "
                            "restore the file from git") from None
    try:
        return JudgeCard.model_validate(raw)
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError
        raise AlignkitError(f"{label} card {str(path)!r} is malformed ({validation_message(exc, JudgeCard)}); "
                            "restore the file from git") from None


def load_card(judge_label: str) -> Optional[JudgeCard]:
    """The card of a shipped judge version, or None for a judge that has none. A shipped version whose card is
    missing or malformed raises :class:`AlignkitError` naming the file."""
    path = card_path(judge_label)
    if path is None:
        return None
    want = "minilm@" + (str(judge_label).partition("@")[2] or "").split("+")[0]
    from alignkit.judges.minilm import DEFAULT_VERSION

    want = want if want != "minilm@" else f"minilm@{DEFAULT_VERSION}"
    card = read_card(path, want)
    if card.judge != want:
        raise AlignkitError(f"{want} card {str(path)!r} describes {card.judge!r}; restore the file from git")
    return card


def _pair(c: Check) -> str:
    if c.accuracy is None and c.auroc is None:
        return c.value or NOT_MEASURED
    f = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    return f"{f(c.accuracy)} / {f(c.auroc)}"


def _span(checks: list[Check]) -> str:
    aucs = [c.auroc for c in checks if c.auroc is not None]
    if not aucs:
        return NOT_MEASURED
    lo, hi = min(aucs), max(aucs)
    return f"AUROC {lo:.2f}" if lo == hi else f"AUROC {lo:.2f}-{hi:.2f}"


def validity_lines(judge_label: str) -> list[str]:
    """The "what this judge can tell you" block for a report, drawn from the judge's card (no number is written
    here). ``judge_label``: ``name@version`` as recorded with the results. A judge without a card gets the
    "not validated here" block; a shipped judge whose card is missing or malformed raises :class:`AlignkitError`."""
    label = str(judge_label or "").strip() or "the judge"
    card = load_card(label)
    if card is None:
        return [f"{label}: not validated here (no judge card); its numbers have no measured accuracy in alignkit.",
                "For refusal claims compare with refusal-keywords; for harmful-content claims use a strong judge "
                "(judgezoo:name=strong_reject, harmbench or llama_guard_3 on a GPU) and validate it with "
                "'alignkit judge eval --split test --judge SPEC'."]
    by = {k: [c for c in card.checks if c.kind == k] for k in ("refusal", "harm_ood", "harm_real", "probe",
                                                               "human_ceiling")}
    out = [f"{card.judge} ({card.status}): {card.measures}"]
    for c in by["refusal"]:
        out.append(f"refusal detection: {_pair(c)} (accuracy / AUROC) on {c.what}, n={c.n}"
                   + (f": {c.reading}" if c.reading else "") + f" [{c.date}]")
    real = by["harm_real"]
    if real:
        readings = sorted({c.reading for c in real if c.reading})
        out.append(f"harmful content on hand-labelled SmolLM2 generations: {_span(real)} over {len(real)} sets "
                   f"({', '.join(f'{c.name} {_pair(c)}' for c in real)})"
                   + (f": {'; '.join(readings)}" if readings else ""))
    ood = [c for c in by["harm_ood"] if c.name.startswith("mean")] or by["harm_ood"]
    for c in ood:
        out.append(f"harm on held-out pyrit data ({c.name}): {_pair(c)} (accuracy / AUROC)"
                   + (f"; a human annotator vs the others: {_pair(by['human_ceiling'][0])}" if by["human_ceiling"]
                      else ""))
    p = card.phi_margin
    out.append("phi margin (judge noise on unseen refusals): "
               + (NOT_MEASURED if p.value is None else f"{p.value:.3f} (n={p.n_refusals}, sets of {p.n_prompts})"))
    out += [f"use it for: {u}" for u in card.use_for] + [f"not for: {u}" for u in card.do_not_use_for]
    out.append(f"source: judge card {card.judge} (docs/judges.md)")
    return out


def report_lines(judge_label: str) -> list[str]:
    """:func:`validity_lines` for a report that must render whatever its judge: a card that cannot be read becomes
    a line saying so (naming the file) instead of an error."""
    try:
        return validity_lines(judge_label)
    except AlignkitError as exc:
        return [f"{judge_label}: its judge card could not be read ({exc}); its validity is unknown here."]
