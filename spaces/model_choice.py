"""Which models the app offers, and how a user's choice becomes a ready `Workbench`.

A choice is any spec `workbench.load_model` understands — an embedded zoo id, a Hub id (online,
loaded without running any of its code), an architecture or variant name (freshly initialised,
i.e. untrained), or a folder under the operator's ``FER_APP_MODEL_DIRS`` — so the app never
branches on model names. Any other path, uploads included, is answered like an unknown name: a
public page must not run code from users nor tell them which folders exist on the server. Loaded
models are kept, because loading is the slow part of a first request and every tab shares them.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import workbench
from workbench import LoadedModel, Workbench, architectures, load_model, trained_models

MAX_MODELS = 3
UNTRAINED_NOTE = "untrained"
_KEEP_MODELS = 8
MODEL_DIRS_ENV = "FER_APP_MODEL_DIRS"


def model_dirs() -> list[str]:
    """Folders under which the operator allows saved models (``FER_APP_MODEL_DIRS``, separated by
    the platform's path separator); none by default."""
    return [part for part in os.environ.get(MODEL_DIRS_ENV, "").split(os.pathsep) if part.strip()]


def allowed_folders(spec: str) -> list[str] | None:
    """Where `spec` may be a folder: anywhere when the operator named it in ``FER_APP_MODELS``,
    else only under ``FER_APP_MODEL_DIRS``."""
    configured = [part.strip() for part in os.environ.get("FER_APP_MODELS", "").split(",")]
    return None if spec in configured else model_dirs()


def default_models() -> list[str]:
    """`FER_APP_MODELS` (comma-separated specs) when set; else the embedded trained zoo when it
    exists; else three freshly initialised architectures."""
    configured = os.environ.get("FER_APP_MODELS", "").strip()
    if configured:
        return parse_choice(configured)
    return workbench.default_models(limit=MAX_MODELS)


def offered_models() -> list[tuple[str, str]]:
    """(label, spec) pairs for the model picker: trained zoo first, then every architecture untrained."""
    trained = [(f"{spec} · trained" + (f" · {note}" if note else ""), spec)
               for spec, note in trained_models().items()]
    untrained = [(f"{name} · {UNTRAINED_NOTE}", name) for name in architectures()]
    return trained + untrained


def parse_choice(chosen: str | Sequence[str] | None) -> list[str]:
    """The picker's value as a clean list of specs: stripped, de-duplicated, at most three."""
    if chosen is None:
        chosen = []
    elif isinstance(chosen, str):
        chosen = chosen.split(",")
    specs = list(dict.fromkeys(spec.strip() for spec in chosen if spec and spec.strip()))
    if not specs:
        raise ValueError("choose at least one model")
    if len(specs) > MAX_MODELS:
        raise ValueError(f"choose at most {MAX_MODELS} models (got {len(specs)}: {', '.join(specs)})")
    return specs


class ModelPool:
    """Loaded models and workbenches shared by every request.

    Each model has a lock: pytorch-grad-cam hooks the target layers of the model object for
    the length of a call, so two threads explaining the same model at once would read each
    other's activations. Requests on different models still run side by side.
    """

    def __init__(self, keep: int = _KEEP_MODELS) -> None:
        self._keep = keep
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._locks: dict[int, threading.Lock] = {}
        self._workbenches: dict[tuple[str, ...], Workbench] = {}
        self._lock = threading.Lock()

    def model(self, spec: str) -> LoadedModel:
        with self._lock:
            if spec not in self._models:
                loaded = load_model(spec, folders=allowed_folders(spec))
                self._models[spec] = loaded
                self._locks[id(loaded)] = threading.Lock()
                while len(self._models) > self._keep:
                    self._models.popitem(last=False)
                    self._workbenches.clear()
            self._models.move_to_end(spec)
            return self._models[spec]

    def workbench(self, specs: Sequence[str]) -> Workbench:
        key = tuple(specs)
        models = [self.model(spec) for spec in specs]
        with self._lock:
            if key not in self._workbenches:
                self._workbenches[key] = Workbench(models)
            return self._workbenches[key]

    @contextmanager
    def using(self, models: Sequence[LoadedModel]) -> Iterator[None]:
        """Hold the locks of `models` (in one global order, so two requests never deadlock)."""
        with ExitStack() as stack:
            for key in sorted({id(model) for model in models}):
                stack.enter_context(self._locks.setdefault(key, threading.Lock()))
            yield


POOL = ModelPool()
