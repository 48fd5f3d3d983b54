"""Which models the app offers, and how a user's choice becomes a ready `Workbench`.

A choice is any spec `workbench.load_model` understands — an embedded zoo id, a local folder,
a Hub id (online) or an architecture name (freshly initialised, i.e. untrained) — so the app
never branches on model names. Loaded models are kept, because loading is the slow part of a
first request and every tab shares them.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager

import hub_models
from hub_models import zoo
from workbench import Workbench, load_model
from workbench.models import LoadedModel

MAX_MODELS = 3
UNTRAINED_DEFAULTS = ("patt_lite", "ddamfn", "attention_cnn")
UNTRAINED_NOTE = "untrained"
_KEEP_MODELS = 8


def default_models() -> list[str]:
    """`FER_APP_MODELS` (comma-separated specs) when set; else the embedded trained zoo when it
    exists; else three freshly initialised architectures."""
    configured = os.environ.get("FER_APP_MODELS", "").strip()
    if configured:
        return parse_choice(configured)
    return zoo.model_ids()[:MAX_MODELS] or list(UNTRAINED_DEFAULTS)


def offered_models() -> list[tuple[str, str]]:
    """(label, spec) pairs for the model picker: trained zoo first, then every architecture untrained."""
    trained = [(f"{spec} · trained", spec) for spec in zoo.model_ids()]
    untrained = [(f"{name} · {UNTRAINED_NOTE}", name) for name in hub_models.ARCHITECTURES]
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
                loaded = load_model(spec)
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
