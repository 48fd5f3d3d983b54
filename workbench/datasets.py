"""Models scored on a labelled test split, for front ends (the app's Dataset tab).

The loading and the scoring are the training package's, the same code that writes the model
cards' figures, so a number in the app and the card's number for the same faces agree. Nothing
from the datasets leaves the machine.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from training.calibration import calibration_report, draw_reliability
from training.data import DataError, FerData, Split, default_data_dir, find_fer2013_csv, load_data
from training.evaluation import label_index_map, predict_logits
from training.inputs import FaceDataset
from training.metrics import confusion_matrix

from .models import LoadedModel

__all__ = ["DataError", "ModelScores", "TestFaces", "confusion_matrix", "data_status", "draw_reliability",
           "score_faces", "test_faces"]

_LOADED: dict[str, FerData] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class TestFaces:
    """The first faces of a dataset's test split, with their true classes (indices into `labels`)."""

    dataset: str
    description: str
    labels: tuple[str, ...]
    split: Split

    @property
    def images(self) -> np.ndarray | list:
        return self.split.images

    @property
    def truth(self) -> np.ndarray:
        return self.split.hard_labels()

    def __len__(self) -> int:
        return len(self.split)


@dataclass(frozen=True)
class ModelScores:
    """One model on `TestFaces`: predicted class indices (in the data's label order) and the
    reliability report of its confidences (before and after its calibration temperature)."""

    predictions: np.ndarray
    calibration: dict[str, Any]


def data_status() -> tuple[bool, str]:
    """Whether the data directory is there; the note says where it was looked for."""
    directory = default_data_dir()
    try:
        find_fer2013_csv(directory)
    except DataError as error:
        return False, f"⚠ Not available here: {error}. Set `FER_DATA_DIR` to the folder with `fer2013/`."
    return True, f"Data from `{directory}` (set `FER_DATA_DIR` to change it)."


def test_faces(dataset: str, size: int) -> TestFaces:
    """The first `size` faces of `dataset`'s test split (the dataset is read once per process)."""
    with _LOCK:
        if dataset not in _LOADED:
            _LOADED[dataset] = load_data(dataset, on_bad="skip")
        data = _LOADED[dataset]
    split = data.test.head(int(size))
    description = (f"{data.description.get('dataset', data.name)} "
                   f"{data.description.get('test', 'test')}")
    return TestFaces(data.name, description, tuple(data.labels), split)


def score_faces(loaded: LoadedModel, faces: TestFaces, batch_size: int = 64) -> ModelScores:
    """Predict every face; raises `DataError` when the model's classes cannot be mapped onto the data's."""
    to_data = label_index_map(loaded.labels, faces.labels)
    logits = predict_logits(loaded.model, FaceDataset(faces.split), batch_size=batch_size)
    temperature = float(getattr(loaded.config, "calibration_temperature", 1.0) or 1.0)
    # The model's outputs are already divided by its temperature: undo it for the "before" curve.
    report = calibration_report(logits * temperature, np.argsort(to_data)[faces.truth], temperature)
    return ModelScores(to_data[logits.argmax(axis=1)], report)

