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

from .align import template_points
from .retinaface import BGR_MEAN, RetinaFace, anchors, decode

HERE = Path(__file__).resolve().parent
RETINAFACE_WEIGHTS = HERE / "retinaface_mobilenet0.25.safetensors"
YUNET_WEIGHTS = HERE / "face_detection_yunet_2026may.onnx"
FACE_CROP_MAX_SIDE = 256


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
                 min_side: int = 160) -> None:
        self.threshold, self.nms_threshold = threshold, nms_threshold
        self.max_side, self.min_side = max_side, min_side
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
        return sorted(detections, key=lambda d: -d.area)

    def describe(self) -> dict[str, Any]:
        return {"name": "retinaface-mobilenet0.25", "weights": RETINAFACE_WEIGHTS.name,
                "threshold": self.threshold, "nms": self.nms_threshold, "max_side": self.max_side}


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
        return sorted(detections, key=lambda d: -d.area)

    def describe(self) -> dict[str, Any]:
        return {"name": "yunet", "weights": YUNET_WEIGHTS.name, "threshold": self.threshold,
                "nms": self.nms_threshold, "max_side": self.max_side}


DETECTORS = {"retinaface": RetinaFaceDetector, "yunet": YuNetDetector}


def get_detector(name: str) -> FaceDetector:
    if name not in DETECTORS:
        raise ValueError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")
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
