"""Training's door to the one model resolver (`hub_models.loading`): a variant or architecture name
(fresh weights, the recipe's and the user's config overrides), a zoo id, a saved folder or a Hub id.
The same rules as everywhere else: no checkpoint code runs, safetensors only, and an unfinished
training folder is refused with a note on how to finish it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hub_models.loading import LoadedModel, load_model, model_labels
from hub_models.loading import ModelLoadError as ModelSourceError

__all__ = ["LoadedModel", "ModelSourceError", "load_model", "model_labels", "parse_overrides"]


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``key=value`` strings → config overrides; values are JSON when they parse as JSON
    (numbers, booleans, lists), else plain strings."""
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ModelSourceError(f"--config expects key=value, got {pair!r}")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    return overrides
