"""`python -m workbench explain IMAGE_OR_FOLDER --models … --methods … --out DIR`

Writes one bundle per image (`DIR/<image>_<ext>/`, see `workbench.result`) and one CSV of
predictions, probabilities and faithfulness scores for the whole run (`DIR/predictions.csv`).
Unreadable images become a row with an `error` and the run goes on; nothing already saved is
overwritten unless `--overwrite`.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from .cams import FAST_METHODS, METHODS
from .engine import Workbench
from .errors import WorkbenchError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
CSV_NAME = "predictions.csv"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    explain = commands.add_parser("explain", help="explain every model's prediction on every face")
    explain.add_argument("input", type=Path, help="an image file or a folder of images (searched recursively)")
    explain.add_argument("--models", nargs="+", required=True,
                         help="architecture names, saved model folders or Hub ids")
    explain.add_argument("--methods", nargs="*", default=["gradcam"],
                         help=f"CAM methods (default gradcam); fast: {', '.join(FAST_METHODS)}; "
                              f"all: {', '.join(METHODS)}")
    explain.add_argument("--out", type=Path, required=True, help="output folder for bundles and the CSV")
    explain.add_argument("--target", default=None, help="class to explain (label name or index); default: prediction")
    explain.add_argument("--detector", default="retinaface", choices=["retinaface", "yunet"])
    explain.add_argument("--max-faces", type=int, default=None, help="only the N largest faces per image")
    explain.add_argument("--assume-face", action="store_true", help="inputs are already face crops: skip detection")
    explain.add_argument("--no-faithfulness", action="store_true", help="skip deletion/insertion/ROAD scores")
    explain.add_argument("--overwrite", action="store_true", help="replace existing bundles and CSV")
    return parser


def find_images(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise WorkbenchError(f"input not found: {root}")
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def bundle_name(path: Path, root: Path) -> Path:
    relative = path.relative_to(root) if root.is_dir() else Path(path.name)
    return relative.parent / f"{relative.stem}_{relative.suffix.lstrip('.').lower()}"


def explain(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    images = find_images(args.input)
    if not images:
        raise WorkbenchError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {args.input}")
    csv_path = args.out / CSV_NAME
    if csv_path.exists() and not args.overwrite:
        raise WorkbenchError(f"{csv_path} already exists; choose another --out or pass --overwrite")
    target = int(args.target) if args.target is not None and args.target.isdigit() else args.target
    workbench = Workbench(args.models, detector=args.detector)
    rows: list[dict] = []
    failures = 0
    for path in tqdm(images, desc="explaining", unit="image", file=sys.stderr):
        base = {"image": str(path), "bundle": "", "message": "", "error": ""}
        try:
            result = workbench.analyze(path, methods=args.methods, target=target,
                                       faithfulness=not args.no_faithfulness,
                                       max_faces=args.max_faces, assume_face=args.assume_face)
            bundle = result.save(args.out / bundle_name(path, args.input), overwrite=args.overwrite)
        except WorkbenchError as error:
            failures += 1
            rows.append({**base, "error": str(error)})
            continue
        base.update(bundle=str(bundle), message=result.message or "")
        if result.faces:
            rows.extend({**base, **row} for row in result.rows())
        else:
            rows.append(base)
    write_csv(csv_path, rows)
    print(f"{len(images)} image(s), {failures} failed; bundles and {CSV_NAME} in {args.out}")
    return 1 if failures else 0


def write_csv(path: Path, rows: list[dict]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return explain(args)
    except (WorkbenchError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
