"""Aligned faces next to the training framing they imitate, for the docs.

    python tools/draw_framing.py docs/framing.png                       # example photos only (shippable)
    python tools/draw_framing.py /tmp/framing.png --fer2013 6 --ckplus 6   # + real crops (keep local)

Top row: the app's public-domain example photos, aligned as the engine does it for a FER2013-trained
model (``fer2013`` template, 48 px, the size the crops have), with the template's five points. With
``--fer2013 N`` / ``--ckplus N`` (data from FER_DATA_DIR) a second and third row show the first N
crops of those datasets with the landmarks RetinaFace finds on them, so the framing can be compared
by eye. Dataset images must not be committed or shipped: write that version outside the repository.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import align_face, get_detector, load_image, test_faces
from workbench.faces.align import template_points

EXAMPLES = Path(__file__).resolve().parents[1] / "spaces" / "examples"
SIDE = 48
PADDED = 4  # a crop is upscaled this much into an edge-padded canvas so the detector sees context


def crop_landmarks(detector, gray: np.ndarray) -> np.ndarray | None:
    """RetinaFace's landmarks on a 48-px crop, in crop pixels (None when nothing is found)."""
    big = cv2.resize(gray, (SIDE * PADDED, SIDE * PADDED), interpolation=cv2.INTER_CUBIC)
    pad = SIDE * PADDED // 2
    canvas = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    found = detector.detect(np.repeat(canvas[..., None], 3, axis=2))
    return None if not found else (found[0].landmarks - pad) / PADDED


def dataset_crops(name: str, count: int) -> list[np.ndarray]:
    if name == "fer2013":
        return [np.asarray(image) for image in test_faces("fer2013", count).images]
    from training.data import ckplus_paths

    files = ckplus_paths()[:: max(1, 900 // max(count, 1))][:count]
    return [np.asarray(load_image(path).rgb)[..., 0] for path in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("docs/framing.png"))
    parser.add_argument("--fer2013", type=int, default=0, help="also the first N FER2013 PrivateTest crops")
    parser.add_argument("--ckplus", type=int, default=0, help="also N CK+ crops")
    args = parser.parse_args()
    detector = get_detector("retinaface")
    rows: list[tuple[str, list[tuple[np.ndarray, np.ndarray | None]]]] = []
    aligned = []
    for photo in sorted(EXAMPLES.glob("*.jpg")):
        rgb = load_image(photo).rgb
        face = align_face(rgb, detector.detect(rgb)[0].landmarks, "fer2013", SIDE, grayscale=True)
        aligned.append((face.image[..., 0], template_points("fer2013", SIDE)))
    rows.append(("example photos, aligned (fer2013 template, 48 px)", aligned))
    for name, count in (("fer2013", args.fer2013), ("ckplus", args.ckplus)):
        if count:
            crops = dataset_crops(name, count)
            rows.append((f"{name} crops as shipped, RetinaFace landmarks", [(c, crop_landmarks(detector, c))
                                                                            for c in crops]))
    columns = max(len(items) for _, items in rows)
    figure = Figure(figsize=(1.6 * columns, 1.9 * len(rows)), layout="constrained")
    for row, (title, items) in enumerate(rows):
        for column, (gray, points) in enumerate(items):
            axis = figure.add_subplot(len(rows), columns, row * columns + column + 1)
            axis.imshow(gray, cmap="gray", vmin=0, vmax=255)
            if points is not None:
                axis.scatter(points[:, 0], points[:, 1], s=14, c="#ff7f0e", marker="+")
            axis.set_axis_off()
            if column == 0:
                axis.set_title(title, fontsize=8, loc="left")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
