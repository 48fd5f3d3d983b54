"""Does alignment ever cost accuracy? Each labelled face crop is fed to a model three ways: as the
tight crop itself (what the model saw in training), and as a photo (upscaled 4× into a larger noisy
canvas and detected), either cut out as the detector's box made square (what a photo offers without
alignment) or aligned to the model's template by the engine. All paths go through
`workbench.prepare_face`, the engine's one path from a face to pixel values.

The tight crop knows each FER2013 face's own framing, which no photo path can: a second table shows
how much the true crop's scale, centre and tilt vary relative to what the landmarks (the template's
similarity transform) and the box imply (interquartile ranges over the faces).

Faces: the first `--fer2013 N` FER2013 PrivateTest crops, and every CK+ (48 px) face whose class
the model knows (`--ckplus`). `--canvas reflect` surrounds the face with its own mirrored border
instead of noise: where the template reaches past a tight crop the aligned face then holds
continuous, face-like context, as hair and background are in a real photo; comparing the two
canvases tells how much of the aligned path's loss is the noise border, not the alignment. Prints a
markdown table: accuracy of each path on the faces the detector found, how often the aligned and tight
paths agree, and how often each is right where the other is wrong.

    python benchmarks/alignment.py --fer2013 1000 --ckplus
    python benchmarks/alignment.py --fer2013 1000 --canvas reflect
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2
import numpy as np
import torch
from landmarks import predict  # the sibling benchmark (this folder is on sys.path when run as a script)

from workbench import Detection, canonical, get_detector, load_image, load_model, test_faces
from workbench.faces import whole_image_face
from workbench.faces.align import similarity_transform, template_points

UPSCALE = 4
MARGIN = 0.75  # canvas margin on each side, as a share of the upscaled face


def as_photo(gray: np.ndarray, rng: np.random.Generator, canvas: str = "noise") -> np.ndarray:
    """The crop upscaled into the middle of a larger canvas, so that the detector sees context."""
    side = gray.shape[0] * UPSCALE
    face = cv2.resize(gray, (side, side), interpolation=cv2.INTER_CUBIC)
    margin = int(side * MARGIN)
    if canvas == "reflect":
        photo = cv2.copyMakeBorder(face, *(margin,) * 4, cv2.BORDER_REFLECT_101)
    else:
        photo = np.clip(rng.normal(120, 25, (side + 2 * margin,) * 2), 0, 255).astype(np.uint8)
        photo[margin:margin + side, margin:margin + side] = face
    return np.repeat(photo[..., None], 3, axis=2)


def box_crop(photo: np.ndarray, detection: Detection) -> np.ndarray:
    """The detector's box widened to a square about its centre (clipped to the photo), uncropped."""
    x0, y0, x1, y1 = detection.box
    half = max(x1 - x0, y1 - y0) / 2
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    top, left = max(0, round(cy - half)), max(0, round(cx - half))
    return photo[top:round(cy + half), left:round(cx + half)]


def framing_spread(found: list, side: int) -> dict[str, tuple[float, float, float, float]]:
    """Interquartile ranges of the true crop's log scale, centre (x, y, as a share of its side) and
    tilt relative to the square each method implies: the landmarks through the fer2013 template's
    similarity transform, and the detector box."""
    rows = {"landmarks (fer2013 template)": [], "detector box": []}
    for photo, detections, _, _ in found:
        if not detections:
            continue
        margin = (photo.shape[0] - side) / 2
        centre = margin + side / 2
        matrix = similarity_transform(detections[0].landmarks, template_points("fer2013", 1))
        scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
        implied = np.linalg.solve(matrix[:, :2], np.array([0.5, 0.5]) - matrix[:, 2])
        tilt = float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))
        rows["landmarks (fer2013 template)"].append(
            (np.log(side * scale), *((centre - implied) / side), tilt))
        x0, y0, x1, y1 = detections[0].box
        rows["detector box"].append((np.log(side / np.sqrt((x1 - x0) * (y1 - y0))),
                                     (centre - (x0 + x1) / 2) / side, (centre - (y0 + y1) / 2) / side, 0.0))
    spread = {}
    for method, values in rows.items():
        q1, q3 = np.percentile(np.array(values), [25, 75], axis=0)
        spread[method] = tuple(q3 - q1)
    return spread


def labelled_faces(fer2013: int, ckplus: bool) -> dict[str, list[tuple[np.ndarray, str]]]:
    sets: dict[str, list[tuple[np.ndarray, str]]] = {}
    if fer2013:
        faces = test_faces("fer2013", fer2013)
        sets[f"FER2013 PrivateTest (first {len(faces)})"] = [
            (np.asarray(image), faces.labels[label]) for image, label in zip(faces.images, faces.truth, strict=True)]
    if ckplus:
        from training.data import ckplus_paths

        sets["CK+ (48 px, all folds)"] = [(np.asarray(load_image(path).rgb)[..., 0], path.parent.name)
                                         for path in ckplus_paths()]
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["fer-workbench/patt-lite-fer2013",
                                                        "fer-workbench/vgg19-cbam-fer2013"])
    parser.add_argument("--fer2013", type=int, default=1000, help="first N FER2013 PrivateTest faces (0: none)")
    parser.add_argument("--ckplus", action="store_true", help="also every CK+ face of a class the model knows")
    parser.add_argument("--detector", default="retinaface")
    parser.add_argument("--canvas", choices=("noise", "reflect"), default="noise",
                        help="what surrounds the upscaled crop: noise, or the crop's mirrored border")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = get_detector(args.detector)
    models = [load_model(spec) for spec in args.models]
    print(f"tight crop vs {args.detector} detection + alignment in a {UPSCALE}× upscaled, {args.canvas} canvas\n")
    print("| faces | model | detected | accuracy, tight crop | accuracy, box crop | accuracy, aligned "
          "| same prediction | only aligned right | only tight right |\n|---|---|---:|---:|---:|---:|---:|---:|---:|")
    spreads = {}
    for name, faces in labelled_faces(args.fer2013, args.ckplus).items():
        rng = np.random.default_rng(0)
        photos = [(as_photo(gray, rng, args.canvas), gray, label) for gray, label in faces]
        found = [(photo, detector.detect(photo), gray, label) for photo, gray, label in photos]
        spreads[name] = framing_spread(found, faces[0][0].shape[0] * UPSCALE)
        for loaded in models:
            known = [canonical(label) for label in loaded.labels]
            rows = []
            for photo, detections, gray, label in found:
                if canonical(label) not in known:
                    continue
                truth = known.index(canonical(label))
                if not detections:
                    rows.append(None)
                    continue
                crop = np.repeat(gray[..., None], 3, axis=2)
                tight = predict(loaded, crop, whole_image_face(crop), whole_image=True)
                square = box_crop(photo, detections[0])
                boxed = predict(loaded, square, whole_image_face(square), whole_image=True)
                aligned = predict(loaded, photo, detections[0], whole_image=False)
                rows.append((tight == truth, boxed == truth, aligned == truth, tight == aligned))
            scored = np.array([r for r in rows if r is not None], dtype=bool).reshape(-1, 4)
            tight, boxed, aligned, same = scored.T
            print(f"| {name} | {loaded.name} | {len(scored)}/{len(rows)} | {tight.mean():.2%} | {boxed.mean():.2%} | "
                  f"{aligned.mean():.2%} | {same.mean():.2%} | {(aligned & ~tight).mean():.2%} | "
                  f"{(tight & ~aligned).mean():.2%} |", flush=True)
    print("\nSpread of the true crop's framing relative to each photo method (interquartile range)\n\n"
          "| faces | relative to | log scale | centre x (× side) | centre y (× side) | tilt (°) |\n"
          "|---|---|---:|---:|---:|---:|")
    for name, spread in spreads.items():
        for method, (scale, dx, dy, tilt) in spread.items():
            print(f"| {name} | {method} | {scale:.3f} | {dx:.3f} | {dy:.3f} | {tilt:.1f} |")


if __name__ == "__main__":
    main()
