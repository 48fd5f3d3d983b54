"""Knowledge distillation as soft targets: teacher logits in the dataset's label order, cached once
per teacher revision, blended with the truth, and carried through a training run into its card."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from test_training_runs import DATA, TINY, restore_torch_threads, tiny_args  # noqa: F401 (autouse fixture)

from hub_models.loading import load_model
from training import finetune
from training.data import DataError, Split, load_data
from training.distill import Distillation, distilled_targets, teacher_logits
from training.evaluation import predict_logits
from training.inputs import FaceDataset, ProcessorCollator

pytestmark = pytest.mark.skipif(not (DATA / "fer2013").is_dir(),
                                reason=f"FER2013 not found under {DATA} (set FER_DATA_DIR)")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher") / "patt_lite"
    finetune.run(tiny_args("patt_lite", out, rows=64))
    return out


def test_blend_keeps_distributions_and_weights_the_truth():
    probabilities = np.array([[0.2, 0.8], [0.5, 0.5]], dtype=np.float32)
    blended = distilled_targets(np.array([0, 1]), probabilities, weight=0.25)
    np.testing.assert_allclose(blended, [[0.8, 0.2], [0.125, 0.875]])
    np.testing.assert_allclose(distilled_targets(np.array([[0.4, 0.6]]), probabilities[:1], 1.0), probabilities[:1])


def test_teacher_logits_follow_the_datasets_label_order_and_are_cached(teacher, tmp_path):
    data = load_data("fer2013", limit=24)
    model = load_model(str(teacher)).model
    with torch.autocast("cpu", dtype=torch.bfloat16):
        direct = predict_logits(model, FaceDataset(data.train))
    first, revision = teacher_logits(str(teacher), data, cache=tmp_path)
    assert revision == load_model(str(teacher)).revision
    np.testing.assert_allclose(first, direct, rtol=1e-5, atol=1e-5)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    # The same faces under the reversed label order: the columns follow the dataset's names.
    reversed_labels = tuple(reversed(data.labels))
    mapped = dataclasses.replace(data, labels=reversed_labels,
                                 train=Split(data.train.images, len(data.labels) - 1 - data.train.labels,
                                             data.train.sources))
    np.testing.assert_allclose(teacher_logits(str(teacher), mapped, cache=tmp_path)[0], first[:, ::-1])
    # A second call is served from the cache (same file count, same numbers).
    np.testing.assert_array_equal(teacher_logits(str(teacher), data, cache=tmp_path)[0], first)
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_a_distilled_run_records_its_teachers(teacher, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "student"
    summary = finetune.run(["--model", "patt_lite", *TINY["patt_lite"], "--dataset", "fer2013", "--limit", "32",
                            "--max-steps", "2", "--batch-size", "16", "--threads", "1", "--output-dir", str(out),
                            "--distill-from", str(teacher), "--distill-weight", "0.7", "--distill-temperature", "2"])
    assert "teachers agree with" in capsys.readouterr().out
    revision = load_model(str(teacher)).revision
    assert f"{teacher} (revision {revision[:12]})" in summary["distillation"]
    assert "0.7 × mean softmax(logits / 2)" in summary["distillation"]
    assert json.loads((out / "run_summary.json").read_text())["distillation"] == summary["distillation"]
    assert "knowledge distillation" in (out / "README.md").read_text()
    assert list((tmp_path / "cache" / "teachers").glob("*.npy"))


@pytest.mark.parametrize(("spec", "weight", "message"), [
    ("patt_lite", 0.5, "must be a trained model"),
    ("{teacher}", 0.0, "--distill-weight must be in (0, 1]"),
])
def test_bad_distillation_settings_are_named(teacher, tmp_path, spec, weight, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace("]", r"\]")):
        finetune.run(["--model", "patt_lite", *TINY["patt_lite"], "--dataset", "fer2013", "--limit", "16",
                      "--max-steps", "1", "--threads", "1", "--output-dir", str(tmp_path / "x"),
                      "--distill-from", spec.format(teacher=teacher), "--distill-weight", str(weight)])
    with pytest.raises(DataError, match="at least one trained model"):
        Distillation(())


def test_fine_tuning_a_calibrated_model_trains_on_raw_one_view_logits(teacher, tmp_path, monkeypatch):
    """The source's temperature and flip averaging were fitted to its own head and data: a fine-tune
    starts without them and refits the temperature at the end (calibrate.py decides the flip)."""
    import shutil

    from transformers import TrainerCallback

    source = tmp_path / "calibrated"
    shutil.copytree(teacher, source)
    config = json.loads((source / "config.json").read_text())
    (source / "config.json").write_text(json.dumps({**config, "calibration_temperature": 0.5,
                                                    "test_time_flip": True}))
    seen = {}

    class Record(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            seen.update(temperature=model.config.calibration_temperature, flip=model.config.test_time_flip)

    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "student"
    argv = tiny_args(str(source), out, "--max-steps", "2", "--freeze-epochs", "0", "--distill-from", str(teacher),
                     rows=32)
    summary = finetune.run(argv, callbacks=[Record()])
    assert seen == {"temperature": 1.0, "flip": False}
    assert json.loads((out / "config.json").read_text())["test_time_flip"] is False
    assert "+ 0.5 × the true label" in summary["distillation"]


def test_online_teachers_answer_for_the_pixels_the_student_sees(teacher):
    """The batch comes in the student's normalisation and size; each teacher gets the same pixels
    in its own, and the blend is (1 - w) × truth + w × the teachers' mean probabilities."""
    from types import SimpleNamespace

    from training.distill import OnlineTeachers

    data = load_data("fer2013", limit=8)
    model = load_model(str(teacher)).model.eval()
    batch = next(iter(torch.utils.data.DataLoader(FaceDataset(data.train), batch_size=8,
                                                  collate_fn=ProcessorCollator(model.image_processor()))))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = torch.softmax(model(pixel_values=batch["pixel_values"]).logits.float(), dim=-1)
    truth = torch.nn.functional.one_hot(batch["labels"], len(data.labels)).float()
    distillation = Distillation((str(teacher),), weight=0.75)
    same = OnlineTeachers(distillation, data.labels, model.config)
    torch.testing.assert_close(same.blend(batch["pixel_values"], batch["labels"]), 0.25 * truth + 0.75 * expected)
    assert same.distillation.online and same.distillation.revisions == (load_model(str(teacher)).revision,)
    # A student with ImageNet normalisation and twice the side: the teacher still sees its own input.
    student = SimpleNamespace(image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (student.image_mean, student.image_std))
    pixels = batch["pixel_values"] * 0.5 + 0.5
    larger = torch.nn.functional.interpolate(pixels, scale_factor=2, mode="nearest")
    other = OnlineTeachers(distillation, data.labels, student).blend((larger - mean) / std, truth)
    torch.testing.assert_close(other, 0.25 * truth + 0.75 * expected, atol=0.02, rtol=0)
    # The teachers' columns follow the dataset's label order.
    reversed_labels = tuple(reversed(data.labels))
    flipped = OnlineTeachers(distillation, reversed_labels, model.config).blend(batch["pixel_values"], truth)
    torch.testing.assert_close(flipped, 0.25 * truth + 0.75 * expected.flip(-1))


def test_an_online_distilled_run_saves_only_the_student(teacher, tmp_path):
    out = tmp_path / "student"
    summary = finetune.run(tiny_args("patt_lite", out, "--max-steps", "2", "--distill-from", str(teacher),
                                     "--distill-online", "--distill-weight", "0.6", rows=32))
    assert "the teachers run on each augmented, mixed batch the student sees" in summary["distillation"]
    assert "0.6 × mean softmax(logits / 1)" in summary["distillation"]
    student_keys = set(load_model(str(out)).model.state_dict())
    assert student_keys == set(load_model(str(teacher)).model.state_dict())
    with pytest.raises(DataError, match="--distill-online needs teachers"):
        finetune.run(tiny_args("patt_lite", tmp_path / "x", "--max-steps", "1", "--distill-online", rows=16))
