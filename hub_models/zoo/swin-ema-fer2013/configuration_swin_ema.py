"""Swin-T + SPST + EMA configuration (Li et al., Opto-Electronic Engineering 2025; spec §5).

Defaults are the paper's proposed model (Swin-T, stage 4 replaced by SPST, EMA after stage 2) at
224×224 RGB with 7 classes: 23,186,739 parameters. The ablations of Table 1 are the flags
``use_spst`` / ``use_ema``: Swin-T 27,524,737, +EMA 27,526,225, +SPST 23,185,251.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .fer_base import IMAGENET_MEAN, IMAGENET_STD, FerConfig, require

NUM_STAGES = 4


def stage_grids(image_size: int, patch_size: int) -> list[int]:
    """Side of the token grid inside each Swin stage (56, 28, 14, 7 at 224 px)."""
    first = image_size // patch_size
    return [first // 2**i for i in range(NUM_STAGES)]


def stage_window(grid: int, window_size: int) -> int:
    """Swin's rule: a window larger than the map becomes the whole map (and is not shifted)."""
    return min(grid, window_size)


class SwinEmaConfig(FerConfig):
    """Swin-T (Microsoft stage layout: stages 1–3 end with PatchMerging) with SPST and EMA.

    Args:
        patch_size, embed_dim, depths, num_heads, window_size, mlp_ratio, qkv_bias: Swin-T
            (4, 96, (2, 2, 6, 2), (3, 6, 12, 24), 7, 4.0, True).
        drop_path_rate: stochastic depth, linearly increasing over the Swin blocks (0.2, Swin-T's).
        use_spst: replace the stage-4 Swin blocks by SPST (SparseSwin's SparTa block, spec §5.1):
            Conv3×3 768→``spst_dim`` → Linear over the 49 positions to ``spst_latent_tokens``
            latent tokens → ``spst_depth`` pre-norm transformer layers (``spst_num_heads`` heads,
            MLP ×``spst_mlp_ratio`` with GELU after both linears) → LN → token mean.
        spst_latent_tokens: ``None`` = as many latent tokens as stage-4 positions (49 at 224 px).
        use_ema: insert EMA (factor ``ema_factor``) after stage ``ema_stage`` (post-merging map, so
            after stage 2 it sees 384×14×14). Stage 4 means the final map (the SPST latent tokens
            viewed as a square grid when SPST is on). Table 5 positions 1–4 are all reproducible.
        image_size: 224 by default. Every stage grid (image_size/4, /8, /16, /32) must be even
            before merging and divisible by its window (or no larger than it), so with window 7 the
            valid sizes are multiples of 224; smaller inputs need a smaller window, e.g.
            ``image_size=64, window_size=2`` (maps 16, 8, 4, 2). ``image_size=112`` is invalid for
            any window (its stage-3 map is 7×7, odd before the last merging). Invalid combinations
            raise a ValueError naming the field.
    """

    model_type = "swin_ema"

    def __init__(
        self,
        patch_size: int = 4,
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.2,
        layer_norm_eps: float = 1e-5,
        use_spst: bool = True,
        spst_dim: int = 512,
        spst_depth: int = 2,
        spst_num_heads: int = 16,
        spst_mlp_ratio: float = 4.0,
        spst_latent_tokens: int | None = None,
        use_ema: bool = True,
        ema_stage: int = 2,
        ema_factor: int = 32,
        image_size: int = 224,
        num_channels: int = 3,
        image_mean: Any = IMAGENET_MEAN,
        image_std: Any = IMAGENET_STD,
        **kwargs: Any,
    ) -> None:
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.depths = list(depths)
        self.num_heads = list(num_heads)
        self.window_size = window_size
        self.mlp_ratio = mlp_ratio
        self.qkv_bias = qkv_bias
        self.drop_path_rate = drop_path_rate
        self.layer_norm_eps = layer_norm_eps
        self.use_spst = use_spst
        self.spst_dim = spst_dim
        self.spst_depth = spst_depth
        self.spst_num_heads = spst_num_heads
        self.spst_mlp_ratio = spst_mlp_ratio
        self.spst_latent_tokens = spst_latent_tokens
        self.use_ema = use_ema
        self.ema_stage = ema_stage
        self.ema_factor = ema_factor
        super().__init__(image_size=image_size, num_channels=num_channels, image_mean=image_mean,
                         image_std=image_std, **kwargs)
        self._validate()

    def stage_dim(self, stage: int) -> int:
        """Channels inside Swin stage `stage` (0-based): 96, 192, 384, 768."""
        return self.embed_dim * 2**stage

    @property
    def final_grid(self) -> int:
        return stage_grids(self.image_size, self.patch_size)[-1]

    @property
    def latent_tokens(self) -> int:
        return self.spst_latent_tokens or self.final_grid**2

    def ema_channels(self) -> int:
        """Channels of the map EMA sees: the post-merging output of stage `ema_stage`."""
        if self.ema_stage == NUM_STAGES:
            return self.spst_dim if self.use_spst else self.stage_dim(NUM_STAGES - 1)
        return self.stage_dim(self.ema_stage)

    def _validate(self) -> None:
        for field in ("patch_size", "embed_dim", "window_size", "spst_dim", "spst_depth", "spst_num_heads",
                      "ema_factor"):
            value = getattr(self, field)
            require(isinstance(value, int) and value > 0, field, f"got {value!r}, expected a positive integer")
        for field in ("depths", "num_heads"):
            values = getattr(self, field)
            require(len(values) == NUM_STAGES and all(isinstance(v, int) and v > 0 for v in values), field,
                    f"got {values!r}, expected {NUM_STAGES} positive integers")
        require(0 <= self.drop_path_rate < 1, "drop_path_rate", f"got {self.drop_path_rate!r}, expected 0 ≤ p < 1")
        require(self.image_size % self.patch_size == 0, "image_size",
                f"{self.image_size} is not a multiple of patch_size {self.patch_size}")
        grids = stage_grids(self.image_size, self.patch_size)
        for stage, grid in enumerate(grids):
            if stage:
                require(grids[stage - 1] % 2 == 0, "image_size",
                        f"{self.image_size} px gives an odd {grids[stage - 1]}-token map before PatchMerging into "
                        f"stage {stage + 1}; use a multiple of {self.patch_size * 2 ** (NUM_STAGES - 1)}")
            window = stage_window(grid, self.window_size)
            require(grid % window == 0, "window_size",
                    f"window {self.window_size} does not divide the {grid}×{grid} token map of stage {stage + 1} "
                    f"(image_size {self.image_size}); pick a window that divides every stage map")
            dim = self.stage_dim(stage)
            require(dim % self.num_heads[stage] == 0, "num_heads",
                    f"{self.num_heads[stage]} heads do not divide the {dim} channels of stage {stage + 1}")
        require(self.spst_dim % self.spst_num_heads == 0, "spst_num_heads",
                f"{self.spst_num_heads} heads do not divide spst_dim {self.spst_dim}")
        latent = self.spst_latent_tokens
        require(latent is None or (isinstance(latent, int) and latent > 0), "spst_latent_tokens",
                f"got {latent!r}, expected None or a positive integer")
        require(self.ema_stage in range(1, NUM_STAGES + 1), "ema_stage",
                f"got {self.ema_stage!r}, expected 1, 2, 3 or 4")
        if self.use_ema:
            channels = self.ema_channels()
            require(channels % self.ema_factor == 0, "ema_factor",
                    f"{self.ema_factor} groups do not divide the {channels} channels after stage {self.ema_stage}")
            if self.ema_stage == NUM_STAGES and self.use_spst:
                side = round(self.latent_tokens**0.5)
                require(side * side == self.latent_tokens, "spst_latent_tokens",
                        f"EMA after stage 4 views the {self.latent_tokens} SPST tokens as a square grid")
