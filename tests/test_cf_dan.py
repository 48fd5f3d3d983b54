"""CF-DAN reconstruction (spec §1): distillation, closed loop, C² gates, maps, config validation.
The HF contract (save/load, Auto*, pipeline, remote code) of its variants is in test_models.py."""

from __future__ import annotations

import pytest
import torch
from tiny_fer_model import one_torch_thread  # noqa: F401 (autouse fixture: 1 thread on shared cores)

from hub_models.cf_dan import CfDanConfig, CfDanForImageClassification
from hub_models.cf_dan.modeling_cf_dan import upsample_tokens
from hub_models.counting import parameter_count
from hub_models.shared.fer_layers import C2PReLU, C2Sigmoid, MobileNetV2Trunk

SMALL = {"backbone_depths": (1, 1, 1), "backbone_widths": (8, 16, 32), "hidden_size": 32, "num_layers": 2,
         "num_groups": 4, "spatial_heads": 2, "gate_reduction": 2, "image_size": 32}  # 4×4 = 16 tokens


def small(**overrides) -> CfDanForImageClassification:
    torch.manual_seed(0)
    return CfDanForImageClassification(CfDanConfig(**{**SMALL, **overrides}))


def test_paper_default_forward_gives_the_documented_maps() -> None:
    model = CfDanForImageClassification(CfDanConfig()).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 112, 112), output_maps=True)
    assert out.logits.shape == (1, 7)
    assert {name: tuple(a.shape) for name, a in out.maps.items()} == {
        "spatial_attention": (1, 4, 14, 14), "channel_attention": (1, 256),
        "spatial_gate": (1, 4, 14, 14), "channel_gate": (1, 256)}
    block = model.blocks[0]
    tokens = torch.randn(1, 196, 256)
    _, probs = block.spatial(tokens, block.distill(tokens))
    assert probs.shape == (1, 4, 2, 196, 98)  # B×G×heads×N×N/r: K and V live on 98 distilled tokens


@pytest.mark.parametrize("overrides", [{}, {"use_distillation": False, "closed_loop": False},
                                       {"activation": "gelu"}, {"activation": "elu"}, {"distill_depthwise": True}],
                         ids=["c2", "no_distill", "gelu", "elu", "depthwise_distill"])
def test_forward_backward_and_map_semantics(overrides: dict) -> None:
    model = small(**overrides).train()
    out = model(torch.randn(2, 3, 32, 32), labels=torch.tensor([0, 6]), output_maps=True)
    out.loss.backward()
    assert not [n for n, p in model.named_parameters() if p.grad is None]
    spatial, channel, spatial_gate, channel_gate = (out.maps[name] for name in (
        "spatial_attention", "channel_attention", "spatial_gate", "channel_gate"))
    assert spatial.shape == spatial_gate.shape == (2, 4, 4, 4) and channel.shape == channel_gate.shape == (2, 32)
    # received attention keeps one unit of mass per group, whether keys are distilled or not
    torch.testing.assert_close(spatial.sum(dim=(-1, -2)), torch.ones(2, 4))
    torch.testing.assert_close(channel.view(2, 4, 8).sum(-1), torch.ones(2, 4))
    for gate in (spatial_gate, channel_gate):
        assert gate.min() >= 0 and gate.max() <= 1


def test_activation_flag_selects_c2_modules_and_costs_three_scalars_each() -> None:
    c2, gelu = small(), small(activation="gelu")
    # by name: the architecture folder imports its own linked copy of fer_layers
    c2_kinds = {C2PReLU.__name__, C2Sigmoid.__name__}
    assert c2_kinds <= {type(m).__name__ for m in c2.modules()}
    assert not c2_kinds & {type(m).__name__ for m in gelu.modules()}
    # per block: one C²-PReLU in the FFN + the two C²-sigmoid gates, 3 learnable scalars each
    assert parameter_count(c2) - parameter_count(gelu) == 2 * 3 * 3


def test_distillation_adds_one_grouped_conv_and_bn_per_block() -> None:
    config = CfDanConfig()
    d, g = config.hidden_size, config.group_width
    with torch.device("meta"):
        full = CfDanForImageClassification(config)
        plain = CfDanForImageClassification(CfDanConfig(use_distillation=False, closed_loop=False))
    assert parameter_count(full) - parameter_count(plain) == config.num_layers * (d * g * 3 + d + 2 * d)
    assert parameter_count(full) == 20_897_291  # measured; no published count exists (spec §1.5)


def test_closed_loop_adds_the_upsampled_distilled_tokens_to_the_residual() -> None:
    looped = small(drop_path_rate=0.0).eval()
    with torch.no_grad():  # silence the FFN so the block output is x + attention (+ loop)
        looped.blocks[0].ffn[2].weight.zero_()
        looped.blocks[0].ffn[2].bias.zero_()
    open_loop = CfDanForImageClassification(CfDanConfig(**SMALL, drop_path_rate=0.0, closed_loop=False)).eval()
    open_loop.load_state_dict(looped.state_dict())
    block = looped.blocks[0]
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        difference = block(x)[0] - open_loop.blocks[0](x)[0]
        expected = upsample_tokens(block.distill(block.norm1(x)), 16)
    assert expected.abs().max() > 0
    torch.testing.assert_close(difference, expected)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"num_groups": 3}, "num_groups"),
    ({"spatial_heads": 3}, "spatial_heads"),
    ({"gate_reduction": 5}, "gate_reduction"),
    ({"activation": "relu"}, "activation"),
    ({"use_distillation": False}, "closed_loop"),
    ({"image_size": 100}, "image_size"),
    ({"distill_ratio": 1}, "distill_ratio"),
    ({"backbone_depths": (3, 4)}, "backbone_depths"),
    ({"c2_sigmoid_init": (0.0, 0.0, 1.0)}, "c2_sigmoid_init"),
    ({"backbone": "resnet50"}, "backbone"),
    ({"backbone": "mobilenet_v2", "image_size": 104}, "image_size"),  # a multiple of IR-50's 8, not of 16
])
def test_invalid_configs_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"'{field}'"):
        CfDanConfig(**overrides)


def test_model_card_section_says_reconstruction_and_variant() -> None:
    from hub_models.model_cards import architecture_section

    with torch.device("meta"):
        section = architecture_section(CfDanForImageClassification(CfDanConfig(activation="elu")))
    assert "**reconstruction**" in section and "elu FFN activation, sigmoid gates" in section


def test_mobilenet_v2_trunk_is_torchvisions_network_up_to_its_96_channel_stage() -> None:
    """Same names, shapes and function as torchvision's ``features[:14]``, so its ImageNet weights
    load by name (tools/convert_mobilenet_v2.py) and compute what they were trained to."""
    import torchvision

    trunk, reference = MobileNetV2Trunk().eval(), torchvision.models.mobilenet_v2().features[:14].eval()
    shapes = {k: v.shape for k, v in trunk.state_dict().items()}
    assert shapes == {k: v.shape for k, v in reference.state_dict().items()}
    trunk.load_state_dict(reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(trunk(x), reference(x))
    assert trunk.out_channels == 96 and trunk(x).shape[-1] == 64 // 16


def test_mobilenet_v2_backbone_gives_a_7x7_grid_at_112_px_and_the_card_says_so() -> None:
    from hub_models.model_cards import architecture_section

    model = CfDanForImageClassification(CfDanConfig(backbone="mobilenet_v2", num_layers=1)).eval()
    assert model.config.grid == 7
    with torch.no_grad():
        out = model(torch.randn(1, 3, 112, 112), output_maps=True)
    assert out.maps["spatial_attention"].shape == (1, 4, 7, 7)
    assert "a MobileNetV2 trunk (to its 96-channel stage)" in architecture_section(model)


def test_a_fine_tune_at_a_new_input_size_resamples_the_position_embedding(tmp_path) -> None:
    # The embedding of the saved 4×4 grid: channel 0 grows down the rows, channel 1 along the columns,
    # the rest a constant per channel. Resampled to 6×6 it must keep that layout, not start from noise.
    from hub_models import loading

    source = small()
    rows, cols = torch.meshgrid(torch.arange(4.0), torch.arange(4.0), indexing="ij")
    with torch.no_grad():
        source.position.embedding[0, :, 0] = rows.flatten()
        source.position.embedding[0, :, 1] = cols.flatten()
        source.position.embedding[0, :, 2:] = torch.arange(2.0, 32.0)
    source.save_pretrained(tmp_path / "saved")
    labels = loading.model_labels(source)
    larger = loading.load_model(tmp_path / "saved", {"image_size": 48}, labels=labels)
    assert larger.reinitialised == ()
    assert larger.initialisation.endswith("(resampled to the new input size: position)")
    grid = larger.model.position.embedding.detach().reshape(6, 6, 32)
    assert torch.all(grid[1:, :, 0] >= grid[:-1, :, 0]) and grid[-1, 0, 0] > grid[0, 0, 0] + 2.5
    assert torch.allclose(grid[:, :, 0], grid[:, :1, 0].expand(6, 6))
    assert torch.allclose(grid[:, :, 1], grid[:, :, 0].T)
    assert torch.allclose(grid[:, :, 2:], torch.arange(2.0, 32.0).expand(6, 6, 30))
    same = loading.load_model(tmp_path / "saved", labels=labels)
    assert torch.equal(same.model.position.embedding, source.position.embedding)
