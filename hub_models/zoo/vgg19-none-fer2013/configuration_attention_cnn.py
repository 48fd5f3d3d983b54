"""Attention-CNN configuration (Miskow & Altahhan, ICONIP 2022; spec §2). Defaults are the code's."""

from __future__ import annotations

from typing import Any

from .fer_base import FerConfig, require, require_choice, require_positive

# backbone name → (family, blocks per stage)
BACKBONES: dict[str, tuple[str, tuple[int, ...]]] = {
    "vgg16": ("vgg", (2, 2, 3, 3, 3)),
    "vgg19": ("vgg", (2, 2, 4, 4, 4)),
    "resnet50": ("resnet_v1", (3, 4, 6, 3)),
    "resnet101": ("resnet_v1", (3, 4, 23, 3)),
    "resnet152": ("resnet_v1", (3, 8, 36, 3)),
    "resnetv2_50": ("resnet_v2", (3, 4, 6, 3)),
    "resnetv2_101": ("resnet_v2", (3, 4, 23, 3)),
    "resnetv2_152": ("resnet_v2", (3, 8, 36, 3)),
}
ATTENTIONS = ("none", "se", "eca", "cbam")
ACTIVATIONS = ("elu", "relu")
MIN_IMAGE_SIZE = 32  # five stride-2 reductions leave at least a 1×1 map


class AttentionCnnConfig(FerConfig):
    """VGG-16/19, ResNet-50/101/152 and ResNetV2-50/101/152 with an optional attention module and
    ELU activations, trained from scratch on 48×48 grayscale faces.

    Args:
        backbone: one of `BACKBONES`.
        attention: ``"none" | "se" | "eca" | "cbam"``; VGG gets one module after its last conv block
            (x ← x + Att(x)), ResNets one in every bottleneck before the residual addition.
        hidden_act: ``"elu"`` (the paper's choice) or ``"relu"``. The ResNet-V1 stem and the final
            ResNet-V2 activation stay ReLU, as in the code.
        se_reduction, cbam_reduction, cbam_kernel_size: 16, 16 and 7 as in the code; ECA's kernel is
            adaptive.
        keras_layout: ``False`` (default) builds the textbook blocks: BatchNorm over channels, ECA as
            a per-channel gate with the paper's kernel rule. ``True`` reproduces the published Keras
            code and its parameter counts: BatchNorm over the image-height axis (``axis=1`` on NHWC,
            4·H numbers per BN), ECA as one scalar gate with k·C weights and the log₂C + ½ kernel.
    """

    model_type = "attention_cnn"

    def __init__(
        self,
        backbone: str = "vgg19",
        attention: str = "cbam",
        hidden_act: str = "elu",
        se_reduction: int = 16,
        cbam_reduction: int = 16,
        cbam_kernel_size: int = 7,
        keras_layout: bool = False,
        image_size: int = 48,
        num_channels: int = 1,
        image_mean: Any = (0.0, 0.0, 0.0),
        image_std: Any = (1.0, 1.0, 1.0),
        **kwargs: Any,
    ) -> None:
        self.backbone = backbone
        self.attention = attention
        self.hidden_act = hidden_act
        self.se_reduction = se_reduction
        self.cbam_reduction = cbam_reduction
        self.cbam_kernel_size = cbam_kernel_size
        self.keras_layout = keras_layout
        super().__init__(image_size=image_size, num_channels=num_channels, image_mean=image_mean,
                         image_std=image_std, **kwargs)
        require_choice("backbone", backbone, BACKBONES)
        require_choice("attention", attention, ATTENTIONS)
        require_choice("hidden_act", hidden_act, ACTIVATIONS)
        for field in ("se_reduction", "cbam_reduction", "cbam_kernel_size"):
            require_positive(field, getattr(self, field))
        require(cbam_kernel_size % 2 == 1, "cbam_kernel_size", f"got {cbam_kernel_size}, expected an odd size")
        require(isinstance(keras_layout, bool), "keras_layout", f"got {keras_layout!r}, expected true or false")
        require(image_size >= MIN_IMAGE_SIZE, "image_size",
                f"got {image_size}; these networks reduce by 32 and need at least {MIN_IMAGE_SIZE} px")
