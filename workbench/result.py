"""What `Workbench.analyze` returns, and the reproducible bundle `save` writes.

Bundle layout (one directory)::

    manifest.json                        input hash, detector, models (ids, revisions, label maps,
                                         preprocessing), package versions, every score
    faces.png                            the working image with numbered boxes and landmarks
    face<i>/<model>/face.png             the aligned face this model saw
    face<i>/<model>/cam_<method>.png     overlay with colour bar; .npy = the raw H×W float32 map
    face<i>/<model>/native_<name>.png    native attention overlay (maps) or bar chart (vectors); .npy raw
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import BundleError, BundleExistsError
from .images import short_path
from .visualise import bar_chart, draw_faces, overlay

FAITHFULNESS_METRICS = ("deletion_auc", "insertion_auc", "road_morf", "road_lerf")
PARTIAL_SUFFIX = ".partial"
_PACKAGES = ("fer-workbench", "torch", "torchvision", "transformers", "timm", "grad-cam", "numpy",
             "opencv-python-headless", "pillow", "safetensors")


@dataclass
class ModelAnalysis:
    """One model on one aligned face.

    Maps are float32 at the aligned face's size: `cams[method]` and spatial `native` maps are in
    [0,1]; vector read-outs (channel gates) stay 1-D with their raw values. `faithfulness[method]`
    has deletion_auc (lower is better), insertion_auc (higher), road_morf (lower), road_lerf
    (higher), all target-class probabilities. `regions[key]` (key = a CAM method or a native map
    name) gives the share of the map's mass on brows/eyes/nose/mouth/cheeks (and `other`).
    `agreement[native_name]` is the Pearson correlation of that native map with
    `agreement_method`'s CAM. `region_probe` (when asked for: `workbench.probes`) has "drop", the
    target probability's fall when each region is blurred, and "captured", the share of the largest
    drop each map's mass captures. `notes` explains anything skipped.
    """

    model_name: str
    face: np.ndarray
    landmarks: np.ndarray
    probabilities: dict[str, float]
    predicted: str
    target: str
    cams: dict[str, np.ndarray] = field(default_factory=dict)
    native: dict[str, np.ndarray] = field(default_factory=dict)
    faithfulness: dict[str, dict[str, float]] = field(default_factory=dict)
    regions: dict[str, dict[str, float]] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)
    agreement_method: str | None = None
    region_probe: dict[str, dict[str, float]] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Everything except the arrays, JSON-ready."""
        return {
            "predicted": self.predicted, "target": self.target,
            "probabilities": _round(self.probabilities),
            "faithfulness": _round(self.faithfulness), "regions": _round(self.regions),
            "agreement": _round(self.agreement), "agreement_method": self.agreement_method,
            "region_probe": _round(self.region_probe),
            "landmarks": np.round(self.landmarks, 2).tolist(),
            "native_kinds": {name: "vector" if value.ndim == 1 else "map" for name, value in self.native.items()},
            "timings_ms": _round(self.timings_ms), "notes": list(self.notes),
        }


@dataclass
class FaceAnalysis:
    """One face: where it is in the working image, and every model's analysis of it.

    `whole_image` is True when no face was detected but the input looked like an already
    cropped face (e.g. a 48×48 FER2013 image) and was used whole; box/landmarks are then the
    image frame and the template's landmarks.
    """

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float
    whole_image: bool
    models: dict[str, ModelAnalysis] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"box": [round(float(v), 2) for v in self.box], "landmarks": np.round(self.landmarks, 2).tolist(),
                "score": round(float(self.score), 4), "whole_image": self.whole_image,
                "models": {name: analysis.summary() for name, analysis in self.models.items()}}


@dataclass
class AnalysisResult:
    """All faces in one image (largest first). `message` is set when there is nothing to show
    ("no face found") and carries notes about the input (rotated, downscaled, first frame…)."""

    image: np.ndarray
    faces: list[FaceAnalysis]
    message: str | None
    input: dict[str, Any]
    models: dict[str, dict[str, Any]]
    methods: tuple[str, ...]
    detector: dict[str, Any]
    timings_ms: dict[str, float] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        return {
            "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "input": self.input, "message": self.message, "methods": list(self.methods),
            "detector": self.detector, "models": self.models,
            "faces": [face.summary() for face in self.faces],
            "timings_ms": _round(self.timings_ms), "packages": package_versions(),
        }

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per face × model (for CSV): prediction, probabilities, scores."""
        rows = []
        for index, face in enumerate(self.faces):
            for name, analysis in face.models.items():
                row: dict[str, Any] = {"face": index, "whole_image": face.whole_image, "model": name,
                                       "predicted": analysis.predicted, "target": analysis.target}
                row.update({f"p_{label}": round(p, 5) for label, p in analysis.probabilities.items()})
                for method, scores in analysis.faithfulness.items():
                    row.update({f"{method}_{metric}": round(value, 5) for metric, value in scores.items()})
                row.update({f"probe_drop_{region}": round(value, 5)
                            for region, value in analysis.region_probe.get("drop", {}).items()})
                row.update({f"{key}_captured_drop": round(value, 5)
                            for key, value in analysis.region_probe.get("captured", {}).items()})
                rows.append(row)
        return rows

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the bundle so that it appears complete or not at all. An existing non-empty
        `directory` is never touched unless `overwrite`, and a file in its place never is.

        Everything is written into a hidden sibling (`.<name>.<random>.partial`) that is renamed
        into place at the end; an old bundle is moved aside only once the new one is complete and
        deleted after the swap. On any failure the partial folder is removed and an old bundle is
        left as it was; OS failures (disk full, name too long…) are raised as `BundleError`.
        """
        target = Path(directory)
        shown = short_path(target)
        try:
            _check_destination(target, overwrite)
            staging = _make_staging(target)
        except BundleError:
            raise  # already named (BundleExistsError is also an OSError)
        except OSError as error:
            raise BundleError(f"cannot write the bundle {shown}: {error.strerror or error}") from error
        try:
            self._write(staging)
            _swap_into_place(staging, target)
        except OSError as error:
            raise BundleError(f"could not write the bundle {shown}: {error.strerror or error}") from error
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return target

    def _write(self, root: Path) -> None:
        manifest = self.manifest()
        boxes = [face.box for face in self.faces]
        _write_png(root / "faces.png", draw_faces(self.image, boxes, [face.landmarks for face in self.faces]))
        for index, face in enumerate(self.faces):
            for name, analysis in face.models.items():
                folder = root / f"face{index}" / _safe(name)
                folder.mkdir(parents=True)
                files = _write_maps(folder, analysis)
                manifest["faces"][index]["models"][name]["files"] = [
                    str(path.relative_to(root)) for path in files]
        (root / "manifest.json").write_text(json.dumps(manifest, indent=2, default=_json_default))


def _check_destination(target: Path, overwrite: bool) -> None:
    """Refuse, before writing anything, what `save` must not replace: a file or a symbolic link
    where the bundle folder should be (even with `overwrite`), or a non-empty folder without it."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        kind = "a symbolic link" if target.is_symlink() else "a file"
        raise BundleExistsError(f"{short_path(target)} is {kind}, not a bundle directory; "
                                "choose another directory")
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise BundleExistsError(f"bundle directory {short_path(target)} already exists and is not empty; "
                                "choose another directory or pass overwrite=True")
    parent = target.parent
    if parent.exists() and not parent.is_dir():
        raise BundleError(f"cannot write the bundle {short_path(target)}: {short_path(parent)} is a file")
    parent.mkdir(parents=True, exist_ok=True)


def _make_staging(target: Path) -> Path:
    """A fresh hidden sibling of `target` (same file system, so the final rename is atomic); its
    name is cut so that a long bundle name cannot make it exceed the file system's limit."""
    return Path(tempfile.mkdtemp(prefix=f".{target.name[:64]}.", suffix=PARTIAL_SUFFIX, dir=target.parent))


def _swap_into_place(staging: Path, target: Path) -> None:
    """Rename the complete bundle to `target`; an existing folder there (empty, or an old bundle
    with `overwrite`) is moved aside first and put back if the rename fails."""
    if not target.exists():
        os.replace(staging, target)
        return
    aside = staging.with_name(staging.name.removesuffix(PARTIAL_SUFFIX) + ".old")
    os.replace(target, aside)
    try:
        os.replace(staging, target)
    except OSError:
        os.replace(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _write_maps(folder: Path, analysis: ModelAnalysis) -> list[Path]:
    files = [folder / "face.png"]
    _write_png(files[0], analysis.face)
    for prefix, maps in (("cam", analysis.cams), ("native", analysis.native)):
        for key, value in maps.items():
            stem = folder / f"{prefix}_{_safe(key)}"
            np.save(stem.with_suffix(".npy"), value)
            picture = bar_chart(value, key) if value.ndim == 1 else overlay(analysis.face, value)
            _write_png(stem.with_suffix(".png"), picture)
            files += [stem.with_suffix(".npy"), stem.with_suffix(".png")]
    return files


def _write_png(path: Path, rgb: np.ndarray) -> None:
    if not cv2.imwrite(str(path), cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).strip("._") or "model"


def _round(value: Any, digits: int = 5) -> Any:
    if isinstance(value, dict):
        return {key: _round(item, digits) for key, item in value.items()}
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else round(float(value), digits)
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
