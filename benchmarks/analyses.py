"""Speed of the dataset-scale analyses on CPU (not a test): calibration scoring and the attention
atlas per 1,000 faces, both probes per face, and explained video frames per second for one and for
three models.

    python benchmarks/analyses.py [--models SPEC …] [--faces 210] [--threads 2]

FER2013 PrivateTest faces from FER_DATA_DIR; the video is made here from an example photo drifting
sideways (one face). Default models: the app's defaults. Prints a Markdown table; the figures
depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench import (
    Workbench,
    attention_atlas,
    default_models,
    explain_video,
    load_model,
    probe_perturbations,
    probe_regions,
    score_faces,
    test_faces,
    time_ms,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "spaces" / "examples" / "grace_hopper.jpg"


def per_item_ms(step, items: list) -> float:
    return time_ms(lambda: [step(item) for item in items]) / len(items)


def clip(path: Path, frames: int = 30, fps: int = 10) -> Path:
    photo = cv2.resize(cv2.imread(str(EXAMPLE)), (400, 500))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (360, 460))
    for index in range(frames):
        writer.write(np.ascontiguousarray(photo[20:480, index % 40:index % 40 + 360]))
    writer.release()
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=None)
    parser.add_argument("--faces", type=int, default=210, help="faces for calibration and the atlas (÷ 7 per class)")
    parser.add_argument("--probe-faces", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = [load_model(spec) for spec in args.models or default_models()]
    faces = test_faces("fer2013", 3584)
    sample = test_faces("fer2013", args.faces)
    print(f"torch threads {args.threads}; {args.faces} FER2013 PrivateTest faces for scoring and the atlas "
          f"({args.faces // 7} per class), {args.probe_faces} for the probes\n")
    print("| model | calibration scoring, s / 1,000 faces | atlas (Grad-CAM), s / 1,000 faces "
          "| region probe, ms / face | robustness probe (9 perturbations), ms / face | video, explained frames / s |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        video = clip(Path(folder) / "clip.avi")
        for loaded in models:
            scoring = time_ms(lambda loaded=loaded: score_faces(loaded, sample)) / len(sample)
            atlas = time_ms(lambda loaded=loaded: attention_atlas([loaded], faces, per_class=args.faces // 7)) \
                / (7 * (args.faces // 7))
            workbench = Workbench([loaded])
            analyses = [workbench.analyze(faces.images[index], methods=["gradcam"], assume_face=True,
                                          faithfulness=False, native=False).faces[0].models[loaded.name]
                        for index in range(args.probe_faces)]
            region = per_item_ms(lambda analysis, loaded=loaded: probe_regions(loaded, analysis), analyses)
            robust = per_item_ms(lambda analysis, loaded=loaded: probe_perturbations(loaded, analysis, "gradcam"),
                                 analyses)
            start = time.perf_counter()
            result = explain_video(workbench, video, Path(folder) / loaded.name.replace("/", "_"), every_s=0.1)
            fps = result.frames_explained / (time.perf_counter() - start)
            print(f"| {loaded.name} | {scoring:.1f} | {atlas:.1f} | {region:.0f} | {robust:.0f} | {fps:.2f} |")
        if len(models) > 1:
            together = Workbench(models)
            start = time.perf_counter()
            result = explain_video(together, video, Path(folder) / "all", every_s=0.1)
            rate = result.frames_explained / (time.perf_counter() - start)
            print(f"\nvideo with all {len(models)} models: {rate:.2f} explained frames / s (a 360×460 clip, one face, "
                  "RetinaFace detection on every explained frame)")


if __name__ == "__main__":
    main()
