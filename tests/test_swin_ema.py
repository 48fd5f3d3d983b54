"""Swin-T + SPST + EMA (spec §5) and the EMA block it uses."""

from __future__ import annotations

import pytest
import torch
from tiny_fer_model import one_torch_thread  # noqa: F401 (autouse fixture: 1 thread on shared cores)

from hub_models.shared.fer_layers import EMA


def test_ema_parameter_count_matches_spec() -> None:
    # 10c² + 4c with c = C / factor: Table 5 of the paper differs by exactly these amounts.
    assert sum(p.numel() for p in EMA(384, 32).parameters()) == 1_488
    assert sum(p.numel() for p in EMA(192, 32).parameters()) == 384
    assert sum(p.numel() for p in EMA(768, 32).parameters()) == 5_856


def test_ema_output_is_input_rescaled_by_its_weight_maps() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 64, 6, 5)
    out, weights = EMA(64, factor=8)(x)
    assert out.shape == x.shape and weights.shape == (2, 8, 6, 5)
    assert weights.min() > 0 and weights.max() < 1
    expected = x.reshape(2, 8, 8, 6, 5) * weights.unsqueeze(2)
    torch.testing.assert_close(out, expected.reshape_as(x))


def test_ema_rejects_a_factor_that_does_not_divide_channels() -> None:
    with pytest.raises(ValueError, match="factor 32 must divide the 48 channels"):
        EMA(48, factor=32)


from hub_models.swin_ema import SwinEmaConfig, SwinEmaForImageClassification  # noqa: E402

SMALL = {"image_size": 64, "window_size": 2, "embed_dim": 16, "depths": (2, 2, 2, 2), "num_heads": (1, 2, 2, 4),
         "spst_dim": 32, "spst_num_heads": 4, "spst_depth": 1, "drop_path_rate": 0.0}


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("use_spst", "use_ema", "ema_stage", "expected"), [
    (False, False, 2, 27_524_737),   # Table 1: Swin-T
    (False, True, 2, 27_526_225),    # Table 1: + EMA
    (True, False, 2, 23_185_251),    # Table 1: + SPST
    (True, True, 2, 23_186_739),     # Table 1: + SPST + EMA (proposed, the default config)
    (True, True, 1, 23_185_635),     # Table 5: EMA after stage 1
    (True, True, 3, 23_191_107),     # Table 5: EMA after stage 3
    (True, True, 4, 23_187_875),     # Table 5: EMA after stage 4
])
def test_parameter_counts_match_the_paper(use_spst: bool, use_ema: bool, ema_stage: int, expected: int) -> None:
    config = SwinEmaConfig(use_spst=use_spst, use_ema=use_ema, ema_stage=ema_stage)
    assert config.num_labels == 7
    with torch.device("meta"):  # counting needs no memory or init time
        model = SwinEmaForImageClassification(config)
    assert n_params(model) == expected


def timm_to_swin_ema(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a timm SwinTransformer state dict to this model's names (timm puts PatchMerging at
    the start of the next stage; this model, like Microsoft's, at the end of the stage)."""
    renames = {"patch_embed.proj": "patch_embed", "patch_embed.norm": "patch_norm", "head.fc": "classifier",
               "attn.relative_position_bias_table": "relative_position.table", "mlp.fc1": "mlp.0",
               "mlp.fc2": "mlp.2"}
    out = {}
    for key, value in state.items():
        if key.endswith(("relative_position_index", "attn_mask")):
            continue
        for old, new in renames.items():
            key = key.replace(old, new)
        if key.startswith("layers."):
            _, stage, rest = key.split(".", 2)
            key = f"stages.{int(stage) - rest.startswith('downsample')}.{rest}"
        out[key] = value
    return out


def test_swin_stages_compute_exactly_what_timm_swin_computes() -> None:
    """Shifted windows, masks, relative-position bias and merging order checked against timm."""
    from timm.models.swin_transformer import SwinTransformer

    torch.manual_seed(0)
    config = SwinEmaConfig(use_spst=False, use_ema=False, **SMALL)
    ours = SwinEmaForImageClassification(config).eval()
    reference = SwinTransformer(img_size=64, patch_size=4, window_size=2, embed_dim=16, depths=(2, 2, 2, 2),
                                num_heads=(1, 2, 2, 4), num_classes=7).eval()
    ours.load_state_dict(timm_to_swin_ema(reference.state_dict()), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x).logits, reference(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("use_spst", "use_ema"), [(False, False), (False, True), (True, False), (True, True)])
def test_small_forward_backward_trains_every_parameter(use_spst: bool, use_ema: bool) -> None:
    model = SwinEmaForImageClassification(SwinEmaConfig(use_spst=use_spst, use_ema=use_ema, **SMALL)).train()
    out = model(torch.randn(2, 3, 64, 64), labels=torch.tensor([1, 4]), output_maps=True)
    out.loss.backward()
    assert out.logits.shape == (2, 7)
    assert ("spst_latent_attention" in out.maps) == use_spst and ("ema_weights" in out.maps) == use_ema
    assert not [n for n, p in model.named_parameters() if p.grad is None]


def test_native_attention_maps_shapes_and_meaning() -> None:
    torch.manual_seed(0)
    model = SwinEmaForImageClassification(SwinEmaConfig(**SMALL)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), output_maps=True)
    assert {name: tuple(a.shape) for name, a in out.maps.items()} == {
        "stage1_window_attention": (2, 1, 16, 16), "stage2_window_attention": (2, 2, 8, 8),
        "stage3_window_attention": (2, 2, 4, 4), "spst_latent_attention": (2, 4, 2, 2), "ema_weights": (2, 32, 4, 4)}
    # Received attention (averaged over each window's queries) carries a mass of 1 per window:
    # 8×8 windows of 2×2 on the 16×16 stage-1 map, shifted or not.
    mass = out.maps["stage1_window_attention"].sum(dim=(-1, -2))
    torch.testing.assert_close(mass, torch.full_like(mass, 64.0))
    # The latent attention projected back to the grid keeps each head's total mass (L latent tokens).
    latent = out.maps["spst_latent_attention"].sum(dim=(-1, -2))
    torch.testing.assert_close(latent, torch.ones_like(latent))


def test_without_spst_the_cam_target_is_the_final_token_norm() -> None:
    model = SwinEmaForImageClassification(SwinEmaConfig(use_spst=False, use_ema=False, **SMALL)).eval()
    captured = []
    handle = model.cam_target_layers()[0].register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), output_maps=True)
    handle.remove()
    assert model.cam_reshape_transform(captured[0]).shape == (1, 128, 2, 2)
    assert [tuple(a.shape[1:]) for a in out.maps.values()] == [(1, 16, 16), (2, 8, 8), (2, 4, 4), (4, 2, 2)]


def test_spst_cam_target_is_the_converter_conv() -> None:
    model = SwinEmaForImageClassification(SwinEmaConfig(**SMALL))
    assert model.cam_target_layers() == [model.spst.converter.conv] and model.cam_reshape_transform is None


@pytest.mark.parametrize(("overrides", "field"), [
    ({"image_size": 112}, "image_size"),                    # odd 7×7 map before the last merging
    ({"image_size": 64}, "window_size"),                    # window 7 does not divide the 16×16 stage-1 map
    ({"window_size": 5}, "window_size"),
    ({"num_heads": (3, 6, 12, 25)}, "num_heads"),
    ({"depths": (2, 2, 6)}, "depths"),
    ({"spst_num_heads": 7}, "spst_num_heads"),
    ({"ema_factor": 5}, "ema_factor"),
    ({"ema_stage": 5}, "ema_stage"),
    ({"ema_stage": 4, "spst_latent_tokens": 50}, "spst_latent_tokens"),
    ({"patch_size": 3}, "image_size"),
])
def test_invalid_configs_name_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"'{field}'"):
        SwinEmaConfig(**overrides)


def test_model_card_section_names_the_ablation() -> None:
    from hub_models.model_cards import architecture_section

    with torch.device("meta"):
        proposed = architecture_section(SwinEmaForImageClassification(SwinEmaConfig()))
        baseline = architecture_section(SwinEmaForImageClassification(SwinEmaConfig(use_spst=False, use_ema=False)))
    assert "SPST + EMA (the proposed model), EMA after stage 2" in proposed and "23,186,739" in proposed
    assert "Swin-T baseline" in baseline and "27,524,737" in baseline


def test_model_card_names_what_differs_from_the_paper() -> None:
    from hub_models.model_cards import architecture_section

    with torch.device("meta"):
        paper = architecture_section(SwinEmaForImageClassification(SwinEmaConfig()))
        small = architecture_section(SwinEmaForImageClassification(SwinEmaConfig(image_size=64, window_size=4)))
    assert "configuration: the paper's" in paper and "(512×7×7)" in paper
    assert "`window_size=4` (paper: 7), `image_size=64` (paper: 224)" in small and "(512×2×2)" in small
