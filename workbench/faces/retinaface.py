"""RetinaFace with a MobileNet-0.25 body (Deng et al., CVPR 2020), in the module layout of
biubug6/Pytorch_Retinaface (MIT) so that its WIDER FACE weights load by name.

Only inference is needed here: the network, its anchor grid and the box/landmark decoding.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

MIN_SIZES = ((16, 32), (64, 128), (256, 512))
STEPS = (8, 16, 32)
VARIANCES = (0.1, 0.2)
BGR_MEAN = (104.0, 117.0, 123.0)


def conv_bn(inp: int, oup: int, stride: int = 1, leaky: float = 0.0, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(oup),
                         nn.LeakyReLU(negative_slope=leaky, inplace=True))


def conv_bn_linear(inp: int, oup: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(inp, oup, 3, 1, 1, bias=False), nn.BatchNorm2d(oup))


def conv_dw(inp: int, oup: int, stride: int, leaky: float = 0.1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
        nn.Conv2d(inp, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup),
        nn.LeakyReLU(negative_slope=leaky, inplace=True),
    )


class MobileNetV1Body(nn.Module):
    """MobileNet-0.25 cut into the three stages whose outputs (strides 8, 16, 32) feed the FPN."""

    def __init__(self) -> None:
        super().__init__()
        self.stage1 = nn.Sequential(conv_bn(3, 8, 2, leaky=0.1), conv_dw(8, 16, 1), conv_dw(16, 32, 2),
                                    conv_dw(32, 32, 1), conv_dw(32, 64, 2), conv_dw(64, 64, 1))
        self.stage2 = nn.Sequential(conv_dw(64, 128, 2), *(conv_dw(128, 128, 1) for _ in range(5)))
        self.stage3 = nn.Sequential(conv_dw(128, 256, 2), conv_dw(256, 256, 1))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        c1 = self.stage1(x)
        c2 = self.stage2(c1)
        return [c1, c2, self.stage3(c2)]


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, int, int] = (64, 128, 256), out_channels: int = 64) -> None:
        super().__init__()
        self.output1 = conv_bn(in_channels[0], out_channels, leaky=0.1, kernel=1)
        self.output2 = conv_bn(in_channels[1], out_channels, leaky=0.1, kernel=1)
        self.output3 = conv_bn(in_channels[2], out_channels, leaky=0.1, kernel=1)
        self.merge1 = conv_bn(out_channels, out_channels, leaky=0.1)
        self.merge2 = conv_bn(out_channels, out_channels, leaky=0.1)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        out1, out2, out3 = self.output1(features[0]), self.output2(features[1]), self.output3(features[2])
        out2 = self.merge2(out2 + F.interpolate(out3, size=out2.shape[-2:], mode="nearest"))
        out1 = self.merge1(out1 + F.interpolate(out2, size=out1.shape[-2:], mode="nearest"))
        return [out1, out2, out3]


class SSH(nn.Module):
    """Single-stage context module: 3×3, 5×5 and 7×7 receptive fields from stacked 3×3 convs."""

    def __init__(self, in_channels: int = 64, out_channels: int = 64) -> None:
        super().__init__()
        self.conv3X3 = conv_bn_linear(in_channels, out_channels // 2)
        self.conv5X5_1 = conv_bn(in_channels, out_channels // 4, leaky=0.1)
        self.conv5X5_2 = conv_bn_linear(out_channels // 4, out_channels // 4)
        self.conv7X7_2 = conv_bn(out_channels // 4, out_channels // 4, leaky=0.1)
        self.conv7x7_3 = conv_bn_linear(out_channels // 4, out_channels // 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c5_1 = self.conv5X5_1(x)
        c7_2 = self.conv7X7_2(c5_1)
        return F.relu(torch.cat([self.conv3X3(x), self.conv5X5_2(c5_1), self.conv7x7_3(c7_2)], dim=1))


class Head(nn.Module):
    def __init__(self, channels: int, values_per_anchor: int, anchors: int = 2) -> None:
        super().__init__()
        self.values = values_per_anchor
        self.conv1x1 = nn.Conv2d(channels, anchors * values_per_anchor, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x1(x).permute(0, 2, 3, 1).reshape(x.shape[0], -1, self.values)


class RetinaFace(nn.Module):
    """BGR image minus `BGR_MEAN` (not scaled) → per-anchor box offsets, face scores, landmark offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.body = MobileNetV1Body()
        self.fpn = FPN()
        self.ssh1, self.ssh2, self.ssh3 = SSH(), SSH(), SSH()
        self.ClassHead = nn.ModuleList(Head(64, 2) for _ in range(3))
        self.BboxHead = nn.ModuleList(Head(64, 4) for _ in range(3))
        self.LandmarkHead = nn.ModuleList(Head(64, 10) for _ in range(3))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        levels = self.fpn(self.body(x))
        features = [self.ssh1(levels[0]), self.ssh2(levels[1]), self.ssh3(levels[2])]
        boxes = torch.cat([head(f) for head, f in zip(self.BboxHead, features, strict=True)], dim=1)
        scores = torch.cat([head(f) for head, f in zip(self.ClassHead, features, strict=True)], dim=1)
        landmarks = torch.cat([head(f) for head, f in zip(self.LandmarkHead, features, strict=True)], dim=1)
        return boxes, scores.softmax(dim=-1)[..., 1], landmarks


def anchors(height: int, width: int) -> torch.Tensor:
    """(cx, cy, w, h) of every anchor, relative to the image, in the network's output order."""
    rows = []
    for step, sizes in zip(STEPS, MIN_SIZES, strict=True):
        fh, fw = math.ceil(height / step), math.ceil(width / step)
        ys, xs = torch.meshgrid(torch.arange(fh), torch.arange(fw), indexing="ij")
        cx = ((xs.reshape(-1, 1) + 0.5) * step / width).expand(-1, len(sizes))
        cy = ((ys.reshape(-1, 1) + 0.5) * step / height).expand(-1, len(sizes))
        w = torch.tensor([s / width for s in sizes]).expand_as(cx)
        h = torch.tensor([s / height for s in sizes]).expand_as(cy)
        rows.append(torch.stack([cx, cy, w, h], dim=-1).reshape(-1, 4))
    return torch.cat(rows)


def decode(boxes: torch.Tensor, landmarks: torch.Tensor, priors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Offsets → corner boxes (x0, y0, x1, y1) and 5 (x, y) landmarks, relative to the image."""
    centers = priors[:, :2] + boxes[:, :2] * VARIANCES[0] * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(boxes[:, 2:] * VARIANCES[1])
    corners = torch.cat([centers - sizes / 2, centers + sizes / 2], dim=1)
    points = priors[:, None, :2] + landmarks.reshape(-1, 5, 2) * VARIANCES[0] * priors[:, None, 2:]
    return corners, points
