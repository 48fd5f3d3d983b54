"""Recomputing BatchNorm statistics from training faces: the numbers it gives, what it leaves as
it was, and writing the result into a saved weights file without touching anything else."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from hub_models.shared.fer_base import FerClassifierOutput, FerConfig, FerPreTrainedModel
from training.batchnorm import batchnorm_statistics, recompute_batchnorm_statistics, write_batchnorm_statistics
from training.trainer import PreciseBatchNormCallback

SCALE = torch.tensor([1.0, -2.0, 0.5])


class ScaledBatchNormModel(FerPreTrainedModel):
    """Channel k of the BatchNorm input is SCALE[k] × the pixel behind a dropout, so the
    statistics a pass must give can be computed from the pixels alone (dropout would change them)."""

    config_class = FerConfig

    def __init__(self, config: FerConfig) -> None:
        super().__init__(config)
        self.drop = nn.Dropout(0.5)
        self.norm = nn.BatchNorm2d(3, momentum=0.3)
        self.classifier = nn.Linear(3, config.num_labels)
        self.post_init()

    def forward(self, pixel_values: torch.Tensor, **kwargs) -> FerClassifierOutput:
        x = self.norm(self.drop(pixel_values[:, :1] * SCALE.view(1, 3, 1, 1)))
        return FerClassifierOutput(logits=self.classifier(x.mean(dim=(2, 3))))


def faces(count: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [{"image": torch.rand(1, 6, 6, generator=generator) * 5 + 2} for _ in range(count)]


def collate(samples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {"pixel_values": torch.stack([s["image"] for s in samples])}


def model_with_stale_statistics() -> ScaledBatchNormModel:
    model = ScaledBatchNormModel(FerConfig(num_labels=2, test_time_flip=True)).eval()
    model.norm.running_mean.fill_(40.0)
    model.norm.running_var.fill_(9.0)
    return model


def expected_statistics(dataset, order: list[int], batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each batch's channel mean and unbiased variance, averaged over the batches."""
    means, variances = [], []
    for start in range(0, len(order), batch):
        x = torch.stack([dataset[i]["image"] for i in order[start:start + batch]])[:, :1] * SCALE.view(1, 3, 1, 1)
        values = x.transpose(0, 1).reshape(3, -1)
        means.append(values.mean(dim=1))
        variances.append(values.var(dim=1, unbiased=True))
    return torch.stack(means).mean(0), torch.stack(variances).mean(0)


def test_statistics_are_those_of_the_sampled_faces_in_inference_mode() -> None:
    model, dataset = model_with_stale_statistics(), faces(40)
    used = recompute_batchnorm_statistics(model, dataset, collate, faces=24, batch_size=8, seed=3)
    assert used == 24
    order = torch.randperm(40, generator=torch.Generator().manual_seed(3))[:24].tolist()
    mean, variance = expected_statistics(dataset, order, 8)
    torch.testing.assert_close(model.norm.running_mean, mean)
    torch.testing.assert_close(model.norm.running_var, variance)
    # One forward per batch: the mirror-image average of test_time_flip did not run a second one.
    assert int(model.norm.num_batches_tracked) == 3
    assert model.norm.momentum == 0.3 and not model.training and model.config.test_time_flip


def test_a_training_model_stays_in_training_mode_and_a_model_without_batchnorm_is_untouched() -> None:
    model, dataset = model_with_stale_statistics().train(), faces(8)
    recompute_batchnorm_statistics(model, dataset, collate, faces=8, batch_size=4)
    assert model.training and model.drop.training
    _, variance = expected_statistics(dataset, torch.randperm(8, generator=torch.Generator().manual_seed(0))
                                      .tolist(), 4)
    torch.testing.assert_close(model.norm.running_var, variance)  # the dropout did not run during the pass
    plain = nn.Linear(2, 2)
    assert recompute_batchnorm_statistics(plain, faces(8), collate, faces=8) == 0
    assert recompute_batchnorm_statistics(model_with_stale_statistics(), faces(8), collate, faces=0) == 0


def test_the_callback_recomputes_before_each_evaluation() -> None:
    model, dataset = model_with_stale_statistics(), faces(16)
    callback = PreciseBatchNormCallback(model, dataset, collate, faces=16)
    callback.on_epoch_end(SimpleNamespace(per_device_eval_batch_size=16, seed=5), None, None)
    mean, variance = expected_statistics(dataset, torch.randperm(16, generator=torch.Generator().manual_seed(5))
                                         .tolist(), 16)
    torch.testing.assert_close(model.norm.running_mean, mean)
    torch.testing.assert_close(model.norm.running_var, variance)


def test_writing_keeps_the_stored_dtype_the_other_tensors_and_the_metadata(tmp_path) -> None:
    model = model_with_stale_statistics()
    weights = tmp_path / "model.safetensors"
    stored = {name: value.half() if value.is_floating_point() else value for name, value in model.state_dict().items()}
    save_file(stored, weights, metadata={"format": "pt", "stored_dtype": "float16"})
    recompute_batchnorm_statistics(model, faces(16), collate, faces=16, batch_size=8)
    written = write_batchnorm_statistics(model, weights)
    assert written == sorted(batchnorm_statistics(model)) == ["norm.num_batches_tracked", "norm.running_mean",
                                                               "norm.running_var"]
    saved = load_file(weights)
    assert saved["norm.running_mean"].dtype == torch.float16
    torch.testing.assert_close(saved["norm.running_mean"], model.norm.running_mean.half())
    torch.testing.assert_close(saved["norm.running_var"], model.norm.running_var.half())
    for name in ("classifier.weight", "norm.weight"):
        assert torch.equal(saved[name], stored[name])
    with safe_open(weights, "pt") as handle:
        assert handle.metadata()["stored_dtype"] == "float16"


def test_a_weights_file_of_another_model_is_refused_and_left_as_it_was(tmp_path) -> None:
    weights = tmp_path / "model.safetensors"
    save_file({"other.weight": torch.ones(2)}, weights)
    before = weights.read_bytes()
    with pytest.raises(ValueError, match=r"no 'norm\.num_batches_tracked'"):
        write_batchnorm_statistics(model_with_stale_statistics(), weights)
    assert weights.read_bytes() == before


@pytest.mark.parametrize("value", ["-1", "ten", "2.5"])
def test_a_face_count_that_is_not_a_whole_number_is_refused_by_both_commands(value, capsys) -> None:
    from training import calibrate, finetune

    for parser, required in ((calibrate.build_parser(), []), (finetune.build_parser(), ["--output-dir", "out"])):
        with pytest.raises(SystemExit):
            parser.parse_args(["--model", "patt_lite", *required, "--precise-bn", value])
        assert f"expected a whole number of faces ≥ 0, got {value!r}" in capsys.readouterr().err
