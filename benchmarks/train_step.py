"""CPU time of one training step (forward, loss, backward, Adam update) per torch thread count and
memory format, as a markdown table (a benchmark, not a test).

    nice -n 5 python benchmarks/train_step.py --model patt_lite --config image_size=64 --threads 1 2
    python benchmarks/train_step.py --model ddamfn --config image_size=32 --batch-size 32 --channels-last

Why: on a 2-core machine shared with other jobs, two torch threads wait on each other at every op;
this measures how much that costs for a given model, to choose `finetune.py --threads`. Each
setting runs in its own process (the thread pool cannot shrink reliably inside one). Timings depend
on what else runs on the machine: compare settings from one invocation only.
"""

from __future__ import annotations

import argparse
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
times = []
for _ in range(settings["warmup"] + settings["steps"]):
    start = time.perf_counter()
    model(pixel_values=x, labels=y).loss.backward()
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
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    print(f"{args.model} {' '.join(args.config)}, batch {args.batch_size}, median of {args.steps} steps\n")
    print("| threads | memory format | s / step | images / s |\n|---|---|---|---|")
    for threads in args.threads:
        for channels_last in (False, True) if args.channels_last else (False,):
            settings = {"model": args.model, "config": args.config, "threads": threads, "batch": args.batch_size,
                        "channels_last": channels_last, "steps": args.steps, "warmup": args.warmup}
            result = subprocess.run([sys.executable, "-c", STEP, json.dumps(settings)], capture_output=True,
                                    text=True, check=True)
            step = statistics.median(json.loads(result.stdout.strip().splitlines()[-1]))
            layout = "channels-last" if channels_last else "contiguous"
            print(f"| {threads} | {layout} | {step:.3f} | {args.batch_size / step:.0f} |", flush=True)


if __name__ == "__main__":
    main()
