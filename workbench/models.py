"""The engine's door to the one model resolver (`hub_models.loading`): the same specs as training
and the app, with failures raised as the workbench's own `ModelLoadError` so callers catch one
family of errors (`WorkbenchError`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hub_models import ARCHITECTURES, CKPLUS_LABELS, FER2013_LABELS, FERPLUS_LABELS, loading, zoo
from hub_models.loading import LoadedModel, check_protocol

from .errors import ModelLoadError

__all__ = ["LABEL_SETS", "LoadedModel", "architectures", "check_protocol", "default_models", "load_model",
           "trained_models"]

# The class lists of the datasets the zoo is trained on (a model's own list is `LoadedModel.labels`).
LABEL_SETS = {"fer2013": FER2013_LABELS, "ferplus": FERPLUS_LABELS, "ckplus": CKPLUS_LABELS}


def load_model(spec: Any, *, name: str | None = None, revision: str | None = None,
               folders: Sequence[str | Path] | None = None, **overrides: Any) -> LoadedModel:
    """Load `spec`: a `LoadedModel` (returned as is), a model object, a named variant or
    architecture (`overrides` go to its config; untrained), a zoo id, a local folder (only under
    `folders` when given) or a Hub id. No checkpoint code runs unless the operator allowed it
    (``FER_TRUST_REMOTE_CODE``)."""
    try:
        return loading.load_model(spec, overrides, name=name, revision=revision, folders=folders)
    except loading.ModelLoadError as error:
        raise ModelLoadError(str(error)) from error


def trained_models() -> dict[str, str]:
    """Ids of the trained checkpoints embedded in this installation (the zoo), each with a note:
    "ablation of <id>: <how it differs>" for the entries trained as another's ablation, else ""."""
    return {model_id: zoo.ablation_note(model_id) for model_id in zoo.model_ids()}


def architectures() -> list[str]:
    """Names that load a freshly initialised (untrained) model of each architecture."""
    return list(ARCHITECTURES)


def default_models(limit: int = 3) -> list[str]:
    """What front ends open on: the zoo's default trained models or, in an installation without
    any, freshly initialised architectures, which every front end marks as untrained."""
    return zoo.default_ids(limit=limit) or list(zoo.UNTRAINED_FALLBACK[:limit])
