"""Explained video: a clip made here from a photo, a face tracked across it, and outputs that are
complete or absent."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from PIL import Image
from tiny_fer_model import one_torch_thread, tiny_model  # noqa: F401 (autouse fixture)

import hub_models
from workbench import ImageError, Workbench, load_model
from workbench.cli import main
from workbench.video import CSV_NAME, TIMELINE_NAME, VIDEO_NAME, FaceTracker, explain_video

PHOTO = Path(os.path.dirname(matplotlib.__file__)) / "mpl-data" / "sample_data" / "grace_hopper.jpg"


def drifting_clip(photo: Path, path: Path, frames: int = 20, fourcc: str = "MJPG") -> Path:
    """`frames` frames at 10 fps of `photo` drifting sideways, 280×360 (MJPEG in AVI: any OpenCV
    reads it; VP8 in WebM: a browser plays it too)."""
    picture = np.asarray(Image.open(photo).convert("RGB").resize((320, 400)))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (280, 360))
    for index in range(frames):
        writer.write(np.ascontiguousarray(picture[20:380, 2 * index:2 * index + 280, ::-1]))
    writer.release()
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return drifting_clip(PHOTO, tmp_path_factory.mktemp("video") / "drift.avi")


def test_a_face_keeps_its_id_and_every_output_is_written(clip: Path, tmp_path: Path) -> None:
    workbench = Workbench([load_model(tiny_model(), name="tiny")])
    result = explain_video(workbench, clip, tmp_path, every_s=0.5, smoothing=0.5)
    assert (result.frames_read, result.frames_explained, result.face_ids) == (20, 4, [0])
    with (tmp_path / CSV_NAME).open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["frame"] for row in rows] == ["0", "5", "10", "15"] and {row["face_id"] for row in rows} == {"0"}
    assert {row["model"] for row in rows} == {"tiny"}
    assert all(abs(sum(float(v) for k, v in row.items() if k.startswith("p_") and v) - 1) < 1e-3 for row in rows)
    video = cv2.VideoCapture(str(tmp_path / VIDEO_NAME))
    frames = 0
    while video.read()[0]:
        frames += 1
    assert frames == 4
    assert (tmp_path / TIMELINE_NAME).stat().st_size > 5_000
    assert not list(tmp_path.glob(".*partial*"))


def test_only_the_first_seconds_when_asked(clip: Path, tmp_path: Path) -> None:
    result = explain_video(Workbench([load_model(tiny_model(), name="tiny")]), clip, tmp_path, every_s=0.5,
                           max_seconds=1.0)
    assert (result.frames_read, result.frames_explained) == (10, 2)


def test_a_file_that_is_not_a_video_is_named(tmp_path: Path) -> None:
    bogus = tmp_path / "lecture.mp4"
    bogus.write_bytes(b"not a video at all" * 100)
    with pytest.raises(ImageError, match="not a readable video"):
        explain_video(Workbench([load_model(tiny_model(), name="tiny")]), bogus, tmp_path / "out")
    assert not (tmp_path / "out" / VIDEO_NAME).exists()


def test_tracker_keeps_ids_by_overlap_and_gives_new_faces_new_ids() -> None:
    tracker = FaceTracker()
    assert tracker.assign([(0, 0, 10, 10), (50, 50, 60, 60)]) == [0, 1]
    assert tracker.assign([(52, 51, 62, 61), (1, 0, 11, 10)]) == [1, 0]
    assert tracker.assign([(100, 100, 110, 110), (1, 1, 11, 11)]) == [2, 0]


def test_video_from_the_command_line(clip: Path, tmp_path: Path, capsys) -> None:
    folder = tmp_path / "model"
    hub_models.create_model("patt_lite", image_size=64).save_pretrained(folder)
    assert main(["video", str(clip), "--models", str(folder), "--out", str(tmp_path / "out"), "--every", "1"]) == 0
    assert (tmp_path / "out" / VIDEO_NAME).is_file() and "2 frames explained" in capsys.readouterr().out
