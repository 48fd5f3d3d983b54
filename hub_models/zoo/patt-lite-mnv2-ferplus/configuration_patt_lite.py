"""PAtt-Lite configuration (Ngwe et al., IEEE Access 2024; spec §3). Defaults are the notebook's."""

from __future__ import annotations

from typing import Any

from .fer_base import HALF, FerConfig, require, require_choice

CLASSIFIER_ATTENTIONS = ("patch", "batch")
BACKBONES = ("mobilenet_v1", "mobilenet_v2")
BACKBONE_STRIDE = 16  # MobileNetV1: conv1 and the stride-2 blocks 2, 4, 6 before conv_dw_9; V2: its 96-channel stage
MIN_FEATURE_SIZE = 4  # the patch extractor needs at least a 4×4 map to cut it into a 2×2 grid


class PattLiteConfig(FerConfig):
    """PAtt-Lite: truncated MobileNetV1 → patch extraction → GAP → attention classifier.

    Args:
        backbone: ``"mobilenet_v1"`` (the paper's: MobileNetV1 to ``conv_dw_9``, 512 channels) or
            ``"mobilenet_v2"`` (MobileNetV2 to its 96-channel stage, also stride 16: not the paper's,
            but the MobileNet whose ImageNet weights exist offline, `training/finetune.py
            --backbone-weights`; the paper's accuracy comes from an ImageNet-initialised trunk).
        classifier_attention: ``"patch"`` (default, corrected) attends over the four 2×2 patch tokens
            of each image; ``"batch"`` is the published notebook's behaviour, where Keras' Attention on
            B×32 tensors attends across the samples of a batch, so a prediction depends on the other
            images in the batch (spec §3.3). Both have the same parameters.
        hidden_size: width of the Dense layer before the attention (32).
        patch_channels: channels of the patch-extraction convs (256).
        pooled_dropout: dropout on the pooled patch features (0.1 in the notebook's head stage).
        patch_dropout: spatial dropout after the patch block (0.2 in the fine-tune stage, else 0).
        attention_dropout: dropout after the attention (0.2 in the fine-tune stage, else 0).
        batch_norm_eps, batch_norm_momentum: Keras' BN settings (eps 1e-3, momentum 0.99 ⇒ 0.01).
        image_size: 224 in the paper; any size ≥ 64 works (the backbone reduces by 16 and the patch
            extractor adapts its kernel so that it always cuts the map into 4×4 then 2×2 cells).
    """

    model_type = "patt_lite"

    def __init__(
        self,
        classifier_attention: str = "patch",
        backbone: str = "mobilenet_v1",
        hidden_size: int = 32,
        patch_channels: int = 256,
        pooled_dropout: float = 0.1,
        patch_dropout: float = 0.0,
        attention_dropout: float = 0.0,
        batch_norm_eps: float = 1e-3,
        batch_norm_momentum: float = 0.01,
        image_size: int = 224,
        num_channels: int = 3,
        image_mean: Any = HALF,
        image_std: Any = HALF,
        **kwargs: Any,
    ) -> None:
        self.classifier_attention = classifier_attention
        self.backbone = backbone
        self.hidden_size = hidden_size
        self.patch_channels = patch_channels
        self.pooled_dropout = pooled_dropout
        self.patch_dropout = patch_dropout
        self.attention_dropout = attention_dropout
        self.batch_norm_eps = batch_norm_eps
        self.batch_norm_momentum = batch_norm_momentum
        super().__init__(image_size=image_size, num_channels=num_channels, image_mean=image_mean,
                         image_std=image_std, **kwargs)
        require_choice("classifier_attention", classifier_attention, CLASSIFIER_ATTENTIONS)
        require_choice("backbone", backbone, BACKBONES)
        for field in ("hidden_size", "patch_channels"):
            value = getattr(self, field)
            require(isinstance(value, int) and value > 0, field, f"got {value!r}, expected a positive integer")
        for field in ("pooled_dropout", "patch_dropout", "attention_dropout"):
            value = getattr(self, field)
            require(isinstance(value, (int, float)) and 0 <= value < 1, field, f"got {value!r}, expected 0 ≤ p < 1")
        smallest = BACKBONE_STRIDE * MIN_FEATURE_SIZE
        require(image_size >= smallest, "image_size",
                f"got {image_size}; PAtt-Lite needs at least {smallest} px (its backbone reduces by "
                f"{BACKBONE_STRIDE} and the patch extractor needs a {MIN_FEATURE_SIZE}×{MIN_FEATURE_SIZE} map)")

    @property
    def feature_size(self) -> int:
        """Side of the backbone's map (14 at 224 px)."""
        return self.image_size // BACKBONE_STRIDE
