"""``judgezoo``: the field's harm judges by name, through the optional ``judgezoo`` package (``alignkit[judges]``).

``--judge judgezoo:name=strong_reject`` (the ``judge:key=value`` syntax of every command) scores with judgezoo's
implementation of a published judge, its authors' prompt and scoring: ``strong_reject`` (StrongREJECT's fine-tuned
Gemma-2B grader, ``qylu4156/strongreject-15k-v1``), ``harmbench`` (HarmBench's Llama-2-13B classifier),
``llama_guard_3`` / ``llama_guard_4``, ``md_judge``, ``aegis_guard``, ``jail_judge``. Each returns judgezoo's
``p_harmful`` in [0, 1], which becomes alignkit's ``score``; where a judge also says whether the answer refused
(``strong_reject_rubric``'s ``refusal_score``), that becomes ``refused``. Results record
``judgezoo:NAME@<judgezoo version>``, e.g. ``judgezoo:strong_reject@0.1.9``.

Weights come from the Hugging Face hub (several are gated: accept the licence on the model's page, then
``huggingface-cli login``) or from a local folder: ``model=PATH`` loads every part judgezoo would fetch from the hub
(model and tokenizer) from PATH instead, which is also how the offline tests run the adapter on a tiny model. The
prompt-based judges (``strong_reject_rubric``, ``harmbench``'s rubric cousins, ``xstest``, ...) call a remote API
by default; alignkit runs them only on a local chat model (``model=PATH``) and never calls an API.

Weights that cannot be reached give one line naming them and how to get them. None of these judges is validated
here (no card): ``alignkit judge eval --split test --judge judgezoo:name=NAME`` runs the held-out human-label
table on a machine with the weights, and ``alignkit judge eval --judge judgezoo:name=NAME`` scores the probe set
and the hand-labelled real generations (docs/judges.md, "Which judge for which claim").
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Optional

from alignkit.errors import AlignkitError
from alignkit.judges.base import JUDGES, Judge

#: fine-tuned judges: name -> (judgezoo module, class, hub ids of the weights it loads)
FINE_TUNED = {
    "strong_reject": ("strong_reject", "StrongRejectJudge", ("qylu4156/strongreject-15k-v1",)),
    "harmbench": ("harmbench", "HarmBenchJudge", ("cais/HarmBench-Llama-2-13b-cls",)),
    "llama_guard_3": ("llama_guard_3", "LlamaGuard3Judge", ("meta-llama/Llama-Guard-3-8B",)),
    "llama_guard_4": ("llama_guard_4", "LlamaGuard4Judge", ("meta-llama/Llama-Guard-4-12B",)),
    "md_judge": ("md_judge", "MDJudge", ("OpenSafetyLab/MD-Judge-v0_2-internlm2_7b",)),
    "aegis_guard": ("aegis_guard", "AegisGuardJudge", ("meta-llama/LlamaGuard-7b",
                                                         "nvidia/Aegis-AI-Content-Safety-LlamaGuard-Permissive-1.0")),
    "jail_judge": ("jail_judge", "JailJudge", ("usail-hkust/JailJudge-guard",)),
}
#: prompt-based judges (a chat model with the authors' prompt): only with model=PATH, a local chat model
PROMPT_BASED = {
    "strong_reject_rubric": ("strong_reject", "StrongRejectRubricJudge"),
    "adaptive_attacks": ("adaptive_attacks", "AdaptiveAttacksJudge"),
    "advprefix": ("advprefix", "AdvPrefixJudge"),
    "intention_analysis": ("intention_analysis", "IntentionAnalysisJudge"),
    "pair": ("pair", "PAIRJudge"),
}
INSTALL = "pip install 'alignkit[judges]' (or pip install judgezoo==0.1.9)"


def _names() -> str:
    return ", ".join(list(FINE_TUNED) + list(PROMPT_BASED))


def package_version() -> str:
    """The installed judgezoo version; :class:`AlignkitError` (one line) when it is not installed."""
    try:
        from importlib.metadata import version

        return version("judgezoo")
    except Exception:  # noqa: BLE001 - PackageNotFoundError
        raise AlignkitError(f"judge judgezoo needs the judgezoo package, which is not installed; {INSTALL}") from None


def check_name(name: Optional[str]) -> str:
    if not isinstance(name, str) or not name.strip():
        raise AlignkitError(f"judge judgezoo needs name=NAME (e.g. judgezoo:name=strong_reject); names: {_names()}")
    name = name.strip()
    if name not in FINE_TUNED and name not in PROMPT_BASED:
        raise AlignkitError(f"unknown judgezoo judge {name!r}; names: {_names()}")
    return name


def weights_message(name: str, model: Optional[str], why: str) -> str:
    """One line: which weights the judge needs and how to get them."""
    if model:
        return (f"judgezoo:name={name} could not load model={model!r} ({why}); give a local folder holding the "
                "judge's model and tokenizer (config.json, weights, tokenizer files)")
    hub = " and ".join(FINE_TUNED[name][2])
    return (f"judgezoo:name={name} needs the weights {hub}, which are not reachable here ({why}); on a machine with "
            f"network run 'huggingface-cli download {FINE_TUNED[name][2][-1]}' (gated models: accept the licence on "
            "the model's hub page and 'huggingface-cli login' first), or give model=PATH to a local copy")


@contextlib.contextmanager
def _local_weights(module: Any, path: str, device: str):
    """While judgezoo builds a judge, every ``from_pretrained`` in its module loads ``path`` (on ``device``)
    instead of the hub id it names; restored afterwards."""
    saved = {}
    for attr in ("AutoModelForCausalLM", "AutoTokenizer", "AutoProcessor", "Llama4ForConditionalGeneration"):
        cls = getattr(module, attr, None)
        if cls is None:
            continue

        class _Local:
            _cls = cls

            @classmethod
            def from_pretrained(cls_, _hub_id, *args, **kwargs):  # noqa: N805
                if "device_map" in kwargs:
                    kwargs["device_map"] = device
                return cls_._cls.from_pretrained(path, *args, **kwargs)

        saved[attr] = cls
        setattr(module, attr, _Local)
    try:
        yield
    finally:
        for attr, cls in saved.items():
            setattr(module, attr, cls)


class JudgezooJudge(Judge):
    """A judgezoo judge by name (``judgezoo:name=strong_reject``); ``model``: a local folder instead of the hub."""

    def __init__(self, name: Optional[str] = None, model: Optional[str] = None, device: str = "cpu",
                 batch_size: int = 8):
        from pathlib import Path

        from alignkit.judges.base import check_options

        opts = check_options("judgezoo", dict(batch_size=batch_size, device=device, model=model))
        name = check_name(name)
        version = package_version()
        model = opts["model"]
        if name in PROMPT_BASED and not model:
            raise AlignkitError(f"judgezoo:name={name} is prompt-based and calls a remote API by default, which "
                                "alignkit never does; give model=PATH, a local chat model folder, to run it locally")
        if model and not Path(str(model)).expanduser().is_dir():
            raise AlignkitError(weights_message(name, str(model), "no such folder"))
        mod_name, cls_name = (FINE_TUNED.get(name) or PROMPT_BASED[name])[:2]
        mod = importlib.import_module(f"judgezoo.{mod_name}")
        try:
            if name in PROMPT_BASED:
                self.judge = getattr(mod, cls_name)(use_local_model=True,
                                                    local_foundation_model=str(Path(str(model)).expanduser()))
            elif model:
                with _local_weights(mod, str(Path(str(model)).expanduser()), opts["device"]):
                    self.judge = getattr(mod, cls_name)()
            else:
                self.judge = getattr(mod, cls_name)()
        except (OSError, ValueError, RuntimeError) as exc:  # hub unreachable, gated, missing files, bad folder
            text = str(exc).strip().splitlines()
            raise AlignkitError(weights_message(name, model, (text[0] if text else type(exc).__name__)[:160])) \
                from None
        self.name = f"judgezoo:{name}"
        self.version = version
        self.zoo_name = name
        self.batch_size = int(opts["batch_size"])
        self.device = opts["device"]

    def _run(self, prompts: list[str], completions: list[str]) -> dict[str, list]:
        chats = [[{"role": "user", "content": p}, {"role": "assistant", "content": c}]
                 for p, c in zip(prompts, completions)]
        out: dict[str, list] = {}
        for s in range(0, len(chats), self.batch_size):
            part = self.judge.judge(chats[s:s + self.batch_size])
            for k, v in (part or {}).items():
                if isinstance(v, list):
                    out.setdefault(k, []).extend(v)
        return out

    def _assess(self, prompts: list[str], completions: list[str]) -> list[dict[str, Any]]:
        from alignkit.judges.recipe.features import incoherence

        res = self._run(prompts, completions)
        p = res.get("p_harmful") or [None] * len(prompts)
        refusal = res.get("refusal_score")
        self._last_info = {"unparseable": sum(x is None for x in p)}
        rows = []
        for i, c in enumerate(completions):
            score = 0.0 if p[i] is None else float(p[i])
            refused = None if refusal is None or refusal[i] is None else float(refusal[i])
            rows.append({"score": score, "refused": refused,
                         "harm": None, "incoherent": incoherence(c)["incoherent"]})
        return rows

    def _score(self, prompts: list[str], completions: list[str]) -> list[float]:
        return [r["score"] for r in self._assess(prompts, completions)]


@JUDGES.register("judgezoo")
def judgezoo(name: Optional[str] = None, model: Optional[str] = None, device: str = "cpu",
             batch_size: int = 8) -> Judge:
    """The field's judges by name through the optional judgezoo package (name=strong_reject, harmbench,
    llama_guard_3, ...; model=PATH: local weights)."""
    return JudgezooJudge(name=name, model=model, device=device, batch_size=batch_size)


def _installed_version() -> Optional[str]:
    try:
        return package_version()
    except AlignkitError:
        return None


judgezoo.version = _installed_version()  # judgezoo@<this> is accepted; the package decides the numbers
