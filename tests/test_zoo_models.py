"""Every embedded zoo model loads by its Hub id and earns the accuracy its model card states.

By default a fixed sample of the test split is checked against the card (binomial tolerance);
with FER_FULL_EVAL=1 the whole split must reproduce the card within half a point.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import pytest
from huggingface_hub import ModelCard
from transformers import AutoModel

from hub_models import zoo
from training.data import DataError, load_data
from training.evaluation import evaluate_split

SAMPLE = 400
FULL = os.environ.get("FER_FULL_EVAL") == "1"
DATASETS = {"fer2013": ("fer2013", "PrivateTest"), "ferplus": ("ferplus", "PrivateTest")}


def card_accuracy(model_id: str) -> tuple[str, float]:
    """(dataset, accuracy) of the card's test-split result."""
    card = ModelCard.load(zoo.folder(model_id) / "README.md")
    name = zoo.folder(model_id).name  # the card is titled with the id, not the run's folder name
    assert card.data.model_name == name and f"\n# {name}\n" in card.text, f"{model_id}: card titled otherwise"
    for result in card.data.eval_results or []:
        if result.metric_type == "accuracy" and result.dataset_split == DATASETS.get(result.dataset_type, ("", ""))[1]:
            return result.dataset_type, float(result.metric_value)
    raise AssertionError(f"{model_id}: the model card states no test accuracy in its model-index")


@pytest.mark.parametrize("model_id", zoo.model_ids())
def test_zoo_model_matches_its_card(model_id: str) -> None:
    dataset, stated = card_accuracy(model_id)
    try:
        data = load_data(DATASETS[dataset][0])
    except DataError as error:
        pytest.skip(f"FER data not available ({error}); set FER_DATA_DIR")
    model = AutoModel.from_pretrained(model_id).eval()  # resolves from the cache: no network, no folder path
    if not FULL:
        data = dataclasses.replace(data, test=data.test.head(SAMPLE))
    measured = evaluate_split(model, data, "test")["accuracy"]
    n = len(data.test)
    tolerance = 0.005 if FULL else 4 * math.sqrt(stated * (1 - stated) / n)
    assert abs(measured - stated) <= tolerance, (
        f"{model_id}: {measured:.4f} on {n} test faces, card says {stated:.4f} (tolerance {tolerance:.4f})")


@pytest.mark.parametrize("model_id", zoo.model_ids())
def test_zoo_model_carries_its_fitted_temperature(model_id: str) -> None:
    """The temperature fitted on validation is the one the model applies, and it helps on test."""
    folder = zoo.folder(model_id)
    report = json.loads((folder / "calibration.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    assert report["fitted_on"] == "validation"
    assert config["calibration_temperature"] == pytest.approx(report["temperature"], rel=1e-3)
    # fitted on the logits the model gives: with flip averaging exactly when the model averages
    assert report.get("test_time_flip", False) == config.get("test_time_flip", False)
    assert report["test"]["ece_after"] <= max(report["test"]["ece_before"], 0.05)
    assert "## Calibration" in (folder / "README.md").read_text()


@pytest.mark.parametrize("model_id", zoo.model_ids())
def test_zoo_remote_code_is_the_package_code(model_id: str) -> None:
    """Hub users who load the folder with trust_remote_code run exactly what the package runs
    (refresh with ``hub_models.zoo.refresh_code``), and the pinned revision covers those files."""
    folder = zoo.folder(model_id)
    code = sorted(folder.glob("*.py"))
    assert code, f"{model_id} ships no remote code"
    stale = [path.name for path in code if path.read_bytes() != zoo.source_file(path.name).read_bytes()]
    assert not stale, f"{model_id}: stale remote code {stale}; run hub_models.zoo.refresh_code('{folder.name}')"
    assert zoo.revision(model_id) == zoo._revision(sorted(folder.iterdir()))
