"""Similarity-transform alignment of a detected face to a model's template.

Two templates (``config.face_template``):

* ``"arcface"`` – the 112×112 five-point template of insightface (used by DDAMFN/POSTER), scaled
  to the model's input size.
* ``"fer2013"`` – where the five points sit in FER2013/CK+ 48×48 crops: a looser frame in which
  the face fills the image. Measured, not guessed: RetinaFace landmarks of FER2013 training faces
  (edge-padded and upscaled), median position in the 48×48 frame (`tools/measure_fer_template.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

ARCFACE_112 = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64) / 112.0
# Median over 386 of the first 400 FER2013 training faces (tools/measure_fer_template.py), mirrored
# left/right and averaged so the template is symmetric.
FER2013_48 = np.array([[0.3098, 0.3875], [0.6902, 0.3875], [0.5000, 0.5949],
                       [0.3548, 0.7622], [0.6452, 0.7622]], dtype=np.float64)
TEMPLATES = {"arcface": ARCFACE_112, "fer2013": FER2013_48}


@dataclass
class AlignedFace:
    """The face the model sees (RGB uint8, size×size; gray in three channels for 1-channel
    models), its landmarks in that image, and the 2×3 matrix mapping image → face pixels."""

    image: np.ndarray
    landmarks: np.ndarray
    matrix: np.ndarray


def template_points(template: str, size: int | tuple[int, int]) -> np.ndarray:
    """The template's five (x, y) points for an output of `size` (side, or (width, height))."""
    if template not in TEMPLATES:
        raise ValueError(f"unknown face template {template!r}; known: {', '.join(TEMPLATES)}")
    width, height = (size, size) if isinstance(size, int) else size
    return TEMPLATES[template] * np.array([width, height], dtype=np.float64)


def similarity_transform(source: np.ndarray, destination: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation mapping source → destination points
    (Umeyama 1991), as a 2×3 matrix. No reflection."""
    source = np.asarray(source, dtype=np.float64)
    destination = np.asarray(destination, dtype=np.float64)
    mean_s, mean_d = source.mean(axis=0), destination.mean(axis=0)
    centred_s, centred_d = source - mean_s, destination - mean_d
    covariance = centred_d.T @ centred_s / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ sign @ vt
    variance = (centred_s ** 2).sum() / len(source)
    scale = (singular * np.diag(sign)).sum() / variance if variance > 0 else 1.0
    translation = mean_d - scale * rotation @ mean_s
    return np.hstack([scale * rotation, translation[:, None]])


def align_face(rgb: np.ndarray, landmarks: np.ndarray, template: str, size: int,
               grayscale: bool = False) -> AlignedFace:
    """Warp `rgb` so that `landmarks` land on `template`'s points at `size`×`size`."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    matrix = similarity_transform(landmarks, template_points(template, size))
    face = _supersampled_warp(rgb, matrix, size)
    if grayscale:
        face = np.repeat(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    aligned = landmarks @ matrix[:, :2].T + matrix[:, 2]
    return AlignedFace(np.ascontiguousarray(face), aligned, matrix)


SUPERSAMPLING = 4


def _supersampled_warp(rgb: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Warp at SUPERSAMPLING× the output size, then area-average down to `size`.

    A bilinear warp that also shrinks samples only a few source pixels per output pixel, so the
    face comes out aliased and sharper than the area-averaged crops models are trained on, and
    its pixels change with the head's tilt. Warping near scale 1 and box-averaging afterwards
    gives every tilt the same filter. A face much larger than that is first area-downscaled to
    SUPERSAMPLING× its final scale, so the warp never shrinks by more than a factor of one.
    """
    big = SUPERSAMPLING * size
    # Output pixel i is the mean of big pixels k·i … k·i + k − 1, centred at k·i + (k − 1) / 2.
    big_matrix = matrix * SUPERSAMPLING
    big_matrix[:, 2] += (SUPERSAMPLING - 1) / 2
    scale = float(np.sqrt(abs(np.linalg.det(big_matrix[:, :2]))))
    source = rgb
    if scale < 1.0:
        width, height = max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale))
        source = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
        actual = np.array([width / rgb.shape[1], height / rgb.shape[0]])
        # Resized pixel q sits at source (q + 0.5) / actual − 0.5.
        big_matrix[:, 2] += big_matrix[:, :2] @ (0.5 / actual - 0.5)
        big_matrix[:, :2] = big_matrix[:, :2] / actual[None, :]
    face = cv2.warpAffine(source, big_matrix, (big, big), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_AREA)
