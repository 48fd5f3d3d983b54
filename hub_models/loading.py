"""The one model resolver: every way a user names a model becomes a `LoadedModel` here.

A spec is, in this order: a named variant or architecture (fresh, untrained weights), an embedded
zoo id (``fer-workbench/<name>``), a local folder written by ``save_pretrained``, or a Hub id
(``org/name``). Training, evaluation, the engine, the CLI and the app all call `load_model`, so a
name means the same model everywhere.

The trust rules live here, once:
- No code from a checkpoint ever runs unless the operator opted in (`trust_remote_code=True`
  passed by the operator's own code, or ``FER_TRUST_REMOTE_CODE=1``). Our architectures are
  registered with the Auto classes on ``import hub_models``, so our own folders never need it.
- Weights load from safetensors only; Hub downloads fetch only configs, safetensors and cards.
- With ``folders=[...]`` (the app), a local folder is accepted only under those roots, and every
  other path gets the same message as an unknown name, so the answer reveals nothing about disk.
"""

from __future__ import annotations

import errno
import hashlib
import inspect
import json
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import zoo
from .registry import ARCHITECTURES, create_model
from .variants import VARIANTS

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
HUB_FILES = ("*.json", "*.safetensors", "*.md")
MAX_SPEC_LENGTH = 512
TRUST_ENV = "FER_TRUST_REMOTE_CODE"
PROTOCOL_CONFIG = ("id2label", "image_size", "num_channels", "image_mean", "image_std", "face_template")
UNTRAINED = "from scratch (random initialisation)"


class ModelLoadError(ValueError):
    """The named model cannot be created or loaded; the message says which and why."""


@dataclass
class LoadedModel:
    """A model with where it came from. `kind` is "object", "architecture" (fresh weights; also
    for named variants), "zoo", "folder" or "hub"; `revision` is the Hub commit, the zoo's pinned
    revision or a hash of the local weights; `initialisation` is the sentence a model card uses."""

    name: str
    model: nn.Module
    kind: str
    trained: bool
    revision: str | None = None
    initialisation: str = ""
    reinitialised: tuple[str, ...] = ()
    folder: Path | None = field(default=None, repr=False)

    @property
    def config(self) -> Any:
        return self.model.config

    @property
    def labels(self) -> list[str]:
        return model_labels(self.model)

    @cached_property
    def processor(self) -> Any:
        """The image processor the model's config describes (the one `save_pretrained` writes)."""
        return self.model.image_processor()

    def describe(self) -> dict[str, Any]:
        """The manifest entry: what was loaded, from where, and how inputs were prepared."""
        config = self.config
        return {
            "name": self.name, "source": self.kind, "trained": self.trained, "revision": self.revision,
            "model_type": getattr(config, "model_type", None), "class": type(self.model).__name__,
            "label_map": dict(enumerate(self.labels)),
            "preprocessing": {"image_size": config.image_size, "num_channels": config.num_channels,
                              "image_mean": list(config.image_mean), "image_std": list(config.image_std),
                              "face_template": config.face_template},
            "calibration_temperature": float(getattr(config, "calibration_temperature", 1.0) or 1.0),
            "test_time_flip": bool(getattr(config, "test_time_flip", False)),
            "cam_target_layers": len(self.model.cam_target_layers()),
        }


def model_labels(model: nn.Module) -> list[str]:
    """Class names in output order."""
    return label_list(model.config.id2label)


def label_list(id2label: Mapping[Any, Any]) -> list[str]:
    """`id2label` → names by index; the one reading of it (config.json stores the keys as strings)."""
    return [str(id2label[key]) for key in sorted(id2label, key=int)]


def label_maps(labels: Sequence[str]) -> dict[str, Any]:
    return {"id2label": dict(enumerate(labels)), "label2id": {name: i for i, name in enumerate(labels)}}


def remote_code_allowed() -> bool:
    """The operator's opt-in (off unless ``FER_TRUST_REMOTE_CODE`` is 1/true/yes/on)."""
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def load_model(spec: Any, overrides: dict[str, Any] | None = None, *, labels: Sequence[str] | None = None,
               name: str | None = None, revision: str | None = None,
               folders: Sequence[str | Path] | None = None, trust_remote_code: bool | None = None) -> LoadedModel:
    """Create or load the model named by `spec` (see the module docstring for the order).

    `overrides` change a fresh architecture's config; `labels` give a loaded model whose label set
    differs a new, freshly initialised classifier (fine-tuning). `folders` restricts local folders
    to those roots (None: any folder, as on the operator's own command line). `trust_remote_code`
    is the operator's choice; None means the ``FER_TRUST_REMOTE_CODE`` environment variable.
    """
    if isinstance(spec, LoadedModel):
        return spec
    if isinstance(spec, nn.Module):
        loaded = LoadedModel(name or _object_name(spec), spec, "object", True, initialisation="given as an object")
    elif isinstance(spec, (str, Path)):
        loaded = _load_named(str(spec).strip(), dict(overrides or {}), labels, revision, folders,
                             remote_code_allowed() if trust_remote_code is None else trust_remote_code)
        loaded.name = name or loaded.name
    else:
        raise ModelLoadError(f"cannot load a model from a {type(spec).__name__}; give a model object, "
                             "a folder, a Hub id or an architecture name")
    check_protocol(loaded.model, loaded.name)
    loaded.model.eval()
    return loaded


def check_protocol(model: nn.Module, name: str) -> None:
    """Fail early, naming what is missing, instead of deep inside a CAM call."""
    config = getattr(model, "config", None)
    missing = [f"config.{key}" for key in PROTOCOL_CONFIG if not hasattr(config, key)]
    missing += ["cam_target_layers()"] if not hasattr(model, "cam_target_layers") else []
    if "output_maps" not in inspect.signature(model.forward).parameters:
        missing.append("forward(..., output_maps)")
    if missing:
        raise ModelLoadError(f"model {name!r} does not follow the FER Workbench explanation protocol "
                             f"(missing {', '.join(missing)}); see hub_models/shared/fer_base.py")


def describe_choices(folders: Sequence[str | Path] | None) -> str:
    allowed = (f"a zoo id (fer-workbench/…), an architecture ({', '.join(sorted(ARCHITECTURES))}) or a variant "
               "name (hub_models.variants), a Hub id (org/name)")
    if folders is None:
        return allowed + " or a saved model folder"
    return allowed + (" or a folder under the configured model directories" if folders else "")


def _load_named(spec: str, overrides: dict[str, Any], labels: Sequence[str] | None, revision: str | None,
                folders: Sequence[str | Path] | None, trust: bool) -> LoadedModel:
    if not spec or len(spec) > MAX_SPEC_LENGTH or "\x00" in spec:
        raise ModelLoadError(f"unknown model {_shorten(spec)!r}: choose {describe_choices(folders)}")
    if spec in VARIANTS or spec in ARCHITECTURES:
        return _create(spec, overrides, labels)
    if overrides.keys() - {"ignore_mismatched_sizes"} and not labels:
        raise ModelLoadError(f"config overrides only apply to architecture names, not to {spec!r}")
    if spec in zoo.model_ids():
        return _load_folder(zoo.folder(spec), spec, "zoo", labels, trust, overrides)
    folder = _local_folder(spec, folders)
    if folder is not None:
        return _load_folder(folder, spec, "folder", labels, trust, overrides)
    if HUB_ID.match(spec):
        return _load_folder(_download(spec, revision), spec, "hub", labels, trust, overrides)
    raise ModelLoadError(f"unknown model {_shorten(spec)!r}: choose {describe_choices(folders)}")


def _create(spec: str, overrides: dict[str, Any], labels: Sequence[str] | None) -> LoadedModel:
    architecture, preset = VARIANTS.get(spec, (spec, {}))
    settings = {**preset, **overrides, **(label_maps(labels) if labels is not None else {})}
    try:
        model = create_model(architecture, **settings)
    except (TypeError, ValueError) as error:
        raise ModelLoadError(f"cannot build {spec!r} with {overrides or 'defaults'}: {error}") from error
    return LoadedModel(spec, model, "architecture", False, initialisation=UNTRAINED)


def _local_folder(spec: str, folders: Sequence[str | Path] | None) -> Path | None:
    """The folder `spec` names, when it is one the caller may load; None otherwise (never an
    error that would tell a remote user whether a server path exists)."""
    try:
        path = Path(spec).expanduser()
        if folders is None:
            return path if path.is_dir() else None
        if not path.is_absolute():
            return None
        resolved = path.resolve()
        for root in folders:
            root = Path(root).expanduser().resolve()
            if resolved != root and resolved.is_relative_to(root) and (resolved / "config.json").is_file():
                return resolved
    except OSError as error:
        if error.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.EACCES):
            return None
        raise
    return None


def _download(repo_id: str, revision: str | None) -> Path:
    """The repo's configs, safetensors and card from the Hub (or the local cache when offline);
    never its code or pickled weights."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=list(HUB_FILES)))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError) as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
        why = ("the Hub is offline (HF_HUB_OFFLINE=1) and it is not in the local Hugging Face cache" if offline
               else "it could not be downloaded from the Hub and is not in the local cache")
        raise ModelLoadError(f"cannot load Hub model {repo_id!r}: {why}") from error


def _load_folder(folder: Path, spec: str, kind: str, labels: Sequence[str] | None, trust: bool,
                 overrides: dict[str, Any]) -> LoadedModel:
    from safetensors import SafetensorError
    from transformers import AutoModelForImageClassification

    where = "Hub model" if kind == "hub" else "model"
    unfinished = _unfinished_run(folder)
    if unfinished:
        raise ModelLoadError(unfinished)
    if not (folder / "config.json").is_file():
        raise ModelLoadError(f"{where} {spec!r} has no config.json: it is not a saved model")
    if not (folder / "model.safetensors").is_file():
        raise ModelLoadError(f"{where} {spec!r} has no model.safetensors (only safetensors weights are loaded)")
    # Config overrides for a saved model (fine-tuning with --config) go to from_pretrained, as before.
    kwargs: dict[str, Any] = {**overrides, "trust_remote_code": trust, "use_safetensors": True}
    if labels is not None and _config_labels(folder) != list(labels):
        kwargs |= {**label_maps(labels), "num_labels": len(labels)}
    if labels is not None and (overrides or "num_labels" in kwargs):
        # Fine-tuning with a new label set or input size: tensors whose shape changes start fresh.
        kwargs["ignore_mismatched_sizes"] = True
    try:
        model = AutoModelForImageClassification.from_pretrained(folder, **kwargs)
    except SafetensorError as error:
        raise ModelLoadError(f"cannot load {where} {spec!r}: {folder / 'model.safetensors'} is truncated or corrupt "
                             f"({error})") from error
    except (OSError, ValueError, KeyError, ImportError, TypeError, AttributeError) as error:
        if not trust and "trust_remote_code" in str(error):
            raise ModelLoadError(f"{where} {spec!r} is not a FER Workbench architecture; running a checkpoint's own "
                                 "code is disabled (an operator can allow it with FER_TRUST_REMOTE_CODE=1)") from error
        raise ModelLoadError(f"cannot load {where} {spec!r}: {_first_line(error)}") from error
    if not type(model).__module__.startswith(f"{__package__}.") and not trust:
        raise ModelLoadError(f"{where} {spec!r} is not a FER Workbench model")
    reinitialised = _reinitialised(folder / "model.safetensors", model)
    resized = _carry_resized(folder / "model.safetensors", model, reinitialised)
    reinitialised = tuple(name for name in reinitialised if name not in resized)
    # An id names whichever weights it holds today (zoo entries are replaced when retrained), so the
    # sentence a model card keeps pins the revision: the zoo's, or the Hub snapshot's commit.
    pinned = zoo.revision(spec) if kind == "zoo" else folder.name if kind == "hub" else None
    origin = f"from the weights of {pinned_name(spec, pinned)}"
    if resized:
        origin += f" (resampled to the new input size: {', '.join(resized)})"
    if reinitialised:
        origin += f" (fresh weights where the shapes changed: {', '.join(reinitialised)})"
    if kind == "folder":
        origin += earlier_training(folder)
    shown_name = Path(spec).name if kind == "folder" else spec  # a folder is known by its own name
    return LoadedModel(shown_name, model, kind, True, pinned or weights_hash(folder / "model.safetensors"), origin,
                       reinitialised, folder)


@contextmanager
def config_override(model: nn.Module, **fields: Any) -> Iterator[None]:
    """Config fields the model's forward reads (``calibration_temperature``, ``test_time_flip``) set
    for the duration of the context and restored after it: raw logits for a calibration fit, one
    view for an explanation."""
    saved = {name: getattr(model.config, name) for name in fields}
    for name, value in fields.items():
        setattr(model.config, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(model.config, name, value)


def pinned_name(spec: str, revision: str | None) -> str:
    """How records name a model: the id, and the revision it held when used, where one is known."""
    return f"{spec} (revision {revision[:12]})" if revision else spec


def _reinitialised(weights: Path, model: nn.Module) -> tuple[str, ...]:
    """The modules whose saved tensors did not fit (a new label set, a new input size), so a card
    can say which parts of a fine-tuned model did not come from its source."""
    from safetensors import safe_open

    with safe_open(weights, "pt") as saved:
        shapes = {key: tuple(saved.get_slice(key).get_shape()) for key in saved.keys()}  # noqa: SIM118 (not iterable)
    changed = [key.rpartition(".")[0] for key, tensor in model.state_dict().items()
               if key in shapes and shapes[key] != tuple(tensor.shape)]
    return tuple(dict.fromkeys(changed))


def _carry_resized(weights: Path, model: nn.Module, changed: Sequence[str]) -> tuple[str, ...]:
    """Give the model's ``resized_weights`` hook (where it has one) the saved tensors that no longer
    fit, and load what it makes of them (CF-DAN's position embedding, resampled to a new token grid);
    returns the modules so carried over, which then no longer count as fresh."""
    hook = getattr(model, "resized_weights", None)
    if hook is None or not changed:
        return ()
    from safetensors import safe_open

    with safe_open(weights, "pt") as saved:
        tensors = {key: saved.get_tensor(key) for key in saved.keys()  # noqa: SIM118 (not iterable)
                   if key.rpartition(".")[0] in changed}
    fitted = hook(tensors)
    with torch.no_grad():
        for key, tensor in fitted.items():
            model.get_parameter(key).copy_(tensor)
    return tuple(dict.fromkeys(key.rpartition(".")[0] for key in fitted))


def _unfinished_run(folder: Path) -> str | None:
    """A finetune output folder (it has Trainer checkpoints) without ``run_summary.json``, the file
    a finished run writes last, was interrupted before or while its final files were written: it
    must not pass for a trained model. The message says how to finish it."""
    if (folder / "checkpoints").is_dir() and not (folder / "run_summary.json").is_file():
        return (f"model folder {folder} is an unfinished training run (it has checkpoints/ but no run_summary.json, "
                f"which a finished run writes last); complete it with `python training/finetune.py --resume "
                f"--output-dir {folder}` and the run's other options, or load one of its checkpoints/checkpoint-* "
                "folders")
    return None


def _config_labels(folder: Path) -> list[str] | None:
    try:
        return label_list(json.loads((folder / "config.json").read_text()).get("id2label") or {})
    except (OSError, ValueError, AttributeError):
        return None


def earlier_training(folder: Path) -> str:
    """How a folder written by finetune.py was itself trained, so that a model card of a run
    continued from it keeps the whole chain (the folder path alone means nothing to readers)."""
    try:
        summary = json.loads((folder / "run_summary.json").read_text())
    except (OSError, ValueError):
        return ""
    before = summary.get("initialisation") or (
        UNTRAINED if summary.get("model") in ARCHITECTURES else f"from {summary.get('model')}")
    return (f"; that checkpoint was trained {before} with `{summary.get('command')}` "
            f"({summary.get('global_step')} steps, {(summary.get('wall_time_s') or 0) / 60:.0f} min, best epoch "
            f"{summary.get('best_epoch')})")


def weights_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:16]


def _object_name(model: nn.Module) -> str:
    path = getattr(getattr(model, "config", None), "_name_or_path", "") or ""
    return Path(path).name if path else type(model).__name__


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
