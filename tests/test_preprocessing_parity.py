"""One path from a face to pixel values: training's collator and the engine give the same tensor
for the same face — for already-cropped FER2013-style faces and for aligned faces, every
architecture — and the engine's probabilities are the model's on exactly those pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hub_models
from training.data import Split
from training.inputs import FaceDataset, ProcessorCollator
from workbench import Workbench, load_model, prepare_face
from workbench.faces import Detection, whole_image_face

SIZES = {"patt_lite": 64, "ddamfn": 64, "attention_cnn": 48, "swin_ema": 64, "cf_dan": 48}
EXTRA = {"swin_ema": {"window_size": 4}}


def crops(count: int = 6, side: int = 48) -> np.ndarray:
    """Face-like grey crops with structure at every scale (a resize that differs shows up)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:side, 0:side] / side
    base = 128 + 60 * np.sin(9 * xx) * np.cos(7 * yy)
    return np.stack([np.clip(base + rng.normal(0, 25, (side, side)), 0, 255).astype(np.uint8) for _ in range(count)])


def training_pixels(loaded, images: np.ndarray) -> torch.Tensor:
    """What finetune/evaluate feed the model: FaceDataset samples through the model's collator."""
    dataset = FaceDataset(Split(images, np.zeros(len(images), dtype=np.int64), [str(i) for i in range(len(images))]))
    return ProcessorCollator(loaded.processor)([dataset[i] for i in range(len(dataset))])["pixel_values"]


@pytest.fixture(scope="module", params=sorted(hub_models.ARCHITECTURES))
def loaded(request):
    name = request.param
    return load_model(name, image_size=SIZES.get(name, 48), **EXTRA.get(name, {}))


def test_cropped_faces_reach_the_model_as_in_training(loaded):
    images = crops()
    expected = training_pixels(loaded, images)
    for index, gray in enumerate(images):
        rgb = np.repeat(gray[..., None], 3, axis=2)
        face, pixels = prepare_face(loaded, rgb, whole_image_face(rgb), whole_image=True)
        torch.testing.assert_close(pixels[0], expected[index], atol=1e-6, rtol=0)
        assert face.image.shape == (loaded.config.image_size, loaded.config.image_size, 3)


def test_aligned_faces_reach_the_model_as_in_training(loaded):
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 255, (200, 180, 3), dtype=np.uint8)
    landmarks = np.array([[70.0, 90], [115, 88], [93, 115], [75, 140], [112, 139]])
    detection = Detection((60.0, 70.0, 125.0, 150.0), landmarks, 0.99)
    face, pixels = prepare_face(loaded, photo, detection, whole_image=False)
    as_training = training_pixels(loaded, face.image[None])  # N×H×W×3 uint8, as an image folder gives it
    torch.testing.assert_close(pixels, as_training, atol=1e-6, rtol=0)


def test_engine_probabilities_are_the_models_on_the_training_pixels(loaded):
    gray = crops(1)[0]
    with torch.no_grad():
        expected = torch.softmax(loaded.model(pixel_values=training_pixels(loaded, gray[None])).logits, -1)[0]
    result = Workbench([loaded]).analyze(gray, methods=[], faithfulness=False, regions=False, native=False,
                                         assume_face=True)
    measured = list(result.faces[0].models[loaded.name].probabilities.values())
    np.testing.assert_allclose(measured, expected.numpy(), atol=1e-5)


@pytest.mark.parametrize(("shape", "size"), [((8, 1, 48, 48), 64), ((8, 3, 80, 80), 48), ((8, 3, 64, 64), 64)])
def test_a_batch_gives_the_numbers_of_one_image_at_a_time(shape, size):
    """`pixel_values` groups a batch by shape (transformers' CPU default is one image at a time):
    the grouped batch must equal the processor's own per-image result."""
    from hub_models.preprocessing import pixel_values

    processor = load_model("patt_lite" if size >= 64 else "attention_cnn", image_size=size).processor
    images = torch.from_numpy(np.random.default_rng(1).integers(0, 255, shape, dtype=np.uint8))
    one_by_one = torch.cat([processor(images=image, return_tensors="pt")["pixel_values"] for image in images])
    torch.testing.assert_close(pixel_values(processor, images), one_by_one, atol=0, rtol=0)
