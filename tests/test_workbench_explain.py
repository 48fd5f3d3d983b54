"""Explanations: every method and native read-out for every architecture; maps that follow the
target class and collapse when the weights are randomised; faithfulness on a hand-built case;
regions, agreement, bundles, model loading and the activation analysis."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from tiny_fer_model import COLOURS, colour_model, one_torch_thread, tiny_model, two_squares  # noqa: F401 (fixture)

import hub_models
from hub_models import loading
from workbench import (
    FAST_METHODS,
    METHODS,
    BundleExistsError,
    ModelLoadError,
    Workbench,
    cams,
    load_model,
)
from workbench.faces import template_points
from workbench.faithfulness import curve_auc, faithfulness_scores
from workbench.regions import agreement, region_masks, region_shares

GRADIENT_METHODS = ("gradcam", "gradcam++", "xgradcam", "layercam", "hirescam")
# Small configurations so every architecture runs in about a second (test-only knowledge).
SMALL = {
    "patt_lite": {"image_size": 64},
    "ddamfn": {"image_size": 64},
    "swin_ema": {"image_size": 64, "window_size": 2, "embed_dim": 16, "depths": (2, 2, 2, 2),
                 "num_heads": (1, 2, 2, 4), "spst_dim": 32, "spst_num_heads": 4, "spst_depth": 1,
                 "drop_path_rate": 0.0},
    "cf_dan": {"backbone_depths": (1, 1, 1), "backbone_widths": (8, 16, 32), "hidden_size": 32, "num_layers": 2,
               "num_groups": 4, "spatial_heads": 2, "gate_reduction": 2, "image_size": 32},
}
FACE = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def check_map(heatmap: np.ndarray, size: int) -> None:
    assert heatmap.shape == (size, size) and heatmap.dtype == np.float32
    assert np.isfinite(heatmap).all() and heatmap.min() >= 0.0 and heatmap.max() <= 1.0


def test_every_method_returns_a_face_sized_map_in_unit_range() -> None:
    result = Workbench([tiny_model()]).analyze(FACE, methods=list(METHODS), assume_face=True, faithfulness=False)
    analysis = next(iter(result.faces[0].models.values()))
    assert set(analysis.cams) == set(METHODS)
    for heatmap in analysis.cams.values():
        check_map(heatmap, 32)
    assert analysis.native["spatial"].shape == (32, 32) and analysis.native["groups"].shape == (32, 32)
    assert analysis.native["gate"].shape == (16,)
    assert math.isclose(sum(analysis.probabilities.values()), 1.0, rel_tol=1e-5)


@pytest.mark.parametrize("architecture", sorted(hub_models.ARCHITECTURES))
def test_every_architecture_explains_through_the_protocol(architecture: str) -> None:
    torch.manual_seed(0)
    loaded = load_model(architecture, **SMALL.get(architecture, {}))
    assert loaded.trained is False and loaded.kind == "architecture"
    result = Workbench([loaded]).analyze(FACE, methods=list(FAST_METHODS), assume_face=True, faithfulness=["gradcam"])
    analysis = result.faces[0].models[architecture]
    size = loaded.config.image_size
    assert analysis.face.shape == (size, size, 3)
    assert set(analysis.cams) == set(FAST_METHODS)
    for heatmap in analysis.cams.values():
        check_map(heatmap, size)
    with torch.no_grad():
        names = list(loaded.model(pixel_values=torch.zeros(1, 3, size, size), output_maps=True).maps)
    assert list(analysis.native) == names and names
    for name, values in analysis.native.items():
        if values.ndim == 2:
            check_map(values, size)
            assert name in analysis.agreement and name in analysis.regions
        else:
            assert values.ndim == 1 and np.isfinite(values).all()
    assert list(analysis.faithfulness) == ["gradcam"]
    assert all(0.0 <= value <= 1.0 for value in analysis.faithfulness["gradcam"].values())


@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_short_backward_gives_the_library_s_exact_map(method: str) -> None:
    """The engine restarts autograd at the target layer; the map must equal pytorch-grad-cam's own
    full-graph result."""
    model, image = tiny_model(3), torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cam_class = cams.METHODS[method].cam_class
    with cam_class(model=cams.LogitsOnly(model, False), target_layers=model.cam_target_layers()) as cam:
        reference = cam(input_tensor=image, targets=[cams.ClassifierOutputTarget(2)])[0]
    np.testing.assert_allclose(cams.explain(model, image, [method], 2).maps[method], reference, atol=1e-6)


def test_torch_eigencam_is_the_library_projection_with_a_fixed_sign() -> None:
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    activations = np.maximum(np.random.default_rng(0).normal(size=(2, 16, 6, 6)), 0).astype(np.float32)
    ours = cams.TorchEigenCAM.get_cam_image(None, None, None, None, activations, None, False)
    library = get_2d_projection(activations)
    np.testing.assert_allclose(np.abs(ours), np.abs(library), atol=1e-5)
    for projection, acts in zip(ours, activations, strict=True):
        assert (projection * acts.mean(axis=0)).sum() > 0


def test_maps_follow_the_target_class() -> None:
    image, red, green = two_squares()
    model = colour_model()
    for target, inside, outside in ((0, red, green), (1, green, red)):
        maps = cams.explain(model, image, GRADIENT_METHODS, target).maps
        for method, heatmap in maps.items():
            share_in, share_out = (heatmap[m.numpy()].sum() / heatmap.sum() for m in (inside, outside))
            assert share_in > 0.6 and share_out < 0.05, (method, COLOURS[target], share_in, share_out)


def test_a_flip_averaging_model_is_explained_on_both_views() -> None:
    """The mirror view's map is mirrored back: the squares are top-left and bottom-right, so a map left
    unmirrored would light up empty corners; and a mirrored face gets the mirrored map."""
    image, red, green = two_squares()
    model = colour_model()
    model.config.test_time_flip = True
    for target, inside, outside in ((0, red, green), (1, green, red)):
        run = cams.explain(model, image, GRADIENT_METHODS, target)
        mirrored = cams.explain(model, image.flip(-1), GRADIENT_METHODS, target)
        for method, heatmap in run.maps.items():
            share_in, share_out = (heatmap[m.numpy()].sum() / heatmap.sum() for m in (inside, outside))
            assert share_in > 0.6 and share_out < 0.05, (method, COLOURS[target], share_in, share_out)
            np.testing.assert_allclose(mirrored.maps[method], heatmap[:, ::-1], atol=1e-6)
        torch.testing.assert_close(mirrored.logits, run.logits)
    assert model.config.test_time_flip is True  # switched off only while each view is explained
    face = tiny_model(3)
    face.config.test_time_flip = True
    pixels = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    run, mirrored = (cams.explain(face, x, ["gradcam"], None) for x in (pixels, pixels.flip(-1)))
    with torch.no_grad():
        torch.testing.assert_close(run.logits, face(pixels).logits)  # the averaged logits, as predicted
    for name, values in run.native.items():
        torch.testing.assert_close(mirrored.native[name], values.flip(-1) if values.ndim >= 3 else values)


def test_maps_collapse_under_cascading_randomisation() -> None:
    """Adebayo et al. 2018: re-initialise layers from the top down; a map that explains the model
    must stop resembling the trained model's map (mean Spearman over seeds)."""
    image, _, _ = two_squares()
    reference = cams.explain(colour_model(), image, GRADIENT_METHODS, 0).maps
    similarity = {method: [] for method in GRADIENT_METHODS}
    for seed in range(3):
        model = colour_model()
        torch.manual_seed(seed)
        for layer in (model.classifier, model.features[0], model.stem[2], model.stem[0]):
            layer.reset_parameters()
        randomised = cams.explain(model, image, GRADIENT_METHODS, 0).maps
        for method in GRADIENT_METHODS:
            rho = spearmanr(reference[method].ravel(), randomised[method].ravel())[0]
            similarity[method].append(0.0 if np.isnan(rho) else rho)  # a constant map kept nothing
    for method, values in similarity.items():
        assert np.mean(values) < 0.5, (method, values)


def test_target_by_label_name_and_unknown_labels() -> None:
    image, _, _ = two_squares()
    face = np.uint8(np.clip((image[0].permute(1, 2, 0).numpy() * 0.5 + 0.5) * 255, 0, 255))
    workbench = Workbench([colour_model()])
    analysis = next(iter(workbench.analyze(face, target="green", assume_face=True).faces[0].models.values()))
    assert analysis.target == "green"
    analysis = next(iter(workbench.analyze(face, target="contempt", assume_face=True).faces[0].models.values()))
    assert analysis.target == analysis.predicted and "contempt" in analysis.notes[0]
    with pytest.raises(ValueError, match="out of range"):
        workbench.analyze(face, target=7, assume_face=True)
    with pytest.raises(ValueError, match="unknown CAM method"):
        workbench.analyze(face, methods=["gradcam", "magiccam"], assume_face=True)


def region_probability(batch: torch.Tensor) -> torch.Tensor:
    """p(class 0) = share of the top-left quadrant still bright: an exactly known model."""
    p = batch[:, 0, :16, :16].clamp(0, 1).mean(dim=(1, 2)).clamp(1e-6, 1 - 1e-6)
    return torch.stack([p.log(), (1 - p).log()], dim=1)


def test_faithfulness_on_a_hand_built_case() -> None:
    image = torch.zeros(1, 3, 32, 32)
    image[:, :, :16, :16] = 1.0
    perfect = np.zeros((32, 32), np.float32)
    perfect[:16, :16] = 1.0
    good = faithfulness_scores(region_probability, image, perfect, 0)
    bad = faithfulness_scores(region_probability, image, 1.0 - perfect, 0)
    # Deletion removes the quadrant (a quarter of the pixels) in the first 4 of 16 steps.
    assert good["deletion_auc"] == pytest.approx(0.125, abs=1e-6)
    assert bad["deletion_auc"] == pytest.approx(0.875, abs=1e-6)
    # Insertion starts from a blurred image, which keeps part of the quadrant's brightness.
    assert 0.875 - 1e-6 <= good["insertion_auc"] <= 1.0 and bad["insertion_auc"] < good["insertion_auc"] - 0.05
    assert good["road_morf"] < 0.4 < bad["road_morf"]
    assert good["road_lerf"] > 0.9 > bad["road_lerf"]
    assert curve_auc(np.array([1.0, 0.0])) == 0.5


def test_regions_follow_the_landmarks() -> None:
    landmarks = template_points("arcface", 112)
    masks = region_masks(landmarks, (112, 112))
    stacked = np.stack(list(masks.values()))
    assert (stacked.sum(axis=0) == 1).all(), "regions must partition the face"
    for name, point in (("eyes", landmarks[0]), ("eyes", landmarks[1]), ("nose", landmarks[2]),
                        ("mouth", (landmarks[3] + landmarks[4]) / 2)):
        assert masks[name][round(point[1]), round(point[0])], name
    ys, xs = np.mgrid[0:112, 0:112]
    mouth = (landmarks[3] + landmarks[4]) / 2
    blob = np.exp(-((xs - mouth[0]) ** 2 + (ys - mouth[1]) ** 2) / (2 * 6.0 ** 2))
    shares = region_shares(blob, masks)
    assert max(shares, key=shares.get) == "mouth" and sum(shares.values()) == pytest.approx(1.0)


def test_regions_cover_the_face_and_turn_with_it() -> None:
    """On a FER2013-framed face the regions cover most of the crop (`other` is the frame's corners
    and edges), each region sits where its landmarks say, and a tilted face tilts its regions."""
    side = 96
    landmarks = template_points("fer2013", side)
    masks = region_masks(landmarks, (side, side))
    assert masks["other"].mean() < 0.3 and all(masks[name].any() for name in masks)
    eye_mid, mouth = landmarks[:2].mean(axis=0), landmarks[3:].mean(axis=0)
    d = float(np.linalg.norm(landmarks[1] - landmarks[0]))
    up, down, out = np.array([0, -0.8 * d]), np.array([0, 0.5 * d]), np.array([-0.35 * d, 0])
    for name, point in (("forehead", eye_mid + up), ("chin", mouth + down),
                        ("cheeks", (landmarks[0] + landmarks[3]) / 2 + out), ("other", (1, 1)),
                        ("other", (side - 2, 1))):
        assert masks[name][round(point[1]), round(point[0])], name
    angle = np.radians(20)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    center = np.array([side / 2, side / 2])
    tilted = (landmarks - center) @ rotation.T + center
    tilted_masks = region_masks(tilted, (side, side))
    for index, name in ((0, "eyes"), (1, "eyes"), (2, "nose")):
        assert tilted_masks[name][round(tilted[index][1]), round(tilted[index][0])], name
    forehead = (eye_mid + up - center) @ rotation.T + center
    assert tilted_masks["forehead"][round(forehead[1]), round(forehead[0])]


def test_agreement_is_a_correlation() -> None:
    ramp = np.linspace(0, 1, 64).reshape(8, 8)
    assert agreement(ramp, ramp) == pytest.approx(1.0)
    assert agreement(ramp, 1 - ramp) == pytest.approx(-1.0)
    assert math.isnan(agreement(ramp, np.zeros_like(ramp)))


def test_bundle_is_written_once_and_never_overwritten(tmp_path) -> None:
    result = Workbench([tiny_model()]).analyze(FACE, methods=["gradcam"], assume_face=True)
    bundle = result.save(tmp_path / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["input"]["sha256"] == result.input["sha256"]
    assert {"torch", "transformers", "grad-cam"} <= set(manifest["packages"])
    model_entry = next(iter(manifest["models"].values()))
    assert model_entry["label_map"]["0"] == "angry" and model_entry["preprocessing"]["image_size"] == 32
    files = next(iter(manifest["faces"][0]["models"].values()))["files"]
    assert all((bundle / name).is_file() for name in files)
    assert np.load(bundle / "face0" / "TinyFerForImageClassification" / "cam_gradcam.npy").shape == (32, 32)
    before = (bundle / "manifest.json").read_bytes()
    with pytest.raises(BundleExistsError, match="already exists"):
        result.save(bundle)
    assert (bundle / "manifest.json").read_bytes() == before
    assert result.save(bundle, overwrite=True) == bundle


def test_model_specs_load_or_fail_by_name(tmp_path, monkeypatch) -> None:
    with pytest.raises(ModelLoadError, match=r"'no_such_architecture'.*patt_lite"):
        load_model("no_such_architecture")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="'nobody/no-such-fer-model'"):
        load_model("nobody/no-such-fer-model")
    hub_models.create_model("patt_lite", image_size=64).save_pretrained(tmp_path / "saved")
    loaded = load_model(tmp_path / "saved")
    assert loaded.kind == "folder" and loaded.trained and loaded.revision.startswith("sha256:")
    with pytest.raises(ModelLoadError, match="not a saved model"):
        load_model(tmp_path)
    # A zoo id is pinned to the weights it holds today: the sentence a fine-tune's card keeps says which.
    zoo_id = hub_models.zoo.model_ids()[0]
    from_zoo = load_model(zoo_id)
    assert from_zoo.revision == hub_models.zoo.revision(zoo_id)
    assert from_zoo.initialisation == f"from the weights of {zoo_id} (revision {from_zoo.revision[:12]})"


def test_fine_tuning_names_the_modules_that_start_fresh(tmp_path) -> None:
    # PAtt-Lite's patch-extraction kernel depends on the input size and the classifier on the labels:
    # a fine-tune at another size or label set keeps the rest and says which parts are new.
    source = hub_models.create_model("patt_lite", image_size=64)
    source.save_pretrained(tmp_path / "saved")
    labels = loading.model_labels(source)
    same = loading.load_model(tmp_path / "saved", labels=labels)
    assert same.reinitialised == () and "fresh weights" not in same.initialisation
    larger = loading.load_model(tmp_path / "saved", {"image_size": 96}, labels=labels)
    assert larger.reinitialised == ("patch_extraction.0.1",) and larger.model.config.image_size == 96
    assert larger.initialisation.endswith("(fresh weights where the shapes changed: patch_extraction.0.1)")
    kept = dict(source.named_parameters())
    assert all(torch.equal(tensor, kept[name]) for name, tensor in larger.model.named_parameters()
               if not name.startswith("patch_extraction.0.1"))
    relabelled = loading.load_model(tmp_path / "saved", labels=[*labels, "contempt"])
    assert relabelled.reinitialised == ("head.classifier",)



def test_small_crops_without_a_detectable_face_are_used_whole() -> None:
    texture = np.random.default_rng(1).integers(90, 160, (48, 48), dtype=np.uint8)
    result = Workbench([tiny_model()]).analyze(texture, faithfulness=False)
    assert len(result.faces) == 1 and result.faces[0].whole_image
    assert "whole image" in result.message
    landscape = np.linspace([90, 140, 220], [40, 90, 30], 300)[:, None, :].repeat(400, axis=1).astype(np.uint8)
    nothing = Workbench([tiny_model()]).analyze(landscape)
    assert nothing.faces == [] and nothing.message == "no face found"


def test_fer2013_crops_always_give_one_face() -> None:
    import gzip
    import itertools
    import os
    from pathlib import Path

    path = Path(os.environ.get("FER_DATA_DIR", Path(__file__).resolve().parents[1] / "../shared/data"))
    path = path / "fer2013" / "fer2013.csv.gz"
    if not path.is_file():
        pytest.skip(f"FER2013 not found at {path} (set FER_DATA_DIR)")
    with gzip.open(path, "rt") as handle:
        rows = [row.split(",") for row in itertools.islice(handle, 1, 5)]
    crops = [np.array(pixels.split(), dtype=np.uint8).reshape(48, 48) for _, pixels, _ in rows]
    workbench = Workbench([tiny_model()])
    for crop in crops:
        result = workbench.analyze(crop, faithfulness=False)
        assert len(result.faces) == 1, result.message
        assert result.faces[0].whole_image == ("whole image" in (result.message or ""))


def test_one_spelling_per_expression_across_label_sets() -> None:
    from hub_models import CKPLUS_LABELS, FER2013_LABELS, FERPLUS_LABELS
    from workbench import resolve_target
    from workbench.labels import canonical, label_index, label_union

    assert label_index("happiness", FER2013_LABELS) == FER2013_LABELS.index("happy")
    assert label_index("Angry", CKPLUS_LABELS) == CKPLUS_LABELS.index("anger")
    assert label_index("contempt", FER2013_LABELS) is None
    union = label_union([FER2013_LABELS, FERPLUS_LABELS, CKPLUS_LABELS])
    assert union == [*FER2013_LABELS, "contempt"] and canonical("Sadness") == "sad"
    notes: list[str] = []
    assert resolve_target("sadness", FER2013_LABELS, notes) == FER2013_LABELS.index("sad") and not notes


def test_region_probe_ranks_the_region_the_model_needs_first() -> None:
    """The colour model's "red" class counts red pixels: paint only the mouth red, and blurring the
    mouth must hurt most; a map on the mouth agrees with that ranking, a map on the forehead not."""
    from workbench.faces import template_points
    from workbench.probes import probe_regions
    from workbench.regions import region_masks, region_shares

    size = 32
    masks = region_masks(template_points("fer2013", size), (size, size))
    face = np.full((size, size, 3), 128, np.uint8)
    face[masks["mouth"]] = (255, 0, 0)
    loaded = load_model(colour_model())
    analysis = next(iter(Workbench([loaded]).analyze(face, methods=[], target="red", assume_face=True,
                                                     faithfulness=False).faces[0].models.values()))
    rows, columns = np.mgrid[0:size, 0:size]

    def blob_on(region: str) -> np.ndarray:  # a smooth map centred on one region, as CAMs are
        y, x = np.argwhere(masks[region]).mean(axis=0)
        return np.exp(-((rows - y) ** 2 + (columns - x) ** 2) / 32.0).astype(np.float32)

    analysis.regions = {"exact": region_shares(masks["mouth"].astype(np.float32), masks),
                        "on the mouth": region_shares(blob_on("mouth"), masks),
                        "on the forehead": region_shares(blob_on("forehead"), masks)}
    probe = probe_regions(loaded, analysis)
    assert probe.target == "red" and max(probe.drops, key=probe.drops.get) == "mouth"
    assert probe.drops["mouth"] > 0.05
    assert probe.agreement["exact"] == pytest.approx(1.0)
    assert probe.agreement["on the mouth"] > 0.3 > abs(probe.agreement["on the forehead"])


def test_perturbation_probe_on_a_model_whose_answer_is_known() -> None:
    """The colour model counts colours: a red mouth stays "red" under blur, JPEG, light and small
    rotations; a pale-blue face mask over it turns the prediction blue; sunglasses do not."""
    from workbench.faces import template_points
    from workbench.probes import PERTURBATIONS, probe_perturbations
    from workbench.regions import region_masks

    size = 32
    masks = region_masks(template_points("fer2013", size), (size, size))
    face = np.full((size, size, 3), 128, np.uint8)
    face[masks["mouth"]] = (255, 0, 0)
    loaded = load_model(colour_model())
    analysis = next(iter(Workbench([loaded]).analyze(face, methods=["gradcam"], assume_face=True,
                                                     faithfulness=False).faces[0].models.values()))
    assert analysis.predicted == "red"
    rows = {row["perturbation"]: row for row in probe_perturbations(loaded, analysis, "gradcam")}
    assert list(rows) == list(PERTURBATIONS)
    for name in ("JPEG quality 15", "rotated +10°", "rotated −10°", "darker (×0.6)", "sunglasses"):
        assert rows[name]["predicted"] == "red", name
    assert rows["face mask"]["predicted"] == "blue"
    assert rows["face mask"]["p(original prediction)"] < rows["sunglasses"]["p(original prediction)"]
    assert all(-1.0 <= row["map r"] <= 1.0 for row in rows.values() if np.isfinite(row["map r"]))
