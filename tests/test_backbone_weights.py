"""`finetune.py --backbone-weights`: ImageNet weights converted once to safetensors load strictly
into a fresh model's backbone, and every file or model they do not fit is refused by name."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from tiny_fer_model import one_torch_thread  # noqa: F401 (autouse fixture: 1 thread on shared cores)

from hub_models.shared.fer_layers import MobileNetV2Trunk
from training.backbone_weights import load_backbone_weights
from training.data import DataError
from training.model_source import load_model

SMALL = {  # the two architectures with a MobileNetV2 trunk option, small
    "cf_dan_mobilenet_v2": {"image_size": 32, "hidden_size": 32, "num_layers": 1, "num_groups": 4,
                            "spatial_heads": 2, "gate_reduction": 2},
    "patt_lite_mobilenet_v2": {"image_size": 64, "patch_channels": 16},
}
ROOT = Path(__file__).resolve().parents[1]


def fresh(variant: str = "cf_dan_mobilenet_v2"):
    return load_model(variant, SMALL[variant])


def trunk_file(path: Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    torch.manual_seed(1)
    state = MobileNetV2Trunk().state_dict() if state is None else state
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={"source": "test trunk"})
    return path


@pytest.mark.parametrize("variant", SMALL)
def test_weights_land_in_the_backbone_and_the_card_sentence_names_them(tmp_path, variant: str) -> None:
    path = trunk_file(tmp_path / "trunk.safetensors")
    loaded = load_backbone_weights(fresh(variant), path)
    torch.manual_seed(1)
    saved = MobileNetV2Trunk().state_dict()
    for key, tensor in loaded.model.backbone.state_dict().items():
        torch.testing.assert_close(tensor, saved[key])
    assert loaded.initialisation.startswith("`backbone` (MobileNetV2Trunk) from test trunk (trunk.safetensors, sha256:")
    assert "the rest from scratch" in loaded.initialisation


def test_a_file_that_does_not_fit_is_refused_with_the_names_that_differ(tmp_path) -> None:
    state = MobileNetV2Trunk().state_dict()
    del state["0.0.weight"]
    state["extra.weight"] = torch.zeros(1)
    state["1.conv.1.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(DataError, match=r"1 missing \(first: 0.0.weight\), 1 unexpected \(first: extra.weight\), "
                                        r"1 of another shape \(first: 1.conv.1.weight\)"):
        load_backbone_weights(fresh(), trunk_file(tmp_path / "other.safetensors", state))


def test_unreadable_files_and_trained_or_backboneless_models_are_refused(tmp_path) -> None:
    garbage = tmp_path / "pickle.pth"
    garbage.write_bytes(b"\x80\x04not safetensors")
    with pytest.raises(DataError, match="not a readable safetensors file"):
        load_backbone_weights(fresh(), garbage)
    with pytest.raises(DataError, match="not a readable safetensors file"):
        load_backbone_weights(fresh(), tmp_path / "absent.safetensors")
    path = trunk_file(tmp_path / "trunk.safetensors")
    with pytest.raises(DataError, match="already has trained weights"):
        load_backbone_weights(replace(fresh(), kind="folder", trained=True), path)
    with pytest.raises(DataError, match="no `backbone` module"):
        load_backbone_weights(replace(fresh(), model=torch.nn.Linear(2, 2)), path)


def test_the_conversion_tool_keeps_the_trunk_of_a_torchvision_state_dict(tmp_path) -> None:
    import torchvision

    spec = importlib.util.spec_from_file_location("convert_mobilenet_v2", ROOT / "tools/convert_mobilenet_v2.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    network = torchvision.models.mobilenet_v2()
    torch.save(network.state_dict(), tmp_path / "mobilenet_v2.pth")
    tool.main(tmp_path / "mobilenet_v2.pth", tmp_path / "out" / "trunk.safetensors")
    loaded = load_backbone_weights(fresh(), tmp_path / "out" / "trunk.safetensors")
    torch.testing.assert_close(loaded.model.backbone[13].conv[2].weight, network.features[13].conv[2].weight)
    assert "torchvision mobilenet_v2 IMAGENET1K_V1" in loaded.initialisation
