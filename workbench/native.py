"""A model's own named maps (`FerClassifierOutput.maps`), interpreted only by shape:
B×H×W is a spatial map, B×K×H×W a stack averaged over K, B×C a vector of channel gates."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np
import torch


def read_native_maps(maps: Mapping[str, torch.Tensor], size: tuple[int, int]) -> dict[str, np.ndarray]:
    """First item of the batch of each tensor → a [0,1] H×W map at `size` (height, width), or
    a raw 1-D float32 vector, under the model's name for it."""
    return {name: native_map(tensor, size) for name, tensor in maps.items()}


def native_map(tensor: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    values = tensor.detach().float()[0].cpu().numpy()
    if values.ndim == 1:
        return values.astype(np.float32)
    if values.ndim == 3:
        values = values.mean(axis=0)
    if values.ndim != 2:
        raise ValueError(f"native attention tensor of shape {tuple(tensor.shape)} is neither B×H×W, "
                         "B×K×H×W nor B×C (see FerClassifierOutput in fer_base.py)")
    return normalise(cv2.resize(values, (size[1], size[0]), interpolation=cv2.INTER_LINEAR))


def normalise(values: np.ndarray) -> np.ndarray:
    """Min-max to [0,1]; a constant map becomes all zeros (it says nothing about location)."""
    values = np.nan_to_num(values.astype(np.float32))
    low, high = float(values.min()), float(values.max())
    if high - low <= 1e-12:
        return np.zeros_like(values)
    return (values - low) / (high - low)
