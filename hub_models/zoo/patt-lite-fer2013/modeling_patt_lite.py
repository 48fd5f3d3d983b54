"""PAtt-Lite (spec §3): ImageNet-style MobileNetV1 cut after the block-9 depthwise conv, a patch
extractor that cuts the face into a 2×2 grid of 256-channel cells, and an attention classifier.
``config.backbone="mobilenet_v2"`` swaps the trunk for MobileNetV2 to the same stride (16), the
ImageNet-initialisable MobileNet this project has offline; the rest is unchanged.

Two classifier behaviours (``config.classifier_attention``, same parameters):

* ``"patch"`` (default, corrected): the four cells are tokens; Dense 256→32 + ReLU + BN per token,
  scaled dot-product self-attention over the 4 tokens (one learnable scale, no projections, as
  Keras' ``Attention(use_scale=True)``), mean over tokens, Dense → classes.
* ``"batch"`` (faithful to the notebook): GAP → Dense → BN → the same attention applied to the
  B×32 matrix, i.e. every sample attends to the *other samples of its batch* (spec §3.3). Outputs
  then depend on batch composition, and at batch size 1 the attention is the identity.

``output_maps=True`` returns one map, ``patch_attention`` B×4×2×2 (for each query cell,
its weights over the 2×2 key grid; the workbench's mean over the 4 queries is the attention each
face quadrant receives) or, in batch mode, ``batch_attention`` B×B (each sample's weights over the
batch, drawn as bars).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from .configuration_patt_lite import BACKBONE_STRIDE, PattLiteConfig
from .fer_base import FerClassifierOutput, FerPreTrainedModel, classification_loss, to_model_channels
from .fer_layers import MobileNetV2Trunk, conv_bn_relu6

# (output channels, stride) of MobileNetV1 blocks 1–8; block 9 contributes only its depthwise conv.
MOBILENET_V1_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1))
STEM_CHANNELS = 32


def keras_conv(in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int,
               config: PattLiteConfig) -> nn.Sequential:
    """The Keras MobileNetV1 unit: bottom/right padding for stride 2, so feature maps line up with
    the ImageNet weights' training, and Keras' BatchNorm constants from the config."""
    return conv_bn_relu6(in_channels, out_channels, kernel_size, stride, groups, keras_padding=True,
                         eps=config.batch_norm_eps, momentum=config.batch_norm_momentum)


class DepthwiseSeparableBlock(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, stride: int, config: PattLiteConfig) -> None:
        super().__init__()
        self.depthwise = keras_conv(in_channels, in_channels, 3, stride, in_channels, config)
        self.pointwise = keras_conv(in_channels, out_channels, 1, 1, 1, config)


class TruncatedMobileNetV1(nn.Module):
    """MobileNetV1 (α = 1) up to Keras' ``conv_dw_9_relu`` (backbone.layers[-29] in the notebook)."""

    def __init__(self, config: PattLiteConfig) -> None:
        super().__init__()
        self.stem = keras_conv(3, STEM_CHANNELS, 3, 2, 1, config)
        blocks, channels = [], STEM_CHANNELS
        for out_channels, stride in MOBILENET_V1_BLOCKS:
            blocks.append(DepthwiseSeparableBlock(channels, out_channels, stride, config))
            channels = out_channels
        self.blocks = nn.Sequential(*blocks)
        self.conv_dw_9 = keras_conv(channels, channels, 3, 1, channels, config)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_dw_9(self.blocks(self.stem(x)))


def build_backbone(config: PattLiteConfig) -> TruncatedMobileNetV1 | MobileNetV2Trunk:
    if config.backbone == "mobilenet_v2":
        return MobileNetV2Trunk(3, BACKBONE_STRIDE)
    return TruncatedMobileNetV1(config)


class SeparableConvReLU(nn.Sequential):
    """Keras SeparableConv2D: depthwise (no bias) → pointwise (bias) → ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: tuple[int, int, int, int]):
        super().__init__(
            nn.ZeroPad2d(padding),
            nn.Conv2d(in_channels, in_channels, kernel_size, kernel_size, groups=in_channels, bias=False),
            nn.Conv2d(in_channels, out_channels, 1),
            nn.ReLU(inplace=True),
        )


class PatchExtraction(nn.Sequential):
    """Cut the F×F backbone map into 4×4 cells (kernel = stride = ⌈F/4⌉ after TF-'same' padding:
    4 at 224 px, padding 14 → 16), merge them into a 2×2 grid, then a pointwise conv."""

    def __init__(self, in_channels: int, config: PattLiteConfig) -> None:
        size, width = config.feature_size, config.patch_channels
        kernel = math.ceil(size / 4)
        total = 4 * kernel - size
        before = total // 2
        super().__init__(
            SeparableConvReLU(in_channels, width, kernel, (before, total - before, before, total - before)),
            SeparableConvReLU(width, width, 2, (0, 0, 0, 0)),
            nn.Conv2d(width, width, 1),
            nn.ReLU(inplace=True),
            nn.Dropout2d(config.patch_dropout),
        )


class ScaledDotProductAttention(nn.Module):
    """Keras ``Attention(use_scale=True)`` with query = value = key: softmax(s·X Xᵀ) X with one
    learnable scalar s and no projections. Over the last-but-one axis of ``tokens`` (…×N×D)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.scale * tokens @ tokens.transpose(-1, -2), dim=-1)
        return weights @ tokens, weights


class AttentionClassifier(nn.Module):
    """Dense(32) + ReLU → BN → attention → Dense(classes), over patch tokens or over the batch."""

    def __init__(self, config: PattLiteConfig) -> None:
        super().__init__()
        self.over_batch = config.classifier_attention == "batch"
        self.pooled_dropout = nn.Dropout(config.pooled_dropout)
        self.dense = nn.Sequential(nn.Linear(config.patch_channels, config.hidden_size), nn.ReLU(inplace=True))
        self.norm = nn.BatchNorm1d(config.hidden_size, eps=config.batch_norm_eps,
                                   momentum=config.batch_norm_momentum)
        self.attention = ScaledDotProductAttention()
        self.attention_dropout = nn.Dropout(config.attention_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = patches.flatten(2).transpose(1, 2)  # B×4×C, row-major over the 2×2 grid
        if self.over_batch:
            hidden = self.norm(self.dense(self.pooled_dropout(tokens.mean(dim=1))))
            attended, weights = self.attention(hidden)
        else:
            batch, count, _ = tokens.shape
            hidden = self.dense(self.pooled_dropout(tokens))
            hidden = self.norm(hidden.flatten(0, 1)).view(batch, count, -1)
            attended, weights = self.attention(hidden)
            attended = attended.mean(dim=1)
            weights = weights.view(batch, count, *patches.shape[2:])
        return self.classifier(self.attention_dropout(attended)), weights


class PattLitePreTrainedModel(FerPreTrainedModel):
    config_class = PattLiteConfig

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, ScaledDotProductAttention):
            from transformers import initialization as init

            init.ones_(module.scale)


class PattLiteForImageClassification(PattLitePreTrainedModel):
    """PAtt-Lite classifier. Grad-CAM target: the backbone's last layer, ``conv_dw_9`` (F×F×512,
    14×14 at 224 px) with MobileNetV1, the layer of the paper's Grad-CAM figures. Attentions: see the
    module docstring."""

    def __init__(self, config: PattLiteConfig) -> None:
        super().__init__(config)
        self.backbone = build_backbone(config)
        self.patch_extraction = PatchExtraction(self.backbone.out_channels, config)
        self.head = AttentionClassifier(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_maps: bool = False,
        **kwargs: Any,
    ) -> FerClassifierOutput:
        x = to_model_channels(pixel_values, self.config.num_channels)
        logits, weights = self.head(self.patch_extraction(self.backbone(x)))
        loss = classification_loss(logits, labels) if labels is not None else None
        maps = {f"{self.config.classifier_attention}_attention": weights} if output_maps else None
        return FerClassifierOutput(loss=loss, logits=logits, maps=maps)

    def cam_target_layers(self) -> list[nn.Module]:
        return [[*self.backbone.children()][-1]]  # conv_dw_9 of MobileNetV1, block 13 of MobileNetV2
