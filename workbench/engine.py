"""`Workbench`: faces in, aligned explanations out, for every model, through the protocol only."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch

from . import cams as cam_methods
from .faces import Detection, FaceDetector, align_face, get_detector, looks_like_face_crop, whole_image_face
from .faithfulness import faithfulness_scores
from .images import ImageInput, LoadedImage, load_image
from .models import LoadedModel, load_model
from .native import read_native_maps
from .regions import agreement, region_masks, region_shares
from .result import AnalysisResult, FaceAnalysis, ModelAnalysis

Target = int | str | None


class Workbench:
    """Several models, one face detector. `analyze` runs every model on every face.

    Args:
        models: model specs accepted by `load_model` (objects, folders, Hub ids, architecture
            names, or `LoadedModel`s).
        detector: "retinaface" (default), "yunet", or a `FaceDetector`.
        threads: torch CPU threads to use (None leaves torch's setting alone).
    """

    def __init__(self, models: Iterable[Any], detector: str | FaceDetector = "retinaface",
                 threads: int | None = None) -> None:
        if threads is not None:
            torch.set_num_threads(threads)
        self.models: list[LoadedModel] = []
        for spec in models:
            loaded = load_model(spec)
            if any(existing.name == loaded.name for existing in self.models):
                loaded.name = f"{loaded.name}#{len(self.models)}"
            self.models.append(loaded)
        if not self.models:
            raise ValueError("Workbench needs at least one model")
        self.detector = get_detector(detector) if isinstance(detector, str) else detector

    def detect(self, image: ImageInput | LoadedImage) -> tuple[LoadedImage, list[Detection]]:
        """Decode `image` and find every face, largest first (no models run)."""
        loaded = load_image(image)
        return loaded, self.detector.detect(loaded.rgb)

    def analyze(self, image: ImageInput | LoadedImage, methods: Sequence[str] = ("gradcam",), target: Target = None,
                faithfulness: bool | Sequence[str] = True, regions: bool = True, native: bool = True,
                max_faces: int | None = None, assume_face: bool = False) -> AnalysisResult:
        """Explain every model's prediction on every face of `image`.

        Args:
            methods: CAM method names from `workbench.cams.METHODS` (may be empty).
            target: class to explain: None = each model's prediction; an int index; or a label
                name (models whose label map lacks it explain their prediction and say so).
            faithfulness: True (every method's map), False, or the methods to score; each scored
                map costs one batched forward of 2·17 + 10 perturbed faces.
            regions / native: compute the region shares and the native attention read-outs.
            max_faces: analyse only the largest faces.
            assume_face: skip detection and use the whole image as an already-cropped face.

        Raises `ImageError` for unreadable input; a photo without a face is a result with
        `faces == []` and `message == "no face found"`.
        """
        methods = cam_methods.validate(methods)
        if isinstance(faithfulness, bool):
            faithfulness = methods if faithfulness else []
        else:
            faithfulness = [m for m in cam_methods.validate(faithfulness) if m in methods]
        timings: dict[str, float] = {}
        start = time.perf_counter()
        loaded = load_image(image)
        timings["decode"] = _ms(start)
        start = time.perf_counter()
        detections = [] if assume_face else self.detector.detect(loaded.rgb)
        timings["detection"] = _ms(start)
        whole = not detections and (assume_face or looks_like_face_crop(loaded.rgb))
        message = None
        if whole:
            detections = [whole_image_face(loaded.rgb)]
            message = "used the whole image as an already-cropped face (no face detected)" if not assume_face else None
        elif not detections:
            message = "no face found"
        detections = detections[:max_faces] if max_faces else detections
        faces = []
        for detection in detections:
            face = FaceAnalysis(detection.box, detection.landmarks, detection.score, whole)
            for loaded_model in self.models:
                face.models[loaded_model.name] = self._analyze_model(
                    loaded_model, loaded.rgb, detection, methods, target, faithfulness, regions, native)
            faces.append(face)
        timings["total"] = _ms(start) + timings["decode"]
        notes = "; ".join(loaded.notes)
        if notes:
            message = f"{message}; {notes}" if message else notes
        return AnalysisResult(
            image=loaded.rgb, faces=faces, message=message,
            input={"sha256": loaded.sha256, "name": loaded.name, "original_size": list(loaded.original_size),
                   "working_size": list(loaded.size), "scale": round(loaded.scale, 6), "notes": loaded.notes},
            models={m.name: m.describe() for m in self.models}, methods=tuple(methods),
            detector=self.detector.describe(), timings_ms=timings)

    def _analyze_model(self, loaded_model: LoadedModel, rgb: np.ndarray, detection: Detection,
                       methods: Sequence[str], target: Target, faithfulness: Sequence[str], regions: bool,
                       native: bool) -> ModelAnalysis:
        config = loaded_model.config
        timings: dict[str, float] = {}
        notes: list[str] = []
        start = time.perf_counter()
        aligned = align_face(rgb, detection.landmarks, config.face_template, config.image_size,
                             grayscale=config.num_channels == 1)
        timings["alignment"] = _ms(start)
        pixels = to_pixel_values(aligned.image, config.image_mean, config.image_std)
        labels = loaded_model.labels
        target_index = resolve_target(target, labels, notes)
        run = cam_methods.explain(loaded_model.model, pixels, methods, target_index, want_attentions=native)
        timings.update(run.timings_ms)
        probabilities = torch.softmax(run.logits.float(), dim=-1)[0].tolist()
        predicted = int(np.argmax(probabilities))
        chosen = predicted if target_index is None else target_index
        analysis = ModelAnalysis(
            model_name=loaded_model.name, face=aligned.image, landmarks=aligned.landmarks,
            probabilities=dict(zip(labels, probabilities, strict=True)), predicted=labels[predicted],
            target=labels[chosen], cams=run.maps, timings_ms=timings, notes=notes)
        if native:
            start = time.perf_counter()
            analysis.native = read_native_maps(run.attentions, loaded_model.model.attention_names(),
                                               aligned.image.shape[:2])
            timings["native"] = _ms(start)
        if faithfulness:
            start = time.perf_counter()
            analysis.faithfulness = {method: faithfulness_scores(loaded_model.model, pixels, analysis.cams[method],
                                                                 chosen) for method in faithfulness}
            timings["faithfulness"] = _ms(start)
        if regions:
            start = time.perf_counter()
            masks = region_masks(aligned.landmarks, aligned.image.shape[:2])
            spatial = {**analysis.cams, **{k: v for k, v in analysis.native.items() if v.ndim == 2}}
            analysis.regions = {key: region_shares(heatmap, masks) for key, heatmap in spatial.items()}
            timings["regions"] = _ms(start)
        if analysis.cams:
            reference = "gradcam" if "gradcam" in analysis.cams else next(iter(analysis.cams))
            analysis.agreement_method = reference
            analysis.agreement = {name: agreement(heatmap, analysis.cams[reference])
                                  for name, heatmap in analysis.native.items() if heatmap.ndim == 2}
        return analysis


def to_pixel_values(face: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """RGB uint8 face at the model's size → 1×3×H×W tensor normalised with the config's mean/std
    (the same arithmetic as the saved ViTImageProcessor: rescale 1/255, then normalise)."""
    tensor = torch.from_numpy(np.ascontiguousarray(face)).permute(2, 0, 1).float().div_(255.0)
    mean_t = torch.tensor(list(mean), dtype=torch.float32)[:, None, None]
    std_t = torch.tensor(list(std), dtype=torch.float32)[:, None, None]
    return ((tensor - mean_t) / std_t).unsqueeze(0)


def resolve_target(target: Target, labels: Sequence[str], notes: list[str]) -> int | None:
    """None → explain the prediction; int → that class index; str → that label, when the model has it."""
    if target is None:
        return None
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if not 0 <= int(target) < len(labels):
            raise ValueError(f"target class {target} is out of range for a model with {len(labels)} classes")
        return int(target)
    if isinstance(target, str):
        lowered = [label.lower() for label in labels]
        if target.lower() in lowered:
            return lowered.index(target.lower())
        notes.append(f"target {target!r} is not among this model's labels ({', '.join(labels)}); "
                     "explaining its prediction instead")
        return None
    raise ValueError(f"target must be None, a class index or a label name, not {type(target).__name__}")


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
