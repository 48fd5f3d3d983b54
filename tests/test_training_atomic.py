"""Nothing half-written looks finished: a training run killed while writing its final files leaves
a folder that is refused as a model and that ``--resume`` completes; a resumed run logs each step
once and its summary counts every session; evaluation never half-replaces earlier files; unusable
paths and damaged weights end in one ``error:`` line.

Runs are tiny (32 rows, patt_lite at 64 px, one thread); they skip when FER2013 is absent."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from test_training_runs import TINY, Interrupt, StepRecorder, restore_torch_threads  # noqa: F401 (autouse)
from transformers import TrainerCallback

from training import evaluate, finetune, metrics
from training.data import default_data_dir
from training.model_source import ModelSourceError, load_model

DATA = default_data_dir()
pytestmark = pytest.mark.skipif(not (DATA / "fer2013").is_dir(),
                                reason=f"FER2013 not found under {DATA} (set FER_DATA_DIR)")


def tiny(out: Path, *extra: str) -> list[str]:
    """32 rows in batches of 16: two optimizer steps per epoch."""
    return ["--model", "patt_lite", *TINY["patt_lite"], "--dataset", "fer2013", "--limit", "32",
            "--batch-size", "16", "--epochs", "1", "--threads", "1", "--output-dir", str(out), *extra]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    finetune.run(tiny(out, "--max-steps", "1"))
    return out


def log_entries(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "log_history.jsonl").read_text().splitlines()]


def assert_each_step_logged_once(folder: Path) -> None:
    """The same (step, keys) twice means a resumed run repeated entries of the interrupted one."""
    counts = Counter((e["step"], tuple(sorted(e))) for e in log_entries(folder))
    assert [key for key, n in counts.items() if n > 1] == []
    csv_lines = (folder / "log_history.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(log_entries(folder))


class FailingCard(RuntimeError):
    pass


def test_run_killed_while_writing_final_files_is_refused_then_completed_by_resume(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"

    def killed(*args, **kwargs):
        raise FailingCard("killed while writing the model card")

    monkeypatch.setattr(finetune, "write_model_card", killed)
    with pytest.raises(FailingCard):
        finetune.run(tiny(out))
    monkeypatch.undo()
    # The weights were written (to the staging folder), but nothing looks like a finished model.
    for name in ("model.safetensors", "config.json", "run_summary.json", "README.md", "metrics_test.json"):
        assert not (out / name).exists(), name
    with pytest.raises(ModelSourceError, match=r"unfinished training run.*--resume"):
        load_model(str(out))
    assert evaluate.main(["--model", str(out), "--limit", "32", "--output-dir", str(tmp_path / "eval")]) == 2
    assert "unfinished training run" in capsys.readouterr().err and not (tmp_path / "eval").exists()

    recorder = StepRecorder()
    summary = finetune.run(tiny(out, "--resume"), callbacks=[recorder])
    assert recorder.steps == []  # training had finished: only the final files are written again
    assert summary["global_step"] == 2 and len(summary["sessions"]) == 2
    assert json.loads((out / "run_summary.json").read_text()) == summary
    assert not (out / finetune.STAGING).exists()
    assert load_model(str(out)).model.config.model_type == "patt_lite"
    assert_each_step_logged_once(out)


class InterruptAtLoggedStep(TrainerCallback):
    """Killed after logging `step`, which lies after the last checkpoint."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.global_step == self.step:
            raise Interrupt(f"interrupted after logging step {state.global_step}")


def test_resumed_run_logs_each_step_once_and_its_summary_counts_every_session(tmp_path):
    out = tmp_path / "run"
    args = tiny(out, "--epochs", "2", "--logging-steps", "1")
    with pytest.raises(Interrupt, match="step 3"):  # checkpoint-2 saved, step 3 logged
        finetune.run(args, callbacks=[InterruptAtLoggedStep(3)])
    sessions = json.loads((out / "sessions.json").read_text())
    assert [(s["from_step"], s["to_step"], s["training_finished"]) for s in sessions] == [(0, 3, False)]

    summary = finetune.run([*args, "--resume"])
    assert_each_step_logged_once(out)
    assert [e["step"] for e in log_entries(out) if "loss" in e] == [1, 2, 3, 4]
    first, second = summary["sessions"]
    assert (first["to_step"], second["from_step"], second["to_step"]) == (3, 2, 4) and second["training_finished"]
    assert summary["wall_time_s"] == pytest.approx(first["wall_time_s"] + second["wall_time_s"], abs=1.0)
    assert summary["wall_time_s"] >= first["wall_time_s"]
    assert "in 2 sessions (resumed)" in (out / "README.md").read_text()


def copy_without_checkpoints(folder: Path, to: Path) -> Path:
    shutil.copytree(folder, to, ignore=shutil.ignore_patterns(finetune.CHECKPOINTS))
    return to


def test_missing_run_summary_or_damaged_weights_are_refused_with_the_reason(finished, tmp_path):
    unfinished = tmp_path / "unfinished"
    shutil.copytree(finished, unfinished)
    (unfinished / "run_summary.json").unlink()
    with pytest.raises(ModelSourceError, match=r"unfinished training run.*--resume"):
        load_model(str(unfinished))
    weights = copy_without_checkpoints(finished, tmp_path / "truncated") / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelSourceError, match=r"model\.safetensors.*truncated or corrupt"):
        load_model(str(weights.parent))
    weights.write_bytes(b"")
    with pytest.raises(ModelSourceError, match=r"model\.safetensors.*truncated or corrupt"):
        load_model(str(weights.parent))


def test_evaluate_refuses_any_existing_output_file_and_a_file_as_output_dir(finished, tmp_path, capsys):
    out = tmp_path / "eval"
    out.mkdir()
    (out / "confusion_test.png").write_bytes(b"keep me")  # metrics_test.json is gone, the plot is not
    assert evaluate.main(["--model", str(finished), "--limit", "32", "--output-dir", str(out)]) == 2
    assert "confusion_test.png already exists" in capsys.readouterr().err
    assert (out / "confusion_test.png").read_bytes() == b"keep me"
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    assert evaluate.main(["--model", str(finished), "--limit", "32", "--output-dir", str(a_file)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err and a_file.read_text() == "keep me"


def test_report_files_are_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    report = metrics.classification_report([0, 1, 1], [0, 1, 0], ["a", "b"]) | {"dataset": "d", "split": "test"}
    paths = metrics.write_report(report, tmp_path, "test", "title")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths.values())
    assert paths["confusion_png"].read_bytes().startswith(b"\x89PNG")

    def broken_plot(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(metrics, "plot_confusion", broken_plot)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    other = report | {"accuracy": 0.0}
    with pytest.raises(OSError, match="disk full"):
        metrics.write_report(other, tmp_path, "test", "title")
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after.keys() == before.keys()  # no temporary file left behind
    assert after["metrics_test.json"] == before["metrics_test.json"]  # the old metrics, never half the new ones


def unusable_paths(tmp_path: Path) -> dict[str, Path]:
    return {"10,000 characters": Path("x" * 10_000), "10,000 characters in short components": Path("ab/" * 3_333),
            "a 300-character component": tmp_path / ("y" * 300),
            "a 300-character component below a missing folder": tmp_path / "missing" / ("z" * 300) / "out"}


def assert_one_error_line(code: int, capsys) -> str:
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("error: ") and len(err) < 1000, err
    return err


def test_unusable_paths_end_in_one_error_line(finished, tmp_path, capsys):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me")
    for overwrite in ([], ["--overwrite"]):
        err = assert_one_error_line(finetune.main(tiny(a_file, *overwrite)), capsys)
        assert "is a file, not a folder" in err and a_file.read_text() == "keep me"
    for path in unusable_paths(tmp_path).values():
        assert_one_error_line(finetune.main(tiny(path)), capsys)
        assert_one_error_line(finetune.main([*tiny(tmp_path / "out"), "--model", str(path)]), capsys)
        assert_one_error_line(finetune.main([*tiny(tmp_path / "out"), "--data-dir", str(path)]), capsys)
        assert_one_error_line(evaluate.main(["--model", str(path), "--limit", "32"]), capsys)
        assert_one_error_line(evaluate.main(["--model", str(finished), "--output-dir", str(path)]), capsys)
        assert_one_error_line(evaluate.main(["--model", str(finished), "--output-dir", str(tmp_path / "eval"),
                                             "--data-dir", str(path)]), capsys)
