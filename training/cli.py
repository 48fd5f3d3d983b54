"""What the command-line entry points share: problems the user can fix (bad data, a bad model
name) end as one ``error: …`` line and exit code 2; anything else is a bug and keeps its traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .data import DATASETS, DataError, FerData, load_data
from .model_source import ModelSourceError


def face_count(text: str) -> int:
    """argparse type of an option that counts faces: a whole number ≥ 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of faces ≥ 0, got {text!r}")
    return value


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that name a dataset and its test fold, shared by evaluation and calibration."""
    parser.add_argument("--dataset", choices=DATASETS, default="fer2013")
    parser.add_argument("--data-dir", type=Path, help="data root (default: $FER_DATA_DIR or ../shared/data)")
    parser.add_argument("--labels", help="comma-separated class order for --dataset folder")
    parser.add_argument("--fold", type=int, default=0, help="CK+: test fold index")
    parser.add_argument("--n-folds", type=int, default=10, help="CK+: subject-independent folds")
    parser.add_argument("--limit", type=int, help="first N rows of each split (smoke runs)")
    parser.add_argument("--on-bad", choices=("error", "skip"), default="error")


def load_data_from_arguments(args: argparse.Namespace, **overrides: Any) -> FerData:
    """The dataset the data options name (`--labels` as a comma-separated class order); `overrides`
    replace options a command reads its own way (finetune's fold index, its soft labels)."""
    labels = [name.strip() for name in args.labels.split(",")] if args.labels else None
    options = {"fold": args.fold, "n_folds": args.n_folds, "labels": labels, "limit": args.limit,
               "on_bad": args.on_bad, **overrides}
    return load_data(args.dataset, args.data_dir, **options)


def run_cli(run: Callable[[Sequence[str] | None], Any], argv: Sequence[str] | None = None) -> int:
    try:
        run(argv)
    except (DataError, ModelSourceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
