"""The C² activations (CF-DAN reconstruction, `hub_models/shared/fer_layers.py`) against the
classic ones: value, first and second derivative on a grid, and measured CPU cost.

Derivatives come from autograd (twice differentiated), not from hand-written formulas, so the
curves show what training actually sees — including ReLU's jump in f′ and the hat-shaped f″ of
C²-PReLU. They are right-hand derivatives (taken `KINK_OFFSET` to the right of each grid point):
at an exact knot such as x = 0, autograd's convention for |x| and relu (derivative 0) would
otherwise draw a false dip into a function that is in fact C².
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch.nn import functional as F

from hub_models.shared.fer_layers import c2_prelu, c2_sigmoid

from .timing import median_ms

Activation = Callable[[torch.Tensor], torch.Tensor]
C2_PRELU_DEFAULTS = {"a": 1.0, "alpha": 0.1, "beta": 1.0}
C2_SIGMOID_DEFAULTS = {"a": 4.5, "s": 0.0, "h": 1.0}
KINK_OFFSET = 1e-9


def activations(c2_prelu_params: dict[str, float] | None = None,
                c2_sigmoid_params: dict[str, float] | None = None) -> dict[str, Activation]:
    """Name → function, with the C² parameters given (defaults: the paper-reconstruction inits)."""
    prelu = {**C2_PRELU_DEFAULTS, **(c2_prelu_params or {})}
    gate = {**C2_SIGMOID_DEFAULTS, **(c2_sigmoid_params or {})}
    if prelu["a"] <= 0 or gate["a"] <= 0:
        raise ValueError("the C² width parameter 'a' must be positive")
    return {
        "c2_prelu": lambda x: c2_prelu(x, **prelu),
        "c2_sigmoid": lambda x: c2_sigmoid(x, **gate),
        "sigmoid": torch.sigmoid,
        "tanh": torch.tanh,
        "elu": F.elu,
        "relu": F.relu,
    }


def curves(x: np.ndarray | None = None, c2_prelu_params: dict[str, float] | None = None,
           c2_sigmoid_params: dict[str, float] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """{"x": {"value": grid}, name: {"value", "d1", "d2"}} on `x` (default −6…6, 601 points)."""
    grid = np.linspace(-6.0, 6.0, 601) if x is None else np.asarray(x, dtype=np.float64)
    result: dict[str, dict[str, np.ndarray]] = {"x": {"value": grid}}
    for name, function in activations(c2_prelu_params, c2_sigmoid_params).items():
        points = torch.tensor(grid + KINK_OFFSET, dtype=torch.float64, requires_grad=True)
        value = function(points)
        (first,) = torch.autograd.grad(value.sum(), points, create_graph=True)
        # ReLU's derivative is piecewise constant: autograd has no graph for its second derivative.
        second = (torch.autograd.grad(first.sum(), points, allow_unused=True)[0]
                  if first.requires_grad else None)
        result[name] = {"value": value.detach().numpy(), "d1": first.detach().numpy(),
                        "d2": np.zeros_like(grid) if second is None else second.detach().numpy()}
    return result


def cost(elements: int = 1_000_000, repeats: int = 7, threads: int | None = None,
         backward: bool = False) -> dict[str, float]:
    """Median milliseconds per million float32 elements for each activation on CPU
    (forward only, or forward + backward). A measurement: it depends on the machine and load."""
    if elements <= 0 or repeats <= 0:
        raise ValueError("elements and repeats must be positive")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        data = torch.randn(elements, generator=generator) * 3
        result = {}
        for name, function in activations().items():
            result[name] = _median_ms(function, data, repeats, backward) * 1_000_000 / elements
        return result
    finally:
        torch.set_num_threads(previous)


def _median_ms(function: Activation, data: torch.Tensor, repeats: int, backward: bool) -> float:
    def run() -> None:
        if backward:
            x = data.detach().requires_grad_(True)
            function(x).sum().backward()
        else:
            with torch.no_grad():
                function(data)

    return median_ms(run, repeats)
