"""The attention atlas: what each model looks at for each expression, over a whole test set.

For every class, up to `per_class` test faces of that class are explained for that class (the CAM
of the true class: what evidence for *disgust* looks like on disgusted faces), and the maps are
averaged, with the mean face they lie on and the mean map's share of each face region. FER2013's
crops are already framed alike, so the maps of one class line up. A model with weights of its own
(a zoo id, a folder, a Hub commit) is computed once per (revision, dataset, faces, method) and
cached on disk; freshly initialised models, which differ at every load, are not cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from .cams import METHODS
from .datasets import TestFaces
from .engine import Workbench
from .labels import label_index
from .models import LoadedModel
from .native import normalise
from .regions import region_masks, region_shares
from .visualise import overlay

CACHE_ENV = "FER_WORKBENCH_CACHE"


@dataclass
class ModelAtlas:
    """One model's mean maps, the mean faces they lie on, and their region shares, by class."""

    maps: dict[str, np.ndarray] = field(default_factory=dict)
    faces: dict[str, np.ndarray] = field(default_factory=dict)
    regions: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class Atlas:
    """Models × classes (the dataset's class names)."""

    dataset: str
    method: str
    classes: tuple[str, ...]
    models: dict[str, ModelAtlas]

    def rows(self) -> list[dict[str, object]]:
        """Per model and class: the face regions holding most of the mean map (for a table or CSV)."""
        rows = []
        for name, model in self.models.items():
            for label, shares in model.regions.items():
                top = sorted(((share, region) for region, share in shares.items()), reverse=True)[:3]
                rows.append({"model": name, "class": label, "faces": model.counts[label],
                             "top regions (share of the mean map)": ", ".join(f"{r} {s:.0%}" for s, r in top),
                             **{f"share_{region}": round(share, 4) for region, share in shares.items()}})
        return rows


def atlas_figure(atlas: Atlas) -> Figure | None:
    """Classes down, models across: each cell the mean face with the mean map over it (each map on
    its own colour scale, like every map in the workbench)."""
    names = [name for name, model in atlas.models.items() if model.maps]
    if not names:
        return None
    classes = [label for label in atlas.classes if any(label in atlas.models[name].maps for name in names)]
    figure = Figure(figsize=(2.2 * len(names) + 0.6, 2.2 * len(classes)), dpi=100, layout="constrained")
    figure.suptitle(f"Mean {METHODS[atlas.method].title} of the true class over its faces", fontsize=10)
    for row, label in enumerate(classes):
        for column, name in enumerate(names):
            axes = figure.add_subplot(len(classes), len(names), row * len(names) + column + 1)
            axes.set_xticks([])
            axes.set_yticks([])
            model = atlas.models[name]
            title = f"{name}\n" if row == 0 else ""
            if label in model.maps:
                axes.imshow(overlay(model.faces[label], normalise(model.maps[label]), colorbar=False))
                title += f"{model.counts[label]} faces"
            axes.set_title(title, fontsize=7)
            if column == 0:
                axes.set_ylabel(label, fontsize=9)
    return figure


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "fer-workbench")) / "atlas"


def attention_atlas(models: Sequence[LoadedModel], faces: TestFaces, method: str = "gradcam", per_class: int = 50,
                    progress: Callable[[float, str], object] | None = None) -> Atlas:
    """Mean `method` maps per model and class over `faces` (see the module docstring)."""
    if per_class < 1:
        raise ValueError(f"per_class must be at least 1, got {per_class}")
    chosen = {label: np.flatnonzero(faces.truth == index)[:per_class] for index, label in enumerate(faces.labels)}
    result = Atlas(faces.dataset, method, faces.labels, {})
    for number, loaded in enumerate(models):
        key = _cache_key(loaded, faces, method, per_class)
        cached = _read_cache(key) if key else None
        if cached is None:
            cached = _model_atlas(loaded, faces, chosen, method, _reporter(progress, number, len(models), loaded.name))
            if key:
                _write_cache(key, cached)
        result.models[loaded.name] = cached
    return result


def _reporter(progress: Callable[[float, str], object] | None, number: int, count: int,
              name: str) -> Callable[[float, str], None]:
    """One model's share of the work → the whole atlas's share, for a progress bar."""
    def report(share: float, step: str) -> None:
        if progress is not None:
            progress((number + share) / count, f"{name}: {step}")

    return report


def _model_atlas(loaded: LoadedModel, faces: TestFaces, chosen: dict[str, np.ndarray], method: str,
                 report: Callable[[float, str], None]) -> ModelAtlas:
    workbench = Workbench([loaded])
    atlas = ModelAtlas()
    total, done = max(1, sum(len(rows) for rows in chosen.values())), 0
    for label, rows in chosen.items():
        target = label_index(label, loaded.labels)
        if target is None or not len(rows):
            continue
        maps, pictures, landmarks = [], [], None
        for row in rows:
            result = workbench.analyze(faces.images[int(row)], methods=[method], target=target, assume_face=True,
                                       faithfulness=False, regions=False, native=False)
            analysis = result.faces[0].models[loaded.name]
            maps.append(analysis.cams[method])
            pictures.append(analysis.face.astype(np.float32))
            landmarks = analysis.landmarks
            done += 1
            report(done / total, f"{label} ({done} of {total} faces)")
        mean_map = np.mean(maps, axis=0)
        atlas.maps[label] = mean_map.astype(np.float32)
        atlas.faces[label] = np.mean(pictures, axis=0).round().astype(np.uint8)
        atlas.regions[label] = region_shares(mean_map, region_masks(landmarks, mean_map.shape))
        atlas.counts[label] = len(rows)
    return atlas


def _cache_key(loaded: LoadedModel, faces: TestFaces, method: str, per_class: int) -> str | None:
    if not loaded.trained or not loaded.revision:
        return None
    facts = [loaded.revision, faces.dataset, faces.description, len(faces), method, per_class]
    return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:24]


def _read_cache(key: str) -> ModelAtlas | None:
    path = cache_dir() / f"{key}.npz"
    try:
        with np.load(path, allow_pickle=False) as stored:
            meta = json.loads(str(stored["meta"]))
            return ModelAtlas({label: stored[f"map_{label}"] for label in meta["counts"]},
                              {label: stored[f"face_{label}"] for label in meta["counts"]},
                              meta["regions"], meta["counts"])
    except (OSError, KeyError, ValueError):
        return None  # absent or unreadable: computed again


def _write_cache(key: str, atlas: ModelAtlas) -> None:
    folder = cache_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{key}.partial.npz"
        arrays = {f"map_{label}": value for label, value in atlas.maps.items()}
        arrays |= {f"face_{label}": value for label, value in atlas.faces.items()}
        np.savez_compressed(partial, meta=json.dumps({"counts": atlas.counts, "regions": atlas.regions}), **arrays)
        partial.replace(folder / f"{key}.npz")
    except OSError:
        pass  # a read-only cache only costs recomputation
