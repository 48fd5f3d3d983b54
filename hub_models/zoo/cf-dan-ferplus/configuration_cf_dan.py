"""CF-DAN configuration (Zhang et al., Computational Visual Media 2024; spec §1).

No code or full text of CF-DAN is public: only the abstract-level facts are sourced (grouped
spatial + channel self-attention fused through C² gates, K/V self-attention distillation cutting
the attention cost by ≈33 %, a residual closed loop, a piecewise-cubic C² activation). Everything
else is the spec's reconstruction, and every such choice is a field below marked GUESS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .fer_base import IMAGENET_MEAN, IMAGENET_STD, FerConfig, require, require_choice

ACTIVATIONS = ("c2", "gelu", "elu")
BACKBONES = ("ir50", "mobilenet_v2")
MOBILENET_V2_STRIDE = 16
C2_PRELU_INIT = (1.0, 0.1, 1.0)  # (a, α, β)
C2_SIGMOID_INIT = (4.5, 0.0, 1.0)  # (a, s, h): sigmoid's slope at 0


class CfDanConfig(FerConfig):
    """IR-50 stages 1–3 → 1×1 conv to D → L CF-DA blocks → LN → token mean → Linear.

    Args:
        backbone: ``"ir50"`` (the spec's guess: IR-50 stages 1–3, stride 8) or ``"mobilenet_v2"``
            (MobileNetV2 up to its 96-channel stage, stride 16: the backbone of this scaffold that
            ImageNet weights exist for offline; `training/finetune.py --backbone-weights`). The spec
            leaves the backbone open (§1.6). GUESS.
        backbone_depths: IR units per IR-50 stage, stages 1–3 only (3, 4, 14). GUESS (the
            POSTER-family backbone; trained from scratch here, no MS-Celeb weights are shipped).
            IR-50 only, like ``backbone_widths``.
        backbone_widths: channels of those stages (64, 128, 256). GUESS.
        hidden_size: token width D after the 1×1 conv + BN (256). GUESS.
        num_layers: CF-DA blocks L (4). GUESS.
        num_groups: channel groups G; each group runs its own spatial and channel attention (4,
            so 64 channels per group). GUESS.
        spatial_heads: heads per group in the spatial branch (2, head dim 32). GUESS.
        use_distillation: compute the spatial branch's K and V from distilled tokens (sourced idea;
            operator GUESS: Informer-style Conv1d(k=3) → BN → ELU → MaxPool1d(3, stride r) over the
            row-major token sequence, per group).
        distill_ratio: token reduction r of the distillation (2: 196 → 98 keys). GUESS, chosen
            because r = 2 reproduces the paper's ≈33 % saving for a plain MHSA (spec §1.1).
        distill_depthwise: distillation conv depthwise instead of per group dense (False). GUESS.
        closed_loop: add the distilled tokens, upsampled back to N, to the block's residual
            (sourced idea "closed loop between distillation and residual"; form GUESS). Needs
            ``use_distillation``.
        channel_dwconv: 3×3 depthwise conv on the channel branch's Q/K/V maps (True). GUESS.
        gate_reduction: reduction of the channel-gate MLP W₁ (d_g → d_g / r) (4). GUESS.
        mlp_ratio: FFN width D → ratio·D → D (4.0). GUESS.
        activation: ``"c2"`` (C²-PReLU in the FFN, C²-sigmoid gates: the paper's claim),
            ``"gelu"`` or ``"elu"`` (FFN activation; gates then use the logistic sigmoid), for the
            activation comparison. The C² formula itself is a GUESS (spec §1.3).
        c2_prelu_init: initial (a, α, β) of C²-PReLU (1.0, 0.1, 1.0). GUESS.
        c2_sigmoid_init: initial (a, s, h) of C²-sigmoid (4.5, 0.0, 1.0: sigmoid's slope at 0). GUESS.
        use_position_embedding: learned position embedding on the tokens (True). GUESS.
        drop_path_rate: stochastic depth over the CF-DA blocks (0.1). GUESS.
        image_size: 112 (aligned faces, arcface template). GUESS. Any multiple of the backbone's
            stride, at least twice it, works (IR-50 reduces by 8: 112 px gives the 14×14 = 196-token
            grid; MobileNetV2 by 16: 7×7).
    """

    model_type = "cf_dan"

    def __init__(
        self,
        backbone: str = "ir50",
        backbone_depths: Sequence[int] = (3, 4, 14),
        backbone_widths: Sequence[int] = (64, 128, 256),
        hidden_size: int = 256,
        num_layers: int = 4,
        num_groups: int = 4,
        spatial_heads: int = 2,
        use_distillation: bool = True,
        distill_ratio: int = 2,
        distill_depthwise: bool = False,
        closed_loop: bool = True,
        channel_dwconv: bool = True,
        gate_reduction: int = 4,
        mlp_ratio: float = 4.0,
        activation: str = "c2",
        c2_prelu_init: Sequence[float] = C2_PRELU_INIT,
        c2_sigmoid_init: Sequence[float] = C2_SIGMOID_INIT,
        use_position_embedding: bool = True,
        drop_path_rate: float = 0.1,
        layer_norm_eps: float = 1e-5,
        image_size: int = 112,
        num_channels: int = 3,
        image_mean: Any = IMAGENET_MEAN,
        image_std: Any = IMAGENET_STD,
        face_template: str = "arcface",
        **kwargs: Any,
    ) -> None:
        self.backbone = backbone
        self.backbone_depths = list(backbone_depths)
        self.backbone_widths = list(backbone_widths)
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_groups = num_groups
        self.spatial_heads = spatial_heads
        self.use_distillation = use_distillation
        self.distill_ratio = distill_ratio
        self.distill_depthwise = distill_depthwise
        self.closed_loop = closed_loop
        self.channel_dwconv = channel_dwconv
        self.gate_reduction = gate_reduction
        self.mlp_ratio = mlp_ratio
        self.activation = activation
        self.c2_prelu_init = list(c2_prelu_init)
        self.c2_sigmoid_init = list(c2_sigmoid_init)
        self.use_position_embedding = use_position_embedding
        self.drop_path_rate = drop_path_rate
        self.layer_norm_eps = layer_norm_eps
        super().__init__(image_size=image_size, num_channels=num_channels, image_mean=image_mean,
                         image_std=image_std, face_template=face_template, **kwargs)
        self._validate()

    @property
    def backbone_stride(self) -> int:
        return MOBILENET_V2_STRIDE if self.backbone == "mobilenet_v2" else 2 ** len(self.backbone_depths)

    @property
    def grid(self) -> int:
        """Side of the token grid (14 at 112 px)."""
        return self.image_size // self.backbone_stride

    @property
    def group_width(self) -> int:
        return self.hidden_size // self.num_groups

    def _validate(self) -> None:
        for field in ("hidden_size", "num_layers", "num_groups", "spatial_heads", "distill_ratio",
                      "gate_reduction"):
            value = getattr(self, field)
            require(isinstance(value, int) and not isinstance(value, bool) and value > 0, field,
                    f"got {value!r}, expected a positive integer")
        require(len(self.backbone_depths) > 0 and len(self.backbone_depths) == len(self.backbone_widths)
                and all(isinstance(v, int) and v > 0 for v in self.backbone_depths + self.backbone_widths),
                "backbone_depths", "expected positive integers, one depth per backbone_widths entry")
        require(self.hidden_size % self.num_groups == 0, "num_groups",
                f"{self.num_groups} groups do not divide hidden_size {self.hidden_size}")
        require(self.group_width % self.spatial_heads == 0, "spatial_heads",
                f"{self.spatial_heads} heads do not divide the {self.group_width} channels of a group")
        require(self.group_width % self.gate_reduction == 0, "gate_reduction",
                f"{self.gate_reduction} does not divide the {self.group_width} channels of a group")
        require(self.distill_ratio >= 2, "distill_ratio", f"got {self.distill_ratio}, expected ≥ 2")
        require(self.mlp_ratio > 0, "mlp_ratio", f"got {self.mlp_ratio!r}, expected > 0")
        require(0 <= self.drop_path_rate < 1, "drop_path_rate", f"got {self.drop_path_rate!r}, expected 0 ≤ p < 1")
        require_choice("activation", self.activation, ACTIVATIONS)
        require_choice("backbone", self.backbone, BACKBONES)
        require(len(self.c2_prelu_init) == 3 and self.c2_prelu_init[0] > 0.01, "c2_prelu_init",
                f"got {self.c2_prelu_init!r}, expected (a > 0.01, alpha, beta)")
        require(len(self.c2_sigmoid_init) == 3 and self.c2_sigmoid_init[0] > 0.01, "c2_sigmoid_init",
                f"got {self.c2_sigmoid_init!r}, expected (a > 0.01, s, h)")
        require(not self.closed_loop or self.use_distillation, "closed_loop",
                "the closed loop feeds the distilled tokens back: it needs use_distillation=True")
        stride = self.backbone_stride
        require(self.image_size % stride == 0 and self.image_size >= 2 * stride, "image_size",
                f"{self.image_size} px: the backbone reduces by {stride}, so use a multiple of {stride} "
                f"≥ {2 * stride}")
