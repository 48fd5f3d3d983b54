"""Faces: detection with five landmarks and alignment to each model's template."""

from .align import TEMPLATES, AlignedFace, align_face, similarity_transform, template_points
from .detect import (
    DETECTORS,
    Detection,
    FaceDetector,
    RetinaFaceDetector,
    YuNetDetector,
    get_detector,
    looks_like_face_crop,
    whole_image_face,
)

__all__ = [
    "DETECTORS", "TEMPLATES", "AlignedFace", "Detection", "FaceDetector", "RetinaFaceDetector", "YuNetDetector",
    "align_face", "get_detector", "looks_like_face_crop", "similarity_transform", "template_points",
    "whole_image_face",
]
