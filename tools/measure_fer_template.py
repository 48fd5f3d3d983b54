"""Measure where the five landmarks sit in FER2013 48×48 crops (the "fer2013" face template).

Detectors find nothing in raw 48×48 crops (no context), so each face is padded by its own edge
pixels to 3× its size, upscaled, and run through RetinaFace; landmarks are mapped back to the
48×48 frame and the per-point median over all detected faces is printed.

    FER_DATA_DIR=../shared/data python tools/measure_fer_template.py [N]
"""

from __future__ import annotations

import gzip
import itertools
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from workbench.faces import RetinaFaceDetector

DATA = Path(os.environ.get("FER_DATA_DIR", Path(__file__).resolve().parents[1] / "../shared/data"))


def fer_faces(count: int) -> list[np.ndarray]:
    with gzip.open(DATA / "fer2013" / "fer2013.csv.gz", "rt") as handle:
        next(handle)
        rows = itertools.islice(handle, count)
        return [np.array(row.split(",")[1].split(), dtype=np.uint8).reshape(48, 48) for row in rows]


def main(count: int = 400) -> None:
    detector = RetinaFaceDetector(threshold=0.8, min_side=432)
    points = []
    for face in fer_faces(count):
        padded = cv2.copyMakeBorder(face, 48, 48, 48, 48, cv2.BORDER_REPLICATE)
        found = detector.detect(np.repeat(padded[..., None], 3, axis=2))
        if found:
            points.append((found[0].landmarks - 48) / 48)
    template = np.median(np.stack(points), axis=0)
    print(f"{len(points)} of {count} faces detected; median landmarks (fraction of the 48-px side):")
    print(np.array2string(np.round(template, 4), separator=", "))


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
