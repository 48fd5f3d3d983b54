"""The attention atlas on a hand-made test set: per-class mean maps, faces and region shares, and
a disk cache keyed by the model's revision."""

from __future__ import annotations

import numpy as np
import pytest
from tiny_fer_model import COLOURS, colour_model, one_torch_thread  # noqa: F401 (autouse fixture)

from training.data import Split
from workbench import TestFaces, load_model
from workbench import atlas as atlas_module
from workbench.atlas import attention_atlas


@pytest.fixture()
def faces() -> TestFaces:
    """Three faces per colour class: a square of that colour on grey, at a different place per class."""
    images, labels = [], []
    for index in range(len(COLOURS)):
        for shift in range(3):
            image = np.full((32, 32, 3), 128, np.uint8)
            top = 4 + 9 * index
            image[top:top + 8, 4 + shift:12 + shift] = 0
            image[top:top + 8, 4 + shift:12 + shift, index] = 255
            images.append(image)
            labels.append(index)
    split = Split(np.stack(images), np.array(labels), [f"face {i}" for i in range(len(labels))])
    return TestFaces("colours", "colour squares", COLOURS, split)


def test_each_class_map_lies_where_that_class_lives(faces: TestFaces, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(atlas_module.CACHE_ENV, str(tmp_path))
    loaded = load_model(colour_model(), name="colours")
    result = attention_atlas([loaded], faces, method="gradcam", per_class=2)
    model = result.models["colours"]
    assert result.classes == COLOURS and model.counts == {label: 2 for label in COLOURS}
    for index, label in enumerate(COLOURS):
        mean_map = model.maps[label]
        rows = mean_map.mean(axis=1)
        assert 4 + 9 * index <= int(rows.argmax()) < 12 + 9 * index, label  # the square's rows light up
        assert model.faces[label].shape == (32, 32, 3)
        assert sum(model.regions[label].values()) == pytest.approx(1.0, abs=1e-6)
    assert not list(tmp_path.glob("atlas/*.npz"))  # no revision: not cached


def test_a_model_with_a_revision_is_cached(faces: TestFaces, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(atlas_module.CACHE_ENV, str(tmp_path))
    loaded = load_model(colour_model(), name="colours")
    loaded.trained, loaded.revision = True, "revision-1"
    first = attention_atlas([loaded], faces, per_class=1).models["colours"]
    assert len(list(tmp_path.glob("atlas/*.npz"))) == 1
    monkeypatch.setattr(atlas_module, "_model_atlas", lambda *args: pytest.fail("the cache was not used"))
    again = attention_atlas([loaded], faces, per_class=1).models["colours"]
    assert again.counts == first.counts and np.allclose(again.maps["red"], first.maps["red"])
