"""Faces: detection on a real photo, alignment to each template, several faces, crops, no face."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import matplotlib
import numpy as np
import pytest
from PIL import Image
from tiny_fer_model import one_torch_thread  # noqa: F401 (autouse fixture)

from workbench.faces import (
    RetinaFaceDetector,
    align_face,
    get_detector,
    looks_like_face_crop,
    similarity_transform,
    template_points,
    whole_image_face,
)

PHOTO = Path(os.path.dirname(matplotlib.__file__)) / "mpl-data" / "sample_data" / "grace_hopper.jpg"


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return np.asarray(Image.open(PHOTO).convert("RGB"))


@pytest.fixture(scope="module")
def detector():
    return get_detector("retinaface")


def random_similarity(rng: np.random.Generator) -> np.ndarray:
    angle, scale = rng.uniform(-0.5, 0.5), rng.uniform(1.5, 3.0)
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return np.hstack([rotation, rng.uniform(60, 120, size=(2, 1))])


def test_similarity_transform_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(0)
    truth = random_similarity(rng)
    source = rng.uniform(0, 100, size=(5, 2))
    estimated = similarity_transform(source, source @ truth[:, :2].T + truth[:, 2])
    np.testing.assert_allclose(estimated, truth, atol=1e-9)


@pytest.mark.parametrize("template, size", [("arcface", 112), ("fer2013", 48), ("arcface", 224)])
def test_alignment_puts_landmarks_where_the_template_says(template: str, size: int) -> None:
    """Dots drawn at the landmarks of a rotated, scaled face land on the template's points."""
    rng = np.random.default_rng(size)
    transform = random_similarity(rng)
    landmarks = template_points(template, 112) @ transform[:, :2].T + transform[:, 2]
    canvas = np.zeros((420, 480, 3), np.uint8)
    for x, y in landmarks:
        cv2.circle(canvas, (round(x), round(y)), 4, (255, 255, 255), -1, cv2.LINE_AA)
    aligned = align_face(canvas, landmarks, template, size)
    target = template_points(template, size)
    np.testing.assert_allclose(aligned.landmarks, target, atol=1e-6)
    gray = aligned.image[..., 0].astype(np.float64)
    for x, y in target:
        radius = max(3, round(size / 20))
        ys, xs = np.mgrid[0:size, 0:size]
        near = (xs - x) ** 2 + (ys - y) ** 2 <= radius ** 2
        weights = gray * near
        centroid = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
        assert np.linalg.norm(centroid + 0.5 - [x, y]) < 0.06 * size / 2, (template, centroid, (x, y))


def test_real_photo_has_one_face_and_both_detectors_agree(photo: np.ndarray, detector) -> None:
    faces = detector.detect(photo)
    assert len(faces) == 1 and faces[0].score > 0.9
    yunet = get_detector("yunet").detect(photo)
    assert len(yunet) == 1
    eye_distance = np.linalg.norm(faces[0].landmarks[1] - faces[0].landmarks[0])
    assert np.abs(yunet[0].landmarks - faces[0].landmarks).max() < 0.25 * eye_distance


@pytest.mark.parametrize("template, size", [("arcface", 112), ("fer2013", 48)])
def test_aligned_real_face_is_redetected_on_the_template(photo: np.ndarray, detector, template: str,
                                                         size: int) -> None:
    """The detector, run again on the aligned face, finds its landmarks at the template's points."""
    aligned = align_face(photo, detector.detect(photo)[0].landmarks, template, size, grayscale=size == 48)
    padded = cv2.copyMakeBorder(aligned.image, size, size, size, size, cv2.BORDER_REPLICATE)
    # Upscaled as tools/measure_fer_template.py does: a 48-px face is far below the faces the detector learnt.
    again = RetinaFaceDetector(min_side=432).detect(padded)
    assert again, "the aligned face is no longer a face"
    error = np.linalg.norm(again[0].landmarks - size - template_points(template, size), axis=1)
    assert error.mean() < 0.05 * size and error.max() < 0.1 * size, error


def test_several_faces_come_largest_first(photo: np.ndarray, detector) -> None:
    canvas = np.full((700, 1000, 3), 235, np.uint8)
    small = cv2.resize(photo, (photo.shape[1] // 2, photo.shape[0] // 2), interpolation=cv2.INTER_AREA)
    canvas[50:50 + small.shape[0], 20:20 + small.shape[1]] = small
    canvas[60:60 + photo.shape[0], 420:420 + photo.shape[1]] = photo
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].area > 3 * faces[1].area
    assert faces[0].box[0] > 400 > faces[1].box[2]


@pytest.fixture(scope="module")
def face_tile(photo: np.ndarray, detector) -> np.ndarray:
    """The photo's face with a margin, square: one tile of the grids below."""
    x0, y0, x1, y1 = detector.detect(photo)[0].box
    half, cx, cy = 0.8 * max(x1 - x0, y1 - y0), (x0 + x1) / 2, (y0 + y1) / 2
    return photo[max(0, int(cy - half)):int(cy + half), max(0, int(cx - half)):int(cx + half)]


@pytest.mark.parametrize("name", ["retinaface", "yunet"])
@pytest.mark.parametrize("count, columns", [(4, 2), (12, 4), (30, 6)])
@pytest.mark.parametrize("side", [120, 60])
def test_a_grid_of_identical_faces_counts_each_once(face_tile: np.ndarray, name: str, count: int, columns: int,
                                                    side: int) -> None:
    tile = cv2.resize(face_tile, (side, side), interpolation=cv2.INTER_AREA)
    grid = np.tile(tile, (count // columns, columns, 1))
    # Counting does not depend on RetinaFace's landmark refinement (a second look per face, slow here).
    detector = RetinaFaceDetector(refine=False) if name == "retinaface" else get_detector(name)
    faces = detector.detect(grid)
    assert len(faces) == count
    centres = sorted((round((f.box[1] + f.box[3]) / 2 // side), round((f.box[0] + f.box[2]) / 2 // side))
                     for f in faces)
    assert centres == [(row, column) for row in range(count // columns) for column in range(columns)]


def test_photo_without_a_face_gives_no_detection(detector) -> None:
    rng = np.random.default_rng(0)
    sky = np.linspace([90, 140, 220], [200, 220, 240], 360)[:, None, :].repeat(640, axis=1)
    ground = np.linspace([60, 120, 40], [30, 70, 20], 120)[:, None, :].repeat(640, axis=1)
    landscape = np.concatenate([sky, ground]) + rng.normal(0, 6, (480, 640, 3))
    assert detector.detect(np.clip(landscape, 0, 255).astype(np.uint8)) == []


def test_small_square_images_count_as_face_crops() -> None:
    assert looks_like_face_crop(np.zeros((48, 48, 3), np.uint8))
    assert not looks_like_face_crop(np.zeros((48, 120, 3), np.uint8))
    assert not looks_like_face_crop(np.zeros((480, 480, 3), np.uint8))
    whole = whole_image_face(np.zeros((48, 48, 3), np.uint8))
    assert whole.box == (0.0, 0.0, 48.0, 48.0)
    np.testing.assert_allclose(whole.landmarks, template_points("fer2013", 48))


@pytest.mark.parametrize("degrees, scale", [(-15, 1.0), (15, 1.0), (8, 0.75), (0, 1.3)])
def test_landmarks_follow_a_known_rotation_and_scale(photo: np.ndarray, detector, degrees: float,
                                                     scale: float) -> None:
    """Rotate/scale the photo by a known similarity: the landmarks found must be the original ones
    moved by it (mean error ≤ 5 % of the inter-ocular distance), and the face aligned from the
    transformed photo must look like the one aligned from the original (r ≥ 0.9 on this wrinkled,
    bespectacled face, whose fine texture decorrelates under sub-pixel shifts; see
    benchmarks/landmarks.py for the figures)."""
    height, width = photo.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), degrees, scale)
    moved_photo = cv2.warpAffine(photo, matrix, (width, height), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REFLECT101)
    original, found = detector.detect(photo)[0], detector.detect(moved_photo)[0]
    expected = original.landmarks @ matrix[:, :2].T + matrix[:, 2]
    inter_ocular = np.linalg.norm(expected[1] - expected[0])
    error = np.linalg.norm(found.landmarks - expected, axis=1).mean() / inter_ocular
    assert error <= 0.05, error
    first = align_face(photo, original.landmarks, "fer2013", 64, grayscale=True).image[..., 0]
    second = align_face(moved_photo, found.landmarks, "fer2013", 64, grayscale=True).image[..., 0]
    assert np.corrcoef(first.ravel(), second.ravel())[0, 1] >= 0.9
