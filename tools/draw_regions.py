"""Draw the face regions on aligned faces of the app's public-domain example photos, for the docs.

    python tools/draw_regions.py docs/regions.png

Each face is detected and aligned exactly as the engine does it (FER2013 framing at 96 px and the
ArcFace framing at 112 px), then each region is tinted in its own colour; `other` is left as is.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import REGIONS, align_face, get_detector, load_image, region_masks

EXAMPLES = Path(__file__).resolve().parents[1] / "spaces" / "examples"
COLOURS = {"eyes": "#1f77b4", "brows": "#9467bd", "mouth": "#d62728", "nose": "#ff7f0e", "forehead": "#2ca02c",
           "chin": "#8c564b", "cheeks": "#e377c2"}
FRAMINGS = (("fer2013", 96), ("arcface", 112))


def tinted(face: np.ndarray, masks: dict[str, np.ndarray]) -> np.ndarray:
    picture = face.astype(np.float64)
    for name in REGIONS:
        colour = np.array([int(COLOURS[name][i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64)
        picture[masks[name]] = 0.55 * picture[masks[name]] + 0.45 * colour
    return picture.astype(np.uint8)


def main(out: Path) -> None:
    detector = get_detector("retinaface")
    photos = sorted(EXAMPLES.glob("*.jpg"))
    figure = Figure(figsize=(2.2 * 2 * len(FRAMINGS), 2.4 * len(photos)), layout="constrained")
    for row, photo in enumerate(photos):
        rgb = load_image(photo).rgb
        detection = detector.detect(rgb)[0]
        for column, (template, size) in enumerate(FRAMINGS):
            aligned = align_face(rgb, detection.landmarks, template, size)
            masks = region_masks(aligned.landmarks, (size, size))
            for offset, picture in enumerate((aligned.image, tinted(aligned.image, masks))):
                columns = 2 * len(FRAMINGS)
                axis = figure.add_subplot(len(photos), columns, row * columns + 2 * column + offset + 1)
                axis.imshow(picture)
                axis.set_axis_off()
                if row == 0:
                    axis.set_title(f"{template} {size} px" + (" · regions" if offset else ""), fontsize=8)
    handles = [Patch(color=COLOURS[name], label=name) for name in REGIONS]
    figure.legend(handles=handles, loc="outside lower center", ncols=len(REGIONS), fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/regions.png"))
