"""Re-estimating a model's BatchNorm statistics on training faces ("precise BN").

Why: the running mean and variance a BatchNorm layer keeps during training are a momentum average
over batches seen with older weights (and, under a weight average, not the statistics of the
averaged weights at all). After a fast schedule they can sit far from the statistics the final
weights produce. DDAMFN fine-tuned on FERPlus is the case in point: on about 1% of the faces the
mismatch let the activations run away through the 16 residual blocks of stage 4 (logits up to
440, nearly all of those faces wrong); with statistics recomputed from 10,240 training faces one
face of 7,098 still did, and PublicTest accuracy rose from 80.89% to 81.96%. The pass needs no
labels and changes no weight, only the buffers that inference uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from hub_models.loading import config_override

from .files import write_atomically

DEFAULT_BATCH_SIZE = 256


def batchnorm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [module for module in model.modules()
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats]


@torch.no_grad()
def recompute_batchnorm_statistics(model: nn.Module, dataset: torch.utils.data.Dataset, collator: Any,
                                   faces: int, batch_size: int = DEFAULT_BATCH_SIZE, seed: int = 0) -> int:
    """Replace every BatchNorm layer's running statistics by their average over a fixed random
    sample of `faces` items of `dataset` (each batch counts equally), with the rest of the model in
    inference mode (no dropout; one view even where the config averages the mirror image);
    returns how many faces were used (0 when the model has no BatchNorm or `faces` is 0)."""
    layers = batchnorm_layers(model)
    if not layers or faces <= 0 or len(dataset) == 0:
        return 0
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:faces].tolist()
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, order), batch_size=batch_size,
                                         shuffle=False, collate_fn=collator)
    parameter = next(model.parameters())
    was_training, momenta = model.training, [layer.momentum for layer in layers]
    model.eval()
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the pass, not a decaying one
        layer.train()
    try:
        with config_override(model, test_time_flip=False):
            for batch in loader:
                model(pixel_values=batch["pixel_values"].to(parameter.device, dtype=parameter.dtype))
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        model.train(was_training)
    return len(order)


def batchnorm_statistics(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of the buffers `recompute_batchnorm_statistics` replaces, by state-dict name (to put
    back with ``load_state_dict(..., strict=False)``)."""
    layers = {id(layer) for layer in batchnorm_layers(model)}
    return {f"{name}.{buffer}": value.detach().clone()
            for name, module in model.named_modules() if id(module) in layers
            for buffer, value in module.named_buffers(recurse=False)}


def write_batchnorm_statistics(model: nn.Module, weights: Path) -> list[str]:
    """Put the model's BatchNorm buffers into a saved folder's ``model.safetensors``, each in the
    dtype stored there (an fp16 zoo entry stays fp16), every other tensor and the metadata as they
    were; returns the tensor names written."""
    tensors = load_file(str(weights))
    with safe_open(str(weights), "pt") as handle:  # the header only: its metadata
        metadata = handle.metadata()
    statistics = batchnorm_statistics(model)
    missing = sorted(set(statistics) - set(tensors))
    if missing:
        raise ValueError(f"{weights} has no {missing[0]!r} (and {len(missing) - 1} more BatchNorm buffers): "
                         "it is not this model's weights file")
    for name, value in statistics.items():
        tensors[name] = value.to(tensors[name].dtype).contiguous()
    write_atomically(weights, lambda temporary: save_file(tensors, str(temporary), metadata=metadata))
    return sorted(statistics)
