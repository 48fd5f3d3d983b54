"""CPU time of one training step (forward, loss, backward, Adam update) per torch thread count, memory
format, precision and compilation, as a markdown table (a benchmark, not a test).

    nice -n 5 python benchmarks/train_step.py --model patt_lite --config image_size=64 --threads 1 2
    python benchmarks/train_step.py --model ddamfn --config image_size=32 --batch-size 32 --channels-last
    python benchmarks/train_step.py --model cf_dan --config image_size=48 --threads 2 --channels-last \
        --precision fp32 bf16 --compile

Why: on a 2-core machine shared with other jobs, two torch threads wait on each other at every op;
this measures how much that costs for a given model, to choose `finetune.py --threads`; the other
axes are the CPU fast path that `training/recipes.py` chooses per architecture (bf16 autocast,
channels-last, `torch.compile`), as `finetune.py --precision/--channels-last/--compile` apply it. Each
setting runs in its own process (the thread pool cannot shrink reliably inside one). Timings depend
on what else runs on the machine: compare settings from one invocation only.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys

STEP = """
import json, sys, time, torch
from training.model_source import load_model, parse_overrides
settings = json.loads(sys.argv[1])
torch.set_num_threads(settings["threads"])
torch.manual_seed(0)
model = load_model(settings["model"], parse_overrides(settings["config"])).model.train()
size = model.config.image_size
x = torch.randn(settings["batch"], 3, size, size)
y = torch.randint(0, model.config.num_labels, (settings["batch"],))
if settings["channels_last"]:
    model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
optimizer = torch.optim.Adam(model.parameters(), 1e-3)
forward = torch.compile(model) if settings["compile"] else model
times = []
for _ in range(settings["warmup"] + settings["steps"]):
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings["precision"] == "bf16"):
        loss = forward(pixel_values=x, labels=y).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    times.append(time.perf_counter() - start)
print(json.dumps(times[settings["warmup"]:]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="patt_lite", help="architecture, variant, folder or Hub id")
    parser.add_argument("--config", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--channels-last", action="store_true", help="also time the channels-last format")
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16"), default=["fp32"],
                        help="bf16: forward and loss under CPU bf16 autocast, as finetune.py --precision bf16")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd model "
                        "(the first warm-up step includes compilation)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.model} {' '.join(args.config)}, batch {args.batch_size}, median of {args.steps} steps\n")
    print("| threads | memory format | precision | compiled | s / step | images / s |\n|---|---|---|---|---|---|")
    layouts = (False, True) if args.channels_last else (False,)
    compiles = (False, True) if args.compile else (False,)
    for threads, channels_last, precision, compiled in itertools.product(args.threads, layouts, args.precision,
                                                                         compiles):
        settings = {"model": args.model, "config": args.config, "threads": threads, "batch": args.batch_size,
                    "channels_last": channels_last, "precision": precision, "compile": compiled,
                    "steps": args.steps, "warmup": args.warmup}
        result = subprocess.run([sys.executable, "-c", STEP, json.dumps(settings)], capture_output=True, text=True)
        if result.returncode:
            raise SystemExit(f"step failed for {settings}:\n{result.stderr.strip().splitlines()[-1]}")
        step = statistics.median(json.loads(result.stdout.strip().splitlines()[-1]))
        layout = "channels-last" if channels_last else "contiguous"
        print(f"| {threads} | {layout} | {precision} | {'yes' if compiled else 'no'} | {step:.3f} "
              f"| {args.batch_size / step:.0f} |", flush=True)


if __name__ == "__main__":
    main()
