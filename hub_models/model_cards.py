"""The architecture part of a model card: which paper, which variant (corrected or faithful to the
published code) and what that changes. `training.model_card` writes the rest (data, metrics).

Each architecture adds one function to `ARCHITECTURE_SECTIONS`, keyed by its ``model_type``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

from .counting import keras_parameter_count, parameter_count
from .shared.fer_base import FerConfig


def _patt_lite(config: FerConfig) -> list[str]:
    if config.classifier_attention == "batch":
        variant = ("**faithful** (`classifier_attention='batch'`): the notebook's Keras `Attention` on B×32 "
                   "tensors, so every image attends to the *other images of its batch*; a prediction depends "
                   "on the batch it is in (and at batch size 1 the attention does nothing). Evaluate it at "
                   "the batch size it was trained with.")
    else:
        variant = ("**corrected** (`classifier_attention='patch'`, default): the classifier attends over the "
                   "four 2×2 patch tokens of each image, so predictions do not depend on the batch. Same "
                   "parameters as the notebook's layout.")
    if config.backbone == "mobilenet_v2":
        backbone, layer = ("a MobileNetV2 trunk to its 96-channel stage (stride 16, as the paper's cut; **not the "
                           "paper's MobileNetV1**, whose ImageNet weights this project lacks offline)"), "backbone.13"
    else:
        backbone, layer = "MobileNetV1 cut after the block-9 depthwise conv", "backbone.conv_dw_9"
    return [f"PAtt-Lite (Ngwe et al., IEEE Access 2024; spec §3): {backbone}, patch extraction to a 2×2 grid, "
            "attention classifier.", f"- variant: {variant}",
            f"- input {config.image_size} px (paper: 224); Grad-CAM layer `{layer}`."]


def _ddamfn(config: FerConfig) -> list[str]:
    return ["DDAMFN (Zhang et al., Electronics 2023; spec §4): MixedFeatureNet backbone, "
            f"{config.num_heads} dual-direction attention heads fused by an element-wise max, GDConv head; "
            f"training loss CE + {config.attention_loss_weight}·attention-diversity loss.",
            "- variant: faithful to the authors' code; modules their code defines but never runs are left "
            "out, so the parameters equal the paper's executed count (4,105,999 at 7 classes, 112 px). "
            "Loading the authors' `.pth` checkpoints would need a key mapping.",
            "- Grad-CAM layer `features.conv_6_sep` (the authors' choice)."]


def _attention_cnn(config: FerConfig) -> list[str]:
    if config.keras_layout:
        variant = ("**faithful Keras layout** (`keras_layout=True`): BatchNorm over the image-height axis "
                   "and ECA as one scalar gate with k·C weights and the log₂C + ½ kernel, as in the published "
                   "code; reproduces the published parameter counts; the BN ties it to its input size.")
    else:
        variant = ("**corrected** (`keras_layout=False`, default): BatchNorm over channels and ECA as a "
                   "per-channel gate with the paper's kernel rule. Parameter counts therefore differ from the "
                   "published table (BN holds 4·C instead of 4·H numbers; ECA k instead of k·C weights).")
    return [f"Attention CNN (Miskow & Altahhan, ICONIP 2022; spec §2): `{config.backbone}` with "
            f"`{config.attention}` attention and {config.hidden_act.upper()} activations.",
            f"- variant: {variant}"]


def _swin_ema(config: FerConfig) -> list[str]:
    parts = {(False, False): "Swin-T baseline", (False, True): "Swin-T + EMA", (True, False): "Swin-T + SPST",
             (True, True): "Swin-T + SPST + EMA (the proposed model)"}
    ema = f", EMA after stage {config.ema_stage}" if config.use_ema else ""
    grid = config.image_size // config.patch_size // 8  # three patch mergings after the 4-px patches
    layer = (f"`spst.converter.conv` ({config.spst_dim}×{grid}×{grid})" if config.use_spst
             else f"`norm` over the {grid}×{grid} tokens")
    return ["Lightweight Swin-T + SPST + EMA (Li et al., Opto-Electronic Engineering 2025; spec §5): Swin-T, "
            "stage 4 replaced by SPST (SparseSwin's SparTa block), EMA on a post-merging map.",
            f"- variant: {parts[(config.use_spst, config.use_ema)]}{ema}; the layout is the spec's "
            "reconstruction (no public code), which reproduces all seven parameter counts of the paper's "
            "Tables 1 and 5 exactly (at 224 px, 7 classes).",
            f"- input {config.image_size} px (paper: 224); Grad-CAM layer {layer}."]


def _cf_dan(config: FerConfig) -> list[str]:
    distillation = (f"K/V distillation r={config.distill_ratio}" + (" with closed loop" if config.closed_loop else "")
                    if config.use_distillation else "no distillation")
    gates = "C²-sigmoid gates" if config.activation == "c2" else "sigmoid gates"
    backbone = ("a MobileNetV2 trunk (to its 96-channel stage)" if config.backbone == "mobilenet_v2"
                else "IR-50 stages 1–3")
    return ["CF-DAN (Zhang et al., Computational Visual Media 2024; spec §1): "
            f"{backbone}, {config.num_layers} cross-fusion dual-attention blocks ({config.num_groups} groups).",
            "- variant: **reconstruction** — no code or full text is public; every unsourced choice is a config "
            "field marked GUESS (`hub_models/cf_dan/MODEL_CARD.md`). This one: "
            f"{distillation}, {config.activation} FFN activation, {gates}.",
            f"- input {config.image_size} px; Grad-CAM layer `norm` over the {config.grid}×{config.grid} tokens."]


ARCHITECTURE_SECTIONS: dict[str, Callable[[FerConfig], list[str]]] = {
    "patt_lite": _patt_lite,
    "ddamfn": _ddamfn,
    "attention_cnn": _attention_cnn,
    "swin_ema": _swin_ema,
    "cf_dan": _cf_dan,
}


def put_section(text: str, section: str, start: str, end: str, before: str) -> str:
    """A card's text with its `start`…`end` marked section replaced by `section`, or, the first
    time, inserted before the `before` heading line (at the end when the card has none)."""
    if start in text and end in text:
        head, rest = text.split(start, 1)
        return head + section.rstrip("\n") + rest.split(end, 1)[1]
    marker = f"\n{before}\n"
    return text.replace(marker, "\n" + section + marker, 1) if marker in text else text + "\n" + section


def architecture_section(model) -> str:
    """Markdown for a card's "Architecture" section (empty for architectures without an entry)."""
    describe = ARCHITECTURE_SECTIONS.get(model.config.model_type)
    if describe is None:
        return ""
    counts = (f"- parameters: {parameter_count(model):,} (Keras-style count with BN statistics: "
              f"{keras_parameter_count(model):,})")
    return "\n".join(["## Architecture", "", *describe(model.config), paper_differences(model.config), counts]) + "\n"


NOT_ARCHITECTURE = {"self", "kwargs", "num_labels", "id2label", "label2id", "calibration_temperature"}


def paper_differences(config: FerConfig) -> str:
    """Which of the architecture's settings this checkpoint changes from the paper's (the config
    class's defaults hold the paper's configuration), so a card never passes a smaller or faster
    variant off as the published model."""
    paper = type(config)()
    names = [name for name in inspect.signature(type(config).__init__).parameters if name not in NOT_ARCHITECTURE]
    changed = [f"`{name}={getattr(config, name)!r}` (paper: {getattr(paper, name)!r})" for name in names
               if hasattr(paper, name) and _plain(getattr(config, name)) != _plain(getattr(paper, name))]
    if not changed:
        return "- configuration: the paper's (the architecture's defaults)"
    return "- differs from the paper's configuration (the architecture's defaults): " + ", ".join(changed)


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
