"""The Video tab: a short clip → its faces tracked, each model's prediction and CAM per sampled
frame, an explained video the browser plays, a timeline and a CSV (`workbench.explain_video`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr

from workbench import WorkbenchError, explain_video

from .common import DEFAULT_METHOD, friendly, user_error
from .model_choice import POOL, parse_choice

INTRO = ("### Explained video\nA short clip (up to a minute is explained): faces are found every few tenths of a "
         "second and keep their number while they stay in view; each model's prediction and CAM for the largest "
         "face run beside the frame. Smoothing averages each face's probabilities over time, since single "
         "frames flicker.")
MAX_SECONDS = 60.0
_KEEP_RESULTS = 8
_ROOT = Path(tempfile.gettempdir()) / "fer-workbench-videos"


def explain(upload: str | None, models: list[str] | str | None, every: float, method: str | None, smoothing: float,
            progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 (Gradio's way)
    """Explain the uploaded clip; returns the explained video, the timeline, the CSV and a status line."""
    path = upload
    if not path:
        raise user_error("Give a video first (mp4, webm, mov, avi …).", title="No video")
    out = _fresh_folder()
    try:
        workbench = POOL.workbench(parse_choice(models))
        with POOL.using(workbench.models):
            result = explain_video(workbench, path, out, every_s=float(every or 0.5), method=method or DEFAULT_METHOD,
                                   smoothing=float(smoothing or 0.0), max_seconds=MAX_SECONDS,
                                   progress=lambda share, step: progress(share, desc=step))
    except (WorkbenchError, ValueError) as error:
        shutil.rmtree(out, ignore_errors=True)
        raise friendly(error) from error
    status = (f"{result.frames_explained} frames explained ({result.frames_read} read; at most the first "
              f"{MAX_SECONDS:.0f} s); {len(result.face_ids)} face track(s).")
    if not result.face_ids:
        status += " **No face was found** in the sampled frames."
    return (str(result.video) if result.video.exists() else None,
            str(result.timeline) if result.timeline else None, str(result.csv), status)


def _fresh_folder() -> Path:
    """A folder for one result; only the last few are kept (Gradio serves copies from its cache)."""
    _ROOT.mkdir(parents=True, exist_ok=True)
    for old in sorted(_ROOT.iterdir(), key=lambda p: p.stat().st_mtime)[:-_KEEP_RESULTS]:
        shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(dir=_ROOT))
