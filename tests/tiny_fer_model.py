"""A tiny model that follows the explanation protocol of fer_base.py, so the workbench tests run
in seconds and do not depend on any real architecture. It exposes one of each native read-out
kind: a spatial map (B×H×W), a stack of maps (B×K×H×W) and a channel-gate vector (B×C)."""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import ImageClassifierOutput

from hub_models.shared.fer_base import FerConfig, FerPreTrainedModel, to_model_channels


class TinyFerConfig(FerConfig):
    model_type = "tiny_fer_workbench_test"

    def __init__(self, width: int = 8, **kwargs) -> None:
        self.width = width
        kwargs.setdefault("image_size", 32)
        super().__init__(**kwargs)


class TinyFerForImageClassification(FerPreTrainedModel):
    config_class = TinyFerConfig

    def __init__(self, config: TinyFerConfig) -> None:
        super().__init__(config)
        w = config.width
        self.stem = nn.Sequential(nn.Conv2d(config.num_channels, w, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.ReLU())
        self.features = nn.Sequential(nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU())
        self.spatial = nn.Conv2d(2 * w, 1, 1)
        self.groups = nn.Conv2d(2 * w, 2, 1)
        self.gate = nn.Linear(2 * w, 2 * w)
        self.classifier = nn.Linear(2 * w, config.num_labels)
        self.post_init()

    def cam_target_layers(self) -> list[nn.Module]:
        return [self.features]

    def attention_names(self) -> tuple[str, ...]:
        return ("spatial", "groups", "gate")

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                output_attentions: bool = False, **kwargs) -> ImageClassifierOutput:
        x = self.features(self.stem(to_model_channels(pixel_values, self.config.num_channels)))
        spatial = torch.sigmoid(self.spatial(x))
        groups = torch.sigmoid(self.groups(x))
        gate = torch.sigmoid(self.gate(x.mean(dim=(2, 3))))
        pooled = (x * spatial).mean(dim=(2, 3)) * gate
        logits = self.classifier(pooled)
        attentions = (spatial[:, 0], groups, gate) if output_attentions else None
        return ImageClassifierOutput(logits=logits, attentions=attentions)


def tiny_model(seed: int = 0, **overrides) -> TinyFerForImageClassification:
    torch.manual_seed(seed)
    return TinyFerForImageClassification(TinyFerConfig(**overrides)).eval()
