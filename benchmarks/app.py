"""Speed of the app's two paths on CPU (2 threads by default): the webcam pipeline and one upload.

* webcam: frames per second of the Webcam tab's stream handler (`spaces.live_view.live_frame`:
  decode, RetinaFace detection, alignment, each model's forward + Grad-CAM, overlay tiles) on a
  640×480 clip of an example photo drifting a few pixels, for each model alone and for all of
  them together;
* upload: wall time of one Compare analysis of an example photo with all the models, end to end
  through the launched app (gradio_client upload → queue → handler → PNG outputs), and, split
  out, the handler alone and the faithfulness step that follows it on screen.

    python benchmarks/app.py                       # the app's default models
    python benchmarks/app.py --models patt_lite,ddamfn,attention_cnn --frames 40

Figures depend on the machine and on what else runs on it: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from PIL import Image

from spaces import compare_view, live_view
from spaces.model_choice import default_models, parse_choice

EXAMPLES = Path(compare_view.EXAMPLES_DIR)


def camera_frames(count: int, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """A webcam-like clip: the example portrait, shifted a few pixels per frame."""
    photo = Image.open(EXAMPLES / "eileen_collins.jpg").convert("RGB")
    width, height = size
    scale = max((width + 24) / photo.width, (height + 24) / photo.height)
    photo = photo.resize((round(photo.width * scale), round(photo.height * scale)))
    frames = []
    for index in range(count):
        dx = round(12 + 10 * np.sin(2 * np.pi * index / count))
        frames.append(np.asarray(photo.crop((dx, 12, dx + width, 12 + height))))
    return frames


def webcam_fps(models: list[str], frames: list[np.ndarray], warmup: int = 3) -> tuple[float, float]:
    """(frames per second, median ms per frame) of the stream handler; fps from the median frame
    time, so that a few frames slowed by other processes do not dominate it."""
    for frame in frames[:warmup]:
        live_view.live_frame(frame, models, "gradcam")
    times = []
    for frame in frames:
        start = time.perf_counter()
        strip, summary = live_view.live_frame(frame, models, "gradcam")
        times.append(time.perf_counter() - start)
        if strip is None:
            raise RuntimeError(f"no result for a frame: {summary}")
    median = statistics.median(times)
    return 1.0 / median, median * 1000


def upload_latency(models: list[str], repeats: int) -> dict[str, float]:
    """Median seconds: through the launched app (HTTP), the handler alone, and the faithfulness step."""
    from gradio_client import Client, handle_file

    from spaces.app import launch

    photo = EXAMPLES / "grace_hopper.jpg"
    demo, url = launch(port=_free_port(), block=False)
    try:
        client = Client(url, verbose=False)
        handler, faithfulness, http = [], [], []
        for index in range(repeats + 1):  # the first round loads the models and is not counted
            start = time.perf_counter()
            session, *_ = compare_view.analyze(str(photo), models, "gradcam", compare_view.PREDICTED)
            middle = time.perf_counter()
            compare_view.score_faithfulness(session, 0)
            end = time.perf_counter()
            client.predict(handle_file(str(photo)), models, "gradcam", compare_view.PREDICTED, api_name="/analyze")
            done = time.perf_counter()
            if index:
                handler.append(middle - start)
                faithfulness.append(end - middle)
                http.append(done - end)
    finally:
        demo.close()
    return {"http": statistics.median(http), "handler": statistics.median(handler),
            "faithfulness": statistics.median(faithfulness)}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(default_models()), help="comma-separated model specs")
    parser.add_argument("--frames", type=int, default=30, help="webcam frames timed per setting")
    parser.add_argument("--repeats", type=int, default=5, help="timed uploads")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = parse_choice(args.models)
    frames = camera_frames(args.frames)
    print(f"torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, "
          f"{args.frames} frames of 640×480, Grad-CAM\n")
    print("| webcam pipeline (detect + align + model(s) + Grad-CAM overlay) | fps | median ms / frame |")
    print("|---|---:|---:|")
    settings = [[model] for model in models] + ([models] if len(models) > 1 else [])
    for setting in settings:
        fps, ms = webcam_fps(setting, frames)
        print(f"| {' + '.join(setting)} | {fps:.1f} | {ms:.0f} |", flush=True)
    latency = upload_latency(models, args.repeats)
    print(f"\n| one upload, {len(models)} models ({', '.join(models)}), median of {args.repeats} | seconds |")
    print("|---|---:|")
    print(f"| end to end through the app (upload, queue, analysis, image outputs) | {latency['http']:.2f} |")
    print(f"| analysis handler alone (detect, align, forward + Grad-CAM, native maps, regions) | "
          f"{latency['handler']:.2f} |")
    print(f"| faithfulness step shown after it (deletion, insertion, ROAD per map) | {latency['faithfulness']:.2f} |")


if __name__ == "__main__":
    main()
