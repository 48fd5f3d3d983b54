"""The embedded zoo: a checkpoint added once resolves by Hub id from the cache with no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModel

import hub_models
from hub_models import zoo


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    model = hub_models.create_model("patt_lite", image_size=64).eval()
    folder = tmp_path_factory.mktemp("ckpt") / "patt-lite"
    model.save_pretrained(folder)
    # A card as a run writes it: titled with the run's folder name.
    (folder / "README.md").write_text("---\nmodel-index:\n- name: patt-lite\n---\n# patt-lite\nText on patt-lite.\n")
    return folder, model


def test_added_checkpoint_resolves_by_id_offline(checkpoint, tmp_path: Path) -> None:
    folder, model = checkpoint
    zoo_dir, cache = tmp_path / "zoo", tmp_path / "cache"
    zoo_dir.mkdir()
    model_id = zoo.add(folder, "patt-lite-test", zoo_dir=zoo_dir)
    assert model_id == "fer-workbench/patt-lite-test"
    assert zoo.model_ids(zoo_dir) == [model_id]
    card = (zoo_dir / "patt-lite-test" / "README.md").read_text()
    assert "- name: patt-lite-test\n" in card and "# patt-lite-test\n" in card and "Text on patt-lite.\n" in card
    assert zoo.install(cache, zoo_dir=zoo_dir) == [model_id]
    assert zoo.install(cache, zoo_dir=zoo_dir) == [model_id]  # idempotent

    loaded = AutoModel.from_pretrained(model_id, cache_dir=str(cache))
    x = torch.randn(2, 3, 64, 64)
    assert type(loaded) is type(model)
    assert torch.equal(loaded(x).logits, model(x).logits)


def test_fp16_storage_loads_as_float32(checkpoint, tmp_path: Path) -> None:
    folder, model = checkpoint
    model_id = zoo.add(folder, "half", fp16=True, zoo_dir=tmp_path)
    assert json.loads((tmp_path / "manifest.json").read_text())["half"]["fp16"] is True
    zoo.install(tmp_path / "cache", zoo_dir=tmp_path)
    loaded = AutoModel.from_pretrained(model_id, cache_dir=str(tmp_path / "cache"))
    assert loaded.dtype == torch.float32
    x = torch.randn(4, 3, 64, 64)
    assert torch.allclose(loaded(x).logits, model(x).logits, atol=1e-2)


def test_add_never_replaces_an_entry(checkpoint, tmp_path: Path) -> None:
    folder, _ = checkpoint
    zoo.add(folder, "once", zoo_dir=tmp_path)
    before = (tmp_path / "once" / "model.safetensors").read_bytes()
    with pytest.raises(FileExistsError, match="once"):
        zoo.add(folder, "once", zoo_dir=tmp_path)
    assert (tmp_path / "once" / "model.safetensors").read_bytes() == before


def test_incomplete_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"missing model\.safetensors"):
        zoo.add(tmp_path / "ck", "broken", zoo_dir=tmp_path / "zoo")


def test_a_real_hub_download_is_left_alone(checkpoint, tmp_path: Path) -> None:
    folder, _ = checkpoint
    zoo.add(folder, "mine", zoo_dir=tmp_path / "zoo")
    repo = tmp_path / "cache" / "models--fer-workbench--mine"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("f" * 40)
    (repo / "snapshots" / ("f" * 40)).mkdir(parents=True)
    assert zoo.install(tmp_path / "cache", zoo_dir=tmp_path / "zoo") == []
    assert (repo / "refs" / "main").read_text() == "f" * 40


def test_unknown_zoo_id_is_named() -> None:
    with pytest.raises(ValueError, match="not-a-model"):
        zoo.folder("fer-workbench/not-a-model")


def test_links_left_dangling_by_a_moved_package_are_renewed(checkpoint, tmp_path: Path) -> None:
    folder, model = checkpoint
    model_id = zoo.add(folder, "moved", zoo_dir=tmp_path / "old")
    zoo.install(tmp_path / "cache", zoo_dir=tmp_path / "old")
    (tmp_path / "old").rename(tmp_path / "new")  # the package now lives elsewhere; old links dangle
    assert zoo.install(tmp_path / "cache", zoo_dir=tmp_path / "new") == [model_id]
    loaded = AutoModel.from_pretrained(model_id, cache_dir=str(tmp_path / "cache"))
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(loaded(x).logits, model(x).logits)


def test_an_ablation_is_recorded_with_what_it_changes(checkpoint, tmp_path: Path) -> None:
    folder, _ = checkpoint
    zoo.add(folder, "with-attention", zoo_dir=tmp_path)
    zoo.add(folder, "without-attention", ablation_of="with-attention", differs="no attention", zoo_dir=tmp_path)
    assert zoo.ablation_note("fer-workbench/without-attention", tmp_path) == "ablation of with-attention: no attention"
    assert zoo.ablation_note("fer-workbench/with-attention", tmp_path) == ""
    with pytest.raises(ValueError, match="how it differs"):
        zoo.add(folder, "half-said", ablation_of="with-attention", zoo_dir=tmp_path)
