"""The webcam tab: every streamed frame → largest face → each model's CAM, as one picture.

Only the fast path runs per frame (detection, alignment, one forward + backward per model): no
faithfulness, regions or native read-outs, which need extra forwards.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from workbench import ModelAnalysis, WorkbenchError, colorbar_strip, overlay

from .common import DEFAULT_METHOD
from .model_choice import POOL, parse_choice

TILE = 176
CAPTION = 38  # two lines: the model, then its prediction
CAPTION_CHARS = 27  # what fits on one line of a tile at the caption's font size
# Webcam faces are large, and detection cost grows with pixels: frames are analysed at this width.
LIVE_WIDTH = 320


def live_frame(frame: np.ndarray | None, models: list[str] | str | None, method: str | None,
               ) -> tuple[np.ndarray | None, str]:
    """One camera frame → (model tiles with CAM overlays, one-line summary). Never raises: a stream
    that raised would stop, so problems are reported in the summary instead."""
    if frame is None:
        return None, ""
    start = time.perf_counter()
    if frame.shape[1] > LIVE_WIDTH:
        height = round(frame.shape[0] * LIVE_WIDTH / frame.shape[1])
        frame = cv2.resize(frame, (LIVE_WIDTH, height), interpolation=cv2.INTER_AREA)
    try:
        workbench = POOL.workbench(parse_choice(models))
        with POOL.using(workbench.models):
            result = workbench.analyze(frame, methods=[method or DEFAULT_METHOD], faithfulness=False, regions=False,
                                       native=False, max_faces=1)
    except (WorkbenchError, ValueError) as error:
        return None, f"⚠ {error}"
    if not result.faces:
        return None, "No face in view — face the camera."
    analyses = list(result.faces[0].models.values())
    trained = {model.name: model.trained for model in workbench.models}
    tiles = [_tile(analysis, trained.get(analysis.model_name, True)) for analysis in analyses]
    strip = np.concatenate([*tiles, colorbar_strip(TILE + CAPTION)], axis=1)
    summary = " · ".join(f"**{a.model_name}**: {a.predicted} {a.probabilities[a.predicted]:.0%}"
                         + ("" if trained.get(a.model_name, True) else " (untrained)") for a in analyses)
    return strip, f"{summary}  \n<small>{(time.perf_counter() - start) * 1000:.0f} ms for this frame</small>"


def _tile(analysis: ModelAnalysis, trained: bool) -> np.ndarray:
    heatmap = next(iter(analysis.cams.values()))
    picture = cv2.resize(overlay(analysis.face, heatmap, colorbar=False, min_side=TILE), (TILE, TILE),
                         interpolation=cv2.INTER_AREA)
    caption = np.full((CAPTION, TILE, 3), 255, np.uint8)
    confidence = analysis.probabilities[analysis.predicted]
    lines = (short_name(analysis.model_name),
             f"{analysis.predicted} {confidence:.0%}" + ("" if trained else " (untrained)"))
    for index, text in enumerate(lines):
        cv2.putText(caption, text, (4, 14 + 17 * index), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (20, 20, 20), 1, cv2.LINE_AA)
    return np.concatenate([picture, caption], axis=0)


def short_name(name: str) -> str:
    """A model's name as it fits under its tile: the part after an organisation ("org/name"), cut
    in the middle with "~" (OpenCV draws ASCII only) when still too long, so both ends stay readable."""
    name = name.rstrip("/").rsplit("/", 1)[-1]
    if len(name) <= CAPTION_CHARS:
        return name
    half = (CAPTION_CHARS - 1) // 2
    return f"{name[:half]}~{name[-(CAPTION_CHARS - 1 - half):]}"
