"""Attention CNNs with ELU (spec §2): VGG-16/19, ResNet-50/101/152 (V1) and ResNetV2-50/101/152
(pre-activation), each with no attention, SE, ECA or CBAM, for 48×48 grayscale faces.

``output_maps=True`` returns one map per attention module: VGG has one (``conv5``), ResNets one
per bottleneck (``conv2.0`` …). SE and
ECA give their channel gate (B×C; B×1 for the Keras scalar-gate ECA), CBAM its spatial map
(B×H×W: 2×2 for VGG at 48 px, 12×12 down to 2×2 along a ResNet). No attention ⇒ an empty dict.

Grad-CAM target (``cam_target_layers``): the deepest layer that still works at 1/8 of the input
resolution (6×6 at 48 px): VGG's conv4 block, ResNet-V1's last conv3 block, and ResNet-V2's conv3
block before its strided last block. The 3×3 and 2×2 maps of deeper layers are too coarse to show
anything on a face.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .configuration_attention_cnn import BACKBONES, AttentionCnnConfig
from .fer_base import FerClassifierOutput, FerPreTrainedModel, classification_loss, to_model_channels
from .fer_layers import CBAM, EfficientChannelAttention, SqueezeExcitation

VGG_WIDTHS = (64, 128, 256, 512, 512)
VGG_HIDDEN = 4096
RESNET_WIDTHS = (64, 128, 256, 512)  # bottleneck widths; outputs are 4×
STEM_CHANNELS = 64
CAM_STRIDE = 8
BLOCK_EPS, SHORTCUT_EPS = 1.001e-5, 1e-3  # Keras' ResNet BN epsilons
KERAS_MOMENTUM = 0.01  # Keras momentum 0.99


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class HeightBatchNorm(nn.BatchNorm2d):
    """The Keras code's ``BatchNormalization(axis=1)`` on NHWC tensors: one statistic per image
    *row* (B×H×C×W view), 4·H numbers per layer, tied to the input size (spec §2.1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


def make_norm(channels: int, height: int, eps: float, config: AttentionCnnConfig) -> nn.BatchNorm2d:
    if config.keras_layout:
        return HeightBatchNorm(height, eps=eps, momentum=KERAS_MOMENTUM)
    return nn.BatchNorm2d(channels, eps=eps, momentum=KERAS_MOMENTUM)


def make_activation(config: AttentionCnnConfig) -> nn.Module:
    return nn.ELU() if config.hidden_act == "elu" else nn.ReLU()


def make_attention(channels: int, config: AttentionCnnConfig) -> nn.Module | None:
    if config.attention == "se":
        return SqueezeExcitation(channels, config.se_reduction)
    if config.attention == "eca":
        return EfficientChannelAttention(channels, scalar_gate=config.keras_layout)
    if config.attention == "cbam":
        return CBAM(channels, config.cbam_reduction, config.cbam_kernel_size)
    return None


class AttentionSlot(nn.Module):
    """Applies the configured attention (if any) and records its map for ``output_maps``."""

    def __init__(self, channels: int, config: AttentionCnnConfig) -> None:
        super().__init__()
        self.attention = make_attention(channels, config)

    def forward(self, x: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        if self.attention is None:
            return x
        x, attention_map = self.attention(x)
        maps.append(attention_map)
        return x


class VggBackbone(nn.Module):
    """Five 3×3-conv stages with 'same' (ceil) max pooling, one attention on the last map added to
    it (x + Att(x)), then Flatten → 4096 → 4096. No BN, no dropout."""

    def __init__(self, config: AttentionCnnConfig) -> None:
        super().__init__()
        _, depths = BACKBONES[config.backbone]
        stages, channels, size = [], 1, config.image_size
        for depth, width in zip(depths, VGG_WIDTHS, strict=True):
            layers: list[nn.Module] = []
            for _ in range(depth):
                layers += [nn.Conv2d(channels, width, 3, padding=1), make_activation(config)]
                channels = width
            stages.append(nn.Sequential(*layers))
            size = -(-size // 2)
        self.stages = nn.ModuleList(stages)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.attention = AttentionSlot(channels, config)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(channels * size * size, VGG_HIDDEN), make_activation(config),
            nn.Linear(VGG_HIDDEN, VGG_HIDDEN), make_activation(config),
        )
        self.out_features = VGG_HIDDEN
        self.cam_stage = CAM_STRIDE.bit_length() - 1  # stage i runs at stride 2**i
        self.map_names = ("conv5",) if self.attention.attention is not None else ()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        for stage in self.stages:
            x = self.pool(stage(x))
        maps: list[torch.Tensor] = []
        x = x + self.attention(x, maps)
        return self.head(x), maps

    def cam_target(self) -> nn.Module:
        return self.stages[self.cam_stage]


class BottleneckV1(nn.Module):
    """1×1 (stride) → 3×3 → 1×1, BN after each, attention before the residual addition, activation
    after it; projection shortcut (1×1 conv + BN) in the first block of a stage."""

    def __init__(self, in_channels: int, width: int, stride: int, size: int, config: AttentionCnnConfig) -> None:
        super().__init__()
        out_channels, out_size = 4 * width, conv_out(size, 1, stride, 0)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride),
                                          make_norm(out_channels, out_size, SHORTCUT_EPS, config))
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, stride), make_norm(width, out_size, BLOCK_EPS, config),
            make_activation(config),
            nn.Conv2d(width, width, 3, padding=1), make_norm(width, out_size, BLOCK_EPS, config),
            make_activation(config),
            nn.Conv2d(width, out_channels, 1), make_norm(out_channels, out_size, BLOCK_EPS, config),
        )
        self.attention = AttentionSlot(out_channels, config)
        self.activation = make_activation(config)
        self.out_channels, self.out_size = out_channels, out_size

    def forward(self, x: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.activation(shortcut + self.attention(self.residual(x), maps))


class BottleneckV2(nn.Module):
    """Pre-activation bottleneck (Keras ``block2``): BN + act first; 1×1 → 3×3 (stride) → 1×1;
    attention before the addition; shortcut = 1×1 conv of the pre-activation in a stage's first
    block, a strided subsample of x in its last block, else x."""

    def __init__(self, in_channels: int, width: int, stride: int, conv_shortcut: bool, size: int,
                 config: AttentionCnnConfig) -> None:
        super().__init__()
        out_channels, out_size = 4 * width, conv_out(size, 3, stride, 1)
        self.preact = nn.Sequential(make_norm(in_channels, size, BLOCK_EPS, config), make_activation(config))
        self.shortcut: nn.Module
        if conv_shortcut:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride)
        else:
            self.shortcut = nn.MaxPool2d(1, stride) if stride > 1 else nn.Identity()
        self.conv_shortcut = conv_shortcut
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, width, 1, bias=False), make_norm(width, size, BLOCK_EPS, config),
            make_activation(config),
            nn.Conv2d(width, width, 3, stride, padding=1, bias=False), make_norm(width, out_size, BLOCK_EPS, config),
            make_activation(config),
            nn.Conv2d(width, out_channels, 1),
        )
        self.attention = AttentionSlot(out_channels, config)
        self.out_channels, self.out_size = out_channels, out_size

    def forward(self, x: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
        pre = self.preact(x)
        shortcut = self.shortcut(pre if self.conv_shortcut else x)
        return shortcut + self.attention(self.residual(pre), maps)


class ResNetBackbone(nn.Module):
    """Keras ResNet V1/V2 at any input size: 7×7/2 stem + 3×3/2 max pool, four bottleneck stages, GAP.
    V1: stride on a stage's first block, stem BN + ReLU. V2: stride on a stage's last block (none
    in conv5), bare stem, final BN + ReLU."""

    def __init__(self, config: AttentionCnnConfig) -> None:
        super().__init__()
        family, depths = BACKBONES[config.backbone]
        v2 = family == "resnet_v2"
        size = conv_out(config.image_size, 7, 2, 3)
        stem: list[nn.Module] = [nn.ZeroPad2d(3), nn.Conv2d(1, STEM_CHANNELS, 7, 2)]
        if not v2:
            stem += [make_norm(STEM_CHANNELS, size, BLOCK_EPS, config), nn.ReLU()]
        size = conv_out(size, 3, 2, 1)
        self.stem = nn.Sequential(*stem, nn.ZeroPad2d(1), nn.MaxPool2d(3, 2))

        self.blocks = nn.ModuleList()
        names: list[str] = []
        channels, stride_so_far = STEM_CHANNELS, 4
        for stage, (depth, width) in enumerate(zip(depths, RESNET_WIDTHS, strict=True)):
            for index in range(depth):
                if v2:
                    last_stage = stage == len(depths) - 1
                    stride = 2 if index == depth - 1 and not last_stage else 1
                    block: nn.Module = BottleneckV2(channels, width, stride, index == 0, size, config)
                else:
                    stride = 2 if index == 0 and stage > 0 else 1
                    block = BottleneckV1(channels, width, stride, size, config)
                stride_so_far *= stride
                if stride_so_far <= CAM_STRIDE:
                    self.cam_block = len(self.blocks)
                channels, size = block.out_channels, block.out_size
                self.blocks.append(block)
                names.append(f"conv{stage + 2}.{index}")
        self.final = (nn.Sequential(make_norm(channels, size, BLOCK_EPS, config), nn.ReLU())
                      if v2 else nn.Identity())
        self.out_features = channels
        self.map_names = tuple(names) if config.attention != "none" else ()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.stem(x)
        maps: list[torch.Tensor] = []
        for block in self.blocks:
            x = block(x, maps)
        return self.final(x).mean(dim=(2, 3)), maps

    def cam_target(self) -> nn.Module:
        return self.blocks[self.cam_block]


class AttentionCnnPreTrainedModel(FerPreTrainedModel):
    config_class = AttentionCnnConfig


class AttentionCnnForImageClassification(AttentionCnnPreTrainedModel):
    """Backbone → Dense(classes). See the module docstring for its maps and the Grad-CAM target."""

    def __init__(self, config: AttentionCnnConfig) -> None:
        super().__init__(config)
        family, _ = BACKBONES[config.backbone]
        self.backbone = VggBackbone(config) if family == "vgg" else ResNetBackbone(config)
        self.classifier = nn.Linear(self.backbone.out_features, config.num_labels)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_maps: bool = False,
        **kwargs: Any,
    ) -> FerClassifierOutput:
        features, maps = self.backbone(to_model_channels(pixel_values, self.config.num_channels))
        logits = self.classifier(features)
        loss = classification_loss(logits, labels) if labels is not None else None
        named = dict(zip(self.backbone.map_names, maps, strict=True)) if output_maps else None
        return FerClassifierOutput(loss=loss, logits=logits, maps=named)

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.backbone.cam_target()]
