"""Data loading and metrics of the training module, on small hand-made files (and on the real
data where a property of the real data is checked: CK+ folds by subject)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data import (
    CLEAR_MAJORITY,
    DataError,
    default_data_dir,
    ferplus_clear_majority,
    ferplus_targets,
    load_data,
    subject_folds,
)
from training.inputs import FaceDataset, ProcessorCollator, build_augmentation
from training.metrics import classification_report, write_report
from training.trainer import compute_metrics

DATA = default_data_dir()
requires_ckplus = pytest.mark.skipif(not (DATA / "ckplus48").is_dir(),
                                     reason=f"CK+ not found under {DATA} (set FER_DATA_DIR)")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FER_CACHE_DIR", str(tmp_path / "cache"))


def fer_csv(path: Path, rows: list[tuple[str, str, str]], header: str = "emotion,pixels,Usage") -> Path:
    lines = [header] + [",".join(row) for row in rows]
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def pixels(value: int) -> str:
    return " ".join([str(value)] * 48 * 48)


GOOD_ROWS = [("3", pixels(10), "Training"), ("0", pixels(20), "Training"), ("6", pixels(30), "PublicTest"),
             ("2", pixels(40), "PrivateTest")]


# ---- metrics ---------------------------------------------------------------------------------


def test_metrics_match_hand_computed_values():
    # true a a b b c c ; predicted a b b b c a ; class d never occurs in either.
    report = classification_report([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["a", "b", "c", "d"])
    assert report["confusion_matrix"] == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["per_class_recall"] == pytest.approx({"a": 0.5, "b": 1.0, "c": 0.5, "d": None})
    assert report["per_class_precision"] == pytest.approx({"a": 0.5, "b": 2 / 3, "c": 1.0, "d": None})
    # F1: a 0.5, b 0.8, c 2/3; d is absent from labels and predictions and is not averaged.
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert report["support"] == {"a": 2, "b": 2, "c": 2, "d": 0}


def test_metric_files_are_written(tmp_path):
    report = classification_report([0, 1, 1], [0, 1, 0], ["x", "y"])
    paths = write_report(report, tmp_path, "test", "toy")
    assert json.loads(paths["confusion_json"].read_text())["matrix"] == [[1, 0], [1, 1]]
    assert json.loads(paths["metrics"].read_text())["accuracy"] == pytest.approx(2 / 3)
    assert paths["confusion_png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(paths["confusion_png"]) as image:
        assert min(image.size) > 100


def test_trainer_metrics_accept_tuple_predictions_and_soft_labels():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    attentions = np.zeros((3, 4))
    hard = compute_metrics(type("P", (), {"predictions": (logits, attentions), "label_ids": np.array([0, 1, 1])}))
    soft = compute_metrics(type("P", (), {"predictions": logits,
                                          "label_ids": np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]])}))
    assert hard["accuracy"] == pytest.approx(2 / 3) == soft["accuracy"]


# ---- FER2013 / FERPlus -------------------------------------------------------------------------


def test_fer2013_csv_splits_by_usage(tmp_path):
    fer_csv(tmp_path / "fer2013.csv.gz", GOOD_ROWS)
    data = load_data("fer2013", tmp_path)
    assert (len(data.train), len(data.validation), len(data.test)) == (2, 1, 1)
    assert data.train.labels.tolist() == [3, 0]
    assert data.train.images.shape == (2, 48, 48) and data.train.images.dtype == np.uint8
    assert int(data.test.images[0, 5, 5]) == 40


def test_corrupt_row_is_located_and_either_stops_or_is_skipped_with_a_count(tmp_path):
    bad = ("1", " ".join(["7"] * 2300), "Training")
    fer_csv(tmp_path / "fer2013.csv", [*GOOD_ROWS[:2], bad, GOOD_ROWS[2], ("9", pixels(1), "Training")])
    with pytest.raises(DataError, match=r"data row 2 \(line 4\).*2300"):
        load_data("fer2013", tmp_path)
    data = load_data("fer2013", tmp_path, on_bad="skip")
    assert len(data.train) == 2 and len(data.problems) == 2
    assert "data row 4" in data.problems[1] and "'9'" in data.problems[1]


def test_wrong_header_and_missing_directory_are_named(tmp_path):
    fer_csv(tmp_path / "fer2013.csv", GOOD_ROWS, header="label,image,split")
    with pytest.raises(DataError, match=r"wrong CSV header.*expected emotion,pixels,Usage.*label,image,split"):
        load_data("fer2013", tmp_path)
    with pytest.raises(DataError, match=r"data directory not found: .*nowhere"):
        load_data("fer2013", tmp_path / "nowhere")


def test_ferplus_majority_drops_unknown_and_keeps_vote_shares():
    #          neutral happy surprise sad anger disgust fear contempt unknown NF
    votes = [[6, 2, 0, 0, 0, 0, 0, 0, 2, 0],   # neutral
             [1, 1, 0, 0, 0, 0, 0, 0, 8, 0],   # unknown majority → dropped
             [0, 0, 4, 0, 0, 0, 4, 0, 0, 2],   # tie surprise/fear → first column (surprise)
             [0, 0, 0, 0, 0, 0, 0, 0, 0, 10]]  # not a face → dropped
    majority, keep, shares = ferplus_targets(np.array(votes))
    assert keep.tolist() == [True, False, True, False]
    assert majority[[0, 2]].tolist() == [0, 2]
    assert shares[0].tolist() == pytest.approx([0.75, 0.25, 0, 0, 0, 0, 0, 0])
    assert shares[2].tolist() == pytest.approx([0, 0, 0.5, 0, 0, 0, 0.5, 0])


def test_ferplus_clear_majority_follows_the_reference_code():
    #          neutral happy surprise sad anger disgust fear contempt unknown NF
    votes = [[5, 3, 1, 1, 0, 0, 0, 0, 0, 0],   # single votes dropped: 5 of 8 → clear
             [4, 4, 2, 0, 0, 0, 0, 0, 0, 0],   # 4 of 10: no majority
             [3, 2, 2, 2, 1, 0, 0, 0, 0, 0],   # 3 of 9 after the outlier: no majority
             [0, 0, 0, 0, 0, 0, 6, 0, 4, 0],   # 6 of 10, unknown counts in the total → clear
             [0, 0, 0, 0, 0, 0, 0, 0, 7, 3],   # unknown leads → never kept
             [0, 0, 0, 0, 0, 0, 5, 0, 5, 0]]   # exactly half: no majority
    assert ferplus_clear_majority(np.array(votes)).tolist() == [True, False, False, True, False, False]


def ferplus_files(folder: Path, second_training_votes: str) -> None:
    """GOOD_ROWS as FER2013 plus a vote file: one face per split, the second training face's votes given."""
    fer_csv(folder / "fer2013.csv", GOOD_ROWS)
    header = "row,usage,fer2013_row_index,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
    votes = ["0,Training,0,0,10,0,0,0,0,0,0,0,0", f"1,Training,1,{second_training_votes}",
             "2,PublicTest,2,10,0,0,0,0,0,0,0,0,0", "3,PrivateTest,3,0,0,0,0,0,0,9,0,1,0"]
    (folder / "ferplus_votes.csv").write_text("\n".join([header, *votes]) + "\n")


def test_ferplus_splits_carry_the_clear_majority_subset(tmp_path):
    ferplus_files(tmp_path, "4,0,0,0,4,0,2,0,0,0")
    data = load_data("ferplus", tmp_path)
    assert data.train.subsets[CLEAR_MAJORITY].tolist() == [True, False]
    assert data.test.subsets[CLEAR_MAJORITY].tolist() == [True]
    assert data.train.head(1).subsets[CLEAR_MAJORITY].tolist() == [True]
    assert load_data("fer2013", tmp_path).test.subsets == {}


def test_ferplus_soft_labels_reach_the_batch(tmp_path):
    ferplus_files(tmp_path, "2,0,0,0,8,0,0,0,0,0")
    data = load_data("ferplus", tmp_path, soft_labels=True)
    assert data.train.labels.shape == (2, 8) and data.train.labels[1].tolist() == pytest.approx([0.2, 0, 0, 0, 0.8,
                                                                                                  0, 0, 0])
    assert data.test.labels.tolist() == [6]
    from hub_models import create_model

    processor = create_model("patt_lite", image_size=64, num_labels=8).image_processor()
    batch = ProcessorCollator(processor)([FaceDataset(data.train)[i] for i in range(2)])
    assert batch["pixel_values"].shape == (2, 3, 64, 64) and batch["labels"].dtype.is_floating_point


# ---- CK+ and image folders ---------------------------------------------------------------------


def test_subject_folds_deal_every_subject_to_exactly_one_fold():
    subjects = [f"S{i:03d}" for i in range(23)]
    folds = subject_folds(subjects * 3, n_folds=5)
    assert sorted(folds) == subjects and set(folds.values()) == set(range(5))
    with pytest.raises(DataError, match="n-folds"):
        subject_folds(subjects, n_folds=24)


@requires_ckplus
def test_ckplus_folds_never_share_a_subject():
    tested = []
    for fold in range(10):
        data = load_data("ckplus", fold=fold)
        subjects = {name: {Path(s).name.split("_")[0] for s in getattr(data, name).sources}
                    for name in ("train", "validation", "test")}
        assert not subjects["train"] & subjects["test"]
        assert not subjects["train"] & subjects["validation"]
        assert not subjects["validation"] & subjects["test"]
        tested += data.test.sources
    assert len(tested) == len(set(tested)) == 981  # every image is tested exactly once


def make_folder(root: Path, layout: dict[str, dict[str, int]]) -> Path:
    for split, classes in layout.items():
        for name, count in classes.items():
            (root / split / name).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.new("RGB", (40, 30), (i * 20, 50, 90)).save(root / split / name / f"{i}.png")
    return root


def test_image_folder_with_given_label_order_and_held_out_validation(tmp_path):
    root = make_folder(tmp_path / "rafdb", {"train": {"happy": 10, "sad": 10}, "test": {"happy": 2, "sad": 3}})
    data = load_data("folder", root, labels=["sad", "happy"])
    assert data.labels == ("sad", "happy")
    assert len(data.validation) == 2 and len(data.train) == 18 and data.test.labels.tolist() == [1, 1, 0, 0, 0]
    sample = FaceDataset(data.train, build_augmentation(["flip", "crop", "erase"]))[0]
    assert sample["image"].shape == (3, 30, 40)


def test_image_folder_unknown_class_and_corrupt_file(tmp_path):
    root = make_folder(tmp_path / "faces", {"train": {"happy": 2, "sad": 2}, "test": {"happy": 1, "angry": 1}})
    with pytest.raises(DataError, match=r"unknown class name 'angry'.*expected one of: happy, sad"):
        load_data("folder", root, labels=["happy", "sad"])
    (root / "test" / "angry" / "0.png").unlink()
    (root / "test" / "angry").rmdir()
    (root / "train" / "sad" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match=r"broken\.png: unreadable image"):
        load_data("folder", root)
    assert len(load_data("folder", root, on_bad="skip").problems) == 1


def test_unknown_augmentation_is_named():
    with pytest.raises(DataError, match=r"unknown augmentation.*blur"):
        build_augmentation(["flip", "blur"])


def test_named_variants_and_config_overrides_build_the_model():
    from training.model_source import load_model, parse_overrides

    overrides = parse_overrides(["classifier_attention=batch", "hidden_size=16"])
    loaded = load_model("patt_lite_112", overrides, labels=["a", "b", "c"])
    config = loaded.model.config
    assert (config.image_size, config.classifier_attention, config.hidden_size) == (112, "batch", 16)
    assert config.id2label == {0: "a", 1: "b", 2: "c"} and loaded.name == "patt_lite_112"
