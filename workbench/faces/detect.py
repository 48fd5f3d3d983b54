"""Face detectors with five landmarks: RetinaFace-MobileNet0.25 (default, the detector DDAMFN's
alignment uses) and YuNet through OpenCV. Both return every face, largest first, in the
coordinates of the image they were given."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
import torch
from safetensors.torch import load_file
from torchvision.ops import nms

from ..errors import ArgumentError
from .align import similarity_transform, template_points
from .retinaface import BGR_MEAN, RetinaFace, anchors, decode

HERE = Path(__file__).resolve().parent
RETINAFACE_WEIGHTS = HERE / "retinaface_mobilenet0.25.safetensors"
YUNET_WEIGHTS = HERE / "face_detection_yunet_2026may.onnx"
FACE_CROP_MAX_SIDE = 256
# A box with this share of its area inside a better-scored box is the same face found again.
CONTAINMENT_THRESHOLD = 0.7
# Landmark refinement: each face is cut out upright at a fixed scale (the ArcFace points shrunk to
# REFINE_FACE_SHARE of a REFINE_SIDE crop, so the face sits in context the way the detector was
# trained on) and detected again, also mirrored; the three landmark sets are averaged.
REFINE_SIDE, REFINE_FACE_SHARE = 224, 0.5
MIRRORED = [1, 0, 2, 4, 3]  # left/right eye and mouth corner swap in a mirror image


@dataclass
class Detection:
    """A face: box (x0, y0, x1, y1), landmarks 5×2 (left eye, right eye, nose, left and right
    mouth corner, as seen in the image) and the detector's score."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


class FaceDetector(Protocol):
    def detect(self, rgb: np.ndarray) -> list[Detection]: ...

    def describe(self) -> dict[str, Any]: ...


@lru_cache(maxsize=1)
def _retinaface() -> RetinaFace:
    network = RetinaFace()
    network.load_state_dict(load_file(str(RETINAFACE_WEIGHTS)), strict=True)
    return network.eval()


class RetinaFaceDetector:
    """Images are resized so the long side is at most `max_side` (speed) and the short side at
    least `min_side` (small inputs such as webcam thumbnails); boxes are mapped back."""

    def __init__(self, threshold: float = 0.6, nms_threshold: float = 0.4, max_side: int = 640,
                 min_side: int = 160, refine: bool = True) -> None:
        self.threshold, self.nms_threshold = threshold, nms_threshold
        self.max_side, self.min_side, self.refine = max_side, min_side, refine
        self.network = _retinaface()

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        scale = min(self.max_side / max(height, width), max(1.0, self.min_side / min(height, width)))
        resized = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR) if scale != 1 else rgb
        bgr = resized[..., ::-1].astype(np.float32) - np.array(BGR_MEAN, dtype=np.float32)
        tensor = torch.from_numpy(np.ascontiguousarray(bgr.transpose(2, 0, 1)))[None]
        with torch.no_grad():
            offsets, scores, landmark_offsets = self.network(tensor)
        h, w = resized.shape[:2]
        boxes, points = decode(offsets[0], landmark_offsets[0], anchors(h, w))
        keep = scores[0] > self.threshold
        boxes, points, kept_scores = boxes[keep], points[keep], scores[0][keep]
        keep = nms(boxes, kept_scores, self.nms_threshold)
        # Relative coordinates → pixels of the image given (the resized one maps back by 1/scale).
        to_pixels = torch.tensor([w, h], dtype=torch.float32) / scale
        detections = [Detection(tuple((boxes[i].reshape(2, 2) * to_pixels).reshape(-1).tolist()),
                                (points[i] * to_pixels).numpy().astype(np.float64), float(kept_scores[i]))
                      for i in keep.tolist()]
        detections = merge_duplicates(detections, self.nms_threshold)
        return [refine_landmarks(self._detect_once, rgb, found) for found in detections] if self.refine \
            else detections

    def _detect_once(self, rgb: np.ndarray) -> list[Detection]:
        refine, self.refine = self.refine, False
        try:
            return self.detect(rgb)
        finally:
            self.refine = refine

    def describe(self) -> dict[str, Any]:
        return {"name": "retinaface-mobilenet0.25", "weights": RETINAFACE_WEIGHTS.name,
                "threshold": self.threshold, "nms": self.nms_threshold, "max_side": self.max_side,
                "landmark_refinement": self.refine}


class YuNetDetector:
    """OpenCV's YuNet (`cv2.FaceDetectorYN`); eyes and mouth corners are put in image-left,
    image-right order to match RetinaFace."""

    def __init__(self, threshold: float = 0.6, nms_threshold: float = 0.3, max_side: int = 640) -> None:
        self.threshold, self.nms_threshold, self.max_side = threshold, nms_threshold, max_side
        self.network = cv2.FaceDetectorYN.create(str(YUNET_WEIGHTS), "", (320, 320), threshold, nms_threshold)

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        height, width = rgb.shape[:2]
        scale = min(1.0, self.max_side / max(height, width))
        resized = cv2.resize(rgb, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA) \
            if scale < 1 else rgb
        self.network.setInputSize((resized.shape[1], resized.shape[0]))
        _, faces = self.network.detect(np.ascontiguousarray(resized[..., ::-1]))
        detections = []
        for row in faces if faces is not None else []:
            x, y, w, h = (float(v) / scale for v in row[:4])
            points = row[4:14].reshape(5, 2).astype(np.float64) / scale
            points[[0, 1]] = points[[0, 1]][np.argsort(points[[0, 1], 0])]
            points[[3, 4]] = points[[3, 4]][np.argsort(points[[3, 4], 0])]
            detections.append(Detection((x, y, x + w, y + h), points, float(row[14])))
        return merge_duplicates(detections, self.nms_threshold)

    def describe(self) -> dict[str, Any]:
        return {"name": "yunet", "weights": YUNET_WEIGHTS.name, "threshold": self.threshold,
                "nms": self.nms_threshold, "max_side": self.max_side}


DETECTORS = {"retinaface": RetinaFaceDetector, "yunet": YuNetDetector}


def refine_landmarks(detect: Any, rgb: np.ndarray, found: Detection) -> Detection:
    """A second look at one face: cut it out upright at the scale the detector knows best, detect
    it there and in the mirrored cut-out, and average those landmarks with the first ones (mapped
    back to the image). A tilted or small face gets landmarks as good as an upright one's; if the
    second look finds nothing near the centre, the first landmarks stay."""
    canonical = (template_points("arcface", 1) - 0.5) * REFINE_FACE_SHARE * REFINE_SIDE + REFINE_SIDE / 2
    matrix = similarity_transform(found.landmarks, canonical)
    crop = cv2.warpAffine(rgb, matrix, (REFINE_SIDE, REFINE_SIDE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    estimates = [canonical_points for canonical_points in (
        _central_landmarks(detect(crop), canonical),
        _mirrored(_central_landmarks(detect(np.ascontiguousarray(crop[:, ::-1])), _mirrored(canonical))),
    ) if canonical_points is not None]
    if not estimates:
        return found
    inverse = cv2.invertAffineTransform(matrix)
    refined = [points @ inverse[:, :2].T + inverse[:, 2] for points in estimates]
    return Detection(found.box, np.mean([found.landmarks, *refined], axis=0), found.score)


def _central_landmarks(detections: list[Detection], expected: np.ndarray) -> np.ndarray | None:
    """The landmarks of the detection nearest to where the face was put (None if too far)."""
    if not detections:
        return None
    best = min(detections, key=lambda d: float(np.abs(d.landmarks - expected).mean()))
    inter_ocular = float(np.linalg.norm(expected[1] - expected[0]))
    return best.landmarks if float(np.linalg.norm(best.landmarks - expected, axis=1).mean()) < 0.5 * inter_ocular \
        else None


def _mirrored(points: np.ndarray | None) -> np.ndarray | None:
    if points is None:
        return None
    flipped = points[MIRRORED].copy()
    flipped[:, 0] = REFINE_SIDE - flipped[:, 0]
    return flipped


def merge_duplicates(detections: list[Detection], iou_threshold: float,
                     containment: float = CONTAINMENT_THRESHOLD) -> list[Detection]:
    """Greedy suppression, best score first, returned largest first. IoU alone keeps a small box
    lying inside a big one (IoU ≈ area ratio, low): the same face found at another anchor size
    or scale, or a part of it. Such a box is mostly inside the kept one, so containment
    (intersection / the smaller area) catches it; neighbouring faces in a grid barely touch."""
    kept: list[Detection] = []
    for candidate in sorted(detections, key=lambda d: -d.score):
        if all(not _same_face(candidate, other, iou_threshold, containment) for other in kept):
            kept.append(candidate)
    return sorted(kept, key=lambda d: -d.area)


def _same_face(first: Detection, second: Detection, iou_threshold: float, containment: float) -> bool:
    width = min(first.box[2], second.box[2]) - max(first.box[0], second.box[0])
    height = min(first.box[3], second.box[3]) - max(first.box[1], second.box[1])
    if width <= 0 or height <= 0:
        return False
    overlap = width * height
    union = first.area + second.area - overlap
    smaller = min(first.area, second.area)
    return (union > 0 and overlap / union > iou_threshold) or (smaller > 0 and overlap / smaller >= containment)


def get_detector(name: str) -> FaceDetector:
    if name not in DETECTORS:
        raise ArgumentError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")
    return DETECTORS[name]()


def looks_like_face_crop(rgb: np.ndarray) -> bool:
    """Small, roughly square images (FER2013/CK+ 48×48 crops) are faces that fill the frame:
    detectors miss them because there is no context around the face."""
    height, width = rgb.shape[:2]
    return max(height, width) <= FACE_CROP_MAX_SIDE and 0.75 <= width / height <= 1.33


def whole_image_face(rgb: np.ndarray) -> Detection:
    """The whole image as a face framed like FER2013: landmarks from the fer2013 template."""
    height, width = rgb.shape[:2]
    return Detection((0.0, 0.0, float(width), float(height)), template_points("fer2013", (width, height)), 1.0)
