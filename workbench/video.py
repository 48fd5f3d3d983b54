"""Explained video: sampled frames, faces tracked across them, each model's prediction and CAM.

The file is read and written as a stream — one frame in memory at a time — so a long video costs
time, not memory. Faces keep an id from one sampled frame to the next by box overlap (greedy IoU
matching, which is enough at a few samples per second for the faces of an interview or a lecture);
a face that reappears after a gap gets a new id. Probabilities can be smoothed over time per face
and model (an exponential moving average), since single frames flicker.

Outputs in the chosen folder: ``explained.webm`` (VP8, plays in browsers): each sampled frame with
numbered face boxes, and beside it the largest face's CAM for every model with its prediction;
``frames.csv`` (frame, time, face id, box, model, prediction, p_<class>…); ``timeline.png``
(each model's class probabilities over time for the face seen longest).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .engine import Workbench
from .errors import ArgumentError, ImageError
from .images import short_path
from .result import AnalysisResult
from .visualise import TILE_CAPTION, captioned_tile, colorbar_strip, short_model_name

VIDEO_NAME, CSV_NAME, TIMELINE_NAME = "explained.webm", "frames.csv", "timeline.png"
TILE = 200
MIN_IOU = 0.3
MAX_WIDTH = 960  # frames are analysed and written at most this wide


@dataclass
class VideoResult:
    """Where the outputs went, and what was seen."""

    video: Path
    csv: Path
    timeline: Path | None
    frames_read: int
    frames_explained: int
    fps: float
    face_ids: list[int] = field(default_factory=list)


class FaceTracker:
    """Stable ids for faces across sampled frames: each box takes the id of the best-overlapping
    box of the previous sample (IoU ≥ `MIN_IOU`, each old id used once), else a new id."""

    def __init__(self) -> None:
        self.previous: dict[int, tuple[float, float, float, float]] = {}
        self.next_id = 0

    def assign(self, boxes: list[tuple[float, float, float, float]]) -> list[int]:
        pairs = sorted(((iou(box, old), index, face_id) for index, box in enumerate(boxes)
                        for face_id, old in self.previous.items()), reverse=True)
        ids: dict[int, int] = {}
        used: set[int] = set()
        for overlap, index, face_id in pairs:
            if overlap < MIN_IOU:
                break
            if index not in ids and face_id not in used:
                ids[index] = face_id
                used.add(face_id)
        for index in range(len(boxes)):
            if index not in ids:
                ids[index], self.next_id = self.next_id, self.next_id + 1
        self.previous = {ids[index]: box for index, box in enumerate(boxes)}
        return [ids[index] for index in range(len(boxes))]


def iou(first: tuple[float, ...], second: tuple[float, ...]) -> float:
    width = min(first[2], second[2]) - max(first[0], second[0])
    height = min(first[3], second[3]) - max(first[1], second[1])
    if width <= 0 or height <= 0:
        return 0.0
    overlap = width * height
    area = (first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1])
    return overlap / (area - overlap)


def explain_video(workbench: Workbench, path: str | Path, out_dir: str | Path, every_s: float = 0.5,
                  method: str = "gradcam", smoothing: float = 0.0, max_faces: int = 4,
                  max_seconds: float | None = None,
                  progress: Callable[[float, str], object] | None = None) -> VideoResult:
    """Explain the faces of a video file every `every_s` seconds (see the module docstring).

    `smoothing` in [0, 1): weight of the past in each face's and model's moving average of
    probabilities (0 = each frame on its own). `max_seconds`: stop after this much of the video
    (a public server bounds each request's work). Raises `ImageError` for a file that is not a
    readable video and `ArgumentError` for invalid settings."""
    if not every_s > 0:
        raise ArgumentError(f"the sampling interval must be positive, got {every_s}")
    if not 0.0 <= smoothing < 1.0:
        raise ArgumentError(f"smoothing must be within [0, 1), got {smoothing}")
    workbench.check_request([method], None, False, max_faces)
    capture = cv2.VideoCapture(str(path))
    try:
        ok, frame = capture.read() if capture.isOpened() else (False, None)
        if not ok or frame is None:
            raise ImageError(f"{short_path(Path(path))} is not a readable video file")
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        fps = fps if 0 < fps < 1000 else 25.0
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        limit = None if max_seconds is None else max(1, round(max_seconds * fps))
        total = min(total, limit) if total and limit else total or limit or 0
        step = max(1, round(fps * every_s))
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return _stream(workbench, capture, frame, fps, total, limit, step, out, method, smoothing, max_faces,
                       progress)
    finally:
        capture.release()


def _stream(workbench: Workbench, capture: cv2.VideoCapture, frame: np.ndarray, fps: float, total: int,
            limit: int | None, step: int, out: Path, method: str, smoothing: float, max_faces: int,
            progress: Callable[[float, str], object] | None) -> VideoResult:
    """Read, explain and write frame by frame into hidden partial files, renamed into place only
    when the whole video is done: an interrupted run leaves nothing that looks finished."""
    tracker = FaceTracker()
    smoothed: dict[tuple[int, str], np.ndarray] = {}
    writer: cv2.VideoWriter | None = None
    labels = {model.name: list(model.labels) for model in workbench.models}
    columns = list(dict.fromkeys(label for names in labels.values() for label in names))
    history: dict[int, list[tuple[float, dict[str, dict[str, float]]]]] = {}
    partial_video, partial_csv = out / f".{VIDEO_NAME}.partial.webm", out / f".{CSV_NAME}.partial"
    index = explained = 0
    try:
        with partial_csv.open("w", newline="") as handle:
            rows = csv.writer(handle)
            rows.writerow(["frame", "time_s", "face_id", "x0", "y0", "x1", "y1", "model", "predicted",
                           *(f"p_{label}" for label in columns)])
            while frame is not None:
                if index % step == 0:
                    rgb = np.ascontiguousarray(_working_size(frame[..., ::-1]))
                    result = workbench.analyze(rgb, methods=[method], faithfulness=False, regions=False,
                                               native=False, max_faces=max_faces)
                    ids = tracker.assign([face.box for face in result.faces])
                    time_s = index / fps
                    for face_id, face in zip(ids, result.faces, strict=True):
                        per_model = {}
                        for name, names in labels.items():
                            values = np.array([face.models[name].probabilities[label] for label in names])
                            if smoothing and (face_id, name) in smoothed:
                                values = smoothing * smoothed[(face_id, name)] + (1 - smoothing) * values
                            smoothed[(face_id, name)] = values
                            per_model[name] = dict(zip(names, values.tolist(), strict=True))
                            rows.writerow([index, f"{time_s:.3f}", face_id, *(round(v, 1) for v in face.box), name,
                                           names[int(values.argmax())],
                                           *(f"{per_model[name][c]:.5f}" if c in per_model[name] else ""
                                             for c in columns)])
                        history.setdefault(face_id, []).append((time_s, per_model))
                    picture = _draw(rgb, result, ids, smoothed, labels, method)
                    if writer is None:
                        writer = _open_writer(partial_video, picture.shape[1], picture.shape[0], fps / step)
                    writer.write(np.ascontiguousarray(picture[..., ::-1]))
                    explained += 1
                    if progress is not None and total:
                        progress(min(1.0, index / total), f"frame {index} of {total}")
                ok, frame = capture.read()
                index += 1
                frame = frame if ok and (limit is None or index < limit) else None
        if writer is not None:
            writer.release()
            writer = None
            partial_video.replace(out / VIDEO_NAME)
        partial_csv.replace(out / CSV_NAME)
    finally:
        if writer is not None:
            writer.release()
        partial_video.unlink(missing_ok=True)
        partial_csv.unlink(missing_ok=True)
    timeline = _timeline(history, out / TIMELINE_NAME) if history else None
    return VideoResult(out / VIDEO_NAME, out / CSV_NAME, timeline, index, explained, fps / step, sorted(history))


def _working_size(rgb: np.ndarray) -> np.ndarray:
    if rgb.shape[1] <= MAX_WIDTH:
        return rgb
    height = round(rgb.shape[0] * MAX_WIDTH / rgb.shape[1])
    return cv2.resize(rgb, (MAX_WIDTH, height), interpolation=cv2.INTER_AREA)


def _open_writer(path: Path, width: int, height: int, fps: float) -> cv2.VideoWriter:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"VP80"), max(fps, 1.0), (width, height))
    if not writer.isOpened():
        raise ImageError("this OpenCV build cannot write WebM (VP8) video")
    return writer


def _draw(rgb: np.ndarray, result: AnalysisResult, ids: list[int], smoothed: dict[tuple[int, str], np.ndarray],
          labels: dict[str, list[str]], method: str) -> np.ndarray:
    """The frame with numbered boxes, and a column of tiles: the largest face's CAM per model."""
    canvas = rgb.copy()
    thickness = max(2, round(max(canvas.shape[:2]) / 400))
    for face_id, face in zip(ids, result.faces, strict=True):
        x0, y0, x1, y1 = (round(v) for v in face.box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 220, 90), thickness)
        cv2.putText(canvas, f"#{face_id}", (x0 + 2, max(14, y0 - 5)), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 220, 90),
                    2, cv2.LINE_AA)
    tiles = []
    if result.faces:
        face, face_id = result.faces[0], ids[0]
        for name in labels:
            analysis = face.models[name]
            values = smoothed[(face_id, name)]
            tile = captioned_tile(analysis.face, analysis.cams[method], (
                short_model_name(name), f"#{face_id} {labels[name][int(values.argmax())]} {values.max():.0%}"), TILE)
            tiles.append(tile)
    column_height = max(canvas.shape[0], len(labels) * (TILE + TILE_CAPTION))
    column = np.full((column_height, TILE + 44, 3), 255, np.uint8)
    for position, tile in enumerate(tiles):
        column[position * (TILE + TILE_CAPTION):(position + 1) * (TILE + TILE_CAPTION), :TILE] = tile
    if tiles:
        column[:TILE, TILE:] = colorbar_strip(TILE)
    frame = np.full((column_height, canvas.shape[1], 3), 0, np.uint8)
    frame[:canvas.shape[0]] = canvas
    picture = np.concatenate([frame, column], axis=1)
    return picture[:, :picture.shape[1] // 2 * 2][:picture.shape[0] // 2 * 2]  # even sides for the encoder


def _timeline(history: dict[int, list], path: Path) -> Path:
    """Each model's class probabilities over time for the face seen in the most samples."""
    from matplotlib.figure import Figure

    face_id = max(history, key=lambda key: len(history[key]))
    samples = history[face_id]
    names = list(samples[0][1])
    figure = Figure(figsize=(8, 2.6 * len(names)), dpi=100, layout="constrained")
    for row, name in enumerate(names):
        axes = figure.add_subplot(len(names), 1, row + 1)
        times = [time_s for time_s, _ in samples]
        for label in samples[0][1][name]:
            axes.plot(times, [per_model[name][label] for _, per_model in samples], label=label)
        axes.set_ylim(0, 1)
        axes.set_ylabel("probability", fontsize=8)
        axes.set_title(f"{name} · face #{face_id}", fontsize=9)
        axes.legend(fontsize=7, ncols=4, frameon=False, loc="upper right")
    axes.set_xlabel("time (s)", fontsize=8)
    figure.savefig(path)
    return path
