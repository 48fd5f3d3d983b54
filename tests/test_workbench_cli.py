"""`python -m workbench explain` on a folder: bundles, one CSV, unreadable files reported, nothing
overwritten."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from PIL import Image
from tiny_fer_model import one_torch_thread  # noqa: F401 (autouse fixture)

import hub_models
from workbench.cli import main

PHOTO = Path(os.path.dirname(matplotlib.__file__)) / "mpl-data" / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "patt_lite_small"
    hub_models.create_model("patt_lite", image_size=64).save_pretrained(folder)
    return folder


@pytest.fixture()
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    (folder / "nested").mkdir(parents=True)
    shutil.copy(PHOTO, folder / "hopper.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    landscape = np.linspace([90, 140, 220], [40, 90, 30], 300)[:, None, :].repeat(400, axis=1).astype(np.uint8)
    Image.fromarray(landscape).save(folder / "nested" / "landscape.png")
    (folder / "notes.txt").write_text("not an image, ignored")
    return folder


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_folder_run_writes_bundles_and_one_csv(images: Path, model_folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["explain", str(images), "--models", str(model_folder), "--methods", "gradcam", "eigencam",
                 "--out", str(out)])
    assert code == 1, "one unreadable image makes the run exit 1"
    rows = {Path(row["image"]).name: row for row in read_rows(out / "predictions.csv")}
    assert set(rows) == {"hopper.jpg", "broken.png", "landscape.png"}
    assert "not a recognised image format" in rows["broken.png"]["error"]
    assert rows["landscape.png"]["message"] == "no face found"
    hopper = rows["hopper.jpg"]
    assert hopper["model"] == "patt_lite_small" and hopper["predicted"] in hub_models.FER2013_LABELS
    assert float(hopper["gradcam_deletion_auc"]) >= 0.0 and "p_happy" in hopper
    assert (out / "hopper_jpg" / "manifest.json").is_file()
    assert (out / "hopper_jpg" / "face0" / "patt_lite_small" / "cam_eigencam.png").is_file()
    assert (out / "nested" / "landscape_png" / "manifest.json").is_file()
    assert "3 image(s), 1 failed" in capsys.readouterr().out
    # A second run must not overwrite what the first one saved.
    before = (out / "predictions.csv").read_bytes()
    assert main(["explain", str(images), "--models", str(model_folder), "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "predictions.csv").read_bytes() == before


def test_region_probe_goes_into_the_csv_and_the_manifest(model_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["explain", str(PHOTO), "--models", str(model_folder), "--out", str(out), "--probe",
                 "--no-faithfulness"]) == 0
    row = read_rows(out / "predictions.csv")[0]
    assert {"probe_drop_mouth", "probe_drop_eyes", "gradcam_captured_drop"} <= set(row)
    manifest = json.loads(next(out.glob("*/manifest.json")).read_text())
    assert "\"region_probe\": {\"drop\": {\"eyes\"" in json.dumps(manifest)


def test_unknown_model_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["explain", str(PHOTO), "--models", "nope_net", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope_net'" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def requires_fer2013() -> None:
    from training.data import DataError, default_data_dir, find_fer2013_csv

    try:
        find_fer2013_csv(default_data_dir())
    except DataError as error:
        pytest.skip(f"FER2013 not available: {error}")


def test_attention_atlas_from_the_command_line(tmp_path: Path, capsys) -> None:
    requires_fer2013()
    out = tmp_path / "atlas"
    assert main(["atlas", "--models", "patt_lite", "--per-class", "2", "--out", str(out)]) == 0
    rows = read_rows(out / "atlas.csv")
    assert [row["class"] for row in rows] == list(hub_models.FER2013_LABELS)
    assert all(row["faces"] == "2" for row in rows) and (out / "atlas.png").stat().st_size > 10_000
    assert "atlas.png, atlas.csv" in capsys.readouterr().out


def test_probes_over_test_faces_from_the_command_line(tmp_path: Path) -> None:
    requires_fer2013()
    out = tmp_path / "probes"
    assert main(["probes", "--models", "patt_lite", "--count", "2", "--out", str(out)]) == 0
    (row,) = read_rows(out / "probes.csv")
    assert row["model"] == "patt_lite" and row["faces"] == "2"
    assert {"drop mouth (mean)", "face mask: same prediction", "rotated +10°: map r (median)"} <= set(row)
    assert 0.0 <= float(row["sunglasses: same prediction"]) <= 1.0
