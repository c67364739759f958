"""alignkit.defences: immunization defences against harmful fine-tuning, one module per defence (TRL style).

    from alignkit.defences import RepNoiseConfig, defend
    path = defend(RepNoiseConfig(model="smollm2-135m-instruct", max_steps=40))   # plain HF folder

Registered in :data:`DEFENCES` (``alignkit defend --defence NAME``): ``repnoise`` (repnoise.py),
``adversarial-loss``, ``gradient-ascent``, ``safety-sft``, ``security-vectors``, ``vaccine``, ``tar`` (tar.py). A new defence is
one new module with a :class:`DefenceConfig` subclass and a registered :class:`Defence` subclass, listed in
``_MODULES`` below. See docs/defences.md.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Optional

from alignkit.defences.base import DEFENCES, Defence, DefenceConfig, load_pairs

_MODULES = ("repnoise", "adversarial_loss", "gradient_ascent", "safety_sft", "security_vectors", "vaccine", "tar")
for _m in _MODULES:
    try:
        importlib.import_module(f"alignkit.defences.{_m}")
    except ModuleNotFoundError as _exc:  # a defence module not written yet
        if _exc.name != f"alignkit.defences.{_m}":
            raise

from alignkit.defences.repnoise import RepNoiseConfig  # noqa: E402


def config_for(config: DefenceConfig) -> DefenceConfig:
    """The defence's own config class for ``config`` (a plain :class:`DefenceConfig` names its defence)."""
    cls = DEFENCES.get(config.defence).config_class
    if type(config) is cls:
        return config
    values = config.model_dump(exclude_unset=True)
    values["defence"] = config.defence
    from pydantic import ValidationError

    from alignkit.config import validation_message
    from alignkit.errors import AlignkitError

    try:
        return cls(**values)
    except ValidationError as exc:
        raise AlignkitError(validation_message(exc)) from None


def defend(config: DefenceConfig, records: Optional[list] = None) -> Path:
    """Train ``config.defence`` on ``config.model`` and save the defended model; returns its folder (a plain HF
    folder with a model card; for security-vectors the base model plus ``security_vector/``)."""
    from alignkit.defences.base import set_env_defaults
    from alignkit.denormals import flush_denormals

    set_env_defaults()
    config = config_for(config)
    with flush_denormals():  # late in ascent-style training, softmax probabilities turn denormal (slow on CPUs)
        return DEFENCES.get(config.defence)().run(config, records=records)


def __getattr__(name: str):
    for mod, names in (("adversarial_loss", ("AdversarialLossConfig",)), ("gradient_ascent", ("GradientAscentConfig",)),
                       ("safety_sft", ("SafetySFTConfig",)), ("vaccine", ("VaccineConfig",)),
                       ("tar", ("TARConfig",)),
                       ("security_vectors", ("SecurityVectorsConfig", "attach_security_vector",
                                             "detach_security_vector", "security_vector_path"))):
        if name in names:
            return getattr(importlib.import_module(f"alignkit.defences.{mod}"), name)
    raise AttributeError(f"module 'alignkit.defences' has no attribute {name!r}")


__all__ = ["DEFENCES", "Defence", "DefenceConfig", "RepNoiseConfig", "defend", "config_for", "load_pairs"]
