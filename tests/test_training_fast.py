"""The CPU fast path and what it feeds: batch augmentation as tensors, calibration (ECE and
temperature scaling) and a `--recipe cpu` run that ends calibrated."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard

import hub_models
from training import calibrate, evaluate, finetune
from training.batch_augment import BatchAugment, erase_rectangles, soft_targets
from training.calibration import (
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability,
    softmax,
)
from training.data import DataError, default_data_dir
from training.recipes import CPU_RECIPES, RECIPES, recipe_for

DATA = default_data_dir()
needs_fer2013 = pytest.mark.skipif(not (DATA / "fer2013").is_dir(),
                                   reason=f"FER2013 not found under {DATA} (set FER_DATA_DIR)")


def batch(size: int = 16, side: int = 24, channels_last: bool = True) -> torch.Tensor:
    images = torch.linspace(-1, 1, side).view(1, 1, 1, side).expand(size, 3, side, side).clone()
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def test_soft_targets_smooth_and_keep_distributions():
    targets = soft_targets(torch.tensor([0, 2]), 4, 0.1)
    torch.testing.assert_close(targets[0], torch.tensor([0.925, 0.025, 0.025, 0.025]))
    votes = torch.tensor([[0.5, 0.5, 0.0, 0.0]])
    torch.testing.assert_close(soft_targets(votes, 4, 0.0), votes)


def test_flip_only_mirrors_each_face_and_keeps_the_memory_format():
    torch.manual_seed(0)
    augment = BatchAugment(flip=True, rotate=0, scale=(1.0, 1.0), translate=0, erase=0, label_smoothing=0)
    images = batch()
    out, targets = augment(images, torch.arange(16) % 7, 7)
    assert out.is_contiguous(memory_format=torch.channels_last)
    mirrored = [torch.allclose(o, i.flip(-1), atol=1e-5) for o, i in zip(out, images, strict=True)]
    kept = [torch.allclose(o, i, atol=1e-5) for o, i in zip(out, images, strict=True)]
    assert all(m or k for m, k in zip(mirrored, kept, strict=True)) and any(mirrored) and any(kept)
    torch.testing.assert_close(targets.sum(1), torch.ones(16))


def test_erasing_blanks_one_rectangle_in_the_chosen_faces():
    torch.manual_seed(1)
    images = torch.ones(32, 1, 20, 20)
    out = erase_rectangles(images, probability=0.5)
    blanked = (out == 0).flatten(1).sum(1)
    assert 0 < int((blanked > 0).sum()) < 32
    assert int(blanked.max()) <= 0.2 * 400 + 40  # at most ~20 % of the face (rounding of the box edges)


def test_mixing_mixes_labels_in_the_same_proportion_as_pixels():
    torch.manual_seed(2)
    augment = BatchAugment(flip=False, rotate=0, scale=(1.0, 1.0), translate=0, erase=0, mixup=1.0, mix_prob=1.0,
                           label_smoothing=0)
    images = torch.stack([torch.full((3, 8, 8), float(i)) for i in range(8)])
    out, targets = augment(images, torch.arange(8) % 4, 4)
    torch.testing.assert_close(targets.sum(1), torch.ones(8))
    share = targets[0, 0].item()  # image 0 has class 0; its partner has another class or the same
    assert 0.0 <= share <= 1.0 and not torch.equal(out, images)


def test_ece_is_zero_when_confidence_matches_accuracy_and_grows_with_overconfidence():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.3, 1.0, 20_000)
    correct = rng.uniform(size=confidence.shape) < confidence
    labels = np.where(correct, 0, 1)
    probabilities = np.stack([confidence, 1 - confidence], axis=1)
    assert expected_calibration_error(probabilities, labels) < 0.02
    sharpened = softmax(np.log(probabilities) * 3)
    assert expected_calibration_error(sharpened, labels) > 0.1
    assert sum(row["count"] for row in reliability(probabilities, labels)) == 20_000


def test_temperature_is_recovered_from_overconfident_logits():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 1.5, (6_000, 7))
    labels = np.array([rng.choice(7, p=p) for p in softmax(true_logits)])
    logits = 2.5 * true_logits  # the model is over-confident by a factor 2.5
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(2.5, rel=0.1)
    assert negative_log_likelihood(logits, labels, temperature) < negative_log_likelihood(logits, labels)


def test_temperature_divides_the_logits_everywhere_and_never_changes_the_prediction():
    model = hub_models.create_model("patt_lite", image_size=64).eval()
    pixels = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        raw = model(pixel_values=pixels).logits
        model.config.calibration_temperature = 3.0
        scaled = model(pixel_values=pixels).logits
    torch.testing.assert_close(scaled, raw / 3.0)
    assert torch.equal(scaled.argmax(1), raw.argmax(1))


def test_every_architecture_has_a_cpu_recipe_with_its_fast_path():
    for name in hub_models.ARCHITECTURES:
        cpu = recipe_for(name, "cpu")
        assert cpu is CPU_RECIPES[name] and cpu.batch_augment is not None and cpu.augment == ()
        assert (cpu.precision, cpu.compile, cpu.channels_last) == (
            RECIPES[name].precision, RECIPES[name].compile, RECIPES[name].channels_last)
    with pytest.raises(ValueError, match="unknown recipe kind"):
        recipe_for("patt_lite", "gpu")


@needs_fer2013
def test_cpu_recipe_run_is_bf16_at_the_recipes_size_and_ends_calibrated(tmp_path):
    out = tmp_path / "run"
    threads = torch.get_num_threads()
    try:
        summary = finetune.run(["--model", "patt_lite", "--recipe", "cpu", "--dataset", "fer2013", "--limit", "96",
                                "--epochs", "1", "--batch-size", "32", "--threads", "1", "--output-dir", str(out)])
    finally:
        torch.set_num_threads(threads)
    config = json.loads((out / "config.json").read_text())
    assert config["image_size"] == 64 and config["batch_norm_momentum"] == 0.1  # the recipe's model_config
    assert config["calibration_temperature"] == pytest.approx(summary["temperature"])
    report = json.loads((out / "calibration.json").read_text())
    assert report["fitted_on"] == "validation" and 0 <= report["test"]["ece_after"] <= 1
    card = (out / "README.md").read_text()
    assert "## Calibration" in card and "bf16" in card and "BatchAugment" in card
    assert (out / "reliability_test.png").is_file()
    # Re-calibrating the finished folder replaces the card section instead of adding a second one.
    calibrate.run(["--model", str(out), "--limit", "96"])
    assert (out / "README.md").read_text().count("## Calibration") == 1


@needs_fer2013
def test_flip_averaging_is_switched_on_with_a_refit_temperature_and_the_card_follows(tmp_path):
    out = tmp_path / "run"
    finetune.run(["--model", "patt_lite", "--recipe", "cpu", "--dataset", "fer2013", "--limit", "64", "--epochs", "1",
                  "--batch-size", "32", "--threads", "1", "--output-dir", str(out)])
    before = json.loads((out / "config.json").read_text())
    assert before["test_time_flip"] is False
    calibrate.run(["--model", str(out), "--limit", "64", "--test-time-flip"])
    config = json.loads((out / "config.json").read_text())
    report = json.loads((out / "calibration.json").read_text())
    assert config["test_time_flip"] is True and report["test_time_flip"] is True
    assert config["calibration_temperature"] == pytest.approx(report["temperature"], abs=1e-5)
    assert {"validation_accuracy_one_view", "validation_accuracy_flip"} <= set(report)
    reports = evaluate.run(["--model", str(out), "--limit", "64", "--split", "validation", "test",
                            "--output-dir", str(out), "--overwrite", "--update-card"])
    card = ModelCard.load(out / "README.md")
    stated = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert stated[("PrivateTest", "accuracy")] == round(reports["test"]["accuracy"], 4)
    assert stated[("PublicTest", "f1")] == round(reports["validation"]["macro_f1"], 4)
    text = card.text
    assert text.count("## Results") == 1 and "`config.test_time_flip`" in text
    assert "was switched on on the validation split's evidence" in text
    assert text.count("## Calibration") == 1 and "## Training" in text and "## Limitations" in text
    # A later run that measures something else carries the flip evidence forward, and its own as well.
    calibrate.run(["--model", str(out), "--limit", "64", "--precise-bn", "16"])
    calibrate.run(["--model", str(out), "--limit", "64"])
    report = json.loads((out / "calibration.json").read_text())
    assert {"validation_accuracy_one_view", "validation_accuracy_flip", "precise_bn_kept"} <= set(report)
    text = (out / "README.md").read_text()
    assert "was switched on on the validation split's evidence" in text and "recomputed from 16 training faces" in text
    assert json.loads((out / "config.json").read_text())["test_time_flip"] is True
    with pytest.raises(DataError, match="--update-card needs a model folder"):
        evaluate.run(["--model", "patt_lite", "--limit", "8", "--output-dir", str(tmp_path / "e"), "--update-card"])


@needs_fer2013
def test_precise_batchnorm_statistics_are_what_training_saves_and_calibrate_keeps_only_on_evidence(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForImageClassification

    from training.batchnorm import batchnorm_statistics, recompute_batchnorm_statistics
    from training.data import load_data
    from training.inputs import FaceDataset, ProcessorCollator

    out = tmp_path / "run"
    finetune.run(["--model", "patt_lite", "--recipe", "cpu", "--dataset", "fer2013", "--limit", "64", "--epochs", "1",
                  "--batch-size", "32", "--threads", "1", "--precise-bn", "48", "--precision", "fp32",
                  "--output-dir", str(out)])  # fp32: the statistics can be compared closely
    assert "recomputed from 48 training faces" in (out / "README.md").read_text()
    train = FaceDataset(load_data("fer2013", limit=64).train)

    def recomputed(faces: int, seed: int, channels_last: bool) -> dict[str, torch.Tensor]:
        model = AutoModelForImageClassification.from_pretrained(out)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        collator = ProcessorCollator(model.image_processor(), channels_last)
        recompute_batchnorm_statistics(model, train, collator, faces, 64, seed)
        return batchnorm_statistics(model)

    saved = load_file(out / "model.safetensors")
    expected = recomputed(48, 42, channels_last=True)  # as the run: its seed, evaluation batch, memory format
    assert expected
    for name, value in expected.items():
        torch.testing.assert_close(saved[name], value, rtol=1e-4, atol=1e-5)
    before = (out / "model.safetensors").read_bytes()
    calibrate.run(["--model", str(out), "--limit", "64", "--precise-bn", "16"])
    report = json.loads((out / "calibration.json").read_text())
    running, fresh = (report[f"validation_accuracy_{kind}_statistics"] for kind in ("running", "recomputed"))
    assert report["precise_bn_faces"] == 16 and report["precise_bn_kept"] == (fresh >= running)
    if report["precise_bn_kept"]:
        written = load_file(out / "model.safetensors")
        for name, value in recomputed(16, 0, channels_last=False).items():
            torch.testing.assert_close(written[name], value, rtol=1e-4, atol=1e-5)
    else:
        assert (out / "model.safetensors").read_bytes() == before
    verdict = "kept" if report["precise_bn_kept"] else "discarded"
    assert f"recomputed from 16 training faces and {verdict} on the validation split's evidence" in (
        out / "README.md").read_text()
