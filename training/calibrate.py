"""Fit a model's temperature on the validation split and measure its calibration on the test split.

    python training/calibrate.py --model runs/patt-lite --dataset fer2013
    python training/calibrate.py --model fer-workbench/patt-lite-fer2013 --output-dir eval/calibration --no-write
    python training/calibrate.py --model runs/patt-lite --test-time-flip   # average with the mirror image, refit T

Writes ``calibration.json`` (ECE with 15 bins, NLL and reliability bins before and after, for both
splits) and ``reliability_<split>.png`` to the model folder (or ``--output-dir``), and stores the
temperature in the folder's ``config.json`` (``--no-write`` leaves the model untouched), where the
model's forward applies it. The temperature is chosen on validation (FER2013 PublicTest) only.

``--test-time-flip`` / ``--no-test-time-flip`` switch the model's flip test-time averaging
(``config.test_time_flip``) before the fit: it changes the logits, so the temperature is refitted
with it. The validation accuracy with and without it is printed and kept in ``calibration.json``,
which is where the choice is made (never on the test split).

``--precise-bn FACES`` first recomputes the model's BatchNorm statistics from that many training
faces (`training.batchnorm`) and keeps them, written into the folder's weights, only if the
validation accuracy does not drop; both accuracies go to ``calibration.json``.

Evidence from an earlier run on the same folder (a flip switch, a recomputation) that this run does
not measure again is carried forward into ``calibration.json`` and the card: the model still carries
the decision it supports.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hub_models.loading import config_override
from hub_models.model_cards import put_section
from training.batchnorm import batchnorm_statistics, recompute_batchnorm_statistics, write_batchnorm_statistics
from training.calibration import ECE_BINS, calibration_report, fit_temperature, plot_reliability
from training.cli import add_data_arguments, face_count, load_data_from_arguments, run_cli
from training.data import DataError, FerData
from training.evaluation import label_index_map, predict_logits
from training.files import write_text_atomically
from training.inputs import FaceDataset, ProcessorCollator
from training.model_source import load_model, model_labels

CARD_START, CARD_END = "<!-- calibration -->", "<!-- /calibration -->"
FLIP_EVIDENCE = ("validation_accuracy_one_view", "validation_accuracy_flip")
STATISTICS_EVIDENCE = ("precise_bn_faces", "precise_bn_kept", "validation_accuracy_running_statistics",
                       "validation_accuracy_recomputed_statistics")


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
    parser.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction, default=None,
                        help="average the logits with the mirror image's (default: keep the model's setting)")
    parser.add_argument("--precise-bn", type=face_count, metavar="FACES",
                        help="recompute the BatchNorm statistics from this many training faces; kept, and written "
                             "into the folder's weights, only if the validation accuracy does not drop")
    return parser


def split_logits(model: Any, data: FerData, split: str, batch_size: int) -> np.ndarray:
    """Raw (T = 1) logits in the model's class order (flip-averaged when the model's config says so)."""
    with config_override(model, calibration_temperature=1.0):
        return predict_logits(model, FaceDataset(data.split(split)), batch_size)


def split_targets(model: Any, data: FerData, split: str) -> np.ndarray:
    """The split's labels in the model's class order."""
    to_data = label_index_map(model_labels(model), data.labels)
    return np.argsort(to_data)[data.split(split).hard_labels()]


def card_section(reports: dict[str, dict[str, Any]], dataset: str, flip: dict[str, Any] | None = None,
                 statistics: dict[str, Any] | None = None) -> str:
    """The card's calibration section; `flip`: the validation accuracies behind a flip-averaging
    switch; `statistics`: those behind a BatchNorm-statistics recomputation (`try_precise_batchnorm`)."""
    rows = "\n".join(f"| {split} ({report['num_samples']}) | {100 * report['ece_before']:.2f}% | "
                     f"{100 * report['ece_after']:.2f}% | {report['nll_before']:.3f} | {report['nll_after']:.3f} |"
                     for split, report in reports.items())
    temperature = next(iter(reports.values()))["temperature"]
    switched = ""
    if flip:
        state = "on" if flip["test_time_flip"] else "off"
        switched = (f"Flip test-time averaging (`config.test_time_flip`) was switched {state} on the validation "
                    f"split's evidence: {100 * flip['validation_accuracy_one_view']:.2f}% with one view, "
                    f"{100 * flip['validation_accuracy_flip']:.2f}% averaged with the mirror image; the temperature "
                    "is fitted on the logits the model now gives.\n\n")
    if statistics and statistics["precise_bn_faces"]:
        kept = statistics["precise_bn_kept"]
        switched += (f"The BatchNorm statistics were recomputed from {statistics['precise_bn_faces']:,} training faces "
                     f"and {'kept' if kept else 'discarded'} on the validation split's evidence: "
                     f"{100 * statistics['validation_accuracy_running_statistics']:.2f}% with the running averages "
                     f"of training, {100 * statistics['validation_accuracy_recomputed_statistics']:.2f}% recomputed"
                     f"{' (`training/batchnorm.py`)' if kept else ''}.\n\n")
    return (f"{CARD_START}\n## Calibration\n\nTemperature T = {temperature:.3f}, fitted on the validation split of "
            f"{dataset} (NLL), stored as `config.calibration_temperature` and applied in the model's forward, so "
            "its softmax is calibrated everywhere (predictions do not change). ECE: 15 equal-width confidence "
            "bins, top label (`python training/calibrate.py`; reliability diagram `reliability_test.png`).\n\n"
            f"{switched}| split | ECE before | ECE after | NLL before | NLL after |\n|---|---:|---:|---:|---:|\n"
            f"{rows}\n{CARD_END}\n")


def update_card(card: Path, section: str) -> None:
    """Insert or replace the calibration section of a model card (README.md)."""
    if card.is_file():
        write_text_atomically(card, put_section(card.read_text(), section, CARD_START, CARD_END, "## Model"))


def set_config_fields(config_path: Path, **fields: Any) -> None:
    config = json.loads(config_path.read_text())
    config.update(fields)
    write_text_atomically(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")


def compare_flip(model: Any, data: FerData, batch_size: int) -> tuple[dict[str, float], dict[bool, np.ndarray]]:
    """Validation accuracy of one view and of the flip-averaged logits (the evidence for the switch),
    and the raw validation logits of each, by ``test_time_flip`` value, for the fit that follows."""
    targets = split_targets(model, data, "validation")
    logits = {}
    for flag in (False, True):
        with config_override(model, test_time_flip=flag):
            logits[flag] = split_logits(model, data, "validation", batch_size)
    accuracy = {"validation_accuracy_one_view": float((logits[False].argmax(1) == targets).mean()),
                "validation_accuracy_flip": float((logits[True].argmax(1) == targets).mean())}
    return accuracy, logits


def try_precise_batchnorm(model: Any, data: FerData, faces: int,
                          batch_size: int) -> tuple[dict[str, Any], np.ndarray]:
    """Recompute the BatchNorm statistics from training faces; keep them only if the validation
    accuracy does not drop. Returns the evidence (for ``calibration.json`` and the card) and the raw
    validation logits of the statistics kept, so the temperature fit need not compute them again."""
    targets = split_targets(model, data, "validation")
    running_logits, running = split_logits(model, data, "validation", batch_size), batchnorm_statistics(model)
    used = recompute_batchnorm_statistics(model, FaceDataset(data.train), ProcessorCollator(model.image_processor()),
                                          faces, batch_size)
    recomputed_logits = split_logits(model, data, "validation", batch_size) if used else running_logits
    before, after = (float((logits.argmax(1) == targets).mean()) for logits in (running_logits, recomputed_logits))
    kept = bool(used) and after >= before
    if not kept:
        model.load_state_dict(running, strict=False)
    evidence = {"precise_bn_faces": used, "precise_bn_kept": kept, "validation_accuracy_running_statistics": before,
                "validation_accuracy_recomputed_statistics": after}
    return evidence, recomputed_logits if kept else running_logits


def saved_calibration(folder: Path | None) -> dict[str, Any]:
    """The folder's ``calibration.json`` from an earlier run ({} when there is none to read)."""
    try:
        saved = json.loads((folder / "calibration.json").read_text()) if folder is not None else {}
    except (OSError, ValueError):
        return {}
    return saved if isinstance(saved, dict) else {}


def evidence(saved: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The evidence named by `keys`, if the earlier run recorded all of it."""
    return {key: saved[key] for key in keys} if all(key in saved for key in keys) else {}


def calibrate_model(model: Any, data: FerData, out: Path, batch_size: int, title: str,
                    bins: int = ECE_BINS, logits: dict[str, np.ndarray] | None = None,
                    extra: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Fit the temperature on validation, set it on `model`, and write ``calibration.json`` and
    ``reliability_test.png`` to `out`; returns the validation and test reports. `logits`: the raw
    (T = 1) validation and test logits when the caller already has them."""
    splits = ("validation", "test")
    logits = logits or {split: split_logits(model, data, split, batch_size) for split in splits}
    targets = {split: split_targets(model, data, split) for split in splits}
    temperature = fit_temperature(logits["validation"], targets["validation"])
    reports = {split: calibration_report(logits[split], targets[split], temperature, bins) for split in splits}
    plot_reliability([("test", reports["test"])], out / "reliability_test.png", title)
    summary = {"dataset": data.name, "fitted_on": "validation", "temperature": temperature,
               "test_time_flip": bool(getattr(model.config, "test_time_flip", False)), **(extra or {}), **reports}
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
    data = load_data_from_arguments(args)
    model = load_model(args.model).model
    out.mkdir(parents=True, exist_ok=True)
    statistics, validation_logits = (try_precise_batchnorm(model, data, args.precise_bn, args.batch_size)
                                     if args.precise_bn else ({}, None))
    if statistics and not statistics["precise_bn_faces"]:
        print("[calibrate] --precise-bn: the model has no BatchNorm layer (or no training face); nothing recomputed",
              flush=True)
    elif statistics:
        running, recomputed = (100 * statistics[f"validation_accuracy_{kind}_statistics"]
                               for kind in ("running", "recomputed"))
        print(f"[calibrate] validation accuracy {running:.2f}% with the running BatchNorm statistics, "
              f"{recomputed:.2f}% recomputed from {statistics['precise_bn_faces']:,} training faces: "
              f"{'recomputed' if statistics['precise_bn_kept'] else 'running'} statistics kept", flush=True)
    extra, logits = {}, None
    if args.test_time_flip is not None:
        extra, validation = compare_flip(model, data, args.batch_size)
        print(f"[calibrate] validation accuracy {100 * extra['validation_accuracy_one_view']:.2f}% one view, "
              f"{100 * extra['validation_accuracy_flip']:.2f}% flip-averaged; test_time_flip = {args.test_time_flip}",
              flush=True)
        model.config.test_time_flip = args.test_time_flip
        logits = {"validation": validation[args.test_time_flip],
                  "test": split_logits(model, data, "test", args.batch_size)}
    elif validation_logits is not None:  # the model's views are unchanged since they were computed
        logits = {"validation": validation_logits, "test": split_logits(model, data, "test", args.batch_size)}
    earlier = saved_calibration(folder)
    carried_flip = evidence(earlier, FLIP_EVIDENCE) if args.test_time_flip is None else {}
    carried_statistics = evidence(earlier, STATISTICS_EVIDENCE) if not args.precise_bn else {}
    reports = calibrate_model(model, data, out, args.batch_size, f"{Path(args.model).name} on {data.name} test",
                              args.bins, logits=logits,
                              extra={**carried_statistics, **statistics, **carried_flip, **extra})
    if args.write:
        if statistics.get("precise_bn_kept"):
            write_batchnorm_statistics(model, folder / "model.safetensors")
        fields = {"calibration_temperature": round(model.config.calibration_temperature, 5)}
        if args.test_time_flip is not None:
            fields["test_time_flip"] = args.test_time_flip
        set_config_fields(folder / "config.json", **fields)
        flip_evidence = extra or carried_flip
        flip = {**flip_evidence, "test_time_flip": bool(model.config.test_time_flip)} if flip_evidence else None
        update_card(folder / "README.md", card_section(reports, data.name, flip, statistics or carried_statistics))
    for split, report in reports.items():
        print(f"[calibrate] {split}: ECE {100 * report['ece_before']:.2f}% → {100 * report['ece_after']:.2f}% "
              f"(T = {report['temperature']:.3f}), NLL {report['nll_before']:.3f} → {report['nll_after']:.3f}",
              flush=True)
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
