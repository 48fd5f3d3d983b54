"""CAM methods from pytorch-grad-cam behind one small registry, run through the protocol.

Why a wrapper: pytorch-grad-cam needs a module that returns a logits tensor (a transformers
`ModelOutput` breaks it), and gradients enabled (no `inference_mode`). The wrapper also keeps
the named maps of its first forward, and the CAM call's logits are reused as the
prediction, so one CAM costs exactly one forward (+ backward) and nothing else.

Why the backward is short: gradient methods only need d(score)/d(target-layer output). With one
target layer, the forward runs without autograd up to that layer and a hook restarts the graph
at its output, so the backward covers only the head (not the whole backbone down to the input).
Gradient-free methods (Eigen/Score/Ablation-CAM) run entirely without autograd.

Why two views for some models: a model with ``config.test_time_flip`` decides on the mean of its
logits for the face and for the mirrored face, so a map of the face alone shows half of the
evidence. Such a model is explained on both views (each with the averaging switched off), and the
mirror's map is mirrored back and averaged in: the map of a mirrored face is then exactly the
mirror image of the face's map, as the prediction is the same. The two views go through each
method as one batch of two: one forward and one backward instead of two of each.
"""

from __future__ import annotations

import functools
import time
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytorch_grad_cam.ablation_cam
import pytorch_grad_cam.score_cam
import torch
import tqdm
from pytorch_grad_cam import (
    AblationCAM,
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.ablation_layer import AblationLayer, AblationLayerVit
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.find_layers import replace_layer_recursive
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from hub_models.loading import config_override

from .errors import ArgumentError


class TorchEigenCAM(EigenCAM):
    """Eigen-CAM (Muhammad & Yeasin 2020): the activations' first principal component.

    The library computes it with NumPy's SVD, whose BLAS threads ignore `torch.set_num_threads`
    (on a busy 2-core machine that SVD took 2.4 s instead of 50 ms); torch's SVD follows the torch
    thread setting. The component's sign, arbitrary in an SVD, is chosen so the projection
    correlates positively with the mean activation, so the map shows where the features are
    strong, never the background by accident of sign.
    """

    def get_cam_image(self, input_tensor, target_layer, target_category, activations, grads, eigen_smooth):
        batch = torch.nan_to_num(torch.from_numpy(np.ascontiguousarray(activations)).double())
        flat = batch.flatten(2).transpose(1, 2)  # B × HW × C
        centred = flat - flat.mean(dim=1, keepdim=True)
        _, _, vh = torch.linalg.svd(centred, full_matrices=False)
        projection = centred @ vh[:, 0, :, None]  # B × HW × 1
        sign = torch.sign((projection[..., 0] * flat.mean(dim=2)).sum(dim=1, keepdim=True))
        projection = projection[..., 0] * torch.where(sign == 0, 1.0, sign)
        return projection.reshape(batch.shape[0], *batch.shape[2:]).float().numpy()


@dataclass(frozen=True)
class CamMethod:
    name: str
    title: str
    cam_class: type[BaseCAM]
    slow: bool = False


METHODS: dict[str, CamMethod] = {m.name: m for m in (
    CamMethod("gradcam", "Grad-CAM", GradCAM),
    CamMethod("gradcam++", "Grad-CAM++", GradCAMPlusPlus),
    CamMethod("xgradcam", "XGrad-CAM", XGradCAM),
    CamMethod("layercam", "LayerCAM", LayerCAM),
    CamMethod("hirescam", "HiResCAM", HiResCAM),
    CamMethod("eigencam", "Eigen-CAM", TorchEigenCAM),
    CamMethod("scorecam", "Score-CAM", ScoreCAM, slow=True),
    CamMethod("ablationcam", "Ablation-CAM", AblationCAM, slow=True),
)}
FAST_METHODS = tuple(name for name, method in METHODS.items() if not method.slow)
SLOW_METHODS = tuple(name for name, method in METHODS.items() if method.slow)
SLOW_BATCH_SIZE = 32

# ScoreCAM/AblationCAM draw a tqdm bar per call: in an app that is log noise on every request.
_SILENT_TQDM = types.SimpleNamespace(tqdm=functools.partial(tqdm.tqdm, disable=True))
pytorch_grad_cam.score_cam.tqdm = _SILENT_TQDM
pytorch_grad_cam.ablation_cam.tqdm = _SILENT_TQDM


@dataclass
class CamRun:
    """Maps (H×W float32 in [0,1] at the input's size; B×H×W, one per view, inside
    `_explain_views`), the logits of the first forward, the model's own named maps from that
    forward (`FerClassifierOutput.maps`), and per-step timings in ms."""

    maps: dict[str, np.ndarray]
    logits: torch.Tensor
    native: dict[str, torch.Tensor]
    timings_ms: dict[str, float] = field(default_factory=dict)


def validate(methods: Sequence[str] | str) -> list[str]:
    """Normalise method names (case, "GradCAM++" → "gradcam++") and reject unknown ones by name."""
    if isinstance(methods, str):
        methods = [methods]
    methods = list(methods) if isinstance(methods, Iterable) else [methods]
    if any(not isinstance(name, str) for name in methods):
        raise ArgumentError(f"CAM methods must be names, not {methods!r}; known: {', '.join(METHODS)}")
    names = [name.lower().replace("-", "").replace("_", "") for name in methods]
    unknown = [original for original, name in zip(methods, names, strict=True) if name not in METHODS]
    if unknown:
        raise ArgumentError(f"unknown CAM method(s) {', '.join(map(repr, unknown))}; known: {', '.join(METHODS)}")
    return list(dict.fromkeys(names))


class LogitsOnly(nn.Module):
    """A FER model seen as `pixel_values → logits`, remembering the first forward's named maps."""

    def __init__(self, model: nn.Module, keep_maps: bool) -> None:
        super().__init__()
        self.model = model
        self.keep_maps = keep_maps
        self.native: dict[str, torch.Tensor] = {}

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        output = self.model(pixel_values=pixel_values, output_maps=self.keep_maps)
        if self.keep_maps:
            self.native = {name: tensor.detach() for name, tensor in (output.maps or {}).items()}
            self.keep_maps = False
        return output.logits


def explain(model: nn.Module, pixel_values: torch.Tensor, methods: Sequence[str], target: int | None,
            want_native: bool = True) -> CamRun:
    """Run each CAM method for class `target` (None = the predicted class) on a 1×3×H×W input; a
    model with ``config.test_time_flip`` on its two views (module docstring)."""
    if not getattr(model.config, "test_time_flip", False):
        run = _explain_views(model, pixel_values, methods, target, want_native)
        return CamRun({name: views[0] for name, views in run.maps.items()}, run.logits, run.native, run.timings_ms)
    forward_ms = 0.0
    if target is None:  # the class the averaged logits predict, before either view is explained
        start = time.perf_counter()
        with torch.no_grad():
            target = int(model(pixel_values=pixel_values).logits[0].argmax())
        forward_ms = (time.perf_counter() - start) * 1000.0
    with config_override(model, test_time_flip=False):
        run = _explain_views(model, torch.cat([pixel_values, pixel_values.flip(-1)]), methods, target, want_native)
    maps = {name: _rescale(views[0] + views[1][:, ::-1]) for name, views in run.maps.items()}
    native = {name: (tensor[:1] + (tensor[1:].flip(-1) if tensor.ndim >= 3 else tensor[1:])) / 2
              for name, tensor in run.native.items()}
    timings = dict(run.timings_ms)
    timings["forward"] = timings.get("forward", 0.0) + forward_ms
    # Each view's logits are already divided by T, so their mean is the averaged model's output.
    return CamRun(maps, run.logits.mean(dim=0, keepdim=True), native, timings)


def _rescale(heatmap: np.ndarray) -> np.ndarray:
    """Min–max to [0, 1], as pytorch-grad-cam scales each map (a constant map becomes zeros)."""
    low, high = float(heatmap.min()), float(heatmap.max())
    scaled = (heatmap - low) / (high - low) if high > low else np.zeros_like(heatmap)
    return np.ascontiguousarray(scaled, dtype=np.float32)


def _explain_views(model: nn.Module, pixel_values: torch.Tensor, methods: Sequence[str], target: int | None,
                   want_native: bool) -> CamRun:
    """Every method on a B×3×H×W batch of views of one face, all for one class: maps are B×H×W."""
    wrapper = LogitsOnly(model, keep_maps=want_native).eval()
    timings: dict[str, float] = {}
    if not methods:
        start = time.perf_counter()
        with torch.no_grad():
            logits = wrapper(pixel_values)
        timings["forward"] = (time.perf_counter() - start) * 1000.0
        return CamRun({}, logits.detach(), wrapper.native, timings)
    pixel_values = pixel_values.detach()
    views = len(pixel_values)
    targets = None if target is None else [ClassifierOutputTarget(target)] * views
    maps: dict[str, np.ndarray] = {}
    logits = None
    for name in methods:
        start = time.perf_counter()
        maps[name], outputs = _run_one(METHODS[name], wrapper, model, pixel_values, targets)
        timings[f"cam_{name}"] = (time.perf_counter() - start) * 1000.0
        if logits is None:
            logits = outputs.detach()
            # Later methods explain the same class even if the first one picked it by argmax.
            targets = [ClassifierOutputTarget(int(logits[0].argmax()))] * views if targets is None else targets
    return CamRun(maps, logits, wrapper.native, timings)


def _restart_graph(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor | None:
    """Forward hook on the (single) target layer: the head from here on is recorded by autograd.
    The clone makes the new graph start at a non-leaf, so in-place ops downstream stay legal."""
    if not isinstance(output, torch.Tensor):
        return None
    torch.set_grad_enabled(True)
    return output.detach().requires_grad_(True).clone()


def _run_one(method: CamMethod, wrapper: LogitsOnly, model: nn.Module, pixel_values: torch.Tensor,
             targets: list[ClassifierOutputTarget] | None) -> tuple[np.ndarray, torch.Tensor]:
    reshape = getattr(model, "cam_reshape_transform", None)
    layers = list(model.cam_target_layers())
    options = {}
    if method.cam_class is AblationCAM:
        # AblationCAM swaps the target layer for an ablating one that zeroes channels in the
        # layer's own layout: dim 1 for B×C×H×W, the last dim for the channels-last outputs
        # (tokens B×N×C, NHWC) that a cam_reshape_transform exists to convert.
        options["ablation_layer"] = AblationLayerVit() if reshape is not None else AblationLayer()
    gradient_free = issubclass(method.cam_class, (EigenCAM, ScoreCAM, AblationCAM))
    short_backward = not gradient_free and len(layers) == 1
    # Registered before the CAM's own hooks, so they see the restarted output.
    restart = layers[0].register_forward_hook(_restart_graph) if short_backward else None
    # With the graph restarted at the target layer, the backward needs no weight gradients: the
    # head's weight gradients would cost as much again as its input gradients (VGG's FC stack).
    frozen = [p for p in model.parameters() if p.requires_grad] if short_backward else []
    cam = method.cam_class(model=wrapper, target_layers=layers, reshape_transform=reshape, **options)
    # Not the `with` form: BaseCAM.__exit__ prints and swallows exceptions, hiding real errors.
    try:
        for parameter in frozen:
            parameter.requires_grad_(False)
        if method.slow:
            cam.batch_size = SLOW_BATCH_SIZE
        with torch.no_grad() if gradient_free or short_backward else torch.enable_grad():
            grayscale = cam(input_tensor=pixel_values, targets=targets)
        outputs = cam.outputs
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        cam.activations_and_grads.release()
        if restart is not None:
            restart.remove()
        if "ablation_layer" in options:
            _put_back(wrapper, options["ablation_layer"], layers)
    heatmaps = np.nan_to_num(np.asarray(grayscale, dtype=np.float32), nan=0.0)
    return np.clip(heatmaps, 0.0, 1.0), outputs


def _put_back(wrapper: nn.Module, ablation_layer: nn.Module, layers: list[nn.Module]) -> None:
    """AblationCAM restores the target layer only when it succeeds; after a failure the model
    would keep the ablating layer for good, so make sure the original is back."""
    present = {id(module) for module in wrapper.modules()}
    for layer in layers:
        if id(layer) not in present and id(ablation_layer) in present:
            replace_layer_recursive(wrapper, ablation_layer, layer)
