"""Explanation-engine timings on CPU (not a test): per model, milliseconds for detection,
alignment, a bare forward, each fast CAM method, the native read-outs and faithfulness, the
GradCAM / forward ratio, and the whole fast path (detect + align + GradCAM + native + regions)
for one face and all the models together.

    python benchmarks/explain.py [--models SPEC …] [--threads 2] [--repeats 7] [--image PHOTO]

Default models: the first three embedded zoo models (the app's defaults), or, without a zoo,
untrained patt_lite, ddamfn and attention_cnn at their paper configurations. Medians of
`--repeats` runs after one warm-up; prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib
import numpy as np
import torch

from workbench import (
    FAST_METHODS,
    Detection,
    LoadedModel,
    Workbench,
    default_models,
    load_image,
    median_ms,
    prepare_face,
)
from workbench.cams import explain
from workbench.faces import get_detector
from workbench.faithfulness import faithfulness_scores
from workbench.native import read_native_maps

PHOTO = Path(os.path.dirname(matplotlib.__file__)) / "mpl-data" / "sample_data" / "grace_hopper.jpg"


def time_model(loaded: LoadedModel, rgb: np.ndarray, landmarks: np.ndarray, repeats: int) -> dict[str, float]:
    model = loaded.model
    detection = Detection((0.0, 0.0, 1.0, 1.0), landmarks, 1.0)
    face, pixels = prepare_face(loaded, rgb, detection, whole_image=False)
    size = face.image.shape[:2]

    def forward(maps: bool = False):
        with torch.no_grad():
            return model(pixel_values=pixels, output_maps=maps)

    row = {"align": median_ms(lambda: prepare_face(loaded, rgb, detection, whole_image=False), repeats),
           "forward": median_ms(forward, repeats),
           "native": median_ms(lambda: read_native_maps(forward(True).maps, size), repeats)}
    for method in FAST_METHODS:
        row[method] = median_ms(lambda method=method: explain(model, pixels, [method], None, False), repeats)
    heatmap = explain(model, pixels, ["gradcam"], None, False).maps["gradcam"]
    row["faithfulness/map"] = median_ms(lambda: faithfulness_scores(model, pixels, heatmap, 0), max(1, repeats // 3))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--image", type=Path, default=PHOTO)
    parser.add_argument("--detector", default="retinaface", choices=["retinaface", "yunet"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    specs = args.models or default_models()
    workbench = Workbench(specs, detector=args.detector)
    image = load_image(args.image)
    detections = {name: median_ms(lambda name=name: get_detector(name).detect(image.rgb), args.repeats)
                  for name in ("retinaface", "yunet")}
    landmarks = workbench.detector.detect(image.rgb)[0].landmarks
    print(f"image {args.image.name} {image.size[0]}×{image.size[1]}, torch threads {args.threads}, "
          f"median of {args.repeats}; detection: " + ", ".join(f"{k} {v:.1f} ms" for k, v in detections.items()))
    columns = ["model", "trained", "input", "align", "forward", *FAST_METHODS, "native", "faithfulness/map",
               "GradCAM/forward"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for loaded in workbench.models:
        row = time_model(loaded, image.rgb, landmarks, args.repeats)
        config = loaded.config
        cells = [loaded.name, "yes" if loaded.trained else "no", f"{config.image_size}px×{config.num_channels}"]
        cells += [f"{row[key]:.1f}" for key in columns[3:-1]] + [f"{row['gradcam'] / row['forward']:.2f}"]
        print("| " + " | ".join(cells) + " |")
    fast = median_ms(lambda: workbench.analyze(image, methods=["gradcam"], faithfulness=False, max_faces=1),
                     args.repeats)
    print(f"\nfast path, one face × {len(workbench.models)} models, {args.detector} "
          "(decode+detect+align+GradCAM+native+regions): "
          f"{fast:.1f} ms (target < 150 ms)")


if __name__ == "__main__":
    main()
