"""The webcam tab: every streamed frame → largest face → each model's CAM, as one picture.

Only the fast path runs per frame (detection, alignment, one forward + backward per model): no
faithfulness, regions or native read-outs, which need extra forwards.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from workbench import TILE_CAPTION, ModelAnalysis, WorkbenchError, captioned_tile, colorbar_strip, short_model_name

from .common import DEFAULT_METHOD
from .model_choice import POOL, parse_choice

TILE = 176
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
    strip = np.concatenate([*tiles, colorbar_strip(TILE + TILE_CAPTION)], axis=1)
    summary = " · ".join(f"**{a.model_name}**: {a.predicted} {a.probabilities[a.predicted]:.0%}"
                         + ("" if trained.get(a.model_name, True) else " (untrained)") for a in analyses)
    return strip, f"{summary}  \n<small>{(time.perf_counter() - start) * 1000:.0f} ms for this frame</small>"


def _tile(analysis: ModelAnalysis, trained: bool) -> np.ndarray:
    confidence = analysis.probabilities[analysis.predicted]
    return captioned_tile(analysis.face, next(iter(analysis.cams.values())), (
        short_model_name(analysis.model_name),
        f"{analysis.predicted} {confidence:.0%}" + ("" if trained else " (untrained)")), TILE)
