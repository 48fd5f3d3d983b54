"""Probes that tie explanations to causes: does the map point at the region whose removal hurts
(`probe_regions`), and do the prediction and the map hold when the camera changes the face a little
(`probe_perturbations`)?

A map's region shares (`regions.region_shares`) say where the map puts its mass; they do not say
that the model needs those regions. Here each face region in turn is blurred away (the same strong
blur that starts the insertion curve, so what replaces the region is the face's own colours without
its detail) and the explained class's probability is read again. A region the model relies on
lowers it.

A map's agreement with the probe is the drop its mass would predict, Σ share(r)·drop(r) over the
face regions, as a fraction of the largest single drop: 1 when all of the map's mass lies on the
region whose removal hurts most, about 0 when it lies where removal changes nothing, negative when
it lies where removal *helps* the class. A rank correlation over all regions was tried first and
rejected: blurring a region next to an important one can raise the probability (the important
region's colours bleed in), which a rank statistic punishes even for a map that is exactly right.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from hub_models.preprocessing import pixel_values

from . import cams
from .datasets import TestFaces
from .engine import Workbench
from .faithfulness import blur
from .models import LoadedModel
from .regions import REGIONS, agreement, region_masks
from .result import ModelAnalysis


@dataclass(frozen=True)
class RegionProbe:
    """The explained class's probability on the intact face and with each region blurred away,
    and each map's agreement with the drops (NaN when no region's removal lowers the probability)."""

    target: str
    intact: float
    occluded: dict[str, float]
    agreement: dict[str, float]

    @property
    def drops(self) -> dict[str, float]:
        """How much blurring each region lowers the probability (negative: it raises it)."""
        return {region: self.intact - value for region, value in self.occluded.items()}

    def as_dict(self) -> dict[str, dict[str, float]]:
        """What `ModelAnalysis.region_probe` keeps (bundles, CSV rows)."""
        return {"drop": self.drops, "captured": dict(self.agreement)}


def probe_regions(loaded: LoadedModel, analysis: ModelAnalysis) -> RegionProbe:
    """Blur each face region of the analysed face in turn (one batch) and compare the probability
    drops with each map's region shares (its CAMs, and its spatial native maps). The result is also
    kept in `analysis.region_probe`, so a saved bundle carries it."""
    face = analysis.face
    masks = region_masks(analysis.landmarks, face.shape[:2])
    present = [region for region in REGIONS if masks[region].any()]
    intact = pixel_values(loaded.processor, face)
    blurred = blur(intact[0])
    batch = [intact[0]]
    for region in present:
        mask = torch.from_numpy(masks[region])[None]
        batch.append(torch.where(mask, blurred, intact[0]))
    target = loaded.labels.index(analysis.target)
    with torch.no_grad():
        probabilities = torch.softmax(loaded.model(pixel_values=torch.stack(batch)).logits.float(), dim=-1)
    values = probabilities[:, target].tolist()
    occluded = dict(zip(present, values[1:], strict=True))
    drops = [values[0] - value for value in values[1:]]
    agreement = {name: captured_drop([shares.get(region, 0.0) for region in present], drops)
                 for name, shares in analysis.regions.items()}
    probe = RegionProbe(analysis.target, values[0], occluded, agreement)
    analysis.region_probe = probe.as_dict()
    return probe


def captured_drop(shares: list[float], drops: list[float]) -> float:
    """Σ share·drop / max drop (see the module docstring); NaN when no removal lowers the class."""
    largest = max(drops, default=0.0)
    if largest <= 1e-6:
        return float("nan")
    return float(np.dot(shares, drops) / largest)


# What a camera does to a face: name → (the changed face, a function taking a map of the changed
# face back to the original's geometry). Eye positions come from the aligned face's landmarks.
Perturbation = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]]


def _same(values: np.ndarray) -> np.ndarray:
    return values


def _blur(sigma: float) -> Perturbation:
    return lambda face, _: (cv2.GaussianBlur(face, (0, 0), sigma * face.shape[0] / 112), _same)


def _tone(gain: float, offset: float = 0.0, contrast: float = 1.0) -> Perturbation:
    def change(face: np.ndarray, _landmarks: np.ndarray) -> tuple[np.ndarray, Callable]:
        values = face.astype(np.float32)
        values = (values - values.mean()) * contrast + values.mean()
        return np.uint8(np.clip(values * gain + offset, 0, 255)), _same
    return change


def _jpeg(quality: int) -> Perturbation:
    def change(face: np.ndarray, _landmarks: np.ndarray) -> tuple[np.ndarray, Callable]:
        _, encoded = cv2.imencode(".jpg", face[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        return np.ascontiguousarray(cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1]), _same
    return change


def _rotate(degrees: float) -> Perturbation:
    def change(face: np.ndarray, _landmarks: np.ndarray) -> tuple[np.ndarray, Callable]:
        size = (face.shape[1], face.shape[0])
        centre = (face.shape[1] / 2, face.shape[0] / 2)
        forward = cv2.getRotationMatrix2D(centre, degrees, 1.0)
        back = cv2.getRotationMatrix2D(centre, -degrees, 1.0)
        turned = cv2.warpAffine(face, forward, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return turned, lambda values: cv2.warpAffine(values, back, size, flags=cv2.INTER_LINEAR,
                                                     borderMode=cv2.BORDER_REPLICATE)
    return change


def _bar(over: str) -> Perturbation:
    """A dark band over the eyes (sunglasses) or over the mouth and chin (a face mask)."""
    def change(face: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, Callable]:
        left_eye, right_eye, nose = np.asarray(landmarks, dtype=np.float64)[:3]
        distance = max(float(np.linalg.norm(right_eye - left_eye)), 1.0)
        covered = face.copy()
        if over == "eyes":
            eye_line = (left_eye[1] + right_eye[1]) / 2
            top, bottom = eye_line - 0.3 * distance, eye_line + 0.3 * distance
            colour = (25, 25, 30)
        else:
            top, bottom = nose[1] + 0.15 * distance, face.shape[0]
            colour = (200, 215, 230)
        covered[max(0, round(top)):max(0, round(bottom))] = colour
        return covered, _same
    return change


PERTURBATIONS: dict[str, Perturbation] = {
    "blur (σ ≈ 1.5 px at 112 px)": _blur(1.5),
    "darker (×0.6)": _tone(0.6),
    "brighter (×1.4)": _tone(1.4),
    "low contrast (×0.5)": _tone(1.0, contrast=0.5),
    "JPEG quality 15": _jpeg(15),
    "rotated +10°": _rotate(10),
    "rotated −10°": _rotate(-10),
    "sunglasses": _bar("eyes"),
    "face mask": _bar("mouth"),
}


def probe_perturbations(loaded: LoadedModel, analysis: ModelAnalysis, method: str) -> list[dict[str, object]]:
    """For each of `PERTURBATIONS` on the analysed (aligned) face: the new prediction, the
    probability of the original one, and how the `method` map for the original prediction moved
    (Pearson r with the clean map, after undoing any rotation; 1 = unchanged)."""
    labels = loaded.labels
    target = labels.index(analysis.predicted)
    clean = analysis.cams.get(method)
    if clean is None:
        clean = cams.explain(loaded.model, pixel_values(loaded.processor, analysis.face), [method], target,
                             want_native=False).maps[method]
    rows = []
    for name, perturb in PERTURBATIONS.items():
        changed, back = perturb(analysis.face, analysis.landmarks)
        run = cams.explain(loaded.model, pixel_values(loaded.processor, changed), [method], target, want_native=False)
        probabilities = torch.softmax(run.logits.float(), dim=-1)[0]
        rows.append({"perturbation": name, "predicted": labels[int(probabilities.argmax())],
                     "p(original prediction)": float(probabilities[target]),
                     "map r": agreement(clean, back(run.maps[method].astype(np.float32)))})
    return rows


def probe_test_faces(models: Sequence[LoadedModel], faces: TestFaces, count: int = 100, method: str = "gradcam",
                     progress: Callable[[float, str], object] | None = None) -> list[dict[str, object]]:
    """Both probes over the first `count` faces of a test set, per model: the mean probability drop
    when each region is blurred, the mean share of the largest drop the `method` map captures, and
    for each perturbation the share of predictions that stay the same and the median map r."""
    rows: list[dict[str, object]] = []
    picked = range(min(count, len(faces)))
    for number, loaded in enumerate(models):
        workbench = Workbench([loaded])
        drops: dict[str, list[float]] = {}
        captured: list[float] = []
        kept: dict[str, list[bool]] = {}
        moved: dict[str, list[float]] = {}
        for done, index in enumerate(picked):
            analysis = workbench.analyze(faces.images[index], methods=[method], assume_face=True, faithfulness=False,
                                         native=False).faces[0].models[loaded.name]
            region_probe = probe_regions(loaded, analysis)
            for region, drop in region_probe.drops.items():
                drops.setdefault(region, []).append(drop)
            captured.append(region_probe.agreement.get(method, float("nan")))
            for row in probe_perturbations(loaded, analysis, method):
                kept.setdefault(row["perturbation"], []).append(row["predicted"] == analysis.predicted)
                moved.setdefault(row["perturbation"], []).append(float(row["map r"]))
            if progress is not None:
                progress((number + (done + 1) / len(picked)) / len(models), f"{loaded.name}: face {done + 1}")
        summary: dict[str, object] = {"model": loaded.name, "faces": len(picked),
                                      f"{method} captures (mean)": _nanmean(captured)}
        summary |= {f"drop {region} (mean)": float(np.mean(values)) for region, values in drops.items()}
        summary |= {f"{name}: same prediction": float(np.mean(values)) for name, values in kept.items()}
        summary |= {f"{name}: map r (median)": float(np.nanmedian(values)) if np.isfinite(values).any()
                    else float("nan") for name, values in moved.items()}
        rows.append(summary)
    return rows


def _nanmean(values: list[float]) -> float:
    finite = [value for value in values if np.isfinite(value)]
    return float(np.mean(finite)) if finite else float("nan")
