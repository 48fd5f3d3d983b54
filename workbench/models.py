"""The engine's door to the one model resolver (`hub_models.loading`): the same specs as training
and the app, with failures raised as the workbench's own `ModelLoadError` so callers catch one
family of errors (`WorkbenchError`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hub_models import loading
from hub_models.loading import LoadedModel, check_protocol

from .errors import ModelLoadError

__all__ = ["LoadedModel", "check_protocol", "load_model"]


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
