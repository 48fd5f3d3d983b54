"""DDAMFN (spec §4): MixedFeatureNet (MobileFaceNet layout with MixConv depthwise kernels and
coordinate attention in every bottleneck) → n dual-direction attention (DDA) heads → element-wise
max of their maps → features × map → GDConv → linear classifier.

Only modules that run are built: the authors' MDConv BN/PReLU, the heads' 7×7 LinearBlocks, the
unused BatchNorm1d and the MS-Celeb embedding head are left out, so ``parameters()`` equals the
executed count of the paper (4,105,999 with 7 classes, 2 heads, 112 px).

``output_maps=True`` returns each head's map ``a_i = a_h·a_w`` (B×512×7×7, one 7×7 map per
channel: the workbench averages them) as ``dda_head_1 … dda_head_n``, then the max-fused map
(B×512×7×7) as ``fused``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from .configuration_ddamfn import DdamfnConfig
from .fer_base import FerClassifierOutput, FerPreTrainedModel, classification_loss, to_model_channels
from .fer_layers import CoordinateAttention, GlobalDepthwiseConv, MixConv

# MixedFeatureNet stages after the stem [spec §4.2]:
# (name, in, out, expansion, MixConv kernels, channel split, stride, blocks)
MFN_STAGES = (
    ("conv_23", 64, 64, 128, (3, 5, 7), (64, 32, 32), 2, 1),
    ("conv_3", 64, 64, 128, (3, 5), (96, 32), 1, 9),
    ("conv_34", 64, 128, 256, (3, 5, 7), (128, 64, 64), 2, 1),
    ("conv_4", 128, 128, 256, (3, 5), (192, 64), 1, 16),
    ("conv_45", 128, 256, 1024, (3, 5, 7, 9), (256, 256, 256, 256), 2, 1),
    ("conv_5", 256, 256, 512, (3, 5, 7), (172, 170, 170), 1, 6),
)
STEM_CHANNELS = 64


class LinearBlock(nn.Sequential):
    """Conv (no bias) + BN: MobileFaceNet's linear bottleneck projection."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)


class ConvBlock(LinearBlock):
    """Conv (no bias) + BN + per-channel PReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 padding: int = 0, groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, groups)
        self.prelu = nn.PReLU(out_channels)


class MixBottleneck(nn.Module):
    """1×1 expansion → MixConv depthwise → coordinate attention → 1×1 linear projection (+ input)."""

    def __init__(self, in_channels: int, out_channels: int, expansion: int, kernels: tuple[int, ...],
                 splits: tuple[int, ...], stride: int) -> None:
        super().__init__()
        self.residual = stride == 1 and in_channels == out_channels
        self.expand = ConvBlock(in_channels, expansion)
        self.mix_dw = MixConv(kernels, splits, stride)
        self.coord_att = CoordinateAttention(expansion)
        self.project = LinearBlock(expansion, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.coord_att(self.mix_dw(self.expand(x))))
        return x + y if self.residual else y


class MixedFeatureNet(nn.Sequential):
    """The backbone up to conv_6_sep (512×7×7 at 112 px); the MS-Celeb embedding head is not part of DDAMFN."""

    def __init__(self, config: DdamfnConfig) -> None:
        super().__init__()
        self.conv1 = ConvBlock(3, STEM_CHANNELS, 3, 2, 1)
        self.conv2_dw = ConvBlock(STEM_CHANNELS, STEM_CHANNELS, 3, 1, 1, groups=STEM_CHANNELS)
        for name, in_ch, out_ch, expansion, kernels, splits, stride, blocks in MFN_STAGES:
            stage = [MixBottleneck(in_ch if i == 0 else out_ch, out_ch, expansion, kernels, splits,
                                   stride if i == 0 else 1) for i in range(blocks)]
            self.add_module(name, stage[0] if blocks == 1 else nn.Sequential(*stage))
        self.conv_6_sep = ConvBlock(MFN_STAGES[-1][2], config.embedding_size)


class DualDirectionAttentionHead(nn.Module):
    """Coordinate attention whose row/column pooling are learnable GDConvs (1×F and F×1); returns
    the attention map a_h·a_w (B×C×F×F) itself, not the reweighted features."""

    def __init__(self, config: DdamfnConfig) -> None:
        super().__init__()
        size = config.feature_size
        self.coord_att = CoordinateAttention(config.embedding_size, pooled_size=(size, size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a_h, a_w = self.coord_att.directional_maps(x)
        return a_h * a_w


def dda_attention_loss(maps: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
    """The attention-diversity loss of DDAMFN's code: P / (Σ_{i<j} MSE(a_i, a_j) + ε) over the P head
    pairs, which pushes the heads to attend to different places; 0 with fewer than two heads.
    The training loss is CE + λ·this (λ = ``config.attention_loss_weight``)."""
    if len(maps) < 2:
        return maps[0].new_zeros(()) if maps else torch.zeros(())
    pairs = [(i, j) for i in range(len(maps)) for j in range(i + 1, len(maps))]
    total = sum(F.mse_loss(maps[i], maps[j]) for i, j in pairs)
    return len(pairs) / (total + torch.finfo(maps[0].dtype).eps)


class DdamfnPreTrainedModel(FerPreTrainedModel):
    config_class = DdamfnConfig

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, nn.PReLU):
            from transformers import initialization as init

            init.constant_(module.weight, 0.25)


class DdamfnForImageClassification(DdamfnPreTrainedModel):
    """DDAMFN classifier. Grad-CAM target: ``features.conv_6_sep`` (512×7×7), the authors' own choice.
    With labels, ``loss`` = cross-entropy + ``attention_loss_weight`` · `dda_attention_loss`."""

    def __init__(self, config: DdamfnConfig) -> None:
        super().__init__(config)
        self.features = MixedFeatureNet(config)
        self.heads = nn.ModuleList(DualDirectionAttentionHead(config) for _ in range(config.num_heads))
        self.pool = GlobalDepthwiseConv(config.embedding_size, config.feature_size)
        self.classifier = nn.Linear(config.embedding_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_maps: bool = False,
        **kwargs: Any,
    ) -> FerClassifierOutput:
        x = self.features(to_model_channels(pixel_values, self.config.num_channels))
        maps = [head(x) for head in self.heads]
        fused = torch.stack(maps).amax(dim=0) if maps else None
        if fused is not None:
            x = x * fused
        logits = self.classifier(self.pool(x).flatten(1))
        loss = None
        if labels is not None:
            loss = classification_loss(logits, labels)
            if len(maps) > 1 and self.config.attention_loss_weight:
                loss = loss + self.config.attention_loss_weight * dda_attention_loss(maps)
        named = None
        if output_maps:
            named = {f"dda_head_{i + 1}": head_map for i, head_map in enumerate(maps)}
            named.update({"fused": fused} if maps else {})
        return FerClassifierOutput(loss=loss, logits=logits, maps=named)

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.features.conv_6_sep]
