"""Where a model comes from: an architecture name (fresh weights), a saved folder, or a Hub id.

The three are told apart the same way for training and evaluation, and a failure says which
of them was tried and why it failed (an unknown name, a folder without config.json, a Hub id
that is neither cached nor reachable).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hub_models
from hub_models import FerPreTrainedModel
from hub_models.variants import VARIANTS


class ModelSourceError(ValueError):
    """The model named on the command line cannot be created or loaded."""


@dataclass
class LoadedModel:
    model: FerPreTrainedModel
    source: str
    kind: str  # "architecture" | "folder" | "hub"
    initialisation: str
    new_head: bool = False


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


def label_maps(labels: Sequence[str]) -> dict[str, Any]:
    return {"id2label": dict(enumerate(labels)), "label2id": {name: i for i, name in enumerate(labels)}}


def model_labels(model: FerPreTrainedModel) -> tuple[str, ...]:
    id2label = model.config.id2label
    return tuple(id2label[i] for i in range(len(id2label)))


def _is_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def load_model(spec: str, overrides: dict[str, Any] | None = None, labels: Sequence[str] | None = None) -> LoadedModel:
    """Create or load the model named by `spec` (architecture, named variant, folder or Hub id).
    With `labels`, a loaded model whose label set differs gets a new, freshly initialised
    classifier for those labels (fine-tuning)."""
    from transformers import AutoModelForImageClassification

    overrides = dict(overrides or {})
    if spec in VARIANTS and spec not in hub_models.ARCHITECTURES:  # an architecture plus preset overrides
        architecture, preset = VARIANTS[spec]
        loaded = load_model(architecture, {**preset, **overrides}, labels)
        loaded.source = spec
        return loaded
    if spec in hub_models.ARCHITECTURES:
        if labels is not None:
            overrides.update(label_maps(labels))
        try:
            model = hub_models.create_model(spec, **overrides)
        except (TypeError, ValueError) as error:
            settings = overrides or "defaults"
            raise ModelSourceError(f"cannot build architecture {spec!r} with {settings}: {error}") from error
        return LoadedModel(model, spec, "architecture", "from scratch (random initialisation)")

    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"model folder {path} has no config.json (is it a saved checkpoint?)")
        kind = "folder"
    elif _is_hub_id(spec):
        kind = "hub"
    else:
        known = ", ".join(sorted(hub_models.ARCHITECTURES)) or "none registered"
        raise ModelSourceError(f"unknown model {spec!r}: not an architecture ({known}), not a variant of "
                               "hub_models.variants, not an existing folder, and not a Hub id of the form org/name")
    loaded = _from_pretrained(AutoModelForImageClassification, spec, kind, overrides)
    new_head = labels is not None and model_labels(loaded) != tuple(labels)
    if new_head:
        loaded = _from_pretrained(AutoModelForImageClassification, spec, kind,
                                  {**overrides, **label_maps(labels), "num_labels": len(labels),
                                   "ignore_mismatched_sizes": True})
    origin = f"from the weights of {spec}" + (" (new classifier head)" if new_head else "")
    if kind == "folder":
        origin += earlier_training(path)
    return LoadedModel(loaded, spec, kind, origin, new_head)


def earlier_training(folder: Path) -> str:
    """How a folder written by finetune.py was itself trained, so that a model card of a run
    continued from it keeps the whole chain (the folder path alone means nothing to readers)."""
    summary_path = folder / "run_summary.json"
    if not summary_path.is_file():
        return ""
    summary = json.loads(summary_path.read_text())
    before = summary.get("initialisation") or (
        "from scratch (random initialisation)" if summary.get("model") in hub_models.ARCHITECTURES
        else f"from {summary.get('model')}")
    return (f"; that checkpoint was trained {before} with `{summary.get('command')}` "
            f"({summary.get('global_step')} steps, {summary.get('wall_time_s', 0) / 60:.0f} min, best epoch "
            f"{summary.get('best_epoch')})")


def _from_pretrained(auto_class: Any, spec: str, kind: str, kwargs: dict[str, Any]) -> FerPreTrainedModel:
    try:
        return auto_class.from_pretrained(spec, trust_remote_code=True, **kwargs)
    except OSError as error:
        if kind == "hub":
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
            why = ("the Hub is offline (HF_HUB_OFFLINE=1) and it is not in the local Hugging Face cache" if offline
                   else "it could not be downloaded from the Hub and is not in the local cache")
            raise ModelSourceError(f"cannot load Hub model {spec!r}: {why}") from error
        raise ModelSourceError(f"cannot load model folder {spec}: {error}") from error
    except (TypeError, ValueError) as error:
        raise ModelSourceError(f"cannot load model {spec!r}: {error}") from error
