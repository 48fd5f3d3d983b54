"""`python -m workbench explain IMAGE_OR_FOLDER --models … --methods … --out DIR`
`python -m workbench video FILE --models … --out DIR` (see `workbench.video`)
`python -m workbench atlas --models … --dataset fer2013 --out DIR` (see `workbench.atlas`)
`python -m workbench probes --models … --dataset fer2013 --count 100 --out DIR` (see `workbench.probes`)

`explain` writes one bundle per image (`DIR/<image>_<ext>/`, `-2`, `-3`… added when two names would clash
even case-insensitively; see `workbench.result`) and one CSV of
predictions, probabilities and faithfulness scores for the whole run (`DIR/predictions.csv`).
Unreadable images become a row with an `error` and the run goes on; nothing already saved is
overwritten unless `--overwrite`.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from PIL import Image

from hub_models import zoo

from . import cams
from . import video as video_module
from .atlas import atlas_figure, attention_atlas
from .cams import FAST_METHODS, METHODS
from .datasets import test_faces
from .engine import Workbench, check_max_faces
from .errors import WorkbenchError
from .images import short_path
from .models import load_model
from .probes import probe_regions, probe_test_faces

# Raster formats a folder run picks up (case-insensitive), kept to those this Pillow can read:
# the decoder accepts any of them, so a folder of .tga or .jp2 files must not be skipped silently.
_CANDIDATE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".bmp", ".dib", ".gif", ".webp",
                       ".tif", ".tiff", ".ico", ".cur", ".tga", ".ppm", ".pgm", ".pbm", ".pnm", ".pfm", ".jp2",
                       ".j2k", ".jpx", ".jpf", ".avif", ".avifs", ".qoi", ".pcx", ".sgi", ".psd", ".dds", ".icns")
IMAGE_SUFFIXES = set(_CANDIDATE_SUFFIXES) & set(Image.registered_extensions())
CSV_NAME = "predictions.csv"
ATLAS_PNG, ATLAS_CSV, PROBES_CSV = "atlas.png", "atlas.csv", "probes.csv"
ATLAS_FACES = 100_000  # the whole test split: each class's first faces are taken from it
MAX_BUNDLE_STEM = 100


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    explain = commands.add_parser("explain", help="explain every model's prediction on every face")
    explain.add_argument("input", type=Path, help="an image file or a folder of images (searched recursively)")
    explain.add_argument("--models", nargs="+", default=None,
                         help="zoo ids, architecture or variant names (untrained), saved model folders or Hub ids "
                              f"(default: the embedded trained zoo, {' '.join(zoo.default_ids()) or 'none yet'})")
    explain.add_argument("--methods", nargs="*", default=["gradcam"],
                         help=f"CAM methods (default gradcam); fast: {', '.join(FAST_METHODS)}; "
                              f"all: {', '.join(METHODS)}")
    explain.add_argument("--out", type=Path, required=True, help="output folder for bundles and the CSV")
    explain.add_argument("--target", default=None, help="class to explain (label name or index); default: prediction")
    explain.add_argument("--detector", default="retinaface", choices=["retinaface", "yunet"])
    explain.add_argument("--max-faces", type=int, default=None, help="only the N largest faces per image")
    explain.add_argument("--assume-face", action="store_true", help="inputs are already face crops: skip detection")
    explain.add_argument("--no-faithfulness", action="store_true", help="skip deletion/insertion/ROAD scores")
    explain.add_argument("--probe", action="store_true",
                         help="also blur each face region and record how the class falls and how much of that "
                              "each map's region shares capture (workbench.probes)")
    explain.add_argument("--overwrite", action="store_true", help="replace existing bundles and CSV")
    video = commands.add_parser("video", help="explain the faces of a video: tracked, with a timeline")
    video.add_argument("input", type=Path, help="a video file (anything OpenCV's FFmpeg reads: mp4, webm, avi …)")
    video.add_argument("--models", nargs="+", default=None, help="as for explain (default: the trained zoo)")
    video.add_argument("--out", type=Path, required=True,
                       help=f"output folder for {video_module.VIDEO_NAME}, {video_module.CSV_NAME} and "
                            f"{video_module.TIMELINE_NAME}")
    video.add_argument("--every", type=float, default=0.5, help="seconds between explained frames (default 0.5)")
    video.add_argument("--method", default="gradcam", help=f"one fast CAM method: {', '.join(FAST_METHODS)}")
    video.add_argument("--smooth", type=float, default=0.0,
                       help="weight of the past in each face's moving average of probabilities, 0–1 (default 0)")
    video.add_argument("--max-faces", type=int, default=4, help="the N largest faces per frame (default 4)")
    video.add_argument("--detector", default="retinaface", choices=["retinaface", "yunet"])
    video.add_argument("--overwrite", action="store_true", help="replace an earlier explained video in --out")
    atlas = dataset_command(commands, "atlas", "each model's mean CAM per class over a test set",
                             f"{ATLAS_PNG} and {ATLAS_CSV}")
    atlas.add_argument("--per-class", type=int, default=50, help="faces per class (default 50)")
    probes = dataset_command(commands, "probes", "region and robustness probes over a test set, per model",
                              PROBES_CSV)
    probes.add_argument("--count", type=int, default=100, help="the first N test faces (default 100)")
    return parser


def dataset_command(commands: argparse._SubParsersAction, name: str, description: str,
                     outputs: str) -> argparse.ArgumentParser:
    """A subcommand that runs models over a dataset's test split: the arguments they all take."""
    command = commands.add_parser(name, help=description)
    command.add_argument("--models", nargs="+", default=None, help="as for explain (default: the trained zoo)")
    command.add_argument("--dataset", default="fer2013", choices=["fer2013", "ferplus", "ckplus"],
                         help="its test split, from FER_DATA_DIR (default fer2013: PrivateTest)")
    command.add_argument("--method", default="gradcam", help=f"one CAM method: {', '.join(METHODS)}")
    command.add_argument("--out", type=Path, required=True, help=f"output folder for {outputs}")
    return command


def find_images(root: Path) -> list[Path]:
    """The image files under `root` (or `root` itself). Broken symbolic links with an image suffix
    are kept, so that they get a CSV row saying so instead of vanishing from the run."""
    try:
        if root.is_file() or (root.is_symlink() and not root.exists()):
            return [root]
        if not root.is_dir():
            raise WorkbenchError(f"input not found: {short_path(root)}")
        return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                      and (p.is_file() or (p.is_symlink() and not p.exists())))
    except OSError as error:
        raise WorkbenchError(f"input {short_path(root)} could not be read ({error.strerror or error})") from error


def bundle_names(images: Sequence[Path], root: Path) -> dict[Path, Path]:
    """Each image's bundle folder, relative to `--out`: `<stem>_<ext>` beside its relative path.

    Names are unique within the run even on case-insensitive file systems (`A.JPG` and `a.jpg`
    would share `a_jpg`; a later one gets `-2`, `-3`…), and never equal a folder that holds other
    bundles, so one bundle can never replace another, even with `--overwrite`.
    """
    relatives = {path: path.relative_to(root) if root.is_dir() else Path(path.name) for path in images}
    taken = {str(folder).casefold() for relative in relatives.values() for folder in relative.parents
             if str(folder) != "."}
    names: dict[Path, Path] = {}
    for path in images:
        relative = relatives[path]
        stem = _bundle_stem(relative)
        candidate, count = relative.parent / stem, 1
        while str(candidate).casefold() in taken:
            count += 1
            candidate = relative.parent / f"{stem}-{count}"
        taken.add(str(candidate).casefold())
        names[path] = candidate
    return names


def _bundle_stem(relative: Path) -> str:
    """`<stem>_<ext>`, with a very long stem cut and made unique by a hash of the full one, so
    the folder name (and `save`'s temporary sibling) stays within the file system's limit."""
    stem = relative.stem
    if len(stem) > MAX_BUNDLE_STEM:
        stem = f"{stem[:MAX_BUNDLE_STEM - 9]}~{hashlib.sha1(stem.encode('utf-8', 'replace')).hexdigest()[:8]}"
    return f"{stem}_{relative.suffix.lstrip('.').lower()}"


def check_out_dir(out: Path) -> None:
    """`--out` must be a folder or creatable as one; a file there (or in place of a folder above
    it) is named at once, before models load or anything is written."""
    try:
        for folder in (out, *out.parents):
            if folder.exists():
                if folder == out and not folder.is_dir():
                    raise WorkbenchError(f"--out {short_path(out)} is a file, not a folder; choose another --out")
                if not folder.is_dir():
                    raise WorkbenchError(f"--out {short_path(out)} cannot be created: {short_path(folder)} "
                                         "is a file; choose another --out")
                return
    except OSError as error:
        raise WorkbenchError(f"--out {short_path(out)} cannot be used ({error.strerror or error})") from error


def parse_target(value: str | None) -> int | str | None:
    """A whole number (also negative, so that "-1" is refused as an index, not taken as a label)
    is a class index; anything else is a label name."""
    if value is None:
        return None
    return int(value) if re.fullmatch(r"[+-]?\d+", value.strip()) else value


def chosen_models(args: argparse.Namespace) -> list[str]:
    """--models, or the embedded trained zoo; refusing to run on nothing."""
    models = args.models or zoo.default_ids()
    if not models:
        raise WorkbenchError("no trained models are embedded in this installation; name some with --models")
    return models


@contextmanager
def percent_bar(description: str) -> Iterator[Callable[[float, str], None]]:
    """A progress bar on stderr driven by the engine's `progress(share, step)` callbacks."""
    from tqdm.auto import tqdm

    with tqdm(total=100, desc=description, unit="%", file=sys.stderr) as bar:
        yield lambda share, _step: bar.update(round(100 * share) - bar.n)


def probes(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    cams.validate([args.method])
    if args.count < 1:
        raise WorkbenchError(f"--count must be at least 1, not {args.count}")
    models = chosen_models(args)
    loaded = [load_model(spec) for spec in models]
    faces = test_faces(args.dataset, args.count)
    with percent_bar("probes") as report:
        rows = probe_test_faces(loaded, faces, args.count, args.method, progress=report)
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / PROBES_CSV, rows)
    print(f"probes of {len(loaded)} model(s) on {len(faces)} {faces.description} faces: {PROBES_CSV} in {args.out}")
    return 0


def atlas(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    cams.validate([args.method])
    models = chosen_models(args)
    loaded = [load_model(spec) for spec in models]
    faces = test_faces(args.dataset, ATLAS_FACES)
    with percent_bar("attention atlas") as report:
        result = attention_atlas(loaded, faces, method=args.method, per_class=args.per_class, progress=report)
    args.out.mkdir(parents=True, exist_ok=True)
    figure = atlas_figure(result)
    if figure is not None:
        figure.savefig(args.out / ATLAS_PNG)
    write_csv(args.out / ATLAS_CSV, result.rows())
    print(f"attention atlas of {len(loaded)} model(s) on {faces.description}: {ATLAS_PNG}, {ATLAS_CSV} in {args.out}")
    return 0


def video(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    if (args.out / video_module.VIDEO_NAME).exists() and not args.overwrite:
        raise WorkbenchError(f"{short_path(args.out / video_module.VIDEO_NAME)} already exists; choose another "
                             "--out or pass --overwrite")
    models = chosen_models(args)
    workbench = Workbench(models, detector=args.detector)
    with percent_bar("explaining video") as report:
        result = video_module.explain_video(workbench, args.input, args.out, every_s=args.every, method=args.method,
                                            smoothing=args.smooth, max_faces=args.max_faces, progress=report)
    print(f"{result.frames_read} frames read, {result.frames_explained} frames explained "
          f"({len(result.face_ids)} face track(s)); {result.video.name}, {result.csv.name}"
          + (f", {result.timeline.name}" if result.timeline else "") + f" in {args.out}")
    return 0


def explain(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    images = find_images(args.input)
    if not images:
        raise WorkbenchError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found in {short_path(args.input)}")
    check_out_dir(args.out)
    csv_path = args.out / CSV_NAME
    if csv_path.exists() and not args.overwrite:
        raise WorkbenchError(f"{short_path(csv_path)} already exists; choose another --out or pass --overwrite")
    # Argument errors end the run once (exit 2), before models load, instead of failing each image.
    cams.validate(args.methods)
    check_max_faces(args.max_faces)
    target = parse_target(args.target)
    models = chosen_models(args)
    workbench = Workbench(models, detector=args.detector)
    workbench.check_request(args.methods, target, not args.no_faithfulness, args.max_faces)
    bundles = bundle_names(images, args.input)
    rows: list[dict] = []
    failures = 0
    for path in tqdm(images, desc="explaining", unit="image", file=sys.stderr):
        base = {"image": str(path), "bundle": "", "message": "", "error": ""}
        try:
            result = workbench.analyze(path, methods=args.methods, target=target,
                                       faithfulness=not args.no_faithfulness,
                                       max_faces=args.max_faces, assume_face=args.assume_face)
            if args.probe:
                for face in result.faces:
                    for loaded in workbench.models:
                        probe_regions(loaded, face.models[loaded.name])
            bundle = result.save(args.out / bundles[path], overwrite=args.overwrite)
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
        return {"explain": explain, "video": video, "atlas": atlas, "probes": probes}[args.command](args)
    except (WorkbenchError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        # Whatever the file system refuses (a name too long, permissions, a full disk) is one
        # clean line, never a traceback.
        where = f": {short_path(error.filename)}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return 2
