"""Measure a model on a split: predictions through the model's own image processor, then the
metrics files. Used after training (for the model card) and by ``training/evaluate.py``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hub_models.loading import model_labels

from .data import SUBSET_NOTES, DataError, FerData
from .inputs import FaceDataset, ProcessorCollator
from .metrics import classification_report, write_report


def label_index_map(model_labels: Sequence[str], data_labels: Sequence[str]) -> np.ndarray:
    """For each model output index, the dataset label index: the same label names are
    required (in any order), otherwise the accuracy would compare different things."""
    if sorted(model_labels) != sorted(data_labels):
        raise DataError(f"the model predicts {', '.join(model_labels)} but the dataset has "
                        f"{', '.join(data_labels)}: the label sets must match")
    return np.array([list(data_labels).index(name) for name in model_labels])


@torch.inference_mode()
def predict_logits(model: torch.nn.Module, dataset: FaceDataset, batch_size: int = 64,
                   num_workers: int = 0) -> np.ndarray:
    device = next(model.parameters()).device
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                                         collate_fn=ProcessorCollator(model.image_processor()))
    model.eval()
    chunks = []
    for batch in loader:
        pixel_values = batch["pixel_values"].to(device, dtype=next(model.parameters()).dtype)
        chunks.append(model(pixel_values=pixel_values).logits.float().cpu().numpy())
    return np.concatenate(chunks)


def subset_summary(name: str, truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Size, accuracy and macro-F1 of a named subset of a split, with what the subset is, so a
    metrics file read on its own still says which faces the figure counts."""
    report = classification_report(truth, predicted, labels)
    return {"about": SUBSET_NOTES.get(name, name),
            **{key: report[key] for key in ("num_samples", "accuracy", "macro_f1")}}


def evaluate_split(model: Any, data: FerData, split: str, out_dir: Path | None = None, batch_size: int = 64,
                   title: str | None = None, logits: np.ndarray | None = None) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class recall and the confusion matrix of `model` on one split;
    with `out_dir`, also the metrics files for it. `logits`: the model's outputs on the split when
    the caller already has them (the end of training also fits a temperature on them)."""
    labels = model_labels(model)
    to_data_index = label_index_map(labels, data.labels)
    part = data.split(split)
    if logits is None:
        logits = predict_logits(model, FaceDataset(part), batch_size)
    predicted = to_data_index[logits.argmax(axis=1)]
    truth = part.hard_labels()
    report = classification_report(truth, predicted, data.labels)
    report["subsets"] = {name: subset_summary(name, truth[mask], predicted[mask], data.labels)
                         for name, mask in part.subsets.items() if mask.any()}
    report["dataset"] = data.description.get("dataset", data.name)
    report["split"] = data.description.get(split, split)
    if out_dir is not None:
        write_report(report, Path(out_dir), split, title or f"{report['dataset']} {report['split']}")
    return report
