"""The Activations tab: C² activations against sigmoid, tanh, ELU and ReLU (the engine's
`workbench.activations` computes the curves and measures the cost; this module only draws)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from workbench import activations as engine

INTRO = ("### C² activations\nCF-DAN's C² functions are piecewise polynomials: smooth up to the second "
         "derivative like sigmoid/tanh/ELU, but with no exponential to compute. Move the sliders to reshape "
         "them; the cost table is measured on this machine's CPU.")
# (key, label, minimum, maximum, default, step); keys are "<function>.<parameter>".
FUNCTIONS = ("c2_prelu", "c2_sigmoid")
PARAMETERS = [
    ("c2_prelu.a", "C²-PReLU · blend half-width a", 0.1, 3.0, engine.C2_PRELU_DEFAULTS["a"], 0.05),
    ("c2_prelu.alpha", "C²-PReLU · negative slope α", -0.5, 1.0, engine.C2_PRELU_DEFAULTS["alpha"], 0.05),
    ("c2_prelu.beta", "C²-PReLU · positive slope β", 0.0, 2.0, engine.C2_PRELU_DEFAULTS["beta"], 0.05),
    ("c2_sigmoid.a", "C²-sigmoid · half-width a", 0.5, 8.0, engine.C2_SIGMOID_DEFAULTS["a"], 0.1),
    ("c2_sigmoid.s", "C²-sigmoid · shift s", -3.0, 3.0, engine.C2_SIGMOID_DEFAULTS["s"], 0.1),
    ("c2_sigmoid.h", "C²-sigmoid · height h", 0.1, 2.0, engine.C2_SIGMOID_DEFAULTS["h"], 0.05),
]
STYLE = {"c2_prelu": ("#d62728", "-"), "c2_sigmoid": ("#9467bd", "-"), "sigmoid": ("#1f77b4", "--"),
         "tanh": ("#2ca02c", "--"), "elu": ("#ff7f0e", ":"), "relu": ("#7f7f7f", ":")}
PANELS = (("value", "f(x)"), ("d1", "f′(x)"), ("d2", "f″(x)"))
COST_ELEMENTS = 1_000_000


def activation_curves(*values: float) -> Figure:
    """Slider values (in PARAMETERS order) → value, f′ and f″ of every activation, side by side."""
    if len(values) != len(PARAMETERS):
        raise ValueError(f"expected {len(PARAMETERS)} parameter values, got {len(values)}")
    params: dict[str, dict[str, float]] = {function: {} for function in FUNCTIONS}
    for (key, *_), value in zip(PARAMETERS, values, strict=True):
        function, name = key.split(".")
        params[function][name] = float(value)
    data = engine.curves(c2_prelu_params=params["c2_prelu"], c2_sigmoid_params=params["c2_sigmoid"])
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
    """Median ms per million float32 elements, forward and forward + backward, on 2 threads."""
    forward = engine.cost(COST_ELEMENTS, repeats=5, threads=2)
    both = engine.cost(COST_ELEMENTS, repeats=5, threads=2, backward=True)
    relu = forward["relu"]
    return pd.DataFrame([{"activation": name, "forward ms / M elements": round(forward[name], 3),
                          "forward+backward ms / M": round(both[name], 3),
                          "forward vs ReLU": f"{forward[name] / relu:.2f}×"} for name in forward])
