"""The Activations tab's numbers: C² functions are smooth up to f″, ReLU is not, and costs are measured."""

from __future__ import annotations

import numpy as np

from spaces import activations_view


def test_activation_curves_show_c2_smoothness_and_relu_kinks() -> None:
    grid = np.linspace(-3, 3, 1201)
    curves = activations_view.curves(grid)
    assert set(curves) == {"x", "c2_prelu", "c2_sigmoid", "sigmoid", "tanh", "elu", "relu"}
    np.testing.assert_allclose(curves["sigmoid"]["d1"], curves["sigmoid"]["value"] * (1 - curves["sigmoid"]["value"]),
                               atol=1e-9)
    largest_jump = {name: max(np.abs(np.diff(curves[name][key])).max() for key in ("value", "d1", "d2"))
                    for name in ("c2_prelu", "c2_sigmoid", "relu")}
    assert largest_jump["c2_prelu"] < 0.05 and largest_jump["c2_sigmoid"] < 0.05  # C²: no jumps up to f″
    assert largest_jump["relu"] >= 1.0  # f′ jumps from 0 to 1
    costs = activations_view.cost(elements=20_000, repeats=3, threads=1)
    assert set(costs) == set(curves) - {"x"}
    assert all(0 < low <= middle <= high for low, middle, high in costs.values())
