"""Classification metrics (accuracy, macro-F1, per-class recall and precision, confusion
matrix) and the files they are written to: ``metrics_<split>.json``, ``confusion_<split>.json``
and ``confusion_<split>.png``.

Macro-F1 averages over the classes that occur in the labels or the predictions (scikit-learn's
convention): a class absent from both says nothing about the model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .files import write_atomically, write_text_atomically


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


def _ratio(numerator: float, denominator: float) -> float | None:
    return float(numerator / denominator) if denominator else None


def classification_report(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or not len(y_true):
        raise ValueError(f"need two equally long, non-empty label vectors, got {y_true.shape} and {y_pred.shape}")
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    true_positive = np.diag(matrix)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    recall = {name: _ratio(true_positive[i], support[i]) for i, name in enumerate(labels)}
    precision = {name: _ratio(true_positive[i], predicted[i]) for i, name in enumerate(labels)}
    f1 = {name: _ratio(2 * true_positive[i], support[i] + predicted[i]) for i, name in enumerate(labels)}
    present = [name for i, name in enumerate(labels) if support[i] or predicted[i]]
    return {
        "num_samples": len(y_true),
        "accuracy": float(true_positive.sum() / len(y_true)),
        "macro_f1": float(np.mean([f1[name] for name in present])),
        "per_class_recall": recall,
        "per_class_precision": precision,
        "per_class_f1": f1,
        "support": {name: int(support[i]) for i, name in enumerate(labels)},
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),
    }


def plot_confusion(report: dict[str, Any], path: Path, title: str) -> None:
    """Row-normalised colours (recall per cell) with the raw counts written in."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    matrix = np.asarray(report["confusion_matrix"], dtype=float)
    rows = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    labels = report["labels"]
    size = 1.2 + 0.75 * len(labels)
    figure, axes = plt.subplots(figsize=(size + 1.5, size))
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{title}\naccuracy {report['accuracy']:.2%} · macro-F1 {report['macro_f1']:.3f}")
    for (row, col), count in np.ndenumerate(matrix.astype(int)):
        axes.text(col, row, str(count), ha="center", va="center", fontsize=8,
                  color="white" if shares[row, col] > 0.5 else "black")
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class")
    figure.tight_layout()
    figure.savefig(path, dpi=120, format="png")  # explicit: `path` may be a temporary name
    plt.close(figure)


def report_paths(out_dir: Path, split: str) -> dict[str, Path]:
    """Every file `write_report` writes for one split (callers check them all before overwriting)."""
    out_dir = Path(out_dir)
    return {"metrics": out_dir / f"metrics_{split}.json", "confusion_json": out_dir / f"confusion_{split}.json",
            "confusion_png": out_dir / f"confusion_{split}.png"}


def write_report(report: dict[str, Any], out_dir: Path, split: str, title: str) -> dict[str, Path]:
    """Write the confusion-matrix JSON and PNG and the metrics JSON for one split. Each file is
    written under a temporary name and renamed into place, the metrics last: a killed run leaves
    no half-written file and no metrics file without its confusion matrix."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    paths = report_paths(out_dir, split)
    summary = {key: value for key, value in report.items() if key != "confusion_matrix"}
    write_text_atomically(paths["confusion_json"], json.dumps(
        {"labels": report["labels"], "rows": "true class", "columns": "predicted class",
         "matrix": report["confusion_matrix"]}, indent=2) + "\n")
    write_atomically(paths["confusion_png"], lambda temporary: plot_confusion(report, temporary, title))
    write_text_atomically(paths["metrics"], json.dumps(summary, indent=2) + "\n")
    return paths
