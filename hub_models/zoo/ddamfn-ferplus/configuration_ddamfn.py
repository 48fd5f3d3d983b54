"""DDAMFN configuration (Zhang et al., Electronics 2023; spec §4). Defaults are the authors' code."""

from __future__ import annotations

from typing import Any

from .fer_base import IMAGENET_MEAN, IMAGENET_STD, FerConfig, require

MIN_IMAGE_SIZE = 32  # four stride-2 stages: the attention needs at least a 2×2 map


class DdamfnConfig(FerConfig):
    """DDAMFN: MixedFeatureNet backbone → parallel dual-direction attention heads, fused by an
    element-wise max → GDConv → linear classifier.

    Args:
        num_heads: number of DDA heads (2 in the paper; its ablation tried 0–4). 0 runs MFN with the
            GDConv head and no attention.
        attention_loss_weight: λ of the attention-diversity loss added to the cross-entropy when
            labels are given (0.1, spec §4.4).
        embedding_size: channels of the backbone's last map (512).
        image_size: 112 (the ArcFace-aligned crop); the feature map is ⌈size/16⌉ wide, 7 at 112 px.
    """

    model_type = "ddamfn"

    def __init__(
        self,
        num_heads: int = 2,
        attention_loss_weight: float = 0.1,
        embedding_size: int = 512,
        image_size: int = 112,
        num_channels: int = 3,
        image_mean: Any = IMAGENET_MEAN,
        image_std: Any = IMAGENET_STD,
        face_template: str = "arcface",
        **kwargs: Any,
    ) -> None:
        self.num_heads = num_heads
        self.attention_loss_weight = attention_loss_weight
        self.embedding_size = embedding_size
        super().__init__(image_size=image_size, num_channels=num_channels, image_mean=image_mean,
                         image_std=image_std, face_template=face_template, **kwargs)
        require(isinstance(num_heads, int) and not isinstance(num_heads, bool) and num_heads >= 0, "num_heads",
                f"got {num_heads!r}, expected an integer ≥ 0")
        require(isinstance(attention_loss_weight, (int, float)) and attention_loss_weight >= 0,
                "attention_loss_weight", f"got {attention_loss_weight!r}, expected a number ≥ 0")
        require(isinstance(embedding_size, int) and embedding_size > 0, "embedding_size",
                f"got {embedding_size!r}, expected a positive integer")
        require(image_size >= MIN_IMAGE_SIZE, "image_size",
                f"got {image_size}; DDAMFN needs at least {MIN_IMAGE_SIZE} px (it reduces by 16)")

    @property
    def feature_size(self) -> int:
        """Side of the backbone's last map: each of the four stride-2 stages gives ⌈s/2⌉."""
        size = self.image_size
        for _ in range(4):
            size = -(-size // 2)
        return size
