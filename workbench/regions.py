"""Face regions from the five aligned landmarks, and how a map's mass is shared among them.

Regions are ellipses scaled by the inter-ocular distance d, so they follow each face's geometry
whatever template or size the model uses. Overlaps are resolved in the order eyes, brows, mouth,
nose, cheeks (a pixel belongs to the first region that claims it); the rest of the face is `other`.
"""

from __future__ import annotations

import numpy as np

from .result import REGIONS


def region_masks(landmarks: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean H×W masks for brows, eyes, nose, mouth, cheeks and other.

    `landmarks` are 5×2 (x, y): left eye, right eye, nose tip, left and right mouth corners, in
    the aligned face's pixel coordinates; `size` is (height, width).
    """
    left_eye, right_eye, nose, mouth_left, mouth_right = np.asarray(landmarks, dtype=np.float64)
    d = max(float(np.linalg.norm(right_eye - left_eye)), 1.0)
    eye_mid = (left_eye + right_eye) / 2
    mouth_mid = (mouth_left + mouth_right) / 2
    mouth_width = max(float(np.linalg.norm(mouth_right - mouth_left)), 0.5 * d)
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5

    def ellipse(center: np.ndarray, rx: float, ry: float) -> np.ndarray:
        return ((xs - center[0]) / rx) ** 2 + ((ys - center[1]) / ry) ** 2 <= 1.0

    up = np.array([0.0, -1.0])
    cheek_y = (eye_mid[1] + mouth_mid[1]) / 2
    claims = {
        "eyes": ellipse(left_eye, 0.32 * d, 0.2 * d) | ellipse(right_eye, 0.32 * d, 0.2 * d),
        "brows": ellipse(left_eye + 0.38 * d * up, 0.4 * d, 0.16 * d)
        | ellipse(right_eye + 0.38 * d * up, 0.4 * d, 0.16 * d),
        "mouth": ellipse(mouth_mid, 0.5 * mouth_width + 0.15 * d, 0.3 * d),
        "nose": ellipse((eye_mid + nose) / 2 + np.array([0.0, 0.1 * d]), 0.22 * d,
                        max(0.55 * float(np.linalg.norm(nose - eye_mid)), 0.2 * d)),
        "cheeks": ellipse(np.array([left_eye[0] - 0.05 * d, cheek_y]), 0.33 * d, 0.32 * d)
        | ellipse(np.array([right_eye[0] + 0.05 * d, cheek_y]), 0.33 * d, 0.32 * d),
    }
    taken = np.zeros((height, width), dtype=bool)
    masks = {}
    for name in ("eyes", "brows", "mouth", "nose", "cheeks"):
        masks[name] = claims[name] & ~taken
        taken |= masks[name]
    masks = {name: masks[name] for name in REGIONS}
    masks["other"] = ~taken
    return masks


def region_shares(heatmap: np.ndarray, masks: dict[str, np.ndarray]) -> dict[str, float]:
    """Share of the map's total mass inside each region (sums to 1 with `other`); all zeros for
    an empty map."""
    heatmap = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None)
    total = heatmap.sum()
    if total <= 0:
        return {name: 0.0 for name in masks}
    return {name: float(heatmap[mask].sum() / total) for name, mask in masks.items()}


def agreement(first: np.ndarray, second: np.ndarray) -> float:
    """Pearson correlation of two same-sized maps; NaN when either is constant (no location)."""
    a = np.asarray(first, dtype=np.float64).ravel()
    b = np.asarray(second, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"maps differ in size ({first.shape} vs {second.shape})")
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator > 1e-12 else float("nan")
