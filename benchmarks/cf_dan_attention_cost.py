"""Attention cost of CF-DAN with and without K/V self-attention distillation (the paper claims −33 %).

MACs (multiply–accumulates of conv/linear/matmul, `torch.utils.flop_counter` FLOPs / 2) of one
image (112 px, the paper's size, or ``--image-size``), per CF-DA block and for the whole model, for
the reconstruction's default (per-group distillation conv), a depthwise distillation conv, and no
distillation. "spatial attention" is the spatial branch (Q/K/V projections, QKᵀ, AV) plus the
distillation operator that feeds its K/V.

    python benchmarks/cf_dan_attention_cost.py
    python benchmarks/cf_dan_attention_cost.py --image-size 48    # the zoo's and the claims runs' size
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from hub_models.cf_dan import CfDanConfig, CfDanForImageClassification

SETTINGS = {
    "no distillation": {"use_distillation": False, "closed_loop": False},
    "distillation r=2 (default, per-group conv)": {},
    "distillation r=2, depthwise conv": {"distill_depthwise": True},
    "distillation r=4 (per-group conv)": {"distill_ratio": 4},
}


def macs_by_module(config: CfDanConfig) -> dict[str, int]:
    with torch.device("meta"):
        model = CfDanForImageClassification(config).eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(1, 3, config.image_size, config.image_size, device="meta"))
    prefix = type(model).__name__ + "."
    counts = {name.removeprefix(prefix): sum(ops.values()) // 2 for name, ops in counter.get_flop_counts().items()}
    counts["total"] = counter.get_total_flops() // 2
    return counts


def block_costs(counts: dict[str, int], block: int = 0) -> dict[str, int]:
    spatial = counts.get(f"blocks.{block}.spatial", 0) + counts.get(f"blocks.{block}.distill", 0)
    return {"spatial": spatial, "channel": counts.get(f"blocks.{block}.channel", 0),
            "block": counts.get(f"blocks.{block}", 0), "total": counts["total"]}


def plain_mhsa_macs(tokens: int, width: int, ratio: int = 1) -> int:
    """Spec §1.1's formula for one MHSA layer with K/V on tokens/ratio tokens."""
    kv_tokens = -(-tokens // ratio)
    return 2 * tokens * width**2 + 2 * kv_tokens * width**2 + 2 * tokens * kv_tokens * width


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=CfDanConfig().image_size)
    size = parser.parse_args().image_size
    rows = {name: block_costs(macs_by_module(CfDanConfig(image_size=size, **overrides)))
            for name, overrides in SETTINGS.items()}
    base = rows["no distillation"]
    print(f"| CF-DAN setting ({size} px, per CF-DA block) | spatial attention MACs | vs no distillation "
          "| whole block MACs | vs | model GMACs |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['spatial'] / 1e6:.3f} M | {row['spatial'] / base['spatial'] - 1:+.1%} "
              f"| {row['block'] / 1e6:.2f} M | {row['block'] / base['block'] - 1:+.1%} | {row['total'] / 1e9:.3f} |")
    config = CfDanConfig(image_size=size)
    tokens, width = config.grid**2, config.hidden_size
    plain, distilled = plain_mhsa_macs(tokens, width), plain_mhsa_macs(tokens, width, 2)
    print(f"\nReference, spec §1.1 formula for one ungrouped MHSA (N={tokens}, d={width}): {plain / 1e6:.1f} M → "
          f"{distilled / 1e6:.1f} M MACs with r=2 ({distilled / plain - 1:+.1%}), distillation operator excluded.")


if __name__ == "__main__":
    main()
