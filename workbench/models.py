"""One entry point for every way a user names a model: an object, a saved folder, a Hub id, or
an architecture name (freshly initialised, so the workbench can show an untrained model and say so).

Nothing here knows any architecture: it only checks that the model speaks the explanation
protocol documented in `hub_models/shared/fer_base.py`.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from .errors import ModelLoadError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_PROTOCOL_CONFIG = ("id2label", "image_size", "num_channels", "image_mean", "image_std", "face_template")


@dataclass
class LoadedModel:
    """A model ready for the workbench. `source` is "object", "architecture", "folder" or "hub";
    `trained` is False for a freshly initialised architecture; `revision` is the Hub commit or
    a hash of the local weights file (None when unknown)."""

    name: str
    model: nn.Module
    processor: Any
    source: str
    trained: bool
    revision: str | None = None

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def labels(self) -> list[str]:
        id2label = self.config.id2label
        return [str(id2label[i]) for i in sorted(int(k) for k in id2label)]

    def describe(self) -> dict[str, Any]:
        """The manifest entry: what was loaded, from where, and how inputs were prepared."""
        config = self.config
        return {
            "name": self.name, "source": self.source, "trained": self.trained, "revision": self.revision,
            "model_type": getattr(config, "model_type", None), "class": type(self.model).__name__,
            "label_map": dict(enumerate(self.labels)),
            "preprocessing": {"image_size": config.image_size, "num_channels": config.num_channels,
                              "image_mean": list(config.image_mean), "image_std": list(config.image_std),
                              "face_template": config.face_template},
            "cam_target_layers": len(self.model.cam_target_layers()),
            "attention_names": list(self.model.attention_names()),
        }


def load_model(spec: Any, *, name: str | None = None, revision: str | None = None,
               **overrides: Any) -> LoadedModel:
    """Load `spec`: a `LoadedModel` (returned as is), a model object, a local folder written by
    `save_pretrained`, a Hub id ("owner/name"), or an architecture name from
    `hub_models.ARCHITECTURES` (`overrides` go to its config; the model is untrained).

    Raises `ModelLoadError` with a message naming `spec` when it cannot be loaded.
    """
    if isinstance(spec, LoadedModel):
        return spec
    if isinstance(spec, nn.Module):
        loaded = LoadedModel(name or _object_name(spec), spec, _processor(spec), "object", True)
    elif isinstance(spec, (str, Path)):
        loaded = _load_named(str(spec), name, revision, overrides)
    else:
        raise ModelLoadError(f"cannot load a model from a {type(spec).__name__}; give a model object, "
                             "a folder, a Hub id or an architecture name")
    check_protocol(loaded.model, loaded.name)
    loaded.model.eval()
    return loaded


def check_protocol(model: nn.Module, name: str) -> None:
    """Fail early, naming what is missing, instead of deep inside a CAM call."""
    config = getattr(model, "config", None)
    missing = [f"config.{key}" for key in _PROTOCOL_CONFIG if not hasattr(config, key)]
    missing += [method for method in ("cam_target_layers", "attention_names") if not hasattr(model, method)]
    if missing:
        raise ModelLoadError(f"model {name!r} does not follow the FER Workbench explanation protocol "
                             f"(missing {', '.join(missing)}); see hub_models/shared/fer_base.py")


def _load_named(spec: str, name: str | None, revision: str | None, overrides: dict[str, Any]) -> LoadedModel:
    import hub_models

    if spec in hub_models.ARCHITECTURES:
        model = hub_models.create_model(spec, **overrides)
        return LoadedModel(name or spec, model, _processor(model), "architecture", False)
    if overrides:
        raise ModelLoadError(f"config overrides only apply to architecture names, not to {spec!r}")
    path = Path(spec).expanduser()
    if path.is_dir():
        return _load_folder(path, name)
    if _HUB_ID.match(spec) and not path.exists():
        return _load_hub(spec, name, revision)
    known = ", ".join(sorted(hub_models.ARCHITECTURES)) or "none registered yet"
    raise ModelLoadError(f"unknown model {spec!r}: not an architecture name (known: {known}), "
                         "not an existing folder, and not a Hub id of the form owner/name")


def _load_folder(path: Path, name: str | None) -> LoadedModel:
    from transformers import AutoModelForImageClassification

    if not (path / "config.json").is_file():
        raise ModelLoadError(f"folder {path} has no config.json; it is not a saved model")
    try:
        model = AutoModelForImageClassification.from_pretrained(path, trust_remote_code=True)
    except (OSError, ValueError, KeyError, ImportError) as error:
        raise ModelLoadError(f"could not load the model in {path}: {error}") from error
    weights = path / "model.safetensors"
    revision = _file_hash(weights) if weights.is_file() else None
    return LoadedModel(name or path.name, model, _processor(model, path), "folder", True, revision)


def _load_hub(repo_id: str, name: str | None, revision: str | None) -> LoadedModel:
    from transformers import AutoModelForImageClassification

    try:
        model = AutoModelForImageClassification.from_pretrained(repo_id, revision=revision, trust_remote_code=True)
    except (OSError, ValueError, KeyError, ImportError) as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
        reason = ("the Hub is offline (HF_HUB_OFFLINE=1) and it is not in the local cache" if offline
                  else f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
        raise ModelLoadError(f"cannot load Hub model {repo_id!r}: {reason}") from error
    commit = getattr(model.config, "_commit_hash", None) or revision
    return LoadedModel(name or repo_id, model, _processor(model, repo_id), "hub", True, commit)


def _processor(model: nn.Module, location: str | Path | None = None) -> Any:
    """The saved image processor when there is one, else the model's own default; only used to
    document the preprocessing (the workbench normalises aligned faces with the config)."""
    if location is not None:
        try:
            from transformers import AutoImageProcessor

            return AutoImageProcessor.from_pretrained(location)
        except (OSError, ValueError, KeyError):
            pass
    make = getattr(model, "image_processor", None)
    return make() if callable(make) else None


def _object_name(model: nn.Module) -> str:
    config = getattr(model, "config", None)
    path = getattr(config, "_name_or_path", "") or ""
    return Path(path).name if path else type(model).__name__


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]
