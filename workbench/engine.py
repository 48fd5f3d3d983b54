"""`Workbench`: faces in, aligned explanations out, for every model, through the protocol only."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from hub_models.preprocessing import face_as_seen, pixel_values

from . import cams as cam_methods
from .errors import ArgumentError
from .faces import Detection, FaceDetector, align_face, get_detector, looks_like_face_crop, whole_image_face
from .faces.align import AlignedFace
from .faithfulness import faithfulness_scores
from .images import ImageInput, LoadedImage, load_image
from .labels import label_index
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
            raise ArgumentError("Workbench needs at least one model")
        self.detector = get_detector(detector) if isinstance(detector, str) else detector

    def detect(self, image: ImageInput | LoadedImage) -> tuple[LoadedImage, list[Detection]]:
        """Decode `image` and find every face, largest first (no models run)."""
        loaded = load_image(image)
        return loaded, self.detector.detect(loaded.rgb)

    def analyze(self, image: ImageInput | LoadedImage, methods: Sequence[str] = ("gradcam",), target: Target = None,
                faithfulness: bool | Sequence[str] = True, regions: bool = True, native: bool = True,
                max_faces: int | None = None, assume_face: bool = False,
                progress: Callable[[float, str], object] | None = None) -> AnalysisResult:
        """Explain every model's prediction on every face of `image`.

        Args:
            methods: CAM method names from `workbench.cams.METHODS` (may be empty).
            target: class to explain: None = each model's prediction; an int index; or a label
                name (models whose label map lacks it explain their prediction and say so).
            faithfulness: True (every method's map), False, or the methods to score; each scored
                map costs one batched forward of 2·17 + 10 perturbed faces.
            regions / native: compute the region shares and the native attention read-outs.
            max_faces: analyse only the N largest faces (None = every face; N ≥ 1).
            assume_face: skip detection and use the whole image as an already-cropped face.
            progress: called with (share done, what runs next) before each face × model, for a
                progress bar (slow CAM methods take seconds per model on a CPU).

        Raises `ArgumentError` for invalid arguments (before any work) and `ImageError` for
        unreadable input; a photo without a face is a result with `faces == []` and
        `message == "no face found"`.
        """
        methods, faithfulness = self.check_request(methods, target, faithfulness, max_faces)
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
        detections = detections[:max_faces] if max_faces is not None else detections
        faces = []
        steps = len(detections) * len(self.models)
        for face_index, detection in enumerate(detections):
            face = FaceAnalysis(detection.box, detection.landmarks, detection.score, whole)
            for model_index, loaded_model in enumerate(self.models):
                if progress is not None:
                    progress((face_index * len(self.models) + model_index) / steps,
                             f"face {face_index + 1} of {len(detections)}: {loaded_model.name}")
                face.models[loaded_model.name] = self._analyze_model(
                    loaded_model, loaded.rgb, detection, whole, methods, target, faithfulness, regions, native)
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

    def check_request(self, methods: Sequence[str] = ("gradcam",), target: Target = None,
                      faithfulness: bool | Sequence[str] = True,
                      max_faces: int | None = None) -> tuple[list[str], list[str]]:
        """Check `analyze`'s arguments against these models and return the normalised (methods,
        faithfulness methods). Run before any decoding, so a typo fails at once with the accepted
        values; the CLI calls it once per run rather than failing every image."""
        methods = cam_methods.validate(methods)
        if isinstance(faithfulness, bool):
            scored = methods if faithfulness else []
        else:
            scored = [m for m in cam_methods.validate(faithfulness) if m in methods]
        for loaded_model in self.models:
            check_target(target, loaded_model.labels, loaded_model.name)
        check_max_faces(max_faces)
        return methods, scored

    def _analyze_model(self, loaded_model: LoadedModel, rgb: np.ndarray, detection: Detection, whole_image: bool,
                       methods: Sequence[str], target: Target, faithfulness: Sequence[str], regions: bool,
                       native: bool) -> ModelAnalysis:
        timings: dict[str, float] = {}
        notes: list[str] = []
        start = time.perf_counter()
        aligned, pixels = prepare_face(loaded_model, rgb, detection, whole_image)
        timings["alignment"] = _ms(start)
        labels = loaded_model.labels
        target_index = resolve_target(target, labels, notes)
        run = cam_methods.explain(loaded_model.model, pixels, methods, target_index, want_native=native)
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
            analysis.native = read_native_maps(run.native, aligned.image.shape[:2])
            timings["native"] = _ms(start)
        if faithfulness:
            start = time.perf_counter()
            add_faithfulness(loaded_model, analysis, faithfulness, pixels)
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


def prepare_face(loaded_model: LoadedModel, rgb: np.ndarray, detection: Detection,
                 whole_image: bool) -> tuple[AlignedFace, torch.Tensor]:
    """The face a model sees and its input tensor, both through the model's own processor (the
    one path training and evaluation use): a detected face is first aligned to the model's template
    at its size (the processor's resize is then the identity); an already-cropped face (FER2013,
    CK+) goes to the processor as it is, exactly as in training, and is shown as the model saw it."""
    config = loaded_model.config
    grayscale = config.num_channels == 1
    if not whole_image:
        aligned = align_face(rgb, detection.landmarks, config.face_template, config.image_size, grayscale=grayscale)
        return aligned, pixel_values(loaded_model.processor, aligned.image)
    source = np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2) if grayscale else rgb
    pixels = pixel_values(loaded_model.processor, source)
    height, width = rgb.shape[:2]
    scale = np.array([config.image_size / width, config.image_size / height])
    matrix = np.array([[scale[0], 0.0, 0.0], [0.0, scale[1], 0.0]])
    face = face_as_seen(pixels, config.image_mean, config.image_std)
    return AlignedFace(face, np.asarray(detection.landmarks, dtype=np.float64) * scale, matrix), pixels


def add_faithfulness(loaded_model: LoadedModel, analysis: ModelAnalysis, methods: Sequence[str] | None = None,
                       pixels: torch.Tensor | None = None) -> dict[str, dict[str, float]]:
    """Deletion/insertion/ROAD scores of an analysis's maps (all of its CAMs by default), stored in
    ``analysis.faithfulness``: the app computes them after the maps are on screen."""
    if pixels is None:
        pixels = pixel_values(loaded_model.processor, analysis.face)
    target = loaded_model.labels.index(analysis.target)
    for method in analysis.cams if methods is None else methods:
        analysis.faithfulness[method] = faithfulness_scores(loaded_model.model, pixels, analysis.cams[method], target)
    return analysis.faithfulness


def check_target(target: Target, labels: Sequence[str], model_name: str = "the model") -> None:
    """A target is None, a class index in range (bools and floats are not indices), or a label
    name (unknown names are allowed: that model explains its prediction and says so)."""
    if target is None or isinstance(target, str):
        return
    choices = f"give 0–{len(labels) - 1} or a label name ({', '.join(labels)})"
    if isinstance(target, (int, np.integer)) and not isinstance(target, (bool, np.bool_)):
        if not 0 <= int(target) < len(labels):
            raise ArgumentError(f"target class {target} is out of range for {model_name} with "
                                f"{len(labels)} classes; {choices}")
        return
    raise ArgumentError(f"target must be None, a class index or a label name, not {type(target).__name__} "
                        f"{target!r}; {choices}")


def check_max_faces(max_faces: int | None) -> None:
    """None analyses every face; otherwise a positive count (0 and negatives would silently mean
    "all" or "all but the last")."""
    valid = isinstance(max_faces, (int, np.integer)) and not isinstance(max_faces, (bool, np.bool_))
    if max_faces is not None and not (valid and max_faces >= 1):
        raise ArgumentError(f"max_faces must be None (every face) or a positive whole number, not {max_faces!r}")


def resolve_target(target: Target, labels: Sequence[str], notes: list[str]) -> int | None:
    """None → explain the prediction; int → that class index; str → that expression, when the model
    has it under any spelling ("happiness" finds FER2013's "happy")."""
    check_target(target, labels)
    if target is None:
        return None
    if isinstance(target, str):
        index = label_index(target, labels)
        if index is not None:
            return index
        notes.append(f"target {target!r} is not among this model's labels ({', '.join(labels)}); "
                     "explaining its prediction instead")
        return None
    return int(target)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
