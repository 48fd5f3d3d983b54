"""Augmentation of whole training batches as tensors, inside the training step.

Why: on a 2-core CPU, augmenting 48×48 faces one by one (PIL or per-sample torchvision ops)
costs as much as the forward pass of a small model. Here one affine warp (`grid_sample`) moves
the whole batch at once, erasing is one masked write, and mixup/cutmix/label smoothing turn the
labels into distributions that every FER model's loss already accepts (`classification_loss`).
The batch arrives already normalised by the model's own image processor, so the pixels a model
sees in training differ from evaluation only by the augmentation itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class BatchAugment:
    """Random, per-sample geometric and occlusion augmentation plus label mixing for one batch.

    ``rotate`` (degrees), ``scale`` (min, max) and ``translate`` (fraction of the side) define one
    random similarity transform per face, with a horizontal flip half of the time when ``flip``;
    ``erase`` is the probability of blanking one random rectangle (2–20 % of the face) per face.
    ``mixup``/``cutmix`` are Beta(α, α) concentrations (0 = off); with probability ``mix_prob`` one
    of the enabled two is applied to the batch. ``label_smoothing`` spreads that much probability
    mass uniformly over the classes.
    """

    flip: bool = True
    rotate: float = 10.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 0.08
    erase: float = 0.25
    mixup: float = 0.0
    cutmix: float = 0.0
    mix_prob: float = 0.5
    label_smoothing: float = 0.1

    def __call__(self, pixel_values: torch.Tensor, labels: torch.Tensor,
                 num_labels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Augmented pixel values (same memory format) and float label distributions B×num_labels."""
        memory_format = (torch.channels_last if pixel_values.is_contiguous(memory_format=torch.channels_last)
                         and not pixel_values.is_contiguous() else torch.contiguous_format)
        targets = soft_targets(labels, num_labels, self.label_smoothing)
        images = self.warp(pixel_values)
        if self.erase > 0:
            images = erase_rectangles(images, self.erase)
        images, targets = self.mix(images, targets)
        return images.contiguous(memory_format=memory_format), targets

    def warp(self, images: torch.Tensor) -> torch.Tensor:
        batch = images.shape[0]
        if not self.flip and self.rotate == 0 and self.scale == (1.0, 1.0) and self.translate == 0:
            return images
        angle = (torch.rand(batch) * 2 - 1) * math.radians(self.rotate)
        zoom = self.scale[0] + torch.rand(batch) * (self.scale[1] - self.scale[0])
        mirror = torch.where(torch.rand(batch) < 0.5, -1.0, 1.0) if self.flip else torch.ones(batch)
        shift = (torch.rand(batch, 2) * 2 - 1) * 2 * self.translate  # grid coordinates span 2
        cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
        theta = torch.stack([torch.stack([cos * mirror, -sin, shift[:, 0]], dim=1),
                             torch.stack([sin * mirror, cos, shift[:, 1]], dim=1)], dim=1)
        grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def mix(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enabled = [name for name, alpha in (("mixup", self.mixup), ("cutmix", self.cutmix)) if alpha > 0]
        if not enabled or torch.rand(()) >= self.mix_prob:
            return images, targets
        kind = enabled[int(torch.randint(len(enabled), ()))]
        alpha = self.mixup if kind == "mixup" else self.cutmix
        share = float(torch.distributions.Beta(alpha, alpha).sample())
        partner = torch.randperm(images.shape[0])
        if kind == "mixup":
            images = share * images + (1 - share) * images[partner]
        else:
            height, width = images.shape[-2:]
            box_h, box_w = round(height * math.sqrt(1 - share)), round(width * math.sqrt(1 - share))
            top, left = int(torch.randint(height - box_h + 1, ())), int(torch.randint(width - box_w + 1, ()))
            images = images.clone()
            images[..., top:top + box_h, left:left + box_w] = images[partner][..., top:top + box_h, left:left + box_w]
            share = 1 - box_h * box_w / (height * width)
        return images, share * targets + (1 - share) * targets[partner]


def soft_targets(labels: torch.Tensor, num_labels: int, smoothing: float) -> torch.Tensor:
    """Class indices or label distributions → smoothed distributions B×num_labels (float32)."""
    if labels.is_floating_point() and labels.ndim == 2:
        targets = labels.float()
    else:
        targets = F.one_hot(labels.long(), num_labels).float()
    return targets * (1 - smoothing) + smoothing / num_labels


def erase_rectangles(images: torch.Tensor, probability: float) -> torch.Tensor:
    """Blank one random rectangle (2–20 % of the area, aspect 0.3–3.3) in a `probability` share of
    the faces, with 0 in normalised units (mid-grey for mean-0.5 models, black for [0, 1] inputs)."""
    batch, _, height, width = images.shape
    area = (0.02 + torch.rand(batch) * 0.18) * height * width
    aspect = torch.exp(torch.empty(batch).uniform_(math.log(0.3), math.log(3.3)))
    box_h = torch.sqrt(area * aspect).clamp(1, height)
    box_w = torch.sqrt(area / aspect).clamp(1, width)
    top = torch.rand(batch) * (height - box_h)
    left = torch.rand(batch) * (width - box_w)
    rows = torch.arange(height).view(1, height, 1)
    cols = torch.arange(width).view(1, 1, width)
    inside = ((rows >= top.view(-1, 1, 1)) & (rows < (top + box_h).view(-1, 1, 1))
              & (cols >= left.view(-1, 1, 1)) & (cols < (left + box_w).view(-1, 1, 1)))
    chosen = (torch.rand(batch) < probability).view(-1, 1, 1)
    return images.masked_fill((inside & chosen).unsqueeze(1), 0.0)
