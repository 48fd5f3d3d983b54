"""Pretrained weights for a fresh model's ``backbone`` (`finetune.py --backbone-weights`).

The only ImageNet weights this project has offline come as pickles; a developer converts them once
to safetensors (`tools/convert_mobilenet_v2.py`) and training loads that file here. The load is
strict, by name and shape: a file made for another trunk fails with the names that differ instead
of training on half-loaded weights.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from safetensors import SafetensorError, safe_open
from torch import nn

from hub_models.loading import UNTRAINED, weights_hash
from training.data import DataError
from training.model_source import LoadedModel


def load_backbone_weights(loaded: LoadedModel, path: Path) -> LoadedModel:
    """``loaded`` with ImageNet (or other) weights in its backbone and a card sentence saying so."""
    if loaded.kind != "architecture":
        raise DataError(f"--backbone-weights initialises a fresh architecture; {loaded.name!r} already has "
                        "trained weights")
    backbone = getattr(loaded.model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise DataError(f"--backbone-weights: {loaded.name!r} has no `backbone` module to load them into")
    try:
        with safe_open(path, "pt") as saved:
            state = {key: saved.get_tensor(key) for key in saved.keys()}  # noqa: SIM118 (not iterable)
            source = (saved.metadata() or {}).get("source", path.name)
    except (OSError, SafetensorError) as error:
        raise DataError(f"--backbone-weights {path}: not a readable safetensors file ({error})") from error
    own = backbone.state_dict()
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    reshaped = sorted(key for key in own.keys() & state.keys() if own[key].shape != state[key].shape)
    if missing or unexpected or reshaped:
        problems = [f"{len(names)} {what} (first: {names[0]})" for names, what in
                    ((missing, "missing"), (unexpected, "unexpected"), (reshaped, "of another shape")) if names]
        raise DataError(f"--backbone-weights {path} does not fit the backbone of {loaded.name!r} "
                        f"({type(backbone).__name__}): tensors {', '.join(problems)}")
    backbone.load_state_dict(state)
    return replace(loaded, initialisation=f"`backbone` ({type(backbone).__name__}) from {source} "
                                          f"({path.name}, {weights_hash(path)}); the rest {UNTRAINED}")
