"""Per-architecture training defaults, from the recipes in the model spec
(``../shared/design/architectures.md`` §1.4, §2.4, §3.4, §4.5, §5.4).

This table is the only place where training knows architecture names; every value can be
overridden on the command line. Batch sizes and epochs are the papers' where a CPU can follow
them and are marked where they were shortened.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

SCHEDULES = ("constant", "cosine", "step", "exponential", "inverse_time")


@dataclass(frozen=True)
class Recipe:
    """How to train one architecture.

    ``schedule`` is a function of the (fractional) epoch: ``step`` multiplies by ``gamma`` every
    ``step_epochs``, ``exponential`` by ``gamma`` per epoch, ``inverse_time`` divides by
    ``1 + epoch / decay_epochs`` (Keras InverseTimeDecay), ``cosine`` decays to 0 over the run.
    ``frozen_module``/``frozen_epochs`` give a first stage that trains only the rest of the model
    (used only when the model starts from trained weights: freezing a random backbone is pointless);
    the second stage then trains everything at ``lr × finetune_lr_scale``.
    """

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"
    gamma: float = 0.1
    step_epochs: float = 10
    decay_epochs: float = 80
    warmup_epochs: float = 0.0
    epochs: int = 30
    batch_size: int = 64
    max_grad_norm: float = 1.0
    augment: tuple[str, ...] = ("flip", "crop")
    frozen_module: str | None = None
    frozen_epochs: int = 0
    finetune_lr_scale: float = 1.0
    source: str = ""

    def with_overrides(self, **overrides: Any) -> Recipe:
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def lr_factor(self, epoch: float, total_epochs: float) -> float:
        """Multiplier of the base learning rate at a fractional epoch (stage 2 restarts the clock)."""
        if self.frozen_epochs and epoch >= self.frozen_epochs:
            epoch, total_epochs = epoch - self.frozen_epochs, total_epochs - self.frozen_epochs
            scale = self.finetune_lr_scale
        else:
            scale = 1.0
        if self.warmup_epochs and epoch < self.warmup_epochs:
            return scale * (epoch + 1e-3) / self.warmup_epochs
        if self.schedule == "step":
            factor = self.gamma ** math.floor(epoch / self.step_epochs)
        elif self.schedule == "exponential":
            factor = self.gamma ** epoch
        elif self.schedule == "inverse_time":
            factor = 1.0 / (1.0 + epoch / self.decay_epochs)
        elif self.schedule == "cosine":
            span = max(total_epochs - self.warmup_epochs, 1e-9)
            factor = 0.5 * (1 + math.cos(math.pi * min(1.0, (epoch - self.warmup_epochs) / span)))
        else:
            factor = 1.0
        return scale * factor


RECIPES: dict[str, Recipe] = {
    # Miskow & Altahhan: Adam 1e-4, batch 64, ≤200 epochs with early stopping; zoom 0.3 + flip.
    "attention_cnn": Recipe(optimizer="adam", lr=1e-4, schedule="constant", epochs=60, batch_size=64,
                            augment=("flip", "zoom"), source="spec §2.4 (epochs shortened from ≤200)"),
    # PAtt-Lite: Adam, clip 3.0, batch 8; head stage lr 1e-3 with a frozen backbone, then the whole
    # model at 1e-5 / (1 + epoch/80); flip + contrast 0.3.
    "patt_lite": Recipe(optimizer="adam", lr=1e-3, schedule="inverse_time", decay_epochs=80, epochs=60,
                        batch_size=8, max_grad_norm=3.0, augment=("flip", "contrast"), frozen_module="backbone",
                        frozen_epochs=10, finetune_lr_scale=1e-2, source="spec §3.4"),
    # DDAMFN (RAF-DB/FERPlus scripts): SGD m 0.9, wd 1e-4, lr 0.01, StepLR(10, ×0.1), 40 epochs,
    # batch 256; flip, rotation, crop with padding, random erasing. CE + 0.1·L_att is in the model.
    "ddamfn": Recipe(optimizer="sgd", lr=0.01, weight_decay=1e-4, schedule="step", step_epochs=10, gamma=0.1,
                     epochs=40, batch_size=256, augment=("flip", "rotate", "crop", "erase"), source="spec §4.5"),
    # Swin-T + SPST + EMA: AdamW 1e-4, wd 0.05, cosine, 100 epochs, batch 32 [GUESS in the spec].
    "swin_ema": Recipe(optimizer="adamw", lr=1e-4, weight_decay=0.05, schedule="cosine", warmup_epochs=1,
                       epochs=100, batch_size=32, augment=("flip", "crop"), source="spec §5.4 [GUESS]"),
    # CF-DAN: Adam-family, lr 1e-4, flip + random erasing [GUESS in the spec].
    "cf_dan": Recipe(optimizer="adam", lr=1e-4, schedule="cosine", epochs=100, batch_size=64,
                     augment=("flip", "erase"), source="spec §1.4 [GUESS]"),
}

DEFAULT_RECIPE = Recipe(source="generic default (architecture has no recipe in the spec)")


def recipe_for(model_type: str) -> Recipe:
    return RECIPES.get(model_type, DEFAULT_RECIPE)
