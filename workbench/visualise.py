"""Pictures of maps: overlays with a colour bar, bar charts for channel gates, face boxes.

Shared by result bundles and the app so that both show the same thing.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# Perceptually uniform (equal steps in the map look like equal steps in colour, and it reads in
# grey scale), unlike jet, whose bright yellow and cyan bands invent edges that are not in the map.
COLORMAP = cv2.COLORMAP_INFERNO
# The least colour a map's lowest values still get: weight = opacity · (FLOOR + (1 − FLOOR)·value),
# so the face stays visible where the map says little and the colour scale is never hidden.
FLOOR = 0.35


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """H×W map in [0,1] → RGB uint8 with the workbench colour map."""
    scaled = np.uint8(np.clip(heatmap, 0.0, 1.0) * 255)
    return cv2.cvtColor(cv2.applyColorMap(scaled, COLORMAP), cv2.COLOR_BGR2RGB)


def overlay(face: np.ndarray, heatmap: np.ndarray, alpha: float = 0.6, colorbar: bool = True,
            min_side: int = 224, beside: bool = False) -> np.ndarray:
    """Blend a [0,1] map onto an RGB uint8 face and add a labelled colour bar on the right.

    `alpha` is the opacity where the map is 1; lower values tint less (see `FLOOR`), so the face
    shows through where the map says little. `beside` puts the plain face on the left, for
    comparison. Faces as small as 48×48 are enlarged to `min_side` first so the result stays legible.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"overlay opacity must be within 0–1, got {alpha}")
    face = _as_rgb(face)
    heatmap = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    if heatmap.shape != face.shape[:2]:
        heatmap = cv2.resize(heatmap, (face.shape[1], face.shape[0]), interpolation=cv2.INTER_LINEAR)
    weight = (alpha * (FLOOR + (1.0 - FLOOR) * heatmap))[..., None]
    blended = np.uint8(np.clip((1 - weight) * face + weight * colorize(heatmap), 0, 255))
    if beside:
        blended = np.concatenate([face, np.full((face.shape[0], max(2, face.shape[1] // 32), 3), 255, np.uint8),
                                  blended], axis=1)
    blended = _enlarged(blended, min_side)
    return np.concatenate([blended, colorbar_strip(blended.shape[0])], axis=1) if colorbar else blended


def map_panels(face: np.ndarray, maps: dict[str, np.ndarray], alpha: float = 0.6, min_side: int = 224,
               caption_height: int = 24, with_face: bool = True, per_row: int = 3) -> np.ndarray:
    """The plain face (unless `with_face` is False), then one overlay per named map, each titled
    above, at most `per_row` to a row, with one colour bar: several methods, or a model's native
    maps, compared on the same face at one size."""
    face = _as_rgb(face)
    panels = [*([("face", _enlarged(face, min_side))] if with_face else []),  # all panels: the face's size
              *((title, overlay(face, values, alpha, colorbar=False, min_side=min_side))
                for title, values in maps.items())]
    height, width = panels[0][1].shape[:2]
    gap = max(4, height // 40)
    cell_width = width + gap
    columns = min(per_row, len(panels))
    rows = -(-len(panels) // columns)
    canvas = np.full((rows * (height + caption_height + gap) - gap, columns * cell_width, 3), 255, np.uint8)
    for index, (title, panel) in enumerate(panels):
        top, left = (index // columns) * (height + caption_height + gap), (index % columns) * cell_width
        cv2.putText(canvas, title[:max(4, width // 9)], (left + 4, top + caption_height - 7), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5, (20, 20, 20), 1, cv2.LINE_AA)
        canvas[top + caption_height:top + caption_height + height, left:left + width] = panel
    bar = np.full((canvas.shape[0], 44, 3), 255, np.uint8)
    bar[caption_height:caption_height + height] = colorbar_strip(height)
    return np.concatenate([canvas, bar], axis=1)


def _enlarged(image: np.ndarray, min_side: int) -> np.ndarray:
    if min(image.shape[:2]) >= min_side:
        return image
    factor = min_side / min(image.shape[:2])
    return cv2.resize(image, (round(image.shape[1] * factor), round(image.shape[0] * factor)),
                      interpolation=cv2.INTER_CUBIC)


TILE_CAPTION = 38  # two caption lines under a tile
CAPTION_CHARS = 27  # what fits on one caption line of a ~180-px tile


def captioned_tile(face: np.ndarray, heatmap: np.ndarray, lines: Sequence[str], side: int) -> np.ndarray:
    """A side×side overlay with up to two caption lines under it: the webcam's and the explained
    video's per-model tiles."""
    picture = cv2.resize(overlay(face, heatmap, colorbar=False, min_side=side), (side, side),
                         interpolation=cv2.INTER_AREA)
    caption = np.full((TILE_CAPTION, side, 3), 255, np.uint8)
    for index, text in enumerate(lines[:2]):
        cv2.putText(caption, text, (4, 14 + 17 * index), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (20, 20, 20), 1, cv2.LINE_AA)
    return np.concatenate([picture, caption], axis=0)


def short_model_name(name: str, chars: int = CAPTION_CHARS) -> str:
    """A model's name as it fits under a tile: the part after an organisation ("org/name"), cut
    in the middle with "~" (OpenCV draws ASCII only) when still too long, so both ends stay readable."""
    name = name.rstrip("/").rsplit("/", 1)[-1]
    if len(name) <= chars:
        return name
    half = (chars - 1) // 2
    return f"{name[:half]}~{name[-(chars - 1 - half):]}"


def colorbar_strip(height: int, width: int = 44) -> np.ndarray:
    """A vertical colour bar (1 at the top, 0 at the bottom) with tick labels, white background."""
    strip = np.full((height, width, 3), 255, np.uint8)
    margin = max(6, height // 20)
    ramp = np.linspace(1.0, 0.0, height - 2 * margin, dtype=np.float32)[:, None]
    strip[margin:height - margin, 4:14] = colorize(np.repeat(ramp, 10, axis=1))
    scale = max(0.3, height / 700)
    for value in (1.0, 0.5, 0.0):
        y = int(margin + (1 - value) * (height - 2 * margin - 1))
        cv2.putText(strip, f"{value:g}", (16, min(height - 2, y + 4)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def bar_chart(values: Sequence[float], title: str = "", names: Sequence[str] | None = None,
              size: tuple[int, int] = (480, 240)) -> np.ndarray:
    """A bar chart as an RGB uint8 image (channel gates, region shares)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    values = np.asarray(values, dtype=np.float32).ravel()
    figure = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = np.arange(len(values))
    axes.bar(positions, values, color="#3b7dd8", width=0.9 if names is None else 0.7)
    if names is not None:
        axes.set_xticks(positions, list(names), fontsize=8)
    else:
        axes.set_xlabel("channel", fontsize=8)
    axes.set_title(title, fontsize=9)
    axes.tick_params(labelsize=7)
    figure.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def draw_faces(image: np.ndarray, boxes: Sequence[Sequence[float]],
               landmarks: Sequence[np.ndarray] | None = None, chosen: int | None = None) -> np.ndarray:
    """The image with numbered face boxes (and landmarks), for choosing a face; the `chosen` one
    is drawn thicker in another colour."""
    canvas = _as_rgb(image).copy()
    thickness = max(2, round(max(canvas.shape[:2]) / 400))
    for index, box in enumerate(boxes):
        x0, y0, x1, y1 = (round(v) for v in box)
        colour, width = ((255, 150, 0), 2 * thickness) if index == chosen else ((0, 220, 90), thickness)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, width)
        cv2.putText(canvas, str(index), (x0 + 2, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * thickness, colour, width, cv2.LINE_AA)
        if landmarks is not None:
            for x, y in np.asarray(landmarks[index]):
                cv2.circle(canvas, (round(x), round(y)), thickness + 1, (255, 60, 60), -1)
    return canvas


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.dtype != np.uint8:
        image = np.uint8(np.clip(image * (255 if image.max() <= 1.0 else 1), 0, 255))
    return image
