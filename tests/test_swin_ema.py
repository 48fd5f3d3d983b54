"""Swin-T + SPST + EMA (spec §5) and the EMA block it uses."""

from __future__ import annotations

import pytest
import torch

from hub_models.shared.fer_layers import EMA


def test_ema_parameter_count_matches_spec() -> None:
    # 10c² + 4c with c = C / factor: Table 5 of the paper differs by exactly these amounts.
    assert sum(p.numel() for p in EMA(384, 32).parameters()) == 1_488
    assert sum(p.numel() for p in EMA(192, 32).parameters()) == 384
    assert sum(p.numel() for p in EMA(768, 32).parameters()) == 5_856


def test_ema_output_is_input_rescaled_by_its_weight_maps() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 64, 6, 5)
    out, weights = EMA(64, factor=8)(x)
    assert out.shape == x.shape and weights.shape == (2, 8, 6, 5)
    assert weights.min() > 0 and weights.max() < 1
    expected = x.reshape(2, 8, 8, 6, 5) * weights.unsqueeze(2)
    torch.testing.assert_close(out, expected.reshape_as(x))


def test_ema_rejects_a_factor_that_does_not_divide_channels() -> None:
    with pytest.raises(ValueError, match="factor 32 must divide the 48 channels"):
        EMA(48, factor=32)
