"""CF-DAN (Zhang et al., CVM 2024; spec §1), reconstructed: no public code or full text exists,
so every unsourced choice is a config field marked GUESS (see `CfDanConfig` and MODEL_CARD.md).

IR-50 stages 1–3 (256×14×14 at 112 px; or a MobileNetV2 trunk, 96×7×7) → 1×1 conv + BN to D →
N tokens (196 with IR-50 at 112 px; + position embedding) → L CF-DA blocks → LN → token mean →
Linear. One CF-DA block, per channel group g:

* spatial self-attention: Q from all N tokens, K and V from the *distilled* tokens (N/r);
* channel self-attention: a d_g×d_g affinity of L2-normalised Q̂/K̂ with a learnable temperature;
* cross-fusion: a channel gate g_c = φ(W₂ ReLU(W₁ GAP(S))) from the spatial stream scales the
  channel stream, a spatial gate g_s = φ(W C) from the channel stream scales the spatial stream,
  both fused by a per-group linear, then a 1×1 projection; φ = C²-sigmoid (or sigmoid);
* closed loop: the distilled tokens, upsampled back to N, join the residual;
* FFN D → 4D → D with the C² activation (or GELU/ELU).

``output_maps=True`` returns, each averaged over the L blocks:

* ``spatial_attention`` B×G×g×g (14×14): attention each grid position *receives* in group G's
  spatial branch (softmax mass averaged over heads and the N queries). With distillation the keys
  are the N/r distilled tokens; their mass is spread back to the grid by the same nearest
  upsampling the closed loop uses (and divided by r, so a uniform map stays uniform).
* ``channel_attention`` B×D: attention each channel receives in its group's d_g×d_g affinity.
* ``spatial_gate`` B×G×g×g: the C² gate g_s on the spatial stream, per group.
* ``channel_gate`` B×D: the C² gate g_c on the channel stream.

Grad-CAM target (``cam_target_layers``): the final LayerNorm over the tokens, i.e. the normalised
output of the last CF-DA block (B×196×D, reshaped to B×D×14×14 by ``cam_reshape_transform``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from timm.layers import DropPath, resample_abs_pos_embed
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init

from .configuration_cf_dan import CfDanConfig
from .fer_base import FerClassifierOutput, FerPreTrainedModel, classification_loss, to_model_channels
from .fer_layers import C2PReLU, C2Sigmoid, MobileNetV2Trunk, tokens_to_map

# --- IR-50 backbone (ArcFace "IR" units; stages 1–3) ---------------------------------------------


class BottleneckIR(nn.Module):
    """BN → 3×3 conv → PReLU → 3×3 conv (stride) → BN, plus an identity/projection shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if in_channels == out_channels:
            self.shortcut: nn.Module = nn.MaxPool2d(1, stride)
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))
        self.residual = nn.Sequential(
            nn.BatchNorm2d(in_channels),
            nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False),
            nn.PReLU(out_channels),
            nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.residual(x)


class IR50Body(nn.Sequential):
    """Stem (3×3 conv, BN, PReLU) and the IR-50 stages; each stage halves the map in its first unit."""

    def __init__(self, config: CfDanConfig) -> None:
        stem = config.backbone_widths[0]
        layers: list[nn.Module] = [nn.Conv2d(config.num_channels, stem, 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(stem), nn.PReLU(stem)]
        in_channels = stem
        for depth, width in zip(config.backbone_depths, config.backbone_widths, strict=True):
            for unit in range(depth):
                layers.append(BottleneckIR(in_channels, width, stride=2 if unit == 0 else 1))
                in_channels = width
        super().__init__(*layers)
        self.out_channels = in_channels


def build_backbone(config: CfDanConfig) -> IR50Body | MobileNetV2Trunk:
    if config.backbone == "mobilenet_v2":
        return MobileNetV2Trunk(config.num_channels, config.backbone_stride)
    return IR50Body(config)


# --- CF-DA block ---------------------------------------------------------------------------------


class GroupedLinear(nn.Module):
    """A separate Linear per channel group (block-diagonal weight), on group-contiguous features."""

    def __init__(self, groups: int, in_features: int, out_features: int) -> None:
        super().__init__()
        self.groups = groups
        self.weight = nn.Parameter(torch.empty(groups, in_features // groups, out_features // groups))
        self.bias = nn.Parameter(torch.zeros(groups, out_features // groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grouped = x.unflatten(-1, (self.groups, -1))
        return (torch.einsum("...gi,gio->...go", grouped, self.weight) + self.bias).flatten(-2)


class TokenDistillation(nn.Module):
    """Informer-style distilling on the row-major token sequence: Conv1d(k=3) → BN → ELU →
    MaxPool1d(stride r), per group (or depthwise): N tokens → ⌈N/r⌉."""

    def __init__(self, config: CfDanConfig) -> None:
        super().__init__()
        dim, r = config.hidden_size, config.distill_ratio
        groups = dim if config.distill_depthwise else config.num_groups
        self.conv = nn.Conv1d(dim, dim, kernel_size=3, padding=1, groups=groups)
        self.norm = nn.BatchNorm1d(dim)
        self.pool = nn.MaxPool1d(kernel_size=2 * (r // 2) + 1, stride=r, padding=r // 2)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = F.elu(self.norm(self.conv(tokens.transpose(1, 2))))
        return self.pool(x).transpose(1, 2)


def upsample_tokens(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """…×N'×C → …×N×C by nearest repetition along the sequence (the inverse of the distillation's
    stride used by the closed loop and by the attention maps)."""
    lead = tokens.shape[:-2]
    flat = tokens.reshape(-1, *tokens.shape[-2:]).transpose(1, 2)
    return F.interpolate(flat, size=length, mode="nearest").transpose(1, 2).reshape(*lead, length, -1)


def gate_activation(config: CfDanConfig) -> nn.Module:
    return C2Sigmoid(*config.c2_sigmoid_init) if config.activation == "c2" else nn.Sigmoid()


def ffn_activation(config: CfDanConfig) -> nn.Module:
    return {"c2": lambda: C2PReLU(*config.c2_prelu_init), "gelu": nn.GELU, "elu": nn.ELU}[config.activation]()


class SpatialAttention(nn.Module):
    """Per-group multi-head attention: queries on all tokens, keys/values on `source` tokens."""

    def __init__(self, config: CfDanConfig) -> None:
        super().__init__()
        dim, self.groups, self.heads = config.hidden_size, config.num_groups, config.spatial_heads
        self.scale = (config.group_width // self.heads) ** -0.5
        self.query = GroupedLinear(self.groups, dim, dim)
        self.key_value = GroupedLinear(self.groups, dim, 2 * dim)

    def forward(self, tokens: torch.Tensor, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns B×N×D outputs and probabilities B×G×heads×N×N'."""
        b, n, d = tokens.shape
        q = self.query(tokens).view(b, n, self.groups, self.heads, -1).permute(0, 2, 3, 1, 4)
        kv = self.key_value(source).view(b, source.shape[1], self.groups, 2, self.heads, -1)
        k, v = kv.permute(3, 0, 2, 4, 1, 5)                       # each B×G×heads×N'×dh
        probs = ((q * self.scale) @ k.transpose(-1, -2)).softmax(dim=-1)
        return (probs @ v).permute(0, 3, 1, 2, 4).reshape(b, n, d), probs


class ChannelAttention(nn.Module):
    """Per-group transposed attention (d_g×d_g channel affinity, cosine similarity × learnable
    temperature), Q̂/K̂/V̂ optionally refined by a 3×3 depthwise conv on the token grid."""

    def __init__(self, config: CfDanConfig) -> None:
        super().__init__()
        dim, self.groups, self.grid = config.hidden_size, config.num_groups, config.grid
        self.qkv = GroupedLinear(self.groups, dim, 3 * dim)
        self.local = (nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim) if config.channel_dwconv
                      else nn.Identity())
        self.temperature = nn.Parameter(torch.ones(self.groups, 1, 1))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns B×N×D outputs and the affinity B×G×d_g×d_g."""
        b, n, d = tokens.shape
        qkv = self.local(tokens_to_map(self.qkv(tokens))).flatten(2)        # B×3D×N, group-major
        q, k, v = qkv.view(b, self.groups, 3, d // self.groups, n).unbind(dim=2)  # each B×G×d_g×N
        affinity = (F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-1, -2)) * self.temperature
        affinity = affinity.softmax(dim=-1)
        return (affinity @ v).permute(0, 3, 1, 2).reshape(b, n, d), affinity


class CrossFusion(nn.Module):
    """Interactive learning: each stream gates the other (channel gate from the spatial stream,
    spatial gate from the channel stream), then a per-group linear fuses them."""

    def __init__(self, config: CfDanConfig) -> None:
        super().__init__()
        dim, groups = config.hidden_size, config.num_groups
        self.channel_gate = nn.Sequential(GroupedLinear(groups, dim, dim // config.gate_reduction), nn.ReLU(),
                                          GroupedLinear(groups, dim // config.gate_reduction, dim),
                                          gate_activation(config))
        self.spatial_gate = nn.Sequential(GroupedLinear(groups, dim, groups), gate_activation(config))
        self.fuse = GroupedLinear(groups, 2 * dim, dim)
        self.groups = groups

    def forward(self, spatial: torch.Tensor, channel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns fused B×N×D, g_s B×N×G and g_c B×D."""
        g_c = self.channel_gate(spatial.mean(dim=1))
        g_s = self.spatial_gate(channel)
        gated_spatial = spatial.unflatten(-1, (self.groups, -1)) * g_s.unsqueeze(-1)
        gated_channel = (channel * g_c.unsqueeze(1)).unflatten(-1, (self.groups, -1))
        return self.fuse(torch.cat([gated_spatial, gated_channel], dim=-1).flatten(-2)), g_s, g_c


class CfDaBlock(nn.Module):
    def __init__(self, config: CfDanConfig, drop_path: float) -> None:
        super().__init__()
        dim = config.hidden_size
        self.norm1 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.distill = TokenDistillation(config) if config.use_distillation else None
        self.closed_loop = config.closed_loop
        self.spatial = SpatialAttention(config)
        self.channel = ChannelAttention(config)
        self.fusion = CrossFusion(config)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        hidden = int(dim * config.mlp_ratio)
        self.ffn = nn.Sequential(nn.Linear(dim, hidden), ffn_activation(config), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n = x.shape[1]
        tokens = self.norm1(x)
        distilled = self.distill(tokens) if self.distill is not None else tokens
        spatial, spatial_probs = self.spatial(tokens, distilled)
        channel, affinity = self.channel(tokens)
        fused, g_s, g_c = self.fusion(spatial, channel)
        x = x + self.drop_path(self.proj(fused))
        if self.closed_loop:
            x = x + upsample_tokens(distilled, n)
        x = x + self.drop_path(self.ffn(self.norm2(x)))
        received = spatial_probs.mean(dim=(2, 3)).unsqueeze(-1)                 # B×G×N'×1
        received = upsample_tokens(received, n).squeeze(-1) * (received.shape[2] / n)
        maps = {"spatial_attention": received, "channel_attention": affinity.mean(dim=2).flatten(1),
                "spatial_gate": g_s.transpose(1, 2), "channel_gate": g_c}
        return x, maps


class PositionEmbedding(nn.Module):
    def __init__(self, tokens: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(1, tokens, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.embedding

    def resampled(self, saved: torch.Tensor) -> torch.Tensor:
        """An embedding learned on another square token grid, bicubically resampled to this one: a
        fine-tune at a new input size keeps what each region of the face learned, as ViTs do,
        instead of starting the positions from noise."""
        side = math.isqrt(self.embedding.shape[1])
        return resample_abs_pos_embed(saved.float(), [side, side], num_prefix_tokens=0, antialias=False)



class CfDanPreTrainedModel(FerPreTrainedModel):
    config_class = CfDanConfig
    base_model_prefix = "cf_dan"

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, GroupedLinear):
            init.trunc_normal_(module.weight, std=0.02)
            init.zeros_(module.bias)
        elif isinstance(module, PositionEmbedding):
            init.trunc_normal_(module.embedding, std=0.02)
        elif isinstance(module, ChannelAttention):
            init.ones_(module.temperature)


class CfDanForImageClassification(CfDanPreTrainedModel):
    """CF-DAN classifier. Attentions and Grad-CAM target: see the module docstring."""

    def __init__(self, config: CfDanConfig) -> None:
        super().__init__(config)
        dim = config.hidden_size
        self.backbone = build_backbone(config)
        self.to_tokens = nn.Sequential(nn.Conv2d(self.backbone.out_channels, dim, 1), nn.BatchNorm2d(dim))
        self.position = PositionEmbedding(config.grid**2, dim) if config.use_position_embedding else nn.Identity()
        rates = [config.drop_path_rate * i / max(config.num_layers - 1, 1) for i in range(config.num_layers)]
        self.blocks = nn.ModuleList(CfDaBlock(config, rate) for rate in rates)
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.classifier = nn.Linear(dim, config.num_labels)
        self.cam_reshape_transform = tokens_to_map
        self.post_init()

    def resized_weights(self, saved: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loader's hook for a fine-tune at a new input size: of the saved tensors whose shape
        no longer fits, those this model can carry over, made to fit (the position embedding)."""
        key = "position.embedding"
        if key in saved and isinstance(self.position, PositionEmbedding):
            return {key: self.position.resampled(saved[key])}
        return {}

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_maps: bool = False,
        **kwargs: Any,
    ) -> FerClassifierOutput:
        features = self.backbone(to_model_channels(pixel_values, self.config.num_channels))
        x = self.position(self.to_tokens(features).flatten(2).transpose(1, 2))
        per_block = []
        for block in self.blocks:
            x, maps = block(x)
            per_block.append(maps)
        logits = self.classifier(self.norm(x).mean(dim=1))
        loss = classification_loss(logits, labels) if labels is not None else None
        mean = None
        if output_maps:
            grid = (self.config.grid, self.config.grid)
            mean = {name: torch.stack([maps[name] for maps in per_block]).mean(dim=0) for name in per_block[0]}
            for spatial in ("spatial_attention", "spatial_gate"):
                mean[spatial] = mean[spatial].unflatten(-1, grid)
        return FerClassifierOutput(loss=loss, logits=logits, maps=mean)

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.norm]
