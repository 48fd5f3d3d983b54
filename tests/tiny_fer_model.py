"""A tiny model that follows the explanation protocol of fer_base.py, so the workbench tests run
in seconds and do not depend on any real architecture. It exposes one of each native read-out
kind: a spatial map (B×H×W), a stack of maps (B×K×H×W) and a channel-gate vector (B×C)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hub_models.shared.fer_base import FerClassifierOutput, FerConfig, FerPreTrainedModel, to_model_channels


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

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                output_maps: bool = False, **kwargs) -> FerClassifierOutput:
        x = self.features(self.stem(to_model_channels(pixel_values, self.config.num_channels)))
        spatial = torch.sigmoid(self.spatial(x))
        groups = torch.sigmoid(self.groups(x))
        gate = torch.sigmoid(self.gate(x.mean(dim=(2, 3))))
        pooled = (x * spatial).mean(dim=(2, 3)) * gate
        logits = self.classifier(pooled)
        maps = {"spatial": spatial[:, 0], "groups": groups, "gate": gate} if output_maps else None
        return FerClassifierOutput(logits=logits, maps=maps)


def tiny_model(seed: int = 0, **overrides) -> TinyFerForImageClassification:
    torch.manual_seed(seed)
    return TinyFerForImageClassification(TinyFerConfig(**overrides)).eval()



COLOURS = ("red", "green", "blue")


def colour_model() -> TinyFerForImageClassification:
    """The tiny model with hand-set weights: class k is "how much of colour channel k is there",
    pooled over the image. Its correct explanation is known: the target colour's square."""
    model = tiny_model(0, num_channels=3, id2label=dict(enumerate(COLOURS)),
                       label2id={name: i for i, name in enumerate(COLOURS)})
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        first, second, features = model.stem[0], model.stem[2], model.features[0]
        for channel in range(3):
            first.weight[channel, channel, 1, 1] = 1.0
            second.weight[channel, channel] = 1.0 / 9.0
            features.weight[channel, channel, 1, 1] = 1.0
            model.classifier.weight[channel, channel] = 10.0
        model.spatial.bias.fill_(10.0)  # attention ≈ 1 everywhere: it does not change the decision
        model.gate.bias.fill_(10.0)
    return model


def two_squares(size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A normalised 1×3×size×size input with a red square top-left and a green one bottom-right,
    and the two squares' masks."""
    image = torch.zeros(1, 3, size, size)
    red = torch.zeros(size, size, dtype=torch.bool)
    green = torch.zeros(size, size, dtype=torch.bool)
    red[4:12, 4:12] = True
    green[20:28, 18:26] = True
    image[0, :, red] = torch.tensor([1.0, -1.0, -1.0])[:, None]
    image[0, :, green] = torch.tensor([-1.0, 1.0, -1.0])[:, None]
    return image, red, green


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """On a shared 2-core machine two spinning OpenMP threads per process make small models up to
    100× slower; one thread keeps these tests fast and steady (speed is the benchmark's job)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
