"""What the attack and the defence search share: the options every search has, presets, the capability
measure, the trial log and the results / report files."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, model_validator

from alignkit.errors import AlignkitError


def reference_attack(cfg: Any, judge_name: str, box: dict[str, Any], log: Any, what: str) -> Any:
    """Run one reference attack into ``cfg.output_dir`` (a finished folder is read back, not re-run), with the
    judge loaded once per search and shared through ``box``; the folder's Trainer checkpoints are dropped."""
    from alignkit.attacks import attack
    from alignkit.harmfulness import get_judge

    folder = Path(cfg.output_dir)
    if not (folder / "results.json").exists():
        log(f"reference: {what}")
        if "judge" not in box:
            box["judge"] = get_judge(judge_name)
    res = attack(cfg, judge=box.get("judge"))
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    return res


class SearchOptions(BaseModel):
    """Options of every search (``alignkit search attack|defence``)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field("smollm2-135m-instruct", description="model to search on: alias, local folder or hub id")
    output_dir: Optional[str] = Field(None, description="search folder (trial run folders, study.db, results.json, "
                                      "report.html); a second worker is the same command with the same "
                                      "--output-dir and --storage; re-running continues the study")
    n_trials: int = Field(20, ge=1, description="finished trials the study should hold (over all workers)")
    storage: Optional[str] = Field(None, description="Optuna storage shared by the workers: sqlite:///FILE, "
                                   "postgresql://..., mysql://... or journal:FILE; default sqlite:///"
                                   "<output-dir>/study.db")
    space: Optional[str] = Field(None, description="search space YAML file; default: the shipped space "
                                 "(docs/search.md)")
    preset: Optional[Literal["quick"]] = Field(None, description="quick: a small space and budget meant to finish "
                                               "in about 30 min on a 2-core CPU for a 135M model; options given "
                                               "explicitly override it")
    epsilon: float = Field(0.25, ge=0, description="capability bound: allowed relative rise of held-out perplexity "
                           "(0.25 = +25%) before a model no longer counts (attack search: the attacked model; "
                           "defence search: the defended model, before any attack)")
    capability_data: Literal["natural-text", "harmless-instructions"] = Field(
        "natural-text", description="capability measure: perplexity of held-out natural-text passages (prose no "
        "alignkit stage trains on) or of held-out harmless-instructions responses (templated; a defence whose "
        "retain data is that dataset looks better on it than it is)")
    capability_texts: int = Field(50, ge=1, description="held-out texts (of --capability-data) for perplexity")
    judge: str = Field("minilm", description="harmfulness judge (alignkit judge list)")
    allow_judge_import: bool = Field(False, description="allow --judge package.module:Class, which imports and "
                                     "runs that module")
    eval_prompts: int = Field(40, ge=1, description="harmful evaluation prompts per harmfulness measurement")
    max_new_tokens: int = Field(50, ge=1, description="greedy new tokens per evaluation completion")
    eval_every: int = Field(1000, ge=1, description="attack harmfulness measured every N steps (and at 0 and "
                            "the end; a large value = only before and after)")
    data_seed: int = Field(0, description="seed of data splits and evaluation prompt samples")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field("float32", description="weights dtype")
    sampler_seed: int = Field(0, description="seed of the Optuna sampler")
    checkpoints: bool = Field(False, description="attacks save Trainer checkpoints at each evaluation, so a "
                              "re-queued trial resumes mid-attack (about 1.5 GB each for a 135M model; deleted when "
                              "the trial ends)")
    keep_models: bool = Field(False, description="keep every trial's attacked model (model/); default: deleted "
                              "once its capability is measured")
    heartbeat_interval: int = Field(30, ge=1, description="seconds between a running trial's heartbeats (RDB "
                                    "storages)")
    grace_period: int = Field(120, ge=2, description="seconds without heartbeat after which a trial counts as "
                              "dead: it is marked FAIL and re-queued with the same parameters")
    max_retry: int = Field(3, ge=0, description="times a dead trial is re-queued")
    reset_running: bool = Field(False, description="mark every RUNNING trial FAIL and queue it again (for "
                                "storages without heartbeat, when no other worker is alive)")
    threads: Optional[int] = Field(None, ge=1, description="torch threads of this worker; default: this machine's "
                                   "cores divided by the alignkit workers running on it (found through the search "
                                   "folder), at least 1")

    @model_validator(mode="after")
    def _grace_exceeds_heartbeat(self):
        if self.grace_period < 2 * self.heartbeat_interval:
            raise ValueError(f"--grace-period {self.grace_period} must be at least twice --heartbeat-interval "
                             f"{self.heartbeat_interval} ({2 * self.heartbeat_interval}): a live worker beats only "
                             "every heartbeat interval, so a shorter grace period would declare its running trial "
                             "dead and run it twice")
        return self


def apply_preset(cfg: BaseModel, presets: dict[str, dict[str, Any]]) -> BaseModel:
    """``cfg`` with the preset's values for every field the user did not set explicitly."""
    name = getattr(cfg, "preset", None)
    if not name:
        return cfg
    values = {k: v for k, v in presets[name].items() if k not in cfg.model_fields_set}
    return cfg.model_copy(update=values)


def check_judge(spec: str, allowed: bool) -> None:
    """``--judge package.module:Class`` imports and runs code: refused unless allowed (the attack's own check)."""
    from alignkit.attacks.base import check_judge_import

    check_judge_import(spec, allowed)
    from alignkit.judges.base import check_judge_option

    check_judge_option(spec)  # before a study or a trial exists


def default_output_dir(kind: str, model: str, extra: str = "") -> Path:
    from alignkit.paths import default_runs_dir

    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(str(model)).name or str(model)).strip("-")
    return default_runs_dir() / f"search-{kind}{('-' + extra) if extra else ''}-{slug}"


from alignkit.io import redact, url_secrets  # noqa: E402,F401 (credentials masked in every message and file)


def public_config(cfg: BaseModel) -> dict[str, Any]:
    """The config as stored in results (storage password masked)."""
    d = cfg.model_dump(mode="json")
    d["storage"] = redact(d.get("storage"))
    return d


def check_datasets(values: list[Any]) -> None:
    """The datasets a search space names, checked before the study starts (a trial would fail on them with
    Optuna's traceback): a registered attack dataset must have rows (e.g. cross-domain-harmful is generated), and
    a value that names a file (a path, or a .jsonl / .json / .csv / ... name) must exist."""
    from alignkit import data

    names = set(data.names())
    for v in values:
        if not isinstance(v, str) or not v:
            continue
        if v in names:
            if not data.load(v, split="all"):
                raise AlignkitError(f"dataset {v!r} in the search space has no rows; "
                                    + (data.info(v).notes or "build it first"))
            continue
        p = Path(v).expanduser()
        looks_like_file = v.startswith((".", "/", "~")) or p.suffix.lower() in (
            ".jsonl", ".json", ".csv", ".parquet", ".tsv", ".txt") or v.count("/") > 1
        if looks_like_file and not p.exists():
            raise AlignkitError(f"dataset file {v!r} in the search space does not exist; fix the space file or "
                                f"give one of: {', '.join(sorted(names))}")


# ------------------------------------------------------------------------------------------------ capability
def capability_rows(n: int, seed: int, data_name: str = "natural-text") -> list:
    from alignkit import data
    from alignkit.conditions.stability import natural_rows

    if data_name == "natural-text":
        return natural_rows(n, seed)
    return data.load("harmless-instructions", split="test", seed=seed)[:n]


def capability_label(data_name: str, n: int) -> str:
    return f"{data_name}:test n={n}" + (" (raw text)" if data_name == "natural-text" else "")


def measure_perplexity(model_path: str, template: str, n: int, seed: int, dtype: str = "float32",
                       data_name: str = "natural-text") -> float:
    """Token-weighted perplexity under the model of ``n`` held-out natural-text passages (raw text) or
    harmless-instructions responses (answer tokens only, in ``template``)."""
    import gc

    from alignkit.conditions.stability import measure_natural_perplexity
    from alignkit.conditions.stability import measure_perplexity as _ppl
    from alignkit.models import load_causal_lm

    model, tok = load_causal_lm(model_path, dtype=dtype)
    rows = capability_rows(n, seed, data_name)
    if data_name == "natural-text":
        est = measure_natural_perplexity(model, tok, rows, seed=seed)
    else:
        est = _ppl(model, tok, rows, template, seed=seed)
    del model
    gc.collect()
    return float(est.value)


def base_perplexity(run_dir: Path, model: str, template: str, n: int, seed: int, dtype: str,
                    data_name: str = "natural-text") -> float:
    """The unattacked / undefended model's perplexity, measured once per search folder, data and template
    (natural text is raw prose, read without a template: measured once for every template)."""
    from alignkit.io import write_json

    tkey = "raw" if data_name == "natural-text" else template
    f = run_dir / "base" / f"capability-{data_name}-{tkey}.json"
    key = {"model": model, "template": tkey, "n": n, "seed": seed, "dtype": dtype, "data": data_name}
    if f.exists():
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
            if d.get("key") == key:
                return float(d["perplexity"])
        except (ValueError, KeyError):
            pass
    ppl = measure_perplexity(model, template, n, seed, dtype, data_name)
    write_json(f, {"key": key, "perplexity": ppl})
    return ppl


def relative_rise(value: float, base: float) -> float:
    return value / base - 1.0 if base > 0 else float("inf")


# ------------------------------------------------------------------------------------------------ trial log
def log_event(run_dir: Path, **row: Any) -> None:
    """One line per trial start / end in ``trials.jsonl`` (which worker ran which trial)."""
    from alignkit.io import append_jsonl

    from alignkit.search.study import worker_id

    append_jsonl(run_dir / "trials.jsonl", {"time": round(time.time(), 3), "worker": worker_id(), **row})


def drop_heavy(folder: Path, keep_model: bool) -> None:
    """Delete a finished trial's Trainer checkpoints (and its model unless kept)."""
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    if not keep_model:
        shutil.rmtree(folder / "model", ignore_errors=True)


# ------------------------------------------------------------------------------------------------ results
class TrialRecord(BaseModel):
    number: int
    state: str
    params: dict[str, Any]
    values: Optional[list[float]] = None
    attrs: dict[str, Any] = Field(default_factory=dict, description="measurements of the trial")


def trial_records(study) -> list[TrialRecord]:
    out = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        out.append(TrialRecord(number=t.number, state=t.state.name, params=dict(t.params),
                               values=list(t.values) if t.values is not None else None,
                               attrs={k: v for k, v in t.user_attrs.items()}))
    return out


def check_output_dir(out: Path, signature: dict[str, Any], storage: str) -> None:
    """The search folder is either new, or holds a search with this signature and storage (``search.json``)."""
    from alignkit.io import check_creatable_dir

    f = out / "search.json"
    if out.exists() and not out.is_dir():
        raise AlignkitError(f"output dir {str(out)!r} is a file; pick another --output-dir")
    check_creatable_dir(out)  # a read-only disk or a file in the way: one line before the study is touched
    if f.exists():
        try:
            saved = json.loads(f.read_text(encoding="utf-8"))
        except ValueError:
            saved = {}
        old = saved.get("signature")
        if saved.get("storage") not in (None, redact(storage)):
            raise AlignkitError(f"output dir {str(out)!r} belongs to the study in storage {saved['storage']}; pass "
                                "the same --storage (every worker of a study uses the same --storage and "
                                "--output-dir)")
        if old is not None and old != json.loads(json.dumps(signature, default=str)):
            from alignkit.search.study import _diff

            raise AlignkitError(f"output dir {str(out)!r} holds a search with other settings ("
                                f"{_diff(old, signature)}); pick a new --output-dir")
    elif out.is_dir() and any(p for p in out.iterdir()
                                  if not p.name.startswith(("study.", "base", "trials", ".search"))):
        raise AlignkitError(f"output dir {str(out)!r} exists and is not an alignkit search folder; pick a new "
                            "--output-dir")


def html_page(title: str, sections: list[tuple[str, str]]) -> str:
    """A self-contained HTML page: ``sections`` = [(heading, html body)]."""
    import html as _h

    css = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
           "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;"
           "text-align:right}th{background:#eee}td.l,th.l{text-align:left}tr.hl{background:#fff3c4}")
    body = "".join(f"<h2>{_h.escape(h)}</h2>\n{b}\n" for h, b in sections)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{_h.escape(title)}</title>"
            f"<style>{css}</style></head><body><h1>{_h.escape(title)}</h1>\n{body}</body></html>\n")


def html_table(header: list[str], rows: list[list[Any]], highlight: set[int] | None = None) -> str:
    import html as _h

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return _h.escape("" if v is None else str(v))

    head = "".join(f"<th>{_h.escape(h)}</th>" for h in header)
    body = "".join(f"<tr{' class=hl' if highlight and i in highlight else ''}>"
                   + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>" for i, r in enumerate(rows))
    return f"<table><tr>{head}</tr>{body}</table>"


def png_img(fig) -> str:
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'>"


def fmt_params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(params.items()))
