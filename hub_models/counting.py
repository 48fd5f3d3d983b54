"""Parameter counts the way the papers report them, to check our models against the literature."""

from __future__ import annotations

import torch
from torch import nn


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def keras_parameter_count(model: nn.Module) -> int:
    """Keras' ``model.summary()`` total: parameters plus BN moving mean/variance (4 numbers per
    normalised feature), which is what Keras-built papers publish."""
    running = sum(b.numel() for name, b in model.named_buffers() if name.rsplit(".", 1)[-1] in
                  ("running_mean", "running_var"))
    return parameter_count(model) + running


def executed_parameter_count(model: nn.Module, *inputs: torch.Tensor) -> int:
    """Parameters of the modules that actually run in one forward pass (what `thop` counts): a
    module defined but never called adds nothing."""
    ran: set[nn.Module] = set()
    hooks = [m.register_forward_hook(lambda module, _i, _o: ran.add(module)) for m in model.modules()]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return sum(p.numel() for m in ran for p in m.parameters(recurse=False))
