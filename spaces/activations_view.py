"""The Activations tab: CF-DAN's C² activations against sigmoid, tanh, ELU and ReLU — value,
first and second derivative on a grid, and their measured CPU cost.

Derivatives come from autograd (twice differentiated), not from hand-written formulas, so the
curves show what training actually sees — including ReLU's jump in f′ and the hat-shaped f″ of
C²-PReLU. They are right-hand derivatives (taken `KINK_OFFSET` to the right of each grid point):
at an exact knot such as x = 0, autograd's convention for |x| and relu (derivative 0) would
otherwise draw a false dip into a function that is in fact C².
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from torch.nn import functional as F

from workbench import C2_PRELU_INIT, C2_SIGMOID_INIT, c2_prelu, c2_sigmoid, time_ms

Activation = Callable[[torch.Tensor], torch.Tensor]
C2_PRELU_DEFAULTS = dict(zip(("a", "alpha", "beta"), C2_PRELU_INIT, strict=True))
C2_SIGMOID_DEFAULTS = dict(zip(("a", "s", "h"), C2_SIGMOID_INIT, strict=True))
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


def cost(elements: int = 1_000_000, repeats: int = 9, threads: int | None = None,
         backward: bool = False) -> dict[str, tuple[float, float, float]]:
    """(first quartile, median, third quartile) of milliseconds per million float32 elements for
    each activation on CPU, forward only or forward + backward.

    The activations take turns, one call each per round, so a change in the machine's load during
    the measurement touches them all alike instead of whichever happened to run then. A
    measurement: it depends on the machine and what else runs on it."""
    if elements <= 0 or repeats <= 0:
        raise ValueError("elements and repeats must be positive")
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        generator = torch.Generator().manual_seed(0)
        data = torch.randn(elements, generator=generator) * 3
        steps = {name: _step(function, data, backward) for name, function in activations().items()}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for step in steps.values():
            step()  # warm-up: first-call allocations are not the function's cost
        for _ in range(repeats):
            for name, step in steps.items():
                times[name].append(time_ms(step) * 1_000_000 / elements)
        return {name: _quartiles(values) for name, values in times.items()}
    finally:
        torch.set_num_threads(previous)


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, middle, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, middle, high


def _step(function: Activation, data: torch.Tensor, backward: bool) -> Callable[[], None]:
    def run() -> None:
        if backward:
            x = data.detach().requires_grad_(True)
            function(x).sum().backward()
        else:
            with torch.no_grad():
                function(data)

    return run


INTRO = ("### C² activations\nCF-DAN's C² functions are piecewise polynomials: smooth up to the second "
         "derivative like sigmoid/tanh/ELU, and built without any exponential. Move the sliders to reshape them.\n\n"
         "**Cost, plainly:** in eager PyTorch on a CPU they are *slower* than ReLU and sigmoid, often tens of times "
         "(see the table, measured on this machine). Each polynomial piece is a separate tensor operation, with its "
         "own pass over memory and its own temporary tensor, while ReLU, sigmoid and tanh are single fused kernels. "
         "Avoiding the exponential pays only where operations are fused (a compiled or hand-written kernel) or "
         "where an exponential is expensive (small embedded processors).")
# (key, label, minimum, maximum, default, step); keys are "<function>.<parameter>".
FUNCTIONS = ("c2_prelu", "c2_sigmoid")
PARAMETERS = [
    ("c2_prelu.a", "C²-PReLU · blend half-width a", 0.1, 3.0, C2_PRELU_DEFAULTS["a"], 0.05),
    ("c2_prelu.alpha", "C²-PReLU · negative slope α", -0.5, 1.0, C2_PRELU_DEFAULTS["alpha"], 0.05),
    ("c2_prelu.beta", "C²-PReLU · positive slope β", 0.0, 2.0, C2_PRELU_DEFAULTS["beta"], 0.05),
    ("c2_sigmoid.a", "C²-sigmoid · half-width a", 0.5, 8.0, C2_SIGMOID_DEFAULTS["a"], 0.1),
    ("c2_sigmoid.s", "C²-sigmoid · shift s", -3.0, 3.0, C2_SIGMOID_DEFAULTS["s"], 0.1),
    ("c2_sigmoid.h", "C²-sigmoid · height h", 0.1, 2.0, C2_SIGMOID_DEFAULTS["h"], 0.05),
]
STYLE = {"c2_prelu": ("#d62728", "-"), "c2_sigmoid": ("#9467bd", "-"), "sigmoid": ("#1f77b4", "--"),
         "tanh": ("#2ca02c", "--"), "elu": ("#ff7f0e", ":"), "relu": ("#7f7f7f", ":")}
PANELS = (("value", "f(x)"), ("d1", "f′(x)"), ("d2", "f″(x)"))
COST_ELEMENTS = 1_000_000
COST_REPEATS = 15


def activation_curves(*values: float) -> Figure:
    """Slider values (in PARAMETERS order) → value, f′ and f″ of every activation, side by side."""
    if len(values) != len(PARAMETERS):
        raise ValueError(f"expected {len(PARAMETERS)} parameter values, got {len(values)}")
    params: dict[str, dict[str, float]] = {function: {} for function in FUNCTIONS}
    for (key, *_), value in zip(PARAMETERS, values, strict=True):
        function, name = key.split(".")
        params[function][name] = float(value)
    data = curves(c2_prelu_params=params["c2_prelu"], c2_sigmoid_params=params["c2_sigmoid"])
    return curve_figure(data)


def curve_figure(data: dict) -> Figure:
    figure = Figure(figsize=(12, 3.6), dpi=100, layout="constrained")
    figure.suptitle("value, first and second derivative (autograd)", fontsize=10)
    x = data["x"]["value"]
    for index, (key, title) in enumerate(PANELS):
        axes = figure.add_subplot(1, len(PANELS), index + 1)
        for name, (colour, dash) in STYLE.items():
            axes.plot(x, data[name][key], dash, color=colour, lw=2 if name.startswith("c2") else 1.4, label=name)
        axes.set_title(title, fontsize=11)
        axes.axhline(0, color="#bbb", lw=0.6)
        axes.axvline(0, color="#bbb", lw=0.6)
        axes.spines[["top", "right"]].set_visible(False)
        if key == "value":
            axes.set_ylim(-1.5, 3)
            axes.legend(fontsize=8, frameon=False, loc="upper left")
    return figure


def cost_table() -> pd.DataFrame:
    """Median ms per million float32 elements with the interquartile range (the middle half of the
    runs), forward and forward + backward, on 2 threads."""
    forward = cost(COST_ELEMENTS, repeats=COST_REPEATS, threads=2)
    both = cost(COST_ELEMENTS, repeats=COST_REPEATS, threads=2, backward=True)
    relu = forward["relu"][1]
    return pd.DataFrame([{"activation": name, "forward ms / M elements": round(forward[name][1], 3),
                          "forward IQR": _spread(forward[name]),
                          "forward+backward ms / M": round(both[name][1], 3),
                          "forward+backward IQR": _spread(both[name]),
                          "forward vs ReLU": f"{forward[name][1] / relu:.1f}×"} for name in forward])


def _spread(quartiles: tuple[float, float, float]) -> str:
    return f"{quartiles[0]:.2f}–{quartiles[2]:.2f}"
