"""Building blocks shared by the FER architectures, each written once (timm `layers/` style).

Linked into every architecture folder (see fer_base.py for why); imports only torch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# --- Attention and mobile blocks (attention CNNs, PAtt-Lite, DDAMFN; spec §2.2, §4.2–4.3) -----
# Every attention block returns ``(features, attention)`` so that models can hand the attention
# straight to the explanation protocol: a B×C gate vector or a B×H×W spatial map.

HSwish = nn.Hardswish  # x·ReLU6(x + 3)/6: the h-swish of MobileNetV3 that coordinate attention uses


def eca_kernel_size(channels: int, gamma: int = 2, b: int = 1, keras_precedence: bool = False) -> int:
    """ECA's adaptive kernel size |(log₂C + b)/γ|, bumped to the next odd number.

    ``keras_precedence=True`` reproduces the Miskow code, whose missing parentheses compute
    log₂C + b/γ instead (k = 9, 9, 11, 11 for C = 256 … 2048 where the paper rule gives 5, 5, 5, 7).
    """
    value = math.log2(channels) + b / gamma if keras_precedence else (math.log2(channels) + b) / gamma
    k = int(abs(value))
    return k if k % 2 else k + 1


def _bottleneck_mlp(channels: int, reduction: int) -> nn.Sequential:
    hidden = max(1, channels // reduction)
    return nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels))


class SqueezeExcitation(nn.Module):
    """SE (Hu et al.): a B×C gate from global average pooling through a bottleneck MLP (with biases,
    as Keras Dense layers have). Returns the reweighted map and the gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        self.mlp = _bottleneck_mlp(channels, reduction)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate = torch.sigmoid(self.mlp(x.mean(dim=(2, 3))))
        return x * gate[:, :, None, None], gate


class EfficientChannelAttention(nn.Module):
    """ECA (Wang et al.): a 1-D convolution across the pooled channel vector, one gate per channel.

    ``scalar_gate=True`` is the Keras layout of the Miskow code: Conv1D over a length-1 sequence with
    the C channels as *input channels*, so the kernel holds k·C weights (only the centre tap meets
    data) and the whole map is scaled by one sigmoid per sample; the gate is then B×1.
    """

    def __init__(self, channels: int, kernel_size: int | None = None, scalar_gate: bool = False) -> None:
        super().__init__()
        k = kernel_size or eca_kernel_size(channels, keras_precedence=scalar_gate)
        self.scalar_gate = scalar_gate
        in_channels = channels if scalar_gate else 1
        self.conv = nn.Conv1d(in_channels, 1, k, padding=k // 2, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = x.mean(dim=(2, 3))
        sequence = pooled[:, :, None] if self.scalar_gate else pooled[:, None, :]
        gate = torch.sigmoid(self.conv(sequence)).flatten(1)
        return x * gate[:, :, None, None], gate


class CBAM(nn.Module):
    """CBAM (Woo et al.): channel gate from average- and max-pooled vectors through a shared MLP,
    then a k×k spatial gate from the channel-wise mean and max. Returns the map and the B×H×W
    spatial attention (the part a heat-map can show)."""

    def __init__(self, channels: int, reduction: int = 16, spatial_kernel: int = 7) -> None:
        super().__init__()
        self.mlp = _bottleneck_mlp(channels, reduction)
        self.spatial = nn.Conv2d(2, 1, spatial_kernel, padding=spatial_kernel // 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channel_gate = torch.sigmoid(self.mlp(x.mean(dim=(2, 3))) + self.mlp(x.amax(dim=(2, 3))))
        x = x * channel_gate[:, :, None, None]
        descriptors = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        spatial_gate = torch.sigmoid(self.spatial(descriptors))
        return x * spatial_gate, spatial_gate[:, 0]


class GlobalDepthwiseConv(nn.Module):
    """GDConv (MobileFaceNet): a depthwise conv without bias + BN, a learnable weighted pooling
    that keeps where on the face a feature fired (a kernel as large as the map gives 1×1)."""

    def __init__(self, channels: int, kernel_size: int | tuple[int, int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, groups=channels, bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.conv(x))


class MixConv(nn.Module):
    """MixConv (Tan & Le): the channels are split into groups and each group gets a depthwise conv
    with its own kernel size, mixing receptive fields at depthwise cost. No BN/activation (the MFN
    module defines them but never calls them)."""

    def __init__(self, kernel_sizes: tuple[int, ...], splits: tuple[int, ...], stride: int = 1) -> None:
        super().__init__()
        if len(kernel_sizes) != len(splits):
            raise ValueError(f"MixConv needs one channel split per kernel size, got {kernel_sizes} and {splits}")
        self.splits = list(splits)
        self.convs = nn.ModuleList(
            nn.Conv2d(c, c, k, stride=stride, padding=k // 2, groups=c, bias=False)
            for k, c in zip(kernel_sizes, splits, strict=True)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.splits, dim=1)
        return torch.cat([conv(part) for conv, part in zip(self.convs, parts, strict=True)], dim=1)


class CoordinateAttention(nn.Module):
    """Coordinate attention (Hou et al. 2021) in its MixedFeatureNet form: pool along W and along H,
    a shared 1×1 conv to m = max(8, C/32) channels + BN + h-swish, then one sigmoid gate per row
    (a_h, B×C×H×1) and per column (a_w, B×C×1×W); the output is x·a_h·a_w.

    ``pooled_size=(H, W)`` replaces the average pooling by learnable GDConvs over each axis, which
    is the DDA head of DDAMFN (it uses `directional_maps` and keeps the map a_h·a_w itself).
    """

    def __init__(self, channels: int, pooled_size: tuple[int, int] | None = None) -> None:
        super().__init__()
        hidden = max(8, channels // 32)
        self.pool_h: nn.Module | None = None
        self.pool_w: nn.Module | None = None
        if pooled_size is not None:
            height, width = pooled_size
            self.pool_h = GlobalDepthwiseConv(channels, (1, width))
            self.pool_w = GlobalDepthwiseConv(channels, (height, 1))
        self.reduce = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.BatchNorm2d(hidden), HSwish())
        self.gate_h = nn.Conv2d(hidden, channels, 1)
        self.gate_w = nn.Conv2d(hidden, channels, 1)

    def directional_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        height = x.shape[2]
        rows = self.pool_h(x) if self.pool_h is not None else x.mean(dim=3, keepdim=True)
        columns = self.pool_w(x) if self.pool_w is not None else x.mean(dim=2, keepdim=True)
        mixed = self.reduce(torch.cat([rows, columns.transpose(2, 3)], dim=2))
        rows, columns = torch.split(mixed, [height, mixed.shape[2] - height], dim=2)
        return torch.sigmoid(self.gate_h(rows)), torch.sigmoid(self.gate_w(columns.transpose(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a_h, a_w = self.directional_maps(x)
        return x * a_h * a_w


# --- MobileNet conv unit and MobileNetV2 trunk (CF-DAN's ImageNet-initialisable backbone option) ----

# (expansion t, output channels c, repeats n, first stride s) per stage (Sandler et al. 2018, Table 2)
MOBILENET_V2_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                       (6, 160, 3, 2), (6, 320, 1, 1))


def conv_bn_relu6(in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1, *,
                  keras_padding: bool = False, eps: float = 1e-5, momentum: float = 0.1) -> nn.Sequential:
    """Conv → BN → ReLU6, the unit of both MobileNets.

    ``keras_padding``: Keras MobileNets pad stride-2 convs on the bottom/right only (``ZeroPadding2D
    ((0, 1), (0, 1))`` then 'valid'); torchvision pads all sides. Weights trained one way see shifted
    feature maps the other way, so PAtt-Lite (Keras ImageNet weights) asks for it. The pad layer holds
    no parameters, so state-dict keys shift by one index only where it is present."""
    padding = kernel_size // 2
    layers: list[nn.Module] = []
    if keras_padding and stride == 2:
        layers.append(nn.ZeroPad2d((0, 1, 0, 1)))
        padding = 0
    layers += [nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False),
               nn.BatchNorm2d(out_channels, eps=eps, momentum=momentum), nn.ReLU6(inplace=True)]
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1×1 expansion (absent when t = 1), 3×3 depthwise, linear 1×1 projection;
    identity shortcut when the shape is kept. Submodule names follow torchvision's, so its ImageNet
    state dict loads by name."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = [conv_bn_relu6(in_channels, hidden, 1)] if expansion != 1 else []
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.conv = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.use_shortcut else self.conv(x)


class MobileNetV2Trunk(nn.Sequential):
    """MobileNetV2 (width 1.0) from the stem up to the last block at ``output_stride`` (16: the
    96-channel stage, torchvision's ``features[:14]``). A trunk rather than the whole network so the
    feature map keeps a token grid (7×7 at 112 px) for the attention blocks that follow."""

    def __init__(self, in_channels: int = 3, output_stride: int = 16) -> None:
        layers: list[nn.Module] = [conv_bn_relu6(in_channels, 32, 3, stride=2)]
        channels, stride = 32, 2
        for expansion, width, repeats, first_stride in MOBILENET_V2_STAGES:
            if stride * first_stride > output_stride:
                break
            for index in range(repeats):
                layers.append(InvertedResidual(channels, width, first_stride if index == 0 else 1, expansion))
                channels = width
            stride *= first_stride
        super().__init__(*layers)
        self.out_channels = channels


# --- C² activation family (CF-DAN, spec §1.3) -------------------------------------------------
# Piecewise cubics that are continuous up to the second derivative at every knot and use only
# clamp/abs/relu and powers: no exponential anywhere, which is the point of the construction.


def c2_prelu(x: torch.Tensor, a: float | torch.Tensor, alpha: float | torch.Tensor,
             beta: float | torch.Tensor) -> torch.Tensor:
    """β·R_a(x) − α·R_a(−x), where R_a is ReLU smoothed by a triangular kernel of half-width a.

    Slope β for x ≥ a, slope α for x ≤ −a, a cubic blend of width 2a in between (its second
    derivative is a hat function, so f, f′ and f″ are continuous at −a, 0 and a). Written as
    ``β·relu(x) − α·relu(−x) + (β − α)·(a − |clamp(x, −a, a)|)³ / 6a²`` (R_a(x) − relu(x) is even),
    which avoids the cancellation of the truncated-power form for large |x|.
    """
    bump = (a - x.clamp(-a, a).abs()).pow(3) / (6 * a * a)
    return beta * F.relu(x) - alpha * F.relu(-x) + (beta - alpha) * bump


def c2_sigmoid(x: torch.Tensor, a: float | torch.Tensor, s: float | torch.Tensor,
               h: float | torch.Tensor) -> torch.Tensor:
    """h·S((x − s)/a): S is the running integral of the uniform quadratic B-spline on [−1, 1].

    0 below s − a, h above s + a, knots at s + a·{−1, −⅓, ⅓, 1}. a = 4.5, s = 0, h = 1 (CF-DAN's
    initial values) give sigmoid's slope at 0 (¼) and S(±2) ≈ 0.5 ± 0.404. With t = 1.5(u + 1) clamped to [0, 3],
    S = (t₊³ − 3(t − 1)₊³ + 3(t − 2)₊³) / 6 (truncated-power form of the B-spline integral).
    """
    t = (1.5 * ((x - s) / a + 1.0)).clamp(0.0, 3.0)
    spline = (t.pow(3) - 3 * F.relu(t - 1.0).pow(3) + 3 * F.relu(t - 2.0).pow(3)) / 6.0
    return h * spline


class _PositiveWidth(nn.Module):
    """A learnable width a > 0 as hypot(raw, floor): smooth, never below `floor`, and, unlike
    softplus/exp, costs no transcendental function (one scalar op per forward)."""

    def __init__(self, width: float, floor: float = 1e-2) -> None:
        super().__init__()
        if width <= floor:
            raise ValueError(f"C² activation width must exceed {floor}, got {width}")
        self.floor = floor
        self.raw_width = nn.Parameter(torch.tensor(math.sqrt(width * width - floor * floor)))

    def forward(self) -> torch.Tensor:
        return torch.hypot(self.raw_width, self.raw_width.new_tensor(self.floor))


class C2PReLU(nn.Module):
    """`c2_prelu` with learnable width a, negative slope α and positive slope β (3 scalars)."""

    def __init__(self, a: float, alpha: float, beta: float) -> None:
        super().__init__()
        self.width = _PositiveWidth(a)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.beta = nn.Parameter(torch.tensor(float(beta)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return c2_prelu(x, self.width(), self.alpha, self.beta)


class C2Sigmoid(nn.Module):
    """`c2_sigmoid` with learnable width a, shift s and height h (3 scalars): the gate of the
    CF-DAN cross-fusion in place of sigmoid."""

    def __init__(self, a: float, s: float, h: float) -> None:
        super().__init__()
        self.width = _PositiveWidth(a)
        self.shift = nn.Parameter(torch.tensor(float(s)))
        self.height = nn.Parameter(torch.tensor(float(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return c2_sigmoid(x, self.width(), self.shift, self.height)


class EMA(nn.Module):
    """Efficient Multi-scale Attention (Ouyang et al., ICASSP 2023), spec §5.3.

    Channels are split into `factor` groups of c = C/factor. Per group, a directional 1×1 branch
    (pool along H and W, shared 1×1 conv, sigmoid gates, GroupNorm) and a 3×3 branch each summarise
    the other through a channel softmax ("cross-spatial learning"); their sum is a spatial weight map
    that rescales the group. Parameters: 10c² + 4c (1,488 for C = 384, factor 32).

    Returns ``(output B×C×H×W, weights B×factor×H×W)``: the sigmoid spatial weights are what the
    module attends to, so they are returned for explanations rather than recomputed by hooks.
    """

    def __init__(self, channels: int, factor: int = 32) -> None:
        super().__init__()
        if factor <= 0 or channels % factor:
            raise ValueError(f"EMA factor {factor} must divide the {channels} channels")
        self.groups = factor
        width = channels // factor
        self.directional = nn.Conv2d(width, width, kernel_size=1)
        self.local = nn.Conv2d(width, width, kernel_size=3, padding=1)
        self.norm = nn.GroupNorm(width, width)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = x.shape
        grouped = x.reshape(b * self.groups, c // self.groups, h, w)
        along_h = grouped.mean(dim=3, keepdim=True)                    # (bg, c', h, 1)
        along_w = grouped.mean(dim=2, keepdim=True).transpose(2, 3)    # (bg, c', w, 1)
        gate_h, gate_w = self.directional(torch.cat([along_h, along_w], dim=2)).split([h, w], dim=2)
        directional = self.norm(grouped * gate_h.sigmoid() * gate_w.transpose(2, 3).sigmoid())
        local = self.local(grouped)
        weights = _cross_spatial(directional, local) + _cross_spatial(local, directional)
        weights = weights.reshape(b * self.groups, 1, h, w).sigmoid()
        return (grouped * weights).reshape(b, c, h, w), weights.reshape(b, self.groups, h, w)


def _cross_spatial(summary_of: torch.Tensor, applied_to: torch.Tensor) -> torch.Tensor:
    """Channel softmax of one branch's global average, mixing the other branch's channels into
    one spatial map (b, 1, h·w)."""
    descriptor = summary_of.mean(dim=(2, 3)).softmax(dim=-1).unsqueeze(1)   # (bg, 1, c')
    return descriptor @ applied_to.flatten(2)                                # (bg, 1, hw)


def tokens_to_map(tokens: torch.Tensor) -> torch.Tensor:
    """B×N×C tokens on a square grid → B×C×√N×√N: the layout Grad-CAM and EMA expect from
    transformer-style models."""
    b, n, c = tokens.shape
    side = math.isqrt(n)
    if side * side != n:
        raise ValueError(f"{n} tokens do not form a square grid")
    return tokens.transpose(1, 2).reshape(b, c, side, side)
