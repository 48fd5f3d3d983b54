"""The Dataset tab: each chosen model's confusion matrix on a test split, and the faces in any
cell with their explanations.

Faces and scores come from the engine (`workbench.test_faces`, `workbench.score_faces`: the same
code that produces the model cards' figures), and so do the explanations. Nothing from the
datasets leaves the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from workbench import (
    DataError,
    TestFaces,
    WorkbenchError,
    atlas_figure,
    attention_atlas,
    confusion_matrix,
    draw_reliability,
    overlay,
    probe_test_faces,
    score_faces,
    test_faces,
)

from .common import DEFAULT_METHOD, friendly, user_error
from .model_choice import POOL, parse_choice

INTRO = ("### Models on a test set\nThe confusion matrix of each chosen model on a test split, computed here "
         "on a subset of its first images so it stays quick on a CPU.")
DATASETS = [("FER2013 PrivateTest", "fer2013"), ("FERPlus PrivateTest (majority vote)", "ferplus"),
            ("CK+ (subject fold 0 of 10, test)", "ckplus")]
DEFAULT_SUBSET = 256
MAX_SUBSET = 3584
CELL_FACES = 12
ATLAS_POOL = 3584  # the whole PrivateTest: each class's first faces are taken from it


@dataclass
class DatasetRun:
    """One evaluation: the subset's faces and true labels, and each model's predictions."""

    faces: TestFaces
    predictions: dict[str, np.ndarray]
    specs: dict[str, str]
    calibration: dict[str, dict[str, Any]]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.faces.labels

    @property
    def truth(self) -> np.ndarray:
        return self.faces.truth


def evaluate(models: list[str] | str | None, dataset: str, size: float) -> tuple[Any, ...]:
    """Score each model on the first `size` test images; return the matrices and the cell pickers."""
    try:
        specs = parse_choice(models)
        faces = test_faces(dataset or "fer2013", int(size))
        predictions, skipped, names, calibration = {}, [], {}, {}
        for spec in specs:
            loaded = POOL.model(spec)
            try:
                with POOL.using([loaded]):
                    scores = score_faces(loaded, faces)
            except DataError as error:
                skipped.append(f"{loaded.name}: {error}")
                continue
            predictions[loaded.name] = scores.predictions
            names[loaded.name] = spec
            calibration[loaded.name] = scores.calibration
    except (DataError, WorkbenchError, ValueError) as error:
        raise friendly(error) from error
    run = DatasetRun(faces, predictions, names, calibration)
    status = _status(run, skipped)
    first = next(iter(predictions), None)
    labels = list(run.labels)
    return (run, status, confusion_figure(run), reliability_figure(run),
            gr.update(choices=list(predictions), value=first), gr.update(choices=labels, value=None),
            gr.update(choices=labels, value=None), model_table(run, first))


def model_table(run: DatasetRun | None, model: str | None) -> pd.DataFrame | None:
    """The chosen model's counts as a table whose cells can be clicked."""
    if run is None or model not in (run.predictions if run else {}):
        return None
    matrix = confusion_matrix(run.truth, run.predictions[model], len(run.labels))
    table = pd.DataFrame(matrix, columns=list(run.labels))
    table.insert(0, "true ↓ / predicted →", list(run.labels))
    return table


def pick_cell(run: DatasetRun | None, model: str | None, event: gr.EventData = None) -> tuple[Any, Any]:
    """A click on a count → that cell's true and predicted class.

    Annotated with the `gr.EventData` base rather than `gr.SelectData`: Gradio builds the
    annotated class from the event's payload, and `SelectData` fails on the empty payload of an
    API call, whereas this endpoint should answer it by leaving the pickers as they are.
    """
    click = getattr(event, "_data", None) or {}
    index = click.get("index")
    if run is None or not isinstance(index, (list, tuple)) or len(index) != 2:
        return gr.update(), gr.update()
    row, column = index
    if column == 0:  # the row-name column
        return run.labels[row], gr.update()
    return run.labels[row], run.labels[column - 1]


def show_cell(run: DatasetRun | None, model: str | None, true_class: str | None, predicted: str | None,
              method: str | None) -> list[tuple[np.ndarray, str]]:
    """Up to twelve faces of the cell, each with the model's CAM for its prediction; each caption
    says how many faces the cell holds ("3 of 46 in this cell")."""
    if run is None:
        raise user_error("Evaluate the models first.", title="No evaluation yet")
    if model not in run.predictions or true_class not in run.labels or predicted not in run.labels:
        raise user_error("Choose a model, a true class and a predicted class (or click a cell in the table).")
    in_cell = np.flatnonzero((run.truth == run.labels.index(true_class))
                             & (run.predictions[model] == run.labels.index(predicted)))
    rows = in_cell[:CELL_FACES]
    if not len(rows):
        gr.Info(f"No {true_class} face was predicted as {predicted} by {model} in this subset.")
        return []
    try:
        workbench = POOL.workbench([run.specs[model]])
        gallery = []
        with POOL.using(workbench.models):
            for number, row in enumerate(rows, start=1):
                result = workbench.analyze(run.faces.images[int(row)], methods=[method or DEFAULT_METHOD],
                                           faithfulness=False, regions=False, native=False, assume_face=True)
                analysis = next(iter(result.faces[0].models.values()))
                heatmap = next(iter(analysis.cams.values()))
                caption = (f"{number} of {len(in_cell)} in this cell · test image {row}: {true_class} → "
                           f"{analysis.predicted} {analysis.probabilities[analysis.predicted]:.0%}")
                gallery.append((overlay(analysis.face, heatmap, min_side=160), caption))
    except (WorkbenchError, ValueError) as error:
        raise friendly(error) from error
    return gallery


def atlas(models: list[str] | str | None, dataset: str, per_class: float, method: str | None,
          progress: gr.Progress = gr.Progress()) -> tuple[Figure | None, pd.DataFrame | None]:  # noqa: B008
    """Each chosen model's mean CAM per class (of the true class, on its faces), on the mean face."""
    try:
        loaded = [POOL.model(spec) for spec in parse_choice(models)]
        faces = test_faces(dataset or "fer2013", ATLAS_POOL)
        with POOL.using(loaded):
            result = attention_atlas(loaded, faces, method=method or DEFAULT_METHOD, per_class=int(per_class),
                                     progress=lambda share, step: progress(share, desc=step))
    except (DataError, WorkbenchError, ValueError) as error:
        raise friendly(error) from error
    return atlas_figure(result), pd.DataFrame(result.rows())


def probes(models: list[str] | str | None, dataset: str, count: float, method: str | None,
           progress: gr.Progress = gr.Progress()) -> pd.DataFrame:  # noqa: B008
    """Both probes over the first `count` test faces, one row per model (`workbench.probe_test_faces`)."""
    try:
        loaded = [POOL.model(spec) for spec in parse_choice(models)]
        faces = test_faces(dataset or "fer2013", int(count))
        with POOL.using(loaded):
            rows = probe_test_faces(loaded, faces, int(count), method or DEFAULT_METHOD,
                                    progress=lambda share, step: progress(share, desc=step))
    except (DataError, WorkbenchError, ValueError) as error:
        raise friendly(error) from error
    return pd.DataFrame(rows).round(3)


def confusion_figure(run: DatasetRun) -> Figure | None:
    """Row-normalised confusion matrices side by side (counts printed in each cell)."""
    if not run.predictions:
        return None
    count = len(run.predictions)
    figure = Figure(figsize=(4.6 * count, 4.6), dpi=100, layout="constrained")
    figure.suptitle("Confusion matrices (rows: true class, columns: predicted; colour: share of the row)",
                    fontsize=10)
    for index, (name, predicted) in enumerate(run.predictions.items()):
        axes = figure.add_subplot(1, count, index + 1)
        matrix = confusion_matrix(run.truth, predicted, len(run.labels))
        share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
        for (row, column), value in np.ndenumerate(matrix):
            axes.text(column, row, str(value), ha="center", va="center", fontsize=7,
                      color="white" if share[row, column] > 0.5 else "black")
        ticks = np.arange(len(run.labels))
        axes.set_xticks(ticks, run.labels, rotation=45, ha="right", fontsize=8)
        axes.set_yticks(ticks, run.labels, fontsize=8)
        accuracy = float((predicted == run.truth).mean())
        axes.set_title(f"{name}\naccuracy {accuracy:.1%} on {len(run.truth)}", fontsize=9)
        axes.set_xlabel("predicted", fontsize=8)
        if index == 0:
            axes.set_ylabel("true", fontsize=8)
    return figure


def reliability_figure(run: DatasetRun) -> Figure | None:
    """Each model's reliability diagram on the same faces: is it as often right as it is confident?"""
    if not run.calibration:
        return None
    count = len(run.calibration)
    figure = Figure(figsize=(4.0 * count, 4.0), dpi=100, layout="constrained")
    figure.suptitle("Calibration: accuracy per confidence bin (dashed: perfect), before and after the model's "
                    "temperature", fontsize=10)
    for index, (name, report) in enumerate(run.calibration.items()):
        draw_reliability(figure.add_subplot(1, count, index + 1), report, name)
    return figure


def _status(run: DatasetRun, skipped: list[str]) -> str:
    parts = [f"{len(run.truth)} {run.faces.description} images."]
    parts += [f"Skipped {note}" for note in skipped]
    return "\n\n".join(parts)
