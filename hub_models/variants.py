"""Named model variants: name → (architecture, config overrides). One list that tests, benchmarks,
training and the app share; each engineer appends the variants of their architecture."""

from __future__ import annotations

from typing import Any

from .attention_cnn.configuration_attention_cnn import ATTENTIONS, BACKBONES
from .registry import create_model
from .shared.fer_base import FerPreTrainedModel

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    # PAtt-Lite: corrected patch-token attention (default) and the notebook's batch attention, at the
    # paper's 224 px and at 112 px (FER2013 faces are 48 px: upsampling them to 224 costs 4× the MACs).
    "patt_lite": ("patt_lite", {}),
    "patt_lite_faithful": ("patt_lite", {"classifier_attention": "batch"}),
    "patt_lite_112": ("patt_lite", {"image_size": 112}),
    # … and on a MobileNetV2 trunk cut at the same stride, the MobileNet ImageNet weights exist for offline.
    "patt_lite_mobilenet_v2": ("patt_lite", {"backbone": "mobilenet_v2", "image_size": 112}),
    # DDAMFN: the paper's 2 heads on 112 px ArcFace-aligned crops.
    "ddamfn": ("ddamfn", {}),
    # Attention CNNs: every backbone × attention, corrected blocks (…) and the Keras layout of the
    # published code (…_keras, H-axis BN and scalar ECA) that reproduces the published parameter counts.
    **{
        f"{backbone}_{attention}{suffix}": ("attention_cnn", {"backbone": backbone, "attention": attention,
                                                              "keras_layout": keras})
        for keras, suffix in ((False, ""), (True, "_keras"))
        for backbone in BACKBONES
        for attention in ATTENTIONS
    },
    # Swin-T + SPST + EMA (spec §5): the proposed model and the three ablations of the paper's Table 1,
    # 224 px RGB (23,186,739 / 27,524,737 / 27,526,225 / 23,185,251 parameters with 7 classes).
    "swin_ema": ("swin_ema", {}),
    "swin_t": ("swin_ema", {"use_spst": False, "use_ema": False}),
    "swin_t_ema": ("swin_ema", {"use_spst": False}),
    "swin_t_spst": ("swin_ema", {"use_ema": False}),
    # CF-DAN reconstruction (spec §1, 112 px ArcFace-aligned): C² activation with K/V distillation and
    # closed loop (default), without distillation, and with GELU / ELU (sigmoid gates) instead of C².
    "cf_dan": ("cf_dan", {}),
    "cf_dan_no_distill": ("cf_dan", {"use_distillation": False, "closed_loop": False}),
    "cf_dan_gelu": ("cf_dan", {"activation": "gelu"}),
    "cf_dan_elu": ("cf_dan", {"activation": "elu"}),
    # … and on a MobileNetV2 trunk, the backbone ImageNet weights exist for offline (7×7 tokens at 112 px).
    "cf_dan_mobilenet_v2": ("cf_dan", {"backbone": "mobilenet_v2"}),
}


def create_variant(name: str, **overrides: Any) -> FerPreTrainedModel:
    """A freshly initialised model of the named variant (``overrides`` win over the variant's)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown model variant {name!r}; known variants: {', '.join(VARIANTS)}")
    architecture, config = VARIANTS[name]
    return create_model(architecture, **{**config, **overrides})
