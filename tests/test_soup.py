"""The greedy weight soup: what the average is, which checkpoints the greedy rule keeps, and a
soup of real (tiny) training checkpoints written as a complete, re-measured model folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from training import finetune, soup
from training.data import default_data_dir
from training.model_source import load_model

DATA = default_data_dir()
needs_data = pytest.mark.skipif(not (DATA / "fer2013").is_dir(),
                                reason=f"FER2013 not found under {DATA} (set FER_DATA_DIR)")


def test_the_average_is_the_mean_of_float_tensors_and_keeps_integer_buffers() -> None:
    first = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    second = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(9)}
    mean = soup.average([first, second])
    torch.testing.assert_close(mean["w"], torch.tensor([2.0, 4.0]))
    assert int(mean["n"]) == 3


class DistanceJudge:
    """Validation accuracy stands in as closeness of the single weight to 1.0."""

    def __init__(self) -> None:
        self.measured: list[tuple[float, bool]] = []

    def accuracy(self, weights: dict[str, torch.Tensor], averaged: bool) -> float:
        value = float(weights["w"])
        self.measured.append((round(value, 4), averaged))
        return 1.0 - (value - 1.0) ** 2


def test_greedy_soup_starts_from_the_best_and_leaves_out_what_lowers_the_average() -> None:
    ingredients = [soup.Ingredient(name, {"w": torch.tensor(value)})
                   for name, value in (("far", 5.0), ("low", 0.8), ("high", 1.3))]
    judge = DistanceJudge()
    chosen, accuracy = soup.greedy_soup(judge, ingredients)
    # Each alone as it is, then the means, whose BatchNorm statistics a real judge would recompute.
    assert judge.measured == [(5.0, False), (0.8, False), (1.3, False), (1.05, True), (2.3667, True)]
    assert [i.name for i in chosen] == ["low", "high"]  # "low" alone is best; the mean 1.05 beats it
    assert accuracy == pytest.approx(1.0 - 0.05 ** 2)
    assert {i.name: i.kept for i in ingredients} == {"far": False, "low": True, "high": True}
    assert accuracy > max(i.accuracy for i in ingredients)


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny PAtt-Lite run and a second epoch of it from its first epoch's weights."""
    root = tmp_path_factory.mktemp("soup")
    common = ["--image-size", "64", "--dataset", "fer2013", "--limit", "64", "--epochs", "1", "--batch-size", "16",
              "--threads", "1", "--logging-steps", "5"]
    finetune.run(["--model", "patt_lite", *common, "--output-dir", str(root / "first")])
    finetune.run(["--model", str(root / "first"), *common, "--lr", "1e-2", "--freeze-epochs", "0",
                  "--output-dir", str(root / "second")])
    return root / "first", root / "second"


@needs_data
def test_a_soup_folder_is_complete_remeasured_and_holds_the_chosen_mean(two_checkpoints, tmp_path) -> None:
    first, second = two_checkpoints
    out = tmp_path / "soup"
    record = soup.run(["--model", str(second), "--ingredients", str(first), "--dataset", "fer2013", "--limit", "64",
                       "--output-dir", str(out), "--batch-size", "32"])
    assert json.loads((out / "soup.json").read_text()) == record
    kept = [i["name"] for i in record["ingredients"] if i["kept"]]
    assert kept and record["ingredients"][0]["name"] == str(second)
    weights = {name: load_file(str(Path(name) / "model.safetensors")) for name in kept}
    expected = soup.average([{k: v.float() if v.is_floating_point() else v for k, v in w.items()}
                             for w in weights.values()])
    saved = load_file(str(out / "model.safetensors"))
    for key, value in expected.items():  # the integer batch counters are bookkeeping, taken from one of them
        if value.is_floating_point():
            torch.testing.assert_close(saved[key], value, msg=key)
    metrics = json.loads((out / "metrics_validation.json").read_text())
    assert metrics["accuracy"] == pytest.approx(record["validation_accuracy"])
    card = (out / "README.md").read_text()
    assert "\n# soup\n" in card and "- name: soup" in card  # titled with the output folder's name
    assert "## Weight soup" in card and f"`{first}`" in card and "<!-- calibration -->" in card
    assert json.loads((out / "run_summary.json").read_text())["soup"] == record
    assert not (out / soup.STAGING).exists()
    assert load_model(str(out)).model.config.calibration_temperature == pytest.approx(
        json.loads((out / "calibration.json").read_text())["temperature"])


@needs_data
def test_an_ingredient_of_another_architecture_or_a_used_folder_is_refused(two_checkpoints, tmp_path, capsys) -> None:
    first, _ = two_checkpoints
    out = tmp_path / "soup"
    assert soup.main(["--model", str(first), "--ingredients", "ddamfn", "--limit", "64", "--output-dir", str(out)]) == 2
    assert "ddamfn model; --model is a patt_lite" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())
    out.mkdir(exist_ok=True)
    (out / "notes.txt").write_text("mine")
    again = ["--model", str(first), "--ingredients", str(first), "--limit", "64", "--output-dir", str(out)]
    assert soup.main(again) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    assert (out / "notes.txt").read_text() == "mine"
    into_itself = ["--model", str(first), "--ingredients", str(first), "--output-dir", str(first), "--overwrite"]
    assert soup.main(into_itself) == 2
    assert "--output-dir is the --model folder" in capsys.readouterr().err
