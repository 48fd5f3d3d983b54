"""Does the map point at the region whose removal hurts? A causal check of region attribution.

A map's region shares (`regions.region_shares`) say where the map puts its mass; they do not say
that the model needs those regions. Here each face region in turn is blurred away (the same strong
blur that starts the insertion curve, so what replaces the region is the face's own colours without
its detail) and the explained class's probability is read again. A region the model relies on
lowers it.

A map's agreement with the probe is the drop its mass would predict, Σ share(r)·drop(r) over the
face regions, as a fraction of the largest single drop: 1 when all of the map's mass lies on the
region whose removal hurts most, about 0 when it lies where removal changes nothing, negative when
it lies where removal *helps* the class. A rank correlation over all regions was tried first and
rejected: blurring a region next to an important one can raise the probability (the important
region's colours bleed in), which a rank statistic punishes even for a map that is exactly right.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from hub_models.preprocessing import pixel_values

from .faithfulness import blur
from .models import LoadedModel
from .regions import REGIONS, region_masks
from .result import ModelAnalysis


@dataclass(frozen=True)
class RegionProbe:
    """The explained class's probability on the intact face and with each region blurred away,
    and each map's agreement with the drops (NaN when no region's removal lowers the probability)."""

    target: str
    intact: float
    occluded: dict[str, float]
    agreement: dict[str, float]

    @property
    def drops(self) -> dict[str, float]:
        """How much blurring each region lowers the probability (negative: it raises it)."""
        return {region: self.intact - value for region, value in self.occluded.items()}

    def as_dict(self) -> dict[str, dict[str, float]]:
        """What `ModelAnalysis.region_probe` keeps (bundles, CSV rows)."""
        return {"drop": self.drops, "captured": dict(self.agreement)}


def probe_regions(loaded: LoadedModel, analysis: ModelAnalysis) -> RegionProbe:
    """Blur each face region of the analysed face in turn (one batch) and compare the probability
    drops with each map's region shares (its CAMs, and its spatial native maps). The result is also
    kept in `analysis.region_probe`, so a saved bundle carries it."""
    face = analysis.face
    masks = region_masks(analysis.landmarks, face.shape[:2])
    present = [region for region in REGIONS if masks[region].any()]
    intact = pixel_values(loaded.processor, face)
    blurred = blur(intact[0])
    batch = [intact[0]]
    for region in present:
        mask = torch.from_numpy(masks[region])[None]
        batch.append(torch.where(mask, blurred, intact[0]))
    target = loaded.labels.index(analysis.target)
    with torch.no_grad():
        probabilities = torch.softmax(loaded.model(pixel_values=torch.stack(batch)).logits.float(), dim=-1)
    values = probabilities[:, target].tolist()
    occluded = dict(zip(present, values[1:], strict=True))
    drops = [values[0] - value for value in values[1:]]
    agreement = {name: captured_drop([shares.get(region, 0.0) for region in present], drops)
                 for name, shares in analysis.regions.items()}
    probe = RegionProbe(analysis.target, values[0], occluded, agreement)
    analysis.region_probe = probe.as_dict()
    return probe


def captured_drop(shares: list[float], drops: list[float]) -> float:
    """Σ share·drop / max drop (see the module docstring); NaN when no removal lowers the class."""
    largest = max(drops, default=0.0)
    if largest <= 1e-6:
        return float("nan")
    return float(np.dot(shares, drops) / largest)
