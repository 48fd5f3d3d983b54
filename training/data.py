"""Labelled face data as uint8 images plus labels, split into train / validation / test.

Every loader returns a `FerData` whose images are raw uint8 pixels (arrays in memory, or file
paths decoded on access): resizing and normalisation happen later in the model's own image
processor, so one dataset serves models of any input size or colour mode.

Problems in the data (a malformed CSV row, an unreadable image file) are never dropped
silently: each is reported with its location, and ``on_bad="error"`` stops at the first one
while ``on_bad="skip"`` skips them and keeps the list in `FerData.problems`.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from hub_models import CKPLUS_LABELS, FER2013_LABELS, FERPLUS_LABELS

from .files import shown, unusable_path

DATASETS = ("fer2013", "ferplus", "ckplus", "folder")
FER2013_USAGES = {"Training": "train", "PublicTest": "validation", "PrivateTest": "test"}
FER2013_COLUMNS = ("emotion", "pixels", "Usage")
FERPLUS_VOTE_COLUMNS = (*("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"),
                        "unknown", "NF")
FER_SIDE = 48
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
CKPLUS_SUBJECT = re.compile(r"^(S\d+)_")
REPO_ROOT = Path(__file__).resolve().parent.parent


class DataError(ValueError):
    """A problem with the user's data or data settings, stated so the user can fix it."""


@dataclass
class Split:
    """One labelled split. `images` is a uint8 N×H×W array (grayscale in memory) or a list of
    image paths; `labels` holds class indices (int64, N) or label distributions (float32, N×C);
    `sources` says where each sample came from (CSV row or path) for error messages. `subsets`:
    named boolean masks over the samples whose accuracy is reported beside the whole split's, where
    the literature reports a dataset on a subset (FERPlus: `CLEAR_MAJORITY`)."""

    images: np.ndarray | list[Path]
    labels: np.ndarray
    sources: list[str]
    subsets: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: int | None) -> Split:
        if n is None or n >= len(self):
            return self
        return Split(self.images[:n], self.labels[:n], self.sources[:n],
                     {name: mask[:n] for name, mask in self.subsets.items()})

    def hard_labels(self) -> np.ndarray:
        return self.labels.argmax(axis=1) if self.labels.ndim == 2 else self.labels


@dataclass
class FerData:
    """A dataset ready for training: label names (index order) and three splits."""

    name: str
    labels: tuple[str, ...]
    train: Split
    validation: Split
    test: Split
    description: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def split(self, name: str) -> Split:
        if name not in ("train", "validation", "test"):
            raise DataError(f"unknown split {name!r}; expected train, validation or test")
        return getattr(self, name)


def default_data_dir() -> Path:
    """The single data setting: ``FER_DATA_DIR``, else ``../shared/data`` next to the repository."""
    return Path(os.environ.get("FER_DATA_DIR") or REPO_ROOT.parent / "shared" / "data")


def cache_dir() -> Path:
    return Path(os.environ.get("FER_CACHE_DIR") or Path.home() / ".cache" / "fer-workbench")


def _report(problems: list[str], message: str, on_bad: str) -> None:
    if on_bad == "error":
        raise DataError(f"{message} (pass --on-bad skip to skip such entries and count them)")
    problems.append(message)


# --------------------------------------------------------------------------------------------
# FER2013 CSV


def find_fer2013_csv(data_dir: Path) -> Path:
    data_dir = Path(data_dir)
    if data_dir.is_file():
        return data_dir
    if not data_dir.exists():
        raise DataError(f"data directory not found: {data_dir} (set FER_DATA_DIR or pass --data-dir)")
    for candidate in ("fer2013/fer2013.csv.gz", "fer2013/fer2013.csv", "fer2013.csv.gz", "fer2013.csv"):
        if (data_dir / candidate).is_file():
            return data_dir / candidate
    raise DataError(f"no FER2013 CSV in {data_dir}: expected fer2013/fer2013.csv.gz or fer2013/fer2013.csv")


def _decode_fer2013(path: Path) -> dict[str, np.ndarray]:
    """Parse the CSV into arrays, keeping every malformed row as a located problem."""
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"cannot read FER2013 CSV {path}: {error}") from error
    if tuple(frame.columns) != FER2013_COLUMNS:
        raise DataError(f"wrong CSV header in {path}: expected {','.join(FER2013_COLUMNS)}, "
                        f"found {','.join(map(str, frame.columns))}")
    images = np.zeros((len(frame), FER_SIDE, FER_SIDE), dtype=np.uint8)
    keep = np.zeros(len(frame), dtype=bool)
    labels = np.full(len(frame), -1, dtype=np.int64)
    usage = np.full(len(frame), "", dtype=object)
    problems = []
    for row, (emotion, pixels, use) in enumerate(frame.itertuples(index=False, name=None)):
        where = f"{path.name} data row {row} (line {row + 2})"
        values = np.fromstring(pixels, dtype=np.int32, sep=" ") if pixels.strip() else np.empty(0)
        if values.size != FER_SIDE * FER_SIDE or values.min() < 0 or values.max() > 255:
            problems.append(f"{where}: expected {FER_SIDE * FER_SIDE} pixel values in 0..255, "
                            f"got {values.size} parseable values")
        elif emotion.strip() not in {str(i) for i in range(len(FER2013_LABELS))}:
            problems.append(f"{where}: emotion {emotion!r} is not a class index 0..{len(FER2013_LABELS) - 1}")
        elif use not in FER2013_USAGES:
            problems.append(f"{where}: Usage {use!r} is not one of {', '.join(FER2013_USAGES)}")
        else:
            images[row] = values.reshape(FER_SIDE, FER_SIDE)
            labels[row] = int(emotion)
            usage[row] = FER2013_USAGES[use]
            keep[row] = True
    return {"images": images, "labels": labels, "usage": usage.astype(str), "keep": keep,
            "problems": np.array(problems, dtype=str)}


def read_fer2013(path: Path) -> dict[str, np.ndarray]:
    """The decoded CSV, from a cache keyed by the file's content hash (decoding takes seconds,
    loading the cache a fraction of one)."""
    digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:20]
    cached = cache_dir() / f"fer2013-{digest}.npz"
    if cached.is_file():
        with np.load(cached, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    arrays = _decode_fer2013(Path(path))
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(partial, **arrays)
    partial.replace(cached)
    return arrays


def _fer_rows(path: Path, on_bad: str) -> tuple[dict[str, np.ndarray], list[str]]:
    arrays = read_fer2013(path)
    problems: list[str] = []
    for message in arrays["problems"]:
        _report(problems, str(message), on_bad)
    return arrays, problems


def _split_rows(arrays: dict[str, np.ndarray], labels: np.ndarray, keep: np.ndarray, source: str,
                subsets: dict[str, np.ndarray] | None = None) -> dict[str, Split]:
    """The three splits of the kept rows; `subsets`: row masks over the whole file."""
    splits = {}
    for name in ("train", "validation", "test"):
        rows = np.flatnonzero(keep & (arrays["usage"] == name))
        splits[name] = Split(arrays["images"][rows], labels[rows], [f"{source} data row {r}" for r in rows],
                             {subset: mask[rows] for subset, mask in (subsets or {}).items()})
    return splits


def load_fer2013(data_dir: Path, on_bad: str = "error") -> FerData:
    path = find_fer2013_csv(data_dir)
    arrays, problems = _fer_rows(path, on_bad)
    splits = _split_rows(arrays, arrays["labels"], arrays["keep"], path.name)
    return FerData("fer2013", FER2013_LABELS, **splits, problems=problems, description={
        "dataset": "FER2013", "dataset_id": "fer2013", "train": "Training", "validation": "PublicTest",
        "test": "PrivateTest"})


# --------------------------------------------------------------------------------------------
# FERPlus votes aligned with the FER2013 rows


def ferplus_targets(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Majority label (argmax over the ten vote columns, ties to the first column), whether
    the row is kept (its majority is one of the 8 emotions, not unknown/NF) and the vote
    distribution over the 8 emotions (for soft-label training)."""
    votes = np.asarray(votes, dtype=np.float64)
    majority = votes.argmax(axis=1)
    emotion_votes = votes[:, : len(FERPLUS_LABELS)]
    totals = emotion_votes.sum(axis=1)
    keep = (majority < len(FERPLUS_LABELS)) & (totals > 0)
    distribution = np.divide(emotion_votes, totals[:, None], out=np.zeros_like(emotion_votes),
                             where=totals[:, None] > 0)
    return majority, keep, distribution.astype(np.float32)


CLEAR_MAJORITY = "clear majority"
SUBSET_NOTES = {
    CLEAR_MAJORITY: "the faces whose leading emotion holds more than half of the votes once single votes are "
                    "dropped: the FERPlus repository's `majority` mode, the test set that FERPlus papers report "
                    "(our headline counts every face whose plurality is an emotion, ambiguous ones included)",
}


def ferplus_clear_majority(votes: np.ndarray) -> np.ndarray:
    """Which rows the FERPlus reference code keeps in its `majority` mode: a vote cast by a single
    annotator is an outlier and dropped, then the leading column must hold more than half of the
    remaining votes (unknown and NF included) and be an emotion. Papers' FERPlus accuracies are
    measured on these rows only, so a comparable figure needs the same subset."""
    votes = np.asarray(votes, dtype=np.float64).copy()
    votes[votes <= 1] = 0
    return (votes.max(axis=1) > 0.5 * votes.sum(axis=1)) & (votes.argmax(axis=1) < len(FERPLUS_LABELS))


def load_ferplus(data_dir: Path, soft_labels: bool = False, on_bad: str = "error") -> FerData:
    csv_path = find_fer2013_csv(data_dir)
    votes_path = csv_path.parent / "ferplus_votes.csv"
    if not votes_path.is_file():
        raise DataError(f"FERPlus votes not found: {votes_path} (expected next to {csv_path.name})")
    arrays, problems = _fer_rows(csv_path, on_bad)
    votes = pd.read_csv(votes_path)
    expected = ("row", *FERPLUS_VOTE_COLUMNS)
    missing = [c for c in expected if c not in votes.columns]
    if missing:
        raise DataError(f"wrong CSV header in {votes_path}: missing column(s) {', '.join(missing)}")
    if len(votes) != len(arrays["labels"]) or not np.array_equal(votes["row"].to_numpy(), np.arange(len(votes))):
        raise DataError(f"{votes_path} is not aligned with {csv_path}: expected rows 0..{len(arrays['labels']) - 1}")
    vote_counts = votes[list(FERPLUS_VOTE_COLUMNS)].to_numpy()
    majority, keep, distribution = ferplus_targets(vote_counts)
    hard = np.where(keep, majority, -1).astype(np.int64)
    splits = _split_rows(arrays, hard, arrays["keep"] & keep, votes_path.name,
                         {CLEAR_MAJORITY: ferplus_clear_majority(vote_counts)})
    if soft_labels:
        train_rows = np.flatnonzero(arrays["keep"] & keep & (arrays["usage"] == "train"))
        splits["train"].labels = distribution[train_rows]
    return FerData("ferplus", FERPLUS_LABELS, **splits, problems=problems, description={
        "dataset": "FERPlus", "dataset_id": "ferplus",
        "train": "Training", "validation": "PublicTest", "test": "PrivateTest",
        "labels": "majority of 10 votes (unknown/NF majorities dropped)"
                  + ("; trained on vote distributions" if soft_labels else "")})


# --------------------------------------------------------------------------------------------
# CK+ (subject-independent folds) and image folders


def _image_files(folder: Path, labels: Sequence[str], on_bad: str, problems: list[str]) -> tuple[list[Path], list[int]]:
    """All images under ``folder/<class>/``; a class folder not in `labels` is an error."""
    index = {name: i for i, name in enumerate(labels)}
    paths, targets = [], []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        if class_dir.name not in index:
            raise DataError(f"unknown class name {class_dir.name!r} (folder {class_dir}); "
                            f"expected one of: {', '.join(labels)}")
        for path in sorted(class_dir.iterdir()):
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                _report(problems, f"{path}: not an image file (suffix {path.suffix or 'none'})", on_bad)
                continue
            try:
                with Image.open(path) as image:
                    image.verify()
            except (OSError, SyntaxError, ValueError) as error:
                _report(problems, f"{path}: unreadable image ({error})", on_bad)
                continue
            paths.append(path)
            targets.append(index[class_dir.name])
    return paths, targets


def ckplus_subject(path: Path) -> str:
    match = CKPLUS_SUBJECT.match(path.name)
    if not match:
        raise DataError(f"{path}: CK+ file names must start with the subject id (S###_...)")
    return match.group(1)


def subject_folds(subjects: Sequence[str], n_folds: int, seed: int = 0) -> dict[str, int]:
    """Assign every subject to one fold (shuffled with a fixed seed, then dealt round-robin),
    so that no subject's images are in two folds."""
    unique = sorted(set(subjects))
    if n_folds < 2 or n_folds > len(unique):
        raise DataError(f"--n-folds must be between 2 and the number of subjects ({len(unique)}), got {n_folds}")
    random.Random(seed).shuffle(unique)
    return {subject: i % n_folds for i, subject in enumerate(unique)}


def _read_gray(paths: Sequence[Path]) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("L").resize((FER_SIDE, FER_SIDE))) for p in paths])


def ckplus_root(data_dir: Path | None = None) -> Path:
    """The CK+ folder (``<class>/<image>``): ``ckplus48`` under the data root, or the root itself."""
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return root / "ckplus48" if (root / "ckplus48").is_dir() else root


def ckplus_paths(data_dir: Path | None = None) -> list[Path]:
    """Every CK+ image path, sorted (class folder, then file name): for benchmarks and pictures
    that take the faces without folds; training reads them through `load_ckplus`."""
    return sorted(ckplus_root(data_dir).glob("*/*.png"))


def load_ckplus(data_dir: Path, fold: int = 0, n_folds: int = 10, on_bad: str = "error") -> FerData:
    """Fold `fold` is the test set, the next fold the validation set, the others train."""
    root = ckplus_root(data_dir)
    if not root.is_dir():
        raise DataError(f"CK+ folder not found: {root} (set FER_DATA_DIR or pass --data-dir)")
    problems: list[str] = []
    paths, targets = _image_files(root, CKPLUS_LABELS, on_bad, problems)
    if not paths:
        raise DataError(f"no CK+ images under {root}/<class>/")
    subjects = [ckplus_subject(p) for p in paths]
    folds = subject_folds(subjects, n_folds)
    if not 0 <= fold < n_folds:
        raise DataError(f"--fold must be in 0..{n_folds - 1} or 'all', got {fold}")
    images, labels = _read_gray(paths), np.asarray(targets, dtype=np.int64)
    assigned = np.array([folds[s] for s in subjects])
    roles = {"test": assigned == fold, "validation": assigned == (fold + 1) % n_folds}
    roles["train"] = ~(roles["test"] | roles["validation"])
    splits = {name: Split(images[mask], labels[mask], [str(p) for p, m in zip(paths, mask, strict=True) if m])
              for name, mask in roles.items()}
    return FerData("ckplus", CKPLUS_LABELS, **splits, problems=problems, description={
        "dataset": "CK+ (48×48)", "dataset_id": "ckplus",
        "train": f"subject folds other than {fold} and {(fold + 1) % n_folds}",
        "validation": f"subject fold {(fold + 1) % n_folds} of {n_folds}",
        "test": f"subject fold {fold} of {n_folds}"})


def load_image_folder(root: Path, labels: Sequence[str] | None = None, on_bad: str = "error",
                      validation_fraction: float = 0.1, seed: int = 0) -> FerData:
    """``root/train/<class>/…`` and ``root/test/<class>/…`` (optionally ``root/val/<class>/…``,
    else a seeded, stratified share of train becomes validation). Without `labels` the class
    order is the sorted folder names of train."""
    root = Path(root)
    if not (root / "train").is_dir() or not (root / "test").is_dir():
        raise DataError(f"image folder {root} must contain train/<class>/ and test/<class>/ folders")
    labels = tuple(labels) if labels else tuple(sorted(p.name for p in (root / "train").iterdir() if p.is_dir()))
    if len(set(labels)) != len(labels) or len(labels) < 2:
        raise DataError(f"--labels must name at least two distinct classes, got {', '.join(labels)}")
    problems: list[str] = []
    parts = {}
    val_dir = next((root / name for name in ("val", "validation") if (root / name).is_dir()), None)
    for name, folder in (("train", root / "train"), ("test", root / "test"), ("validation", val_dir)):
        if folder is not None:
            paths, targets = _image_files(folder, labels, on_bad, problems)
            parts[name] = Split(paths, np.asarray(targets, dtype=np.int64), [str(p) for p in paths])
    if "validation" not in parts:
        parts["train"], parts["validation"] = _stratified_holdout(parts["train"], validation_fraction, seed)
    for name, split in parts.items():
        if not len(split):
            raise DataError(f"no images found for split {name!r} under {root}")
    return FerData(root.name, labels, parts["train"], parts["validation"], parts["test"], problems=problems,
                   description={"dataset": root.name, "dataset_id": root.name, "train": "train/",
                                "validation": "val/" if val_dir else f"{validation_fraction:.0%} of train/",
                                "test": "test/"})


def _stratified_holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    rng = np.random.default_rng(seed)
    held = np.zeros(len(split), dtype=bool)
    for label in np.unique(split.labels):
        rows = np.flatnonzero(split.labels == label)
        held[rng.permutation(rows)[: max(1, round(fraction * len(rows)))]] = True

    def pick(mask: np.ndarray) -> Split:
        rows = np.flatnonzero(mask)
        return Split([split.images[r] for r in rows], split.labels[rows], [split.sources[r] for r in rows])

    return pick(~held), pick(held)


# --------------------------------------------------------------------------------------------


def load_data(dataset: str, data_dir: Path | None = None, *, soft_labels: bool = False, fold: int = 0,
              n_folds: int = 10, labels: Sequence[str] | None = None, limit: int | None = None,
              on_bad: str = "error") -> FerData:
    """One entry point for every dataset; `limit` keeps the first N samples of each split."""
    if dataset not in DATASETS:
        raise DataError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if on_bad not in ("error", "skip"):
        raise DataError(f"on_bad must be 'error' or 'skip', got {on_bad!r}")
    if soft_labels and dataset != "ferplus":
        raise DataError("--soft-labels needs --dataset ferplus (the only dataset with vote distributions)")
    if dataset == "folder" and data_dir is None:
        raise DataError("--dataset folder needs --data-dir pointing at a folder with train/ and test/")
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    problem = unusable_path(data_dir)
    if problem is not None:
        raise DataError(f"data directory {shown(data_dir)} cannot be used: {problem}")
    if not data_dir.exists():
        raise DataError(f"data directory not found: {data_dir} (set FER_DATA_DIR or pass --data-dir)")
    if dataset == "fer2013":
        data = load_fer2013(data_dir, on_bad)
    elif dataset == "ferplus":
        data = load_ferplus(data_dir, soft_labels, on_bad)
    elif dataset == "ckplus":
        data = load_ckplus(data_dir, fold, n_folds, on_bad)
    else:
        data = load_image_folder(data_dir, labels, on_bad)
    if limit is not None:
        if limit < 1:
            raise DataError(f"--limit must be a positive number of rows, got {limit}")
        data.train, data.validation, data.test = (s.head(limit) for s in (data.train, data.validation, data.test))
    return data
