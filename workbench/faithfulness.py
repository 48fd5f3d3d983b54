"""Does the map point at what the model uses? Perturb the input in the map's order and watch the
target-class probability.

* deletion AUC: remove the most salient pixels first (replaced by the baseline, zeros in
  normalised space = the dataset mean colour); a faithful map makes the probability fall fast
  → LOW is better.
* insertion AUC: start from a blurred face and restore the most salient pixels first → HIGH is
  better.
* ROAD (Rong et al., ICML 2022): remove a fraction of pixels by noisy linear imputation from
  their neighbours (the weights of the authors' imputer), which avoids the out-of-distribution
  artefacts of a flat baseline; mean probability over fractions 10…90 %. MoRF (most relevant
  first) → LOW is better; LeRF (least relevant first) → HIGH is better. The sparse solve grows
  fast with the hole, so for inputs larger than `ROAD_MAX_SIDE` the imputed values are solved
  at that side and upsampled (known pixels stay exact); this keeps 224-px models practical.

All curves for one map go through the model as one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch
from scipy.sparse import coo_matrix
from scipy.sparse.linalg import spsolve
from torch import nn

ROAD_FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
ROAD_MAX_SIDE = 56
ROAD_NOISE = 0.01
STEPS = 16
# (dy, dx) → weight of a neighbour in the imputation (Rong et al.'s reference imputer).
NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12),
              ((0, -1), 1 / 6), ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))
Predict = Callable[[torch.Tensor], torch.Tensor]


def faithfulness_scores(model: nn.Module | Predict, pixel_values: torch.Tensor, heatmap: np.ndarray, target: int,
                        steps: int = STEPS, road_fractions: Sequence[float] = ROAD_FRACTIONS) -> dict[str, float]:
    """deletion_auc, insertion_auc, road_morf, road_lerf for one 1×3×H×W input and one H×W map."""
    predict = _probability_of(model, target)
    image = pixel_values.detach()[0]
    order = salience_order(heatmap)
    blurred = blur(image)
    batch = torch.cat([
        perturbation_curve(image, torch.zeros_like(image), order, steps),
        perturbation_curve(blurred, image, order, steps),
        road_images(image, order, road_fractions, most_relevant_first=True),
        road_images(image, order, road_fractions, most_relevant_first=False),
    ])
    with torch.no_grad():
        scores = predict(batch).double().cpu().numpy()
    n, r = steps + 1, len(road_fractions)
    return {
        "deletion_auc": curve_auc(scores[:n]),
        "insertion_auc": curve_auc(scores[n:2 * n]),
        "road_morf": float(scores[2 * n:2 * n + r].mean()),
        "road_lerf": float(scores[2 * n + r:].mean()),
    }


def salience_order(heatmap: np.ndarray) -> np.ndarray:
    """Flat pixel indices, most salient first; ties (flat regions) broken by a fixed random
    permutation rather than raster order, which would sweep the face top to bottom."""
    values = np.asarray(heatmap, dtype=np.float64).ravel()
    tiebreak = np.random.default_rng(0).permutation(values.size)
    return np.lexsort((tiebreak, -values))


def perturbation_curve(start: torch.Tensor, end: torch.Tensor, order: np.ndarray, steps: int) -> torch.Tensor:
    """steps+1 images going from `start` to `end` by moving pixels over in `order`:
    image k has the first k/steps of the ordered pixels taken from `end`."""
    channels, height, width = start.shape
    rank = torch.empty(height * width, dtype=torch.long)
    rank[torch.from_numpy(order)] = torch.arange(height * width)
    counts = torch.round(torch.linspace(0, height * width, steps + 1)).long()
    taken = (rank[None, :] < counts[:, None]).reshape(steps + 1, 1, height, width)
    return torch.where(taken, end.expand(steps + 1, channels, height, width), start.expand(steps + 1, -1, -1, -1))


def road_images(image: torch.Tensor, order: np.ndarray, fractions: Sequence[float],
                most_relevant_first: bool) -> torch.Tensor:
    """One imputed image per fraction: that share of pixels (most or least relevant) replaced by
    noisy linear imputation; the noise is seeded so scores are reproducible."""
    height, width = image.shape[1:]
    ranked = order if most_relevant_first else order[::-1]
    array = image.detach().float().cpu().numpy()
    rng = np.random.default_rng(0)
    images = []
    for fraction in fractions:
        missing = np.zeros(height * width, dtype=bool)
        missing[ranked[: round(fraction * height * width)]] = True
        missing = missing.reshape(height, width)
        filled = impute(array, missing)
        filled[:, missing] += ROAD_NOISE * rng.standard_normal((array.shape[0], int(missing.sum())))
        images.append(torch.from_numpy(filled))
    return torch.stack(images).to(image.dtype)


def impute(image: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """Fill `missing` pixels of a C×H×W image with the weighted mean of their neighbours (a
    sparse linear system), solved at most at ROAD_MAX_SIDE and upsampled."""
    channels, height, width = image.shape
    if max(height, width) <= ROAD_MAX_SIDE:
        return _impute_exact(image, missing)
    factor = ROAD_MAX_SIDE / max(height, width)
    small_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(image.transpose(1, 2, 0), small_size, interpolation=cv2.INTER_AREA).reshape(
        small_size[1], small_size[0], channels).transpose(2, 0, 1)
    small_missing = cv2.resize(missing.astype(np.float32), small_size, interpolation=cv2.INTER_AREA) > 0.5
    solved = _impute_exact(np.ascontiguousarray(small), small_missing)
    upsampled = cv2.resize(solved.transpose(1, 2, 0), (width, height), interpolation=cv2.INTER_LINEAR).reshape(
        height, width, channels).transpose(2, 0, 1)
    result = image.copy()
    result[:, missing] = upsampled[:, missing]
    return result


def _impute_exact(image: np.ndarray, missing: np.ndarray) -> np.ndarray:
    channels, height, width = image.shape
    flat = image.reshape(channels, -1).astype(np.float64)
    unknown_mask = missing.ravel()
    unknown = np.flatnonzero(unknown_mask)
    if unknown.size == 0:
        return image.astype(np.float32).copy()
    variable = np.full(height * width, -1, dtype=np.int64)
    variable[unknown] = np.arange(unknown.size)
    ys, xs = np.divmod(unknown, width)
    rows, cols, values = [np.arange(unknown.size)], [np.arange(unknown.size)], []
    diagonal = np.zeros(unknown.size)
    rhs = np.zeros((unknown.size, channels))
    for (dy, dx), weight in NEIGHBOURS:
        ny, nx = ys + dy, xs + dx
        inside = (ny >= 0) & (ny < height) & (nx >= 0) & (nx < width)
        equation = np.flatnonzero(inside)
        neighbour = ny[inside] * width + nx[inside]
        diagonal[inside] += weight
        is_unknown = unknown_mask[neighbour]
        rows.append(equation[is_unknown])
        cols.append(variable[neighbour[is_unknown]])
        values.append(np.full(int(is_unknown.sum()), weight))
        rhs[equation[~is_unknown]] -= weight * flat[:, neighbour[~is_unknown]].T
    values.insert(0, -diagonal)
    system = coo_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(unknown.size, unknown.size)).tocsc()
    solution = np.asarray(spsolve(system, rhs)).reshape(unknown.size, channels)
    result = flat.copy()
    result[:, unknown] = solution.T
    return result.reshape(channels, height, width).astype(np.float32)


def curve_auc(scores: np.ndarray) -> float:
    """Trapezoidal area under a curve sampled at equal steps on [0,1]."""
    scores = np.asarray(scores, dtype=np.float64)
    return float(((scores[:-1] + scores[1:]) / 2).sum() / (len(scores) - 1))


def blur(image: torch.Tensor) -> torch.Tensor:
    """A strong Gaussian blur (σ = 1/10 of the side): the 'nothing salient yet' start of insertion."""
    array = image.detach().float().permute(1, 2, 0).cpu().numpy()
    sigma = max(1.0, image.shape[-1] / 10)
    blurred = cv2.GaussianBlur(array, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)
    if blurred.ndim == 2:
        blurred = blurred[..., None]
    return torch.from_numpy(blurred).permute(2, 0, 1).to(image.dtype)


def _probability_of(model: nn.Module | Predict, target: int) -> Predict:
    def predict(batch: torch.Tensor) -> torch.Tensor:
        output = model(pixel_values=batch) if isinstance(model, nn.Module) else model(batch)
        logits = output.logits if hasattr(output, "logits") else output
        return torch.softmax(logits.float(), dim=-1)[:, target]

    return predict
