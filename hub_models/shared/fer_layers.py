"""Building blocks shared by the FER architectures, each written once (timm `layers/` style).

Linked into every architecture folder (see fer_base.py for why); imports only torch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

# --- C² activation family (CF-DAN, spec §1.3) -------------------------------------------------
# Piecewise cubics that are continuous up to the second derivative at every knot and use only
# clamp/abs/relu and powers: no exponential anywhere, which is the point of the construction.


def c2_prelu(x: torch.Tensor, a: float | torch.Tensor = 1.0, alpha: float | torch.Tensor = 0.1,
             beta: float | torch.Tensor = 1.0) -> torch.Tensor:
    """β·R_a(x) − α·R_a(−x), where R_a is ReLU smoothed by a triangular kernel of half-width a.

    Slope β for x ≥ a, slope α for x ≤ −a, a cubic blend of width 2a in between (its second
    derivative is a hat function, so f, f′ and f″ are continuous at −a, 0 and a). Written as
    ``β·relu(x) − α·relu(−x) + (β − α)·(a − |clamp(x, −a, a)|)³ / 6a²`` (R_a(x) − relu(x) is even),
    which avoids the cancellation of the truncated-power form for large |x|.
    """
    bump = (a - x.clamp(-a, a).abs()).pow(3) / (6 * a * a)
    return beta * F.relu(x) - alpha * F.relu(-x) + (beta - alpha) * bump


def c2_sigmoid(x: torch.Tensor, a: float | torch.Tensor = 4.5, s: float | torch.Tensor = 0.0,
               h: float | torch.Tensor = 1.0) -> torch.Tensor:
    """h·S((x − s)/a): S is the running integral of the uniform quadratic B-spline on [−1, 1].

    0 below s − a, h above s + a, knots at s + a·{−1, −⅓, ⅓, 1}. The defaults give sigmoid's
    slope at 0 (¼) and S(±2) ≈ 0.5 ± 0.404. With t = 1.5(u + 1) clamped to [0, 3],
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

    def __init__(self, a: float = 1.0, alpha: float = 0.1, beta: float = 1.0) -> None:
        super().__init__()
        self.width = _PositiveWidth(a)
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.beta = nn.Parameter(torch.tensor(float(beta)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return c2_prelu(x, self.width(), self.alpha, self.beta)


class C2Sigmoid(nn.Module):
    """`c2_sigmoid` with learnable width a, shift s and height h (3 scalars): the gate of the
    CF-DAN cross-fusion in place of sigmoid."""

    def __init__(self, a: float = 4.5, s: float = 0.0, h: float = 1.0) -> None:
        super().__init__()
        self.width = _PositiveWidth(a)
        self.shift = nn.Parameter(torch.tensor(float(s)))
        self.height = nn.Parameter(torch.tensor(float(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return c2_sigmoid(x, self.width(), self.shift, self.height)
