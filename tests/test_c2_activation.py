"""The C² activations (spec §1.3): C² continuity at every knot, exponential-free forward,
three learnable scalars each."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tiny_fer_model import one_torch_thread  # noqa: F401 (autouse fixture: 1 thread on shared cores)
from torch.utils._python_dispatch import TorchDispatchMode

from hub_models.cf_dan.configuration_cf_dan import C2_PRELU_INIT, C2_SIGMOID_INIT
from hub_models.shared.fer_layers import C2PReLU, C2Sigmoid, c2_prelu, c2_sigmoid

EPS = 1e-8
# aten ops that evaluate an exponential (or log/erf); pow with a tensor exponent is exp(b·log a).
TRANSCENDENTAL = {"exp", "exp2", "expm1", "sigmoid", "tanh", "softplus", "log", "log1p", "erf", "elu", "gelu", "silu"}


def derivatives(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """f, f′, f″ at x by autograd (float64)."""
    x = x.clone().requires_grad_(True)
    y = f(x)
    (d1,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (d2,) = torch.autograd.grad(d1.sum(), x, allow_unused=True)
    d2 = torch.zeros_like(x) if d2 is None else d2
    return y.detach(), d1.detach(), d2.detach()


def jumps_at(f: Callable[[torch.Tensor], torch.Tensor], knots: list[float]) -> torch.Tensor:
    """|left − right| of f, f′, f″ straddling each knot: shape 3 × len(knots)."""
    k = torch.tensor(knots, dtype=torch.float64)
    left, right = derivatives(f, k - EPS), derivatives(f, k + EPS)
    return torch.stack([(lo - hi).abs() for lo, hi in zip(left, right, strict=True)])


def c1_only(x: torch.Tensor) -> torch.Tensor:
    """Huber-smoothed ReLU: C¹ but not C² at 0 and 1 (the check below must catch it)."""
    return torch.where(x < 0, 0.0, torch.where(x < 1, 0.5 * x * x, x - 0.5))


PRELU_PARAMS = [(1.0, 0.1, 1.0), (0.3, -0.4, 2.0), (2.5, 0.25, 0.5)]
SIGMOID_PARAMS = [(4.5, 0.0, 1.0), (1.0, 0.7, 2.0), (0.2, -1.0, 0.5)]


@pytest.mark.parametrize(("a", "alpha", "beta"), PRELU_PARAMS)
def test_c2_prelu_value_slope_curvature_continuous_at_knots(a: float, alpha: float, beta: float) -> None:
    jumps = jumps_at(lambda x: c2_prelu(x, a, alpha, beta), [-a, 0.0, a])
    # A jump of size J in f^(k) shows up as ~J; a continuous one as O(EPS·f^(k+1)).
    assert jumps.max() < 1e-4, jumps


@pytest.mark.parametrize(("a", "s", "h"), SIGMOID_PARAMS)
def test_c2_sigmoid_value_slope_curvature_continuous_at_knots(a: float, s: float, h: float) -> None:
    knots = [s + a * u for u in (-1.0, -1 / 3, 1 / 3, 1.0)]
    jumps = jumps_at(lambda x: c2_sigmoid(x, a, s, h), knots)
    assert jumps.max() < 1e-4, jumps


def test_continuity_check_detects_a_c1_function() -> None:
    jumps = jumps_at(c1_only, [0.0, 1.0])
    assert jumps[:2].max() < 1e-4
    assert jumps[2].min() > 0.9  # f″ jumps by 1 at both knots


def test_second_derivative_is_not_trivially_zero() -> None:
    x = torch.linspace(-0.9, 0.9, 7, dtype=torch.float64)
    _, _, d2 = derivatives(lambda t: c2_prelu(t, *C2_PRELU_INIT), x)
    torch.testing.assert_close(d2, 0.9 * (1 - x.abs()))  # (β − α)·hat(x)


def test_shapes_of_the_functions_match_the_spec() -> None:
    x = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=torch.float64)
    expected = torch.tensor([0.001, 0.096, 0.5, 0.904, 0.999], dtype=torch.float64)
    torch.testing.assert_close(c2_sigmoid(x, *C2_SIGMOID_INIT), expected, atol=6e-4, rtol=0)
    far = torch.tensor([-50.0, 50.0], dtype=torch.float64)
    torch.testing.assert_close(c2_prelu(far, *C2_PRELU_INIT), torch.tensor([-5.0, 50.0], dtype=torch.float64))
    # the slope at 0 equals sigmoid's
    _, d1, _ = derivatives(lambda t: c2_sigmoid(t, *C2_SIGMOID_INIT), torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(d1, torch.full((1,), 0.25, dtype=torch.float64))


class AtenOpLog(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(f"{func.overloadpacket.__name__}.{func._overloadname}")
        return func(*args, **(kwargs or {}))


def transcendental_ops(run: Callable[[], object]) -> list[str]:
    with AtenOpLog() as log:
        run()
    assert log.ops, "the dispatch log recorded nothing"
    return [op for op in log.ops if op.split(".")[0].rstrip("_") in TRANSCENDENTAL or op == "pow.Tensor_Tensor"]


@pytest.mark.parametrize("module", [C2PReLU(*C2_PRELU_INIT), C2Sigmoid(*C2_SIGMOID_INIT)], ids=["C2PReLU", "C2Sigmoid"])
def test_forward_and_backward_use_no_exponentials(module: torch.nn.Module) -> None:
    x = torch.randn(4, 16, requires_grad=True)
    assert transcendental_ops(lambda: module(x).sum().backward()) == []
    assert all(p.grad is not None and torch.isfinite(p.grad) for p in module.parameters())


def test_op_log_sees_an_exponential() -> None:
    assert transcendental_ops(lambda: torch.sigmoid(torch.randn(3))) == ["sigmoid.default"]


@pytest.mark.parametrize("module", [C2PReLU(*C2_PRELU_INIT), C2Sigmoid(*C2_SIGMOID_INIT)], ids=["C2PReLU", "C2Sigmoid"])
def test_three_learnable_scalars_and_positive_width(module: torch.nn.Module) -> None:
    params = list(module.parameters())
    assert len(params) == 3 and all(p.numel() == 1 for p in params)
    with torch.no_grad():
        module.width.raw_width.fill_(-3.0)
    assert module.width() > 0
    with torch.no_grad():
        module.width.raw_width.fill_(0.0)
    assert module.width() >= module.width.floor


def test_modules_start_at_their_initial_values() -> None:
    x = torch.linspace(-6, 6, 101)
    torch.testing.assert_close(C2PReLU(*C2_PRELU_INIT)(x), c2_prelu(x, *C2_PRELU_INIT))
    torch.testing.assert_close(C2Sigmoid(*C2_SIGMOID_INIT)(x), c2_sigmoid(x, *C2_SIGMOID_INIT))
