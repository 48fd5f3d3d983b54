"""End-to-end fine-tuning on real FER2013 rows with tiny settings: one epoch per architecture,
resume after an interruption, re-evaluation, refusal to overwrite, offline Hub ids, and a push to
a local fake Hub followed by a download that gives identical logits.

Each run uses a few hundred rows and a reduced config (TINY) so that it takes seconds; the
tests skip with a reason when the FER data is absent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from fakehub import FakeHub
from transformers import AutoModelForImageClassification, TrainerCallback

import hub_models
from training import evaluate, finetune
from training.data import CLEAR_MAJORITY, default_data_dir, load_data
from training.evaluation import predict_logits
from training.inputs import FaceDataset

REPO = Path(__file__).resolve().parents[1]
DATA = default_data_dir()
pytestmark = pytest.mark.skipif(not (DATA / "fer2013").is_dir(),
                                reason=f"FER2013 not found under {DATA} (set FER_DATA_DIR)")

# Reduced settings per architecture so that one epoch on a few hundred rows takes seconds.
TINY: dict[str, list[str]] = {
    "patt_lite": ["--image-size", "64"],
    "attention_cnn": ["--config", "backbone=resnet50", "--config", "attention=eca", "--image-size", "32"],
    "ddamfn": ["--image-size", "32"],
    "swin_ema": ["--image-size", "64", "--config", "embed_dim=24", "--config", "depths=[1,1,1,1]",
                 "--config", "num_heads=[1,2,4,8]", "--config", "window_size=2", "--config", "spst_dim=64",
                 "--config", "spst_depth=1", "--config", "spst_num_heads=2"],
    "cf_dan": ["--image-size", "32", "--config", "backbone_depths=[1,1,1]", "--config", "backbone_widths=[16,32,64]",
               "--config", "hidden_size=64", "--config", "num_layers=1"],
}
ROWS = 128
BATCH = 32


def tiny_args(architecture: str, out: Path, *extra: str, rows: int = ROWS, batch: int = 16) -> list[str]:
    # One thread: these models are tiny, and on a busy 2-core machine two torch threads wait on
    # each other (DDAMFN's many small convs ran 20× slower with 2 threads than with 1).
    return ["--model", architecture, *TINY.get(architecture, []), "--dataset", "fer2013", "--limit", str(rows),
            "--epochs", "1", "--batch-size", str(batch), "--output-dir", str(out), "--logging-steps", "5",
            "--threads", "1", *extra]


@pytest.fixture(autouse=True)
def restore_torch_threads():
    """finetune --threads sets the process-wide torch thread count; give the other tests theirs back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("architecture", sorted(hub_models.ARCHITECTURES))
def test_one_epoch_writes_a_complete_hub_folder(architecture, tmp_path):
    out = tmp_path / architecture
    summary = finetune.run(tiny_args(architecture, out, batch=BATCH))
    assert summary["global_step"] == -(-ROWS // BATCH)
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "README.md", "metrics_test.json",
                 "metrics_validation.json", "confusion_test.png", "confusion_test.json", "log_history.csv"):
        assert (out / name).is_file(), name
    assert list(out.glob("modeling_*.py")), "remote-code files missing"
    metrics = json.loads((out / "metrics_test.json").read_text())
    assert metrics["num_samples"] == ROWS and metrics["accuracy"] == summary["test_accuracy"]
    card = (out / "README.md").read_text()
    assert "model-index:" in card and "split: PrivateTest" in card and f"value: {round(metrics['accuracy'], 4)}" in card
    assert "from scratch" in card and "Limitations" in card
    assert "loss" in (out / "log_history.csv").read_text().splitlines()[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "patt_lite"
    finetune.run(tiny_args("patt_lite", out, rows=64))
    return out


def test_evaluate_remeasures_the_saved_folder(trained, tmp_path):
    reports = evaluate.run(["--model", str(trained), "--dataset", "fer2013", "--limit", "64", "--split", "test",
                            "--output-dir", str(tmp_path / "eval")])
    saved = json.loads((trained / "metrics_test.json").read_text())
    measured = json.loads((tmp_path / "eval" / "metrics_test.json").read_text())
    assert measured == saved
    assert reports["test"]["confusion_matrix"] == json.loads((trained / "confusion_test.json").read_text())["matrix"]
    # A second evaluation into the same folder must not overwrite it unasked.
    assert evaluate.main(["--model", str(trained), "--limit", "64", "--output-dir", str(tmp_path / "eval")]) == 2


def test_existing_output_dir_is_not_overwritten_unless_asked(trained, tmp_path, capsys):
    keep = tmp_path / "result"
    keep.mkdir()
    (keep / "precious.txt").write_text("keep me")
    assert finetune.main(tiny_args("patt_lite", keep, rows=32)) == 2
    assert "already exists" in capsys.readouterr().err and (keep / "precious.txt").read_text() == "keep me"


def test_bad_model_names_give_one_clear_message(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    assert finetune.main(tiny_args("nobody-here/no-such-model", tmp_path / "a", rows=32)) == 2
    assert "cannot load Hub model 'nobody-here/no-such-model': the Hub is offline" in capsys.readouterr().err
    assert finetune.main(tiny_args("resnet9000", tmp_path / "b", rows=32)) == 2
    assert "unknown model 'resnet9000'" in capsys.readouterr().err


class Interrupt(RuntimeError):
    pass


class InterruptAfterFirstCheckpoint(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise Interrupt(f"interrupted after saving step {state.global_step}")


class StepRecorder(TrainerCallback):
    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_step_end(self, args, state, control, **kwargs):
        self.steps.append(state.global_step)


def final_logits(folder: Path) -> torch.Tensor:
    model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
    inputs = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return model(pixel_values=inputs).logits


@pytest.mark.slow
@pytest.mark.parametrize("weights", [[], ["--ema-decay", "0.9"]], ids=["live", "weight-average"])
def test_resume_continues_from_the_checkpoint_with_the_same_step_counter(weights, tmp_path):
    args = ["--epochs", "2", "--seed", "3", *weights]
    whole = tmp_path / "whole"
    finetune.run(tiny_args("patt_lite", whole, *args, rows=64))
    broken = tmp_path / "broken"
    with pytest.raises(Interrupt, match="step 4"):
        finetune.run(tiny_args("patt_lite", broken, *args, rows=64), callbacks=[InterruptAfterFirstCheckpoint()])
    assert not (broken / "model.safetensors").exists()
    recorder = StepRecorder()
    summary = finetune.run(tiny_args("patt_lite", broken, *args, "--resume", rows=64), callbacks=[recorder])
    assert recorder.steps == [5, 6, 7, 8]  # 64 rows / batch 16 = 4 steps per epoch; epoch 2 only
    assert summary["global_step"] == 8
    state = json.loads((broken / "checkpoints" / "checkpoint-8" / "trainer_state.json").read_text())
    assert [e["epoch"] for e in state["log_history"] if "eval_accuracy" in e] == [1.0, 2.0]
    torch.testing.assert_close(final_logits(broken), final_logits(whole))


@pytest.mark.slow
def test_push_to_fake_hub_then_from_pretrained_gives_identical_logits(tmp_path):
    hub = FakeHub().start()
    try:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0", "HF_HUB_CACHE": str(tmp_path / "cache"),
               "HF_HOME": str(tmp_path / "home"), "FER_DATA_DIR": str(DATA)}
        out = tmp_path / "pushed"
        subprocess.run([sys.executable, "training/finetune.py", *tiny_args("patt_lite", out, rows=32),
                        "--max-steps", "2", "--push-to-hub", "--hub-model-id", "fer-test/patt-lite-tiny"],
                       cwd=REPO, env=env, check=True, capture_output=True, text=True, timeout=300)
        files = hub.repos["fer-test/patt-lite-tiny"].files
        assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md"} <= set(files)
        assert not any(name.startswith("checkpoints/") for name in files)
        assert files["model.safetensors"] == (out / "model.safetensors").read_bytes()
        script = textwrap.dedent("""
            import sys, numpy as np, torch
            from transformers import AutoModelForImageClassification
            model = AutoModelForImageClassification.from_pretrained("fer-test/patt-lite-tiny", trust_remote_code=True)
            x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                np.save(sys.argv[1], model.eval()(pixel_values=x).logits.numpy())
        """)
        subprocess.run([sys.executable, "-c", script, str(tmp_path / "logits.npy")], cwd=tmp_path, env=env,
                       check=True, capture_output=True, text=True, timeout=300)
    finally:
        hub.stop()
    # Same weights; the two processes may use different thread counts, hence float-rounding tolerance.
    torch.testing.assert_close(torch.from_numpy(np.load(tmp_path / "logits.npy")), final_logits(out),
                               rtol=1e-5, atol=1e-7)


def test_ferplus_soft_labels_train_through_the_trainer(tmp_path):
    out = tmp_path / "ferplus"
    summary = finetune.run(["--model", "patt_lite", *TINY["patt_lite"], "--dataset", "ferplus", "--soft-labels",
                            "--limit", "32", "--max-steps", "2", "--batch-size", "16", "--threads", "1",
                            "--output-dir", str(out)])
    assert summary["global_step"] == 2
    config = json.loads((out / "config.json").read_text())
    assert list(config["id2label"].values()) == list(hub_models.FERPLUS_LABELS)
    # The papers' FERPlus test set (clear majorities) is reported beside the whole split.
    subset = json.loads((out / "metrics_test.json").read_text())["subsets"][CLEAR_MAJORITY]
    test = load_data("ferplus", limit=32).test
    clear = test.subsets[CLEAR_MAJORITY]
    model = AutoModelForImageClassification.from_pretrained(out)
    correct = predict_logits(model, FaceDataset(test)).argmax(axis=1) == test.labels
    assert subset["num_samples"] == clear.sum() < len(test)
    assert subset["accuracy"] == pytest.approx(correct[clear].mean())
    assert f"| PrivateTest, {CLEAR_MAJORITY} | {clear.sum()} | " in (out / "README.md").read_text()


@pytest.mark.skipif(not (DATA / "ckplus48").is_dir(), reason=f"CK+ not found under {DATA}")
def test_ckplus_all_folds_report_mean_and_std(tmp_path):
    out = tmp_path / "ckplus"
    summary = finetune.run(["--model", "patt_lite", *TINY["patt_lite"], "--dataset", "ckplus", "--fold", "all",
                            "--n-folds", "3", "--limit", "16", "--max-steps", "1", "--batch-size", "8",
                            "--threads", "1", "--output-dir", str(out)])
    per_fold = [json.loads((out / f"fold-{k}" / "metrics_test.json").read_text())["accuracy"] for k in range(3)]
    assert summary["test_accuracy_per_fold"] == per_fold
    assert summary["test_accuracy_mean"] == pytest.approx(np.mean(per_fold))
    assert summary["test_accuracy_std"] == pytest.approx(np.std(per_fold, ddof=1))
    assert json.loads((out / "cross_validation.json").read_text()) == summary


def test_frozen_first_stage_keeps_the_backbone_then_trains_it(trained, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "two-stage"
    finetune.run(["--model", str(trained), "--dataset", "fer2013", "--limit", "32", "--batch-size", "16",
                  "--epochs", "2", "--freeze-epochs", "1", "--threads", "1", "--output-dir", str(out)])
    start = load_file(trained / "model.safetensors")
    stage1 = load_file(out / "checkpoints" / "checkpoint-2" / "model.safetensors")
    stage2 = load_file(out / "checkpoints" / "checkpoint-4" / "model.safetensors")
    backbone = [k for k in start if k.startswith("backbone.")]
    head = [k for k in start if k.startswith("head.") and start[k].is_floating_point()]
    assert backbone and all(torch.equal(start[k], stage1[k]) for k in backbone)  # weights and BN statistics
    assert any(not torch.equal(start[k], stage1[k]) for k in head)
    assert any(not torch.equal(stage1[k], stage2[k]) for k in backbone)
    assert "`backbone` frozen" in (out / "README.md").read_text()


def test_fine_tuning_from_int8_storage_trains_float_layers(trained, tmp_path):
    from safetensors.torch import load_file

    from hub_models import zoo

    zoo.add(trained, "int8", int8_linears=["head.dense.0"], zoo_dir=tmp_path / "zoo")
    out = tmp_path / "from-int8"
    finetune.run(["--model", str(tmp_path / "zoo" / "int8"), "--dataset", "fer2013", "--limit", "32",
                  "--batch-size", "16", "--threads", "1", "--output-dir", str(out)])
    start = load_file(tmp_path / "zoo" / "int8" / "model.safetensors")
    tuned = load_file(out / "model.safetensors")
    assert "head.dense.0.weight_scale" not in tuned and tuned["head.dense.0.weight"].is_floating_point()
    dequantized = start["head.dense.0.weight"].float() * start["head.dense.0.weight_scale"]
    assert not torch.allclose(tuned["head.dense.0.weight"], dequantized)  # trained, not frozen
    assert json.loads((out / "config.json").read_text())["int8_linears"] == []
