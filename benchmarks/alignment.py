"""Does alignment ever cost accuracy? Each labelled face crop is fed to a model twice: as the tight
crop itself (what the model saw in training), and as a photo: upscaled 4× into a larger noisy
canvas, detected, and aligned to the model's template by the engine. Both paths go through
`workbench.prepare_face`, the engine's one path from a face to pixel values.

Faces: the first `--fer2013 N` FER2013 PrivateTest crops, and every CK+ (48 px) face whose class
the model knows (`--ckplus`). `--canvas reflect` surrounds the face with its own mirrored border
instead of noise: where the template reaches past a tight crop the aligned face then holds
continuous, face-like context, as hair and background are in a real photo; comparing the two
canvases tells how much of the aligned path's loss is the noise border, not the alignment. Prints a
markdown table: accuracy of each path on the faces the detector found, how often the two paths
agree, and how often each is right where the other is wrong.

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
    print("| faces | model | detected | accuracy, tight crop | accuracy, aligned | same prediction "
          "| only aligned right | only tight right |\n|---|---|---:|---:|---:|---:|---:|---:|")
    for name, faces in labelled_faces(args.fer2013, args.ckplus).items():
        rng = np.random.default_rng(0)
        photos = [(as_photo(gray, rng, args.canvas), gray, label) for gray, label in faces]
        found = [(photo, detector.detect(photo), gray, label) for photo, gray, label in photos]
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
                whole = Detection((0, 0, crop.shape[1], crop.shape[0]), np.zeros((5, 2)), 1.0)
                tight = predict(loaded, crop, whole, whole_image=True)
                aligned = predict(loaded, photo, detections[0], whole_image=False)
                rows.append((tight == truth, aligned == truth, tight == aligned))
            scored = np.array([r for r in rows if r is not None], dtype=bool).reshape(-1, 3)
            tight, aligned, same = scored.T
            print(f"| {name} | {loaded.name} | {len(scored)}/{len(rows)} | {tight.mean():.2%} | {aligned.mean():.2%} | "
                  f"{same.mean():.2%} | {(aligned & ~tight).mean():.2%} | {(tight & ~aligned).mean():.2%} |",
                  flush=True)


if __name__ == "__main__":
    main()
