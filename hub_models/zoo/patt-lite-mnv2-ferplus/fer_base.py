"""What every FER Workbench model shares: label sets, the common config fields, and the
explanation protocol the workbench reads.

This file is linked into every architecture folder so that a saved checkpoint is a
self-contained remote-code folder (transformers copies single-dot imports next to the
modeling file). It may import only third-party packages, never `hub_models`.

The explanation protocol (read by `workbench`, never by architecture name):

* ``config.id2label`` – the label map; ``config.image_size``, ``config.num_channels``,
  ``config.image_mean``, ``config.image_std`` – the preprocessing (inputs always arrive as
  3-channel tensors normalised with mean/std; 1-channel models convert internally);
  ``config.face_template`` – how a face should be cropped for this checkpoint;
  ``config.test_time_flip`` – the model's logits average the face and its mirror image, so a map
  of one view explains half of the decision: the workbench explains both views, each with the
  flag switched off for the moment.
* ``model.cam_target_layers()`` – modules whose output is a spatial feature map for Grad-CAM.
* ``model.cam_reshape_transform`` – ``None`` or a callable turning that output into B×C×H×W.
* ``model(pixel_values, output_maps=True).maps`` – the model's own attention read-outs by
  name (:class:`FerClassifierOutput` documents their shapes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

FER2013_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FERPLUS_LABELS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt")
CKPLUS_LABELS = ("anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)
FACE_TEMPLATES = ("fer2013", "arcface")


def require(condition: bool, field: str, message: str) -> None:
    """Raise a ValueError that names the offending config field."""
    if not condition:
        raise ValueError(f"invalid config value for '{field}': {message}")


def require_choice(field: str, value: Any, choices: Iterable[Any]) -> None:
    choices = tuple(choices)
    require(value in choices, field, f"got {value!r}, expected one of {', '.join(map(repr, choices))}")


def require_positive(field: str, value: Any) -> None:
    require(isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0,
            field, f"got {value!r}, expected a positive number")


class FerConfig(PretrainedConfig):
    """Fields shared by every FER model: input geometry, normalisation and labels.

    Args:
        image_size: side of the square input the model was designed or trained for.
        num_channels: 1 for grayscale models (RGB input is converted to luminance inside the
            model), 3 for colour models.
        image_mean, image_std: per-channel normalisation of the 3-channel input tensor.
        face_template: how faces are cropped for this checkpoint: ``"fer2013"`` (loose crop,
            the face fills the frame, as in FER2013/CK+) or ``"arcface"`` (5-point similarity
            alignment to the 112×112 insightface template, as DDAMFN/POSTER use).
        calibration_temperature: the model's logits are divided by it (temperature scaling, fitted on the
            validation split after training), so every softmax of them — pipeline, workbench,
            app — gives calibrated probabilities. 1.0 = uncalibrated; predictions never change.
        test_time_flip: outside training, the logits are the mean of the logits of the input and
            of its left-right mirror image (flip test-time augmentation). A face and its mirror
            then get the same prediction, and accuracy rises by about half a point on FER2013
            (the gain is measured per checkpoint on the validation split before it is switched on).
        int8_linears: names of ``nn.Linear`` modules whose weights the checkpoint stores as int8
            with one scale per output row (:class:`Int8Linear`), a storage format that halves the
            fp16 bytes of the largest dense layers (VGG's 4096-wide head) at a measured accuracy
            cost; the model computes in float as usual. Training turns them back into float layers.
    """

    def __init__(
        self,
        image_size: int = 48,
        num_channels: int = 1,
        image_mean: Sequence[float] = HALF,
        image_std: Sequence[float] = HALF,
        face_template: str = "fer2013",
        calibration_temperature: float = 1.0,
        test_time_flip: bool = False,
        int8_linears: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(enumerate(FER2013_LABELS))
            kwargs["label2id"] = {name: i for i, name in enumerate(FER2013_LABELS)}
        self.image_size = image_size
        self.num_channels = num_channels
        self.image_mean = list(image_mean)
        self.image_std = list(image_std)
        self.face_template = face_template
        self.calibration_temperature = calibration_temperature
        self.test_time_flip = test_time_flip
        self.int8_linears = list(int8_linears)
        super().__init__(**kwargs)
        require(isinstance(image_size, int) and image_size >= 8, "image_size",
                f"got {image_size!r}, expected an integer ≥ 8")
        require_choice("num_channels", num_channels, (1, 3))
        require(len(self.image_mean) == 3 and len(self.image_std) == 3, "image_mean/image_std",
                "expected three values each (inputs are always 3-channel tensors)")
        require(all(s > 0 for s in self.image_std), "image_std", "values must be positive")
        require_choice("face_template", face_template, FACE_TEMPLATES)
        require_positive("calibration_temperature", calibration_temperature)
        require_choice("test_time_flip", test_time_flip, (False, True))
        require(not isinstance(int8_linears, str) and all(isinstance(n, str) and n for n in self.int8_linears),
                "int8_linears", f"got {int8_linears!r}, expected a list of module names")


@dataclass
class FerClassifierOutput(ModelOutput):
    """What every FER model returns.

    Args:
        loss: the classification loss, when ``labels`` were given.
        logits: B×num_labels, divided by ``config.calibration_temperature``.
        maps: only with ``output_maps=True``: the model's native attention read-outs by name, in
            the order the model computes them, batch first. Each is one of
            ``B×H×W`` – a spatial map over the input;
            ``B×K×H×W`` – K spatial maps (heads, groups or channels; the workbench averages
            over K);
            ``B×C`` – a vector (channel gates, weights over a batch), drawn as bars.
            A model without attention modules returns an empty dict.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    maps: dict[str, torch.Tensor] | None = None


def to_model_channels(pixel_values: torch.Tensor, num_channels: int) -> torch.Tensor:
    """Accept the processor's 3-channel tensor for grayscale models (and 1-channel tensors
    for colour models), so one preprocessing path serves every model."""
    have = pixel_values.shape[1]
    if have == num_channels:
        return pixel_values
    if num_channels == 1:
        return pixel_values.mean(dim=1, keepdim=True)
    if have == 1:
        return pixel_values.expand(-1, num_channels, -1, -1)
    raise ValueError(f"pixel_values has {have} channels; this model takes {num_channels} (or 1/3)")


def _average_with_mirror(module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> Any:
    """Forward hook (``config.test_time_flip``, outside training): average the logits with those
    of the mirrored input. The second view runs the plain ``forward``, which no hook sees; the loss
    and the maps stay those of the first view."""
    if module.training or not getattr(module.config, "test_time_flip", False):
        return output
    if getattr(output, "logits", None) is None:
        return output
    pixel_values = kwargs["pixel_values"] if "pixel_values" in kwargs else args[0]
    output.logits = (output.logits + module.forward(pixel_values.flip(-1)).logits) / 2
    return output


def _apply_temperature(module: nn.Module, _inputs: Any, output: Any) -> Any:
    """Forward hook: calibrated logits for every caller (the loss inside forward saw the raw ones)."""
    temperature = float(getattr(module.config, "calibration_temperature", 1.0) or 1.0)
    if temperature != 1.0 and getattr(output, "logits", None) is not None:
        output.logits = output.logits / temperature
    return output


def classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on class indices, or on a label distribution (FERPlus vote shares) when
    ``labels`` is a float tensor of shape B×num_labels."""
    if labels.is_floating_point() and labels.ndim == 2:
        return torch.sum(-labels * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, labels.long())


def quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 with one scale per output row: each row's largest magnitude maps to 127."""
    scale = weight.detach().float().abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127
    return torch.round(weight.detach().float() / scale).clamp_(-127, 127).to(torch.int8), scale


class Int8Linear(nn.Module):
    """A dense layer whose weight is held as int8 rows and scales, as the checkpoint stores it.

    The float weight is rebuilt on first use and kept until the stored tensors change (a load, a
    move to another device), so inference costs what a float layer costs. The int8 weight is a
    frozen parameter, so parameter counts match the float model's; training needs float layers
    (:meth:`FerPreTrainedModel.float_linears`)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.zeros(out_features, in_features, dtype=torch.int8), requires_grad=False)
        self.register_buffer("weight_scale", torch.ones(out_features, 1))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self._float: tuple[tuple, torch.Tensor] | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None)
        weight, scale = quantize_rows(linear.weight)
        layer.weight.data, layer.weight_scale.data = weight, scale
        if linear.bias is not None:
            layer.bias.data = linear.bias.detach().float().clone()
        return layer

    def float_weight(self) -> torch.Tensor:
        stored = (self.weight, self.weight_scale)
        key = tuple((t.data_ptr(), t._version, t.dtype, t.device) for t in stored)
        if self._float is None or self._float[0] != key:
            # An ordinary tensor even when first built under inference_mode: Grad-CAM later
            # back-propagates through this layer and autograd refuses inference tensors.
            with torch.inference_mode(False), torch.no_grad():
                self._float = (key, self.weight.to(self.weight_scale.dtype) * self.weight_scale)
        return self._float[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.float_weight()
        bias = self.bias
        if not torch.is_autocast_enabled(x.device.type):
            weight = weight.to(x.dtype)
            bias = None if bias is None else bias.to(x.dtype)
        return F.linear(x, weight, bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 rows"


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def int8_storage(model: nn.Module, names: Sequence[str]) -> None:
    """Swap the named ``nn.Linear`` modules for :class:`Int8Linear` (their weights quantised)."""
    for name in names:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            module = None
        require(isinstance(module, (nn.Linear, Int8Linear)), "int8_linears",
                f"{name!r} is not a dense (Linear) layer of {type(model).__name__}")
        if isinstance(module, nn.Linear):
            _replace(model, name, Int8Linear.from_linear(module))


class FerPreTrainedModel(PreTrainedModel):
    """Base of every FER model: weight init, save extras and the explanation protocol."""

    config_class = FerConfig
    main_input_name = "pixel_values"
    cam_reshape_transform: Callable[[torch.Tensor], torch.Tensor] | None = None

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # transformers' `init` helpers skip tensors already loaded from a checkpoint.
        if isinstance(module, (nn.Conv1d, nn.Conv2d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=0.02)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm)):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)

    def post_init(self) -> None:
        int8_storage(self, getattr(self.config, "int8_linears", ()))
        super().post_init()
        # In this order: the mirror's logits are averaged in before the temperature divides them.
        self.register_forward_hook(_average_with_mirror, with_kwargs=True)
        self.register_forward_hook(_apply_temperature)

    def float_linears(self) -> list[str]:
        """Turn every :class:`Int8Linear` back into a trainable float ``nn.Linear`` with the same
        outputs and clear ``config.int8_linears``; returns the names converted. (A method, not a
        function: each architecture folder holds its own copy of this file, and so of the class.)"""
        names = [name for name, module in self.named_modules() if isinstance(module, Int8Linear)]
        for name in names:
            stored = self.get_submodule(name)
            linear = nn.Linear(stored.in_features, stored.out_features, stored.bias is not None,
                               device=stored.weight.device)
            with torch.no_grad():
                linear.weight.copy_(stored.float_weight())
                if stored.bias is not None:
                    linear.bias.copy_(stored.bias)
            _replace(self, name, linear)
        self.config.int8_linears = []
        return names

    def cam_target_layers(self) -> list[nn.Module]:
        raise NotImplementedError(f"{type(self).__name__} does not name its Grad-CAM target layers")

    def image_processor(self):
        """The processor that turns any PIL image into this model's 3-channel input."""
        from transformers import ViTImageProcessor

        size = self.config.image_size
        return ViTImageProcessor(
            size={"height": size, "width": size},
            image_mean=list(self.config.image_mean),
            image_std=list(self.config.image_std),
            do_convert_rgb=True,
        )

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any):
        # transformers 5 leaves the weights memory-mapped from model.safetensors at unaligned
        # addresses, and MKL's sgemm then rounds differently (~1e-8) from the same weights in
        # ordinary memory: copy them so a loaded model reproduces the saved one bit for bit (and
        # no longer holds the file open).
        model = super().from_pretrained(*args, **kwargs)
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                tensor.data = tensor.data.clone()
        return model

    def save_pretrained(self, save_directory, *args: Any, **kwargs: Any):
        # AutoModel should give users the classifier (it predicts); transformers maps only one
        # auto class per model class, so add the AutoModel entry by hand.
        module = type(self).__module__.rsplit(".", 1)[-1]
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map["AutoModel"] = f"{module}.{type(self).__name__}"
        self.config.auto_map = auto_map
        result = super().save_pretrained(save_directory, *args, **kwargs)
        self.image_processor().save_pretrained(save_directory)
        return result
