"""Re-measure any checkpoint on any dataset and write the same metrics files as training.

    python training/evaluate.py --model /work/runs/my-model --dataset fer2013
    python training/evaluate.py --model fer-workbench/ddamfn-fer2013 --dataset ferplus --split test validation
    python training/evaluate.py --model ./ckpt --dataset ckplus --fold 3 --output-dir eval/ckplus-3
    python training/evaluate.py --model runs/m --split validation test --output-dir runs/m --overwrite --update-card

Writes ``metrics_<split>.json``, ``confusion_<split>.json`` and ``confusion_<split>.png`` to
``--output-dir`` (default: ``<model folder>/eval-<dataset>`` for a folder,
``eval-<org>-<name>-<dataset>`` for a Hub id). ``--update-card`` rewrites the model folder's card
(model-index metadata and Results section) from the new figures, for a checkpoint whose behaviour
changed after training (flip test-time averaging switched on by ``training/calibrate.py``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from training.cli import add_data_arguments, load_data_from_arguments, run_cli
from training.data import DataError
from training.evaluation import evaluate_split
from training.files import output_dir_problem, shown, unusable_path
from training.metrics import report_paths
from training.model_card import update_results
from training.model_source import load_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python training/evaluate.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True, help="saved folder, Hub id (org/name) or architecture name")
    add_data_arguments(parser)
    parser.add_argument("--split", nargs="+", choices=("train", "validation", "test"), default=["test"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--output-dir", type=Path)
    parser.add_argument("--overwrite", action="store_true", help="replace existing metrics files")
    parser.add_argument("--update-card", action="store_true",
                        help="rewrite the model folder's card (metadata and Results) from these figures")
    return parser


def default_output_dir(model: str, dataset: str) -> Path:
    if unusable_path(Path(model)) is None and Path(model).is_dir():
        return Path(model) / f"eval-{dataset}"
    return Path(f"eval-{model.replace('/', '-')}-{dataset}")


def check_output_files(out: Path, splits: Sequence[str], overwrite: bool) -> None:
    """Refuse an unusable output folder, and, without --overwrite, any split whose files (the
    metrics, or only a confusion matrix left by an earlier run) are already there."""
    problem = output_dir_problem(out)
    if problem is not None:
        raise DataError(f"--output-dir {shown(out)} cannot be used: {problem}")
    existing = [path for split in splits for path in report_paths(out, split).values() if path.exists()]
    if existing and not overwrite:
        raise DataError(f"{existing[0]} already exists; pass --overwrite to replace it or choose another --output-dir")


def run(argv: Sequence[str] | None = None) -> dict[str, dict]:
    args = build_parser().parse_args(argv)
    loaded = load_model(args.model)  # first: a bad or unfinished model is the error to report
    card = Path(args.model) / "README.md"
    if args.update_card and not card.is_file():
        raise DataError(f"--update-card needs a model folder with a model card; {args.model!r} has none")
    out = args.output_dir or default_output_dir(args.model, args.dataset)
    check_output_files(out, args.split, args.overwrite)
    data = load_data_from_arguments(args)
    reports = {}
    for split in args.split:
        report = reports[split] = evaluate_split(loaded.model, data, split, out, batch_size=args.batch_size)
        print(f"[evaluate] {args.model} on {data.description.get('dataset', data.name)} "
              f"{report['split']}: accuracy {report['accuracy']:.4f}, macro-F1 "
              f"{report['macro_f1']:.4f} ({report['num_samples']} samples) → {out}", flush=True)
        for name, subset in report["subsets"].items():
            print(f"[evaluate]   {name} subset: accuracy {subset['accuracy']:.4f}, macro-F1 {subset['macro_f1']:.4f} "
                  f"({subset['num_samples']} samples)", flush=True)
    if args.update_card:
        update_results(card, reports, loaded.model, data.description.get("dataset_id", data.name))
        print(f"[evaluate] model card updated: {card}", flush=True)
    return reports


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
