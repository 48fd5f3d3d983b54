"""Face regions from the five aligned landmarks, and how a map's mass is shared among them.

The regions tile the face: a face oval drawn from the landmarks (about 2.3 inter-ocular distances
wide, from a forehead 1.1 d above the eyes to a chin 0.75 d below the mouth) is split into
forehead, brows, eyes, nose, mouth, cheeks and chin; `other` is what lies outside the oval (hair,
background, neck). Coordinates run along the eye axis and across it in units of the inter-ocular
distance d, so the regions follow each face's geometry, tilt and scale whatever template or input
size a model uses. Overlaps go to the first region that claims a pixel, in the order of `REGIONS`.
"""

from __future__ import annotations

import numpy as np

REGIONS = ("eyes", "brows", "mouth", "nose", "forehead", "chin", "cheeks")
FACE_HALF_WIDTH, FOREHEAD, CHIN = 1.15, 1.1, 0.75  # in inter-ocular distances


def region_masks(landmarks: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Boolean H×W masks for each of `REGIONS` and `other`; together they partition the image.

    `landmarks` are 5×2 (x, y): left eye, right eye, nose tip, left and right mouth corners, in
    the aligned face's pixel coordinates; `size` is (height, width).
    """
    left_eye, right_eye, nose, mouth_left, mouth_right = np.asarray(landmarks, dtype=np.float64)
    axis = right_eye - left_eye
    d = max(float(np.linalg.norm(axis)), 1.0)
    across = axis / d  # along the eyes, left → right
    down = np.array([-across[1], across[0]])  # perpendicular, towards the mouth
    eye_mid = (left_eye + right_eye) / 2
    height, width = size
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    offset = np.stack([xs - eye_mid[0], ys - eye_mid[1]], axis=-1)
    a, b = offset @ across / d, offset @ down / d  # face coordinates, in units of d

    def coords(point: np.ndarray) -> tuple[float, float]:
        return float((point - eye_mid) @ across / d), float((point - eye_mid) @ down / d)

    def ellipse(center: tuple[float, float], ra: float, rb: float) -> np.ndarray:
        return ((a - center[0]) / ra) ** 2 + ((b - center[1]) / rb) ** 2 <= 1.0

    (eye_a, _), (nose_a, nose_b) = coords(right_eye), coords(nose)
    mouth_a, mouth_b = coords((mouth_left + mouth_right) / 2)
    mouth_b = max(mouth_b, nose_b + 0.2)
    mouth_half = max(float(np.linalg.norm(mouth_right - mouth_left)) / (2 * d), 0.25)
    top, bottom = -FOREHEAD, mouth_b + CHIN
    face = ellipse((0.0, (top + bottom) / 2), FACE_HALF_WIDTH, (bottom - top) / 2)
    claims = {
        "eyes": ellipse((-eye_a, 0.0), 0.36, 0.2) | ellipse((eye_a, 0.0), 0.36, 0.2),
        "brows": ellipse((-eye_a, -0.36), 0.44, 0.17) | ellipse((eye_a, -0.36), 0.44, 0.17),
        "mouth": ellipse((mouth_a, mouth_b), mouth_half + 0.2, 0.28),
        "nose": (np.abs(a - nose_a) <= 0.27) & (b >= -0.15) & (b <= nose_b + 0.17),
        "forehead": b < -0.2,
        "chin": b > mouth_b + 0.2,
        "cheeks": np.ones_like(face),
    }
    taken = ~face
    masks = {}
    for name in REGIONS:
        masks[name] = claims[name] & ~taken
        taken |= masks[name]
    masks["other"] = ~face
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
