"""The weight-average callback: what an epoch evaluates is the average, what keeps training is the
live weights, and a checkpoint carries both."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file, save_file

from training.trainer import WeightEmaCallback


def model_with(value: float) -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(value)
    return model


def test_epoch_sees_the_average_and_training_continues_from_the_live_weights(tmp_path) -> None:
    model = model_with(0.0)
    ema = WeightEmaCallback(model, decay=0.5)
    args, state = SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=0)
    ema.on_train_begin(args, state, None)
    weight = model[0].weight
    for step, value in enumerate((4.0, 8.0), start=1):  # warm-up decay min(0.5, (1 + n) / (10 + n)) = 2/11, 3/12
        with torch.no_grad():
            weight.fill_(value)
        state.global_step = step
        ema.on_step_end(args, state, None)
    after_one = 4.0 * (1 - 2 / 11)
    expected = after_one * 3 / 12 + 8.0 * (1 - 3 / 12)
    ema.on_epoch_end(args, state, None)
    torch.testing.assert_close(weight, torch.full_like(weight, expected))
    (tmp_path / "checkpoint-2").mkdir()
    ema.on_save(args, state, None)
    torch.testing.assert_close(weight, torch.full_like(weight, 8.0))
    saved = load_file(tmp_path / "checkpoint-2" / WeightEmaCallback.LIVE_WEIGHTS)
    torch.testing.assert_close(saved["0.weight"], torch.full_like(weight, 8.0))
    assert saved["1.num_batches_tracked"].dtype == torch.int64


def test_resume_loads_the_live_weights_and_averages_from_the_checkpoint(tmp_path) -> None:
    live = model_with(3.0)
    (tmp_path / "checkpoint-7").mkdir()
    save_file(dict(live.state_dict()), tmp_path / "checkpoint-7" / WeightEmaCallback.LIVE_WEIGHTS)
    model = model_with(1.0)  # what the Trainer restored: the checkpoint's model, i.e. the average
    ema = WeightEmaCallback(model, decay=0.9)
    ema.on_train_begin(SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=7), None)
    torch.testing.assert_close(model[0].weight, torch.full((2, 2), 3.0))
    torch.testing.assert_close(ema.average["0.weight"], torch.full((2, 2), 1.0))


def test_an_epoch_that_is_not_saved_still_gets_its_live_weights_back(tmp_path) -> None:
    model = model_with(2.0)
    ema = WeightEmaCallback(model, decay=0.9)
    args, state = SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(global_step=0)
    ema.on_train_begin(args, state, None)
    with torch.no_grad():
        model[0].weight.fill_(5.0)
    ema.on_epoch_end(args, state, None)
    assert model[0].weight[0, 0].item() == 2.0
    ema.on_step_begin(args, state, None)
    assert model[0].weight[0, 0].item() == 5.0


@pytest.mark.parametrize("decay", [0.0, 1.0, 1.5])
def test_a_decay_outside_0_1_is_refused(decay: float) -> None:
    with pytest.raises(ValueError, match="--ema-decay must lie strictly between 0 and 1"):
        WeightEmaCallback(model_with(0.0), decay)
