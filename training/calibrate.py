"""Fit a model's temperature on the validation split and measure its calibration on the test split.

    python training/calibrate.py --model runs/patt-lite --dataset fer2013
    python training/calibrate.py --model fer-workbench/patt-lite-fer2013 --output-dir eval/calibration --no-write

Writes ``calibration.json`` (ECE with 15 bins, NLL and reliability bins before and after, for both
splits) and ``reliability_<split>.png`` to the model folder (or ``--output-dir``), and stores the
temperature in the folder's ``config.json`` (``--no-write`` leaves the model untouched), where the
model's forward applies it. The temperature is chosen on validation (FER2013 PublicTest) only.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.calibration import ECE_BINS, calibration_report, fit_temperature, plot_reliability
from training.cli import add_data_arguments, run_cli
from training.data import DataError, FerData, load_data
from training.evaluation import label_index_map, predict_logits
from training.files import write_text_atomically
from training.inputs import FaceDataset
from training.model_source import load_model, model_labels

CARD_START, CARD_END = "<!-- calibration -->", "<!-- /calibration -->"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python training/calibrate.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="saved folder or Hub id (org/name)")
    add_data_arguments(parser)
    parser.add_argument("--bins", type=int, default=ECE_BINS)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--output-dir", type=Path, help="where the reports go (default: the model folder)")
    parser.add_argument("--write", action=argparse.BooleanOptionalAction, default=True,
                        help="store the temperature in the model folder's config.json")
    return parser


def split_logits(model: Any, data: FerData, split: str, batch_size: int) -> np.ndarray:
    """Raw (T = 1) logits in the model's class order."""
    temperature, model.config.calibration_temperature = model.config.calibration_temperature, 1.0
    try:
        return predict_logits(model, FaceDataset(data.split(split)), batch_size)
    finally:
        model.config.calibration_temperature = temperature


def split_targets(model: Any, data: FerData, split: str) -> np.ndarray:
    """The split's labels in the model's class order."""
    to_data = label_index_map(model_labels(model), data.labels)
    return np.argsort(to_data)[data.split(split).hard_labels()]


def card_section(reports: dict[str, dict[str, Any]], dataset: str) -> str:
    rows = "\n".join(f"| {split} ({report['num_samples']}) | {100 * report['ece_before']:.2f}% | "
                     f"{100 * report['ece_after']:.2f}% | {report['nll_before']:.3f} | {report['nll_after']:.3f} |"
                     for split, report in reports.items())
    temperature = next(iter(reports.values()))["temperature"]
    return (f"{CARD_START}\n## Calibration\n\nTemperature T = {temperature:.3f}, fitted on the validation split of "
            f"{dataset} (NLL), stored as `config.calibration_temperature` and applied in the model's forward, so "
            "its softmax is calibrated everywhere (predictions do not change). ECE: 15 equal-width confidence "
            "bins, top label (`python training/calibrate.py`; reliability diagram `reliability_test.png`).\n\n"
            "| split | ECE before | ECE after | NLL before | NLL after |\n|---|---:|---:|---:|---:|\n"
            f"{rows}\n{CARD_END}\n")


def update_card(card: Path, section: str) -> None:
    """Insert or replace the calibration section of a model card (README.md)."""
    if not card.is_file():
        return
    text = card.read_text()
    if CARD_START in text and CARD_END in text:
        head, rest = text.split(CARD_START, 1)
        text = head + section.rstrip("\n") + rest.split(CARD_END, 1)[1]
    else:
        marker = "\n## Model\n"
        text = text.replace(marker, "\n" + section + marker, 1) if marker in text else text + "\n" + section
    write_text_atomically(card, text)


def set_temperature(config_path: Path, temperature: float) -> None:
    config = json.loads(config_path.read_text())
    config["calibration_temperature"] = round(temperature, 5)
    write_text_atomically(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def calibrate_model(model: Any, data: FerData, out: Path, batch_size: int, title: str,
                    bins: int = ECE_BINS, logits: dict[str, np.ndarray] | None = None) -> dict[str, dict[str, Any]]:
    """Fit the temperature on validation, set it on `model`, and write ``calibration.json`` and
    ``reliability_test.png`` to `out`; returns the validation and test reports. `logits`: the raw
    (T = 1) validation and test logits when the caller already has them."""
    splits = ("validation", "test")
    logits = logits or {split: split_logits(model, data, split, batch_size) for split in splits}
    targets = {split: split_targets(model, data, split) for split in splits}
    temperature = fit_temperature(logits["validation"], targets["validation"])
    reports = {split: calibration_report(logits[split], targets[split], temperature, bins) for split in splits}
    plot_reliability([("test", reports["test"])], out / "reliability_test.png", title)
    summary = {"dataset": data.name, "fitted_on": "validation", "temperature": temperature, **reports}
    write_text_atomically(out / "calibration.json", json.dumps(summary, indent=2) + "\n")
    model.config.calibration_temperature = temperature
    return reports


def run(argv: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    args = build_parser().parse_args(argv)
    folder = Path(args.model) if Path(args.model).is_dir() else None
    if args.write and folder is None:
        raise DataError(f"--write needs a model folder; {args.model!r} is not one (pass --no-write and --output-dir)")
    out = args.output_dir or folder
    if out is None:
        raise DataError("give --output-dir for a Hub model")
    if out.exists() and not out.is_dir():
        raise DataError(f"--output-dir {out} is a file, not a folder")
    labels = [name.strip() for name in args.labels.split(",")] if args.labels else None
    data = load_data(args.dataset, args.data_dir, fold=args.fold, n_folds=args.n_folds, labels=labels,
                     limit=args.limit, on_bad=args.on_bad)
    model = load_model(args.model).model
    out.mkdir(parents=True, exist_ok=True)
    reports = calibrate_model(model, data, out, args.batch_size, f"{Path(args.model).name} on {data.name} test",
                              args.bins)
    if args.write:
        set_temperature(folder / "config.json", model.config.calibration_temperature)
        update_card(folder / "README.md", card_section(reports, data.name))
    for split, report in reports.items():
        print(f"[calibrate] {split}: ECE {100 * report['ece_before']:.2f}% → {100 * report['ece_after']:.2f}% "
              f"(T = {report['temperature']:.3f}), NLL {report['nll_before']:.3f} → {report['nll_after']:.3f}",
              flush=True)
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
