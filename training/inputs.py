"""How samples reach a model: augmentation on the raw uint8 face, then the model's own image
processor on the whole batch (resize, RGB, rescale, normalise as its config says).

Augmenting before the processor keeps one pipeline for every model: the processor is built from
the model config (``model.image_processor()``), never from the architecture name.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from hub_models.preprocessing import pixel_values as to_pixel_values

from .data import DataError, Split

AUGMENTATIONS = ("flip", "crop", "rotate", "zoom", "contrast", "erase")


def build_augmentation(names: Sequence[str]) -> v2.Compose | None:
    """The paper recipes' augmentations, each switchable by name, on uint8 C×H×W tensors.

    ``crop`` is a random shift of up to 7 % (pad-and-crop without a fixed size, so it works on
    folders of mixed image sizes), ``zoom`` a random scale of 0.7–1.3 (Keras zoom_range 0.3).
    """
    unknown = sorted(set(names) - set(AUGMENTATIONS))
    if unknown:
        raise DataError(f"unknown augmentation(s) {', '.join(unknown)}; choose from {', '.join(AUGMENTATIONS)} "
                        "or 'none'")
    steps = {
        "flip": v2.RandomHorizontalFlip(),
        "crop": v2.RandomAffine(degrees=0, translate=(0.07, 0.07)),
        "rotate": v2.RandomRotation(10),
        "zoom": v2.RandomAffine(degrees=0, scale=(0.7, 1.3)),
        "contrast": v2.ColorJitter(contrast=0.3),
        "erase": v2.RandomErasing(p=0.5, scale=(0.02, 0.25)),
    }
    chosen = [steps[name] for name in AUGMENTATIONS if name in names]
    return v2.Compose(chosen) if chosen else None


class FaceDataset(torch.utils.data.Dataset):
    """A `Split` as ``{"image": uint8 C×H×W tensor, "labels": ...}`` samples."""

    def __init__(self, split: Split, augmentation: v2.Compose | None = None) -> None:
        self.split = split
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.split)

    def image(self, index: int) -> torch.Tensor:
        item = self.split.images[index]
        if isinstance(item, np.ndarray):
            return torch.from_numpy(item)[None] if item.ndim == 2 else torch.from_numpy(item).permute(2, 0, 1)
        try:
            with Image.open(item) as image:
                pixels = np.array(image.convert("L" if image.mode in ("L", "I;16", "I", "1") else "RGB"))
        except OSError as error:
            raise DataError(f"{item}: unreadable image ({error})") from error
        return torch.from_numpy(pixels)[None] if pixels.ndim == 2 else torch.from_numpy(pixels).permute(2, 0, 1)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = self.image(index)
        if self.augmentation is not None:
            image = self.augmentation(image)
        return {"image": image, "labels": self.split.labels[index]}


class ProcessorCollator:
    """Batches samples through the model's image processor (torchvision backend: fast on
    batched uint8 tensors)."""

    def __init__(self, processor: Any, channels_last: bool = False) -> None:
        self.processor = processor
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        images = [s["image"] for s in samples]
        channels = {im.shape[0] for im in images}
        if len(channels) > 1:  # mixed gray/colour folders: give every image three channels
            images = [im.expand(3, -1, -1) if im.shape[0] == 1 else im for im in images]
        batch: Any = torch.stack(images) if len({im.shape for im in images}) == 1 else images
        pixel_values = to_pixel_values(self.processor, batch)
        pixel_values = pixel_values.contiguous(memory_format=self.memory_format)
        labels = torch.from_numpy(np.stack([np.asarray(s["labels"]) for s in samples]))
        return {"pixel_values": pixel_values, "labels": labels if labels.is_floating_point() else labels.long()}
