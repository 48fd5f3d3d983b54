"""Landmark quality under known transforms, and what it does to the aligned face and the prediction.

Each photo is rotated, scaled, shifted and mirrored by known amounts; the landmarks found on the
transformed photo are compared with the original photo's landmarks moved by the same transform
(error as a share of the inter-ocular distance), the face aligned from the transformed photo with
the one aligned from the original (Pearson correlation of the grey pixels), and a model's
prediction on both.

Photos: the app's public-domain examples, plus `--ckplus N` CK+ faces (48 px, from FER_DATA_DIR)
upscaled and pasted into a larger canvas, so that the detector sees them with context.

    python benchmarks/landmarks.py --detectors retinaface yunet --ckplus 40
    python benchmarks/landmarks.py --models fer-workbench/patt-lite-fer2013 --detectors retinaface

A benchmark, not a test: it prints a markdown table of medians and shares.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import torch

from hub_models import zoo
from workbench import Detection, align_face, get_detector, load_image, load_model, prepare_face, short_model_name

EXAMPLES = Path(__file__).resolve().parents[1] / "spaces" / "examples"
TRANSFORMS = {"rotate -15°": (-15, 1.0, (0, 0), False), "rotate -10°": (-10, 1.0, (0, 0), False),
              "rotate -5°": (-5, 1.0, (0, 0), False), "rotate +5°": (5, 1.0, (0, 0), False),
              "rotate +10°": (10, 1.0, (0, 0), False), "rotate +15°": (15, 1.0, (0, 0), False),
              "scale 0.7": (0, 0.7, (0, 0), False), "scale 1.3": (0, 1.3, (0, 0), False),
              "shift 8 %": (0, 1.0, (0.08, -0.05), False), "mirror": (0, 1.0, (0, 0), True),
              # The model's own sensitivity: how often a prediction changes when nothing but the pixel
              # grid moves (the ceiling for "prediction unchanged" under any transform).
              "shift 1 px": (0, 1.0, (1, 0), False)}
FACE_SIDE = 64


def transform_matrix(size: tuple[int, int], degrees: float, scale: float, shift: tuple[float, float],
                     mirror: bool) -> np.ndarray:
    """2×3 matrix of the known transform about the image centre (degrees counter-clockwise); a shift
    below 1 is a share of the side, 1 or more is pixels."""
    height, width = size
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, scale)
    matrix[:, 2] += [value if abs(value) >= 1 else value * side for value, side in zip(shift, (width, height),
                                                                                         strict=True)]
    if mirror:
        matrix = np.array([[-1.0, 0, width], [0, 1, 0]]) @ np.vstack([matrix, [0, 0, 1]])
    return matrix


def moved(points: np.ndarray, matrix: np.ndarray, mirror: bool) -> np.ndarray:
    """Landmarks through the transform; a mirror also swaps left/right eye and mouth corner."""
    out = points @ matrix[:, :2].T + matrix[:, 2]
    return out[[1, 0, 2, 4, 3]] if mirror else out


def largest(detector, rgb: np.ndarray) -> Detection | None:
    found = detector.detect(rgb)
    return found[0] if found else None


def correlation(first: np.ndarray, second: np.ndarray) -> float:
    a = cv2.cvtColor(first, cv2.COLOR_RGB2GRAY).astype(np.float64).ravel()
    b = cv2.cvtColor(second, cv2.COLOR_RGB2GRAY).astype(np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def pasted_ckplus(count: int, seed: int = 0) -> list[np.ndarray]:
    """CK+ faces upscaled to 160 px and pasted at random places into 400×400 noisy canvases."""
    from training.data import ckplus_paths

    files = ckplus_paths()
    rng = np.random.default_rng(seed)
    photos = []
    for path in rng.choice(files, size=min(count, len(files)), replace=False):
        face = cv2.resize(np.asarray(load_image(path).rgb), (160, 160), interpolation=cv2.INTER_CUBIC)
        canvas = np.clip(rng.normal(120, 25, (400, 400, 3)), 0, 255).astype(np.uint8)
        y, x = rng.integers(60, 180, size=2)
        canvas[y:y + 160, x:x + 160] = face
        photos.append(canvas)
    return photos


def measure(detector, photos: list[np.ndarray], models: list) -> dict[str, list[tuple]]:
    rows: dict[str, list[tuple]] = {}
    for rgb in photos:
        original = largest(detector, rgb)
        if original is None:
            continue
        reference = align_face(rgb, original.landmarks, "fer2013", FACE_SIDE).image
        predicted = [predict(model, rgb, original) for model in models]
        iod = float(np.linalg.norm(original.landmarks[1] - original.landmarks[0]))
        for name, (degrees, scale, shift, mirror) in TRANSFORMS.items():
            matrix = transform_matrix(rgb.shape[:2], degrees, scale, shift, mirror)
            warped = cv2.warpAffine(rgb, matrix, (rgb.shape[1], rgb.shape[0]), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT101)
            found = largest(detector, warped)
            row = rows.setdefault(name, [])
            if found is None:
                row.append(None)
                continue
            expected = moved(original.landmarks, matrix, mirror)
            error = float(np.linalg.norm(found.landmarks - expected, axis=1).mean() / (iod * scale))
            aligned = align_face(warped, found.landmarks, "fer2013", FACE_SIDE).image
            if mirror:
                aligned = aligned[:, ::-1]
            same = [float(predict(model, warped, found) == before) for model, before in zip(models, predicted,
                                                                                         strict=True)]
            row.append((error, correlation(reference, aligned), *same))
    return rows


def predict(model, rgb: np.ndarray, detection: Detection, whole_image: bool = False) -> int:
    """The model's class index for the face, through the engine's one path to pixels."""
    _, pixels = prepare_face(model, rgb, detection, whole_image=whole_image)
    with torch.no_grad():
        return int(model.model(pixel_values=pixels).logits.argmax())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--detectors", nargs="+", default=["retinaface", "yunet"])
    parser.add_argument("--ckplus", type=int, default=0, help="also N CK+ faces pasted into canvases")
    parser.add_argument("--models", nargs="*", default=None,
                        help="models whose predictions are compared (default: the zoo's default models)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    photos = [np.asarray(load_image(path).rgb) for path in sorted(EXAMPLES.glob("*.jpg"))]
    photos += pasted_ckplus(args.ckplus) if args.ckplus else []
    specs = zoo.default_ids() if args.models is None else args.models
    models = [load_model(spec) for spec in specs]
    print(f"{len(photos)} photos ({args.ckplus} pasted CK+); aligned faces: fer2013 template, {FACE_SIDE} px; "
          f"prediction unchanged: {', '.join(specs) or 'no model'}\n")
    unchanged = "".join(f" unchanged, {short_model_name(spec)} |" for spec in specs)
    print("| detector | transform | faces | landmark error (median, × IOD) | mean error | aligned-face r (median) |"
          f"{unchanged}\n|---|---|---:|---:|---:|---:|" + "---:|" * len(specs))
    for name in args.detectors:
        detector = get_detector(name)
        for transform, values in measure(detector, photos, models).items():
            found = [v for v in values if v is not None]
            if not found:
                print(f"| {name} | {transform} | 0/{len(values)} | – | – | – |" + " – |" * len(specs))
                continue
            errors, correlations, *same = zip(*found, strict=True)
            shares = "".join(f" {100 * statistics.fmean(kept):.1f}% |" for kept in same)
            print(f"| {name} | {transform} | {len(found)}/{len(values)} | {statistics.median(errors):.3f} | "
                  f"{statistics.fmean(errors):.3f} | {statistics.median(correlations):.3f} |{shares}", flush=True)


if __name__ == "__main__":
    main()
