"""Swin-T + SPST + EMA (Li et al., Opto-Electronic Engineering 2025; spec §5), in plain PyTorch.

Swin-T in the Microsoft layout (stages 1–3 end with PatchMerging), EMA on the post-merging map of
``config.ema_stage`` (default 2: 384×14×14), and SPST (SparseSwin's SparTa block) in place of the
stage-4 Swin blocks. Feature maps run channels-last (B×H×W×C) inside the Swin stages.

``output_maps=True`` returns, in this order:

* ``stage{k}_window_attention`` for every Swin stage: B×heads×H×W, the attention each token
  *receives* inside its window (softmax probabilities averaged over the window's queries, and over
  the stage's blocks after undoing the cyclic shift). 224 px: 3×56×56, 6×28×28, 12×14×14
  (and 24×7×7 for stage 4 when SPST is off). A window-uniform map is 1/49 everywhere.
* ``spst_latent_attention`` (SPST on): B×heads×g×g (16×7×7). Attention received per latent token
  (averaged over queries and layers), projected back to the g×g grid through the converter's
  Linear(positions→latent) weights: position p gets Σ_l received_l·|W_lp|/Σ_p'|W_lp'|, i.e. each
  latent token's attention is shared out in proportion to how much of p it mixes in.
* ``ema_weights`` (EMA on): B×groups×H×W (32×14×14), EMA's sigmoid spatial weights per group.

Grad-CAM target (``cam_target_layers``): the SPST converter conv (B×512×7×7, the layer SparseSwin's
own Grad-CAM uses) or, without SPST, the final LayerNorm over the 7×7 tokens (reshaped by
``cam_reshape_transform``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.layers import DropPath
from torch import nn
from transformers import initialization as init

from .configuration_swin_ema import NUM_STAGES, SwinEmaConfig, stage_grids, stage_window
from .fer_base import FerClassifierOutput, FerPreTrainedModel, classification_loss, to_model_channels
from .fer_layers import EMA, tokens_to_map

MASKED = -100.0  # Swin's additive mask for token pairs that the cyclic shift made neighbours


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """B×H×W×C → B×(H/w·W/w)×w²×C."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c).transpose(2, 3)
    return x.reshape(b, -1, window * window, c)


def window_reverse(windows: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of `window_partition`."""
    b, _, n, c = windows.shape
    window = math.isqrt(n)
    x = windows.view(b, height // window, width // window, window, window, c).transpose(2, 3)
    return x.reshape(b, height, width, c)


def shifted_window_mask(grid: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """nW×w²×w² additive mask: after the cyclic shift, tokens from different image regions share a
    window and must not attend to each other."""
    regions = torch.zeros(1, grid, grid, 1, device=device)
    spans = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for label, (rows, cols) in enumerate((r, c) for r in spans for c in spans):
        regions[:, rows, cols] = label
    labels = window_partition(regions, window).squeeze(-1).squeeze(0)  # nW×w²
    different = labels.unsqueeze(1) != labels.unsqueeze(2)
    return torch.zeros_like(different, dtype=torch.float32).masked_fill(different, MASKED)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the last-but-one axis (any leading dims), returning the
    probabilities it used so explanations need no hooks. Both Swin windows and SPST use it."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        *lead, n, c = x.shape
        qkv = self.qkv(x).view(*lead, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.movedim(-3, 0).transpose(-2, -3)           # each …×heads×N×d
        scores = (q * self.scale) @ k.transpose(-1, -2)
        if bias is not None:
            scores = scores + bias
        probs = scores.softmax(dim=-1)
        out = (probs @ v).transpose(-2, -3).reshape(*lead, n, c)
        return self.proj(out), probs


class RelativePositionBias(nn.Module):
    """Swin's learned bias per head for every relative offset inside a w×w window."""

    def __init__(self, window: int, num_heads: int) -> None:
        super().__init__()
        self.window = window
        self.table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))

    def forward(self) -> torch.Tensor:
        w = self.window
        coords = torch.stack(torch.meshgrid(torch.arange(w), torch.arange(w), indexing="ij")).flatten(1)
        offsets = (coords[:, :, None] - coords[:, None, :]) + (w - 1)
        index = (offsets[0] * (2 * w - 1) + offsets[1]).to(self.table.device)
        return self.table[index].permute(2, 0, 1)                  # heads×w²×w²


def mlp(dim: int, hidden: int, gelu_after_output: bool = False) -> nn.Sequential:
    """Transformer MLP; SparseSwin's SPST also applies GELU after the second linear."""
    layers = [nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)]
    return nn.Sequential(*layers, nn.GELU()) if gelu_after_output else nn.Sequential(*layers)


class SwinBlock(nn.Module):
    """LN → (shifted-)window MSA → residual → LN → MLP → residual, on B×H×W×C maps."""

    def __init__(self, config: SwinEmaConfig, stage: int, grid: int, shifted: bool, drop_path: float) -> None:
        super().__init__()
        dim, heads = config.stage_dim(stage), config.num_heads[stage]
        self.window = stage_window(grid, config.window_size)
        self.shift = self.window // 2 if shifted and grid > self.window else 0
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = SelfAttention(dim, heads, config.qkv_bias)
        self.relative_position = RelativePositionBias(self.window, heads)
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = mlp(dim, int(dim * config.mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the new map and the attention received per token (B×heads×H×W)."""
        _, h, w, _ = x.shape
        shifted = torch.roll(self.norm1(x), (-self.shift, -self.shift), (1, 2)) if self.shift else self.norm1(x)
        bias = self.relative_position()
        if self.shift:
            bias = bias + shifted_window_mask(h, self.window, self.shift, x.device).unsqueeze(1)
        out, probs = self.attn(window_partition(shifted, self.window), bias)
        received = window_reverse(probs.mean(dim=-2).transpose(-1, -2), h, w)  # B×H×W×heads
        out = window_reverse(out, h, w)
        if self.shift:
            out = torch.roll(out, (self.shift, self.shift), (1, 2))
            received = torch.roll(received, (self.shift, self.shift), (1, 2))
        x = x + self.drop_path(out)
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x, received.permute(0, 3, 1, 2)


class PatchMerging(nn.Module):
    """2×2 neighbourhood → LN(4C) → Linear(4C→2C, no bias): halves the grid, doubles channels."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim, eps=eps)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x))


class SwinStage(nn.Module):
    def __init__(self, config: SwinEmaConfig, stage: int, drop_paths: list[float]) -> None:
        super().__init__()
        grid = stage_grids(config.image_size, config.patch_size)[stage]
        self.blocks = nn.ModuleList(
            SwinBlock(config, stage, grid, shifted=i % 2 == 1, drop_path=p) for i, p in enumerate(drop_paths)
        )
        last = stage == NUM_STAGES - 1
        self.downsample = nn.Identity() if last else PatchMerging(config.stage_dim(stage), config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the (merged) map and the received attention averaged over the stage's blocks."""
        maps = []
        for block in self.blocks:
            x, received = block(x)
            maps.append(received)
        return self.downsample(x), torch.stack(maps).mean(dim=0)


class SparseTokenConverter(nn.Module):
    """Conv3×3 to the SPST width, then a learned mixture of the grid positions per latent token."""

    def __init__(self, config: SwinEmaConfig) -> None:
        super().__init__()
        self.conv = nn.Conv2d(config.stage_dim(NUM_STAGES - 1), config.spst_dim, kernel_size=3, padding=1)
        self.token_mixer = nn.Linear(config.final_grid**2, config.latent_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.token_mixer(self.conv(x).flatten(2)).transpose(1, 2)   # B×latent×D

    def position_shares(self) -> torch.Tensor:
        """latent×positions: how much of each grid position each latent token mixes in."""
        weight = self.token_mixer.weight.abs()
        return weight / weight.sum(dim=1, keepdim=True).clamp_min(1e-12)


class SpstLayer(nn.Module):
    def __init__(self, config: SwinEmaConfig) -> None:
        super().__init__()
        dim = config.spst_dim
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.attn = SelfAttention(dim, config.spst_num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.mlp = mlp(dim, int(dim * config.spst_mlp_ratio), gelu_after_output=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, probs = self.attn(self.norm1(x))
        x = x + out
        return x + self.mlp(self.norm2(x)), probs


class SPST(nn.Module):
    """SparseSwin's SparTa block in place of Swin stage 4 (spec §5.1)."""

    def __init__(self, config: SwinEmaConfig) -> None:
        super().__init__()
        self.grid = config.final_grid
        self.converter = SparseTokenConverter(config)
        self.layers = nn.ModuleList(SpstLayer(config) for _ in range(config.spst_depth))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B×C×g×g → latent tokens B×L×D, and the received latent attention on the grid B×heads×g×g."""
        tokens = self.converter(x)
        received = []
        for layer in self.layers:
            tokens, probs = layer(tokens)
            received.append(probs.mean(dim=-2))                      # B×heads×L
        on_grid = torch.stack(received).mean(dim=0) @ self.converter.position_shares()
        return tokens, on_grid.unflatten(-1, (self.grid, self.grid))


class EmaOnTokens(nn.Module):
    """EMA applied to channels-last maps or to square token sets (its input layout in this model)."""

    def __init__(self, channels: int, factor: int) -> None:
        super().__init__()
        self.ema = EMA(channels, factor)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() == 3:                                             # B×N×C latent tokens
            out, weights = self.ema(tokens_to_map(x))
            return out.flatten(2).transpose(1, 2), weights
        out, weights = self.ema(x.permute(0, 3, 1, 2))
        return out.permute(0, 2, 3, 1), weights


class SwinEmaPreTrainedModel(FerPreTrainedModel):
    config_class = SwinEmaConfig
    base_model_prefix = "swin_ema"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, RelativePositionBias):
            init.trunc_normal_(module.table, std=0.02)


class SwinEmaForImageClassification(SwinEmaPreTrainedModel):
    """Swin-T (+ SPST instead of stage 4) (+ EMA after a stage) → LN → token mean → Linear.
    Attentions and Grad-CAM target: see the module docstring."""

    def __init__(self, config: SwinEmaConfig) -> None:
        super().__init__(config)
        self.patch_embed = nn.Conv2d(config.num_channels, config.embed_dim, config.patch_size, config.patch_size)
        self.patch_norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        swin_stages = NUM_STAGES - 1 if config.use_spst else NUM_STAGES
        total = sum(config.depths)
        rates = [config.drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # linear, as in Swin
        starts = [sum(config.depths[:i]) for i in range(NUM_STAGES)]
        self.stages = nn.ModuleList(
            SwinStage(config, i, rates[starts[i]:starts[i] + config.depths[i]]) for i in range(swin_stages)
        )
        self.ema = EmaOnTokens(config.ema_channels(), config.ema_factor) if config.use_ema else None
        self.spst = SPST(config) if config.use_spst else None
        width = config.spst_dim if config.use_spst else config.stage_dim(NUM_STAGES - 1)
        self.norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(width, config.num_labels)
        self.cam_reshape_transform = None if config.use_spst else tokens_to_map
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_maps: bool = False,
        **kwargs: Any,
    ) -> FerClassifierOutput:
        x = self.patch_embed(to_model_channels(pixel_values, self.config.num_channels))
        x = self.patch_norm(x.permute(0, 2, 3, 1))
        maps: dict[str, torch.Tensor] = {}
        ema_weights = None
        for stage_index, stage in enumerate(self.stages, start=1):
            x, maps[f"stage{stage_index}_window_attention"] = stage(x)
            if self.ema is not None and self.config.ema_stage == stage_index:
                x, ema_weights = self.ema(x)
        if self.spst is not None:
            tokens, maps["spst_latent_attention"] = self.spst(x.permute(0, 3, 1, 2))
        else:
            tokens = x.flatten(1, 2)
        if self.ema is not None and self.config.ema_stage == NUM_STAGES:
            tokens, ema_weights = self.ema(tokens)
        if ema_weights is not None:
            maps["ema_weights"] = ema_weights
        logits = self.classifier(self.norm(tokens).mean(dim=1))
        loss = classification_loss(logits, labels) if labels is not None else None
        return FerClassifierOutput(loss=loss, logits=logits, maps=maps if output_maps else None)

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.spst.converter.conv] if self.spst is not None else [self.norm]
