"""Size and CPU speed of the named model variants, as a markdown table (a benchmark, not a test).

    nice -n 10 python benchmarks/models.py --threads 2                # every non-Keras-layout variant
    python benchmarks/models.py --variants 'patt_lite*' ddamfn --runs 30
    python benchmarks/models.py --variants 'resnet50_*' --keras      # with the Keras-layout variants

Per variant: parameters, MACs of one image (``torch.utils.flop_counter``; MACs = FLOPs / 2, counting
conv/linear/matmul as the spec does), latency at batch 1 (median of ``--runs`` calls after warm-up)
and throughput at batch 32 (images/s, median of ``--batch-runs`` calls). Fresh weights: speed does
not depend on them.
"""

from __future__ import annotations

import argparse
import fnmatch
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from hub_models.counting import parameter_count
from hub_models.variants import VARIANTS, create_variant
from training.model_source import parse_overrides


def select(patterns: list[str] | None, keras: bool) -> list[str]:
    """Variants matching any pattern; the Keras-layout attention CNNs only with ``keras`` (their
    compute equals the corrected ones')."""
    names = [name for name in VARIANTS if keras or not name.endswith("_keras")]
    chosen = [name for name in names if not patterns or any(fnmatch.fnmatchcase(name, p) for p in patterns)]
    if not chosen:
        raise SystemExit(f"no variant matches {patterns}; known variants: {', '.join(VARIANTS)}")
    return chosen


def median_seconds(model: torch.nn.Module, x: torch.Tensor, runs: int, warmup: int) -> float:
    times = []
    for index in range(warmup + runs):
        start = time.perf_counter()
        model(x)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(name: str, runs: int, batch: int, batch_runs: int, warmup: int,
            overrides: dict[str, object]) -> dict[str, object]:
    model = create_variant(name, **overrides).eval()
    size = model.config.image_size
    one = torch.randn(1, 3, size, size)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            model(one)
        latency = median_seconds(model, one, runs, warmup)
        batch_time = median_seconds(model, torch.randn(batch, 3, size, size), batch_runs, 1)
    return {
        "variant": name, "architecture": VARIANTS[name][0], "input": f"{size}×{size}×{model.config.num_channels}",
        "params (M)": f"{parameter_count(model) / 1e6:.3f}", "MACs (G)": f"{counter.get_total_flops() / 2e9:.3f}",
        "latency b1 (ms)": f"{latency * 1e3:.1f}", f"throughput b{batch} (img/s)": f"{batch / batch_time:.1f}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", help="names or shell patterns (default: all)")
    parser.add_argument("--keras", action="store_true", help="include the *_keras attention-CNN variants")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                        help="config override for every variant, e.g. image_size=48 (repeatable)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--runs", type=int, default=20, help="timed batch-1 calls (≥ 20 for the README)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batch-runs", type=int, default=3, help="timed calls at --batch")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.config)
    rows = []
    for name in select(args.variants, args.keras):
        rows.append(measure(name, args.runs, args.batch, args.batch_runs, args.warmup, overrides))
        print(f"measured {name}", flush=True, file=sys.stderr)
    header = list(rows[0])
    print(f"torch {torch.__version__}, {args.threads} CPU threads, batch-1 median of {args.runs} runs, "
          f"batch-{args.batch} median of {args.batch_runs} runs\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in header) + " |")


if __name__ == "__main__":
    main()
