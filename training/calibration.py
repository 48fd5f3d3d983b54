"""Calibration: does a model's confidence match how often it is right?

Expected calibration error (ECE, top-label, equal-width confidence bins), the reliability diagram
behind it, and temperature scaling (Guo et al., 2017): one scalar T fitted on the validation split
by minimising the negative log-likelihood of softmax(logits / T). T changes no prediction, only
the confidence; it is stored as ``config.calibration_temperature`` and applied inside the model's forward, so
every consumer of the probabilities sees the calibrated ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=1, keepdims=True)


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Per confidence bin: its range, the number of samples, their mean confidence and accuracy."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for b in range(bins):
        chosen = index == b
        count = int(chosen.sum())
        rows.append({"low": float(edges[b]), "high": float(edges[b + 1]), "count": count,
                     "confidence": float(confidence[chosen].mean()) if count else 0.0,
                     "accuracy": float(correct[chosen].mean()) if count else 0.0})
    return rows


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ_b (n_b / n) · |accuracy_b − confidence_b| over equal-width confidence bins."""
    rows = reliability(probabilities, labels, bins)
    total = sum(row["count"] for row in rows)
    if not total:
        raise ValueError("expected_calibration_error needs at least one sample")
    return float(sum(row["count"] / total * abs(row["accuracy"] - row["confidence"]) for row in rows))


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    probabilities = softmax(logits, temperature)
    return float(-np.mean(np.log(np.clip(probabilities[np.arange(len(labels)), labels], 1e-12, None))))


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T) (a 1-D convex problem in log T)."""
    from scipy.optimize import minimize_scalar

    labels = np.asarray(labels, dtype=np.int64)
    low, high = np.log(TEMPERATURE_RANGE)
    result = minimize_scalar(lambda log_t: negative_log_likelihood(logits, labels, float(np.exp(log_t))),
                             bounds=(low, high), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def calibration_report(logits: np.ndarray, labels: np.ndarray, temperature: float,
                       bins: int = ECE_BINS) -> dict[str, Any]:
    """ECE, NLL and reliability bins before (T = 1) and after temperature scaling."""
    labels = np.asarray(labels, dtype=np.int64)
    before, after = softmax(logits), softmax(logits, temperature)
    return {
        "num_samples": len(labels), "bins": bins, "temperature": temperature,
        "ece_before": expected_calibration_error(before, labels, bins),
        "ece_after": expected_calibration_error(after, labels, bins),
        "nll_before": negative_log_likelihood(logits, labels), "nll_after": negative_log_likelihood(
            logits, labels, temperature),
        "mean_confidence_before": float(before.max(axis=1).mean()),
        "mean_confidence_after": float(after.max(axis=1).mean()),
        "accuracy": float((before.argmax(axis=1) == labels).mean()),
        "reliability_before": reliability(before, labels, bins),
        "reliability_after": reliability(after, labels, bins),
    }


def draw_reliability(axis: Any, report: dict[str, Any], name: str) -> None:
    """One reliability diagram on a matplotlib axis: accuracy per confidence bin before (T = 1) and
    after temperature scaling, against the diagonal of perfect calibration."""
    for key, colour, label in (("before", "#d95f02", "T = 1"),
                               ("after", "#1b9e77", f"T = {report['temperature']:.2f}")):
        rows = [row for row in report[f"reliability_{key}"] if row["count"]]
        axis.plot([row["confidence"] for row in rows], [row["accuracy"] for row in rows], "o-", color=colour,
                  markersize=3, label=f"{label}: ECE {100 * report[f'ece_{key}']:.1f}%")
    axis.plot([0, 1], [0, 1], "--", color="grey", linewidth=1)
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy")
    axis.set_title(name, fontsize=9)
    axis.legend(loc="upper left", fontsize=8)


def plot_reliability(reports: Sequence[tuple[str, dict[str, Any]]], path: Path, title: str) -> Path:
    """Reliability diagrams, one per (name, calibration_report), into a PNG file."""
    from matplotlib.figure import Figure

    from .files import write_atomically

    figure = Figure(figsize=(4.2 * len(reports), 4.2), layout="constrained")
    for index, (name, report) in enumerate(reports):
        draw_reliability(figure.add_subplot(1, len(reports), index + 1), report, name)
    figure.suptitle(title)
    write_atomically(Path(path), lambda temporary: figure.savefig(temporary, dpi=110, format="png"))
    return Path(path)
