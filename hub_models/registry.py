"""Architecture names → config and model classes, and their registration with the Auto* API."""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from .shared.fer_base import FerConfig, FerPreTrainedModel

ARCHITECTURES: dict[str, tuple[type[FerConfig], type[FerPreTrainedModel]]] = {}


def register(name: str, config_class: type[FerConfig], model_class: type[FerPreTrainedModel]) -> None:
    """Make `name` usable by `create_model` and the config's model_type usable by Auto*,
    locally and (through auto_map) as remote code in saved folders."""
    ARCHITECTURES[name] = (config_class, model_class)
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    AutoModel.register(config_class, model_class, exist_ok=True)
    AutoModelForImageClassification.register(config_class, model_class, exist_ok=True)
    config_class.register_for_auto_class()
    model_class.register_for_auto_class("AutoModelForImageClassification")


def _classes(architecture: str) -> tuple[type[FerConfig], type[FerPreTrainedModel]]:
    if architecture not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ValueError(f"unknown architecture {architecture!r}; known architectures: {known}")
    return ARCHITECTURES[architecture]


def create_config(architecture: str, **overrides: Any) -> FerConfig:
    """The paper-default config of `architecture`, with `overrides` applied (validated)."""
    config_class, _ = _classes(architecture)
    return config_class(**overrides)


def create_model(architecture: str, **overrides: Any) -> FerPreTrainedModel:
    """A freshly initialised `…ForImageClassification` of `architecture`."""
    _, model_class = _classes(architecture)
    return model_class(create_config(architecture, **overrides))
