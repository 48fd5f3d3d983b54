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
    zoo.add(folder, "other", zoo_dir=tmp_path)
    zoo.add(folder, "without-attention", ablation_of="with-attention", differs="no attention", zoo_dir=tmp_path)
    assert zoo.model_ids(tmp_path) == [f"fer-workbench/{name}" for name in ("with-attention", "without-attention",
                                                                             "other")]  # the pair side by side
    assert zoo.ablation_note("fer-workbench/without-attention", tmp_path) == "ablation of with-attention: no attention"
    assert zoo.ablation_note("fer-workbench/with-attention", tmp_path) == ""
    with pytest.raises(ValueError, match="how it differs"):
        zoo.add(folder, "half-said", ablation_of="with-attention", zoo_dir=tmp_path)


INT8 = ["head.dense.0", "head.classifier"]


def test_int8_dense_layers_load_close_to_float_and_convert_back_for_training(checkpoint, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder, model = checkpoint
    model_id = zoo.add(folder, "int8", fp16=True, int8_linears=INT8, zoo_dir=tmp_path)
    stored = load_file(tmp_path / "int8" / "model.safetensors")
    assert (tmp_path / "int8" / "model.safetensors").stat().st_mode == (folder / "model.safetensors").stat().st_mode
    assert stored["head.dense.0.weight"].dtype == torch.int8 and stored["head.dense.0.weight_scale"].shape == (32, 1)
    assert json.loads((tmp_path / "int8" / "config.json").read_text())["int8_linears"] == INT8
    assert json.loads((tmp_path / "manifest.json").read_text())["int8"]["int8_linears"] == INT8
    assert "## Storage" in (card := (tmp_path / "int8" / "README.md").read_text()) and "`head.dense.0`" in card
    zoo.install(tmp_path / "cache", zoo_dir=tmp_path)
    loaded = AutoModel.from_pretrained(model_id, cache_dir=str(tmp_path / "cache")).eval()
    x = torch.randn(4, 3, 64, 64)
    expected = model(x).logits
    logits = loaded(x).logits
    assert not torch.equal(logits, expected)  # the int8 rows are in use …
    assert torch.allclose(logits, expected, atol=2e-2)  # … and close to the float layers
    assert sum(p.numel() for p in loaded.parameters()) == sum(p.numel() for p in model.parameters())

    assert loaded.float_linears() == INT8
    assert loaded.config.int8_linears == []
    assert all(type(loaded.get_submodule(name)) is torch.nn.Linear for name in INT8)
    assert all(p.requires_grad and p.is_floating_point() for p in loaded.parameters())
    assert torch.equal(loaded(x).logits, logits)


def test_int8_storage_of_an_entry_repins_it_and_refuses_what_is_not_dense(checkpoint, tmp_path: Path) -> None:
    folder, _ = checkpoint
    zoo.add(folder, "entry", zoo_dir=tmp_path)
    before = zoo.revision("fer-workbench/entry", tmp_path)
    weights = (tmp_path / "entry" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match=r"'head\.nothing' is not a dense layer"):
        zoo.store_int8("entry", ["head.nothing"], zoo_dir=tmp_path)
    assert (tmp_path / "entry" / "model.safetensors").read_bytes() == weights  # nothing half-written
    revision = zoo.store_int8("entry", ["head.dense.0"], zoo_dir=tmp_path)
    assert revision != before and revision == zoo._revision(sorted((tmp_path / "entry").iterdir()))
    assert zoo.store_int8("entry", ["head.dense.0"], zoo_dir=tmp_path) == revision  # idempotent


def test_an_int8_layer_first_used_under_inference_mode_still_backpropagates() -> None:
    """The engine predicts under inference_mode, then Grad-CAM back-propagates through the head."""
    model = hub_models.create_model("patt_lite", image_size=64, int8_linears=INT8).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        model(x)
    x.requires_grad_(True)
    model(x).logits.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_a_config_naming_a_layer_that_is_not_dense_is_refused() -> None:
    with pytest.raises(ValueError, match=r"int8_linears.*'backbone' is not a dense"):
        hub_models.create_model("patt_lite", image_size=64, int8_linears=["backbone"])
