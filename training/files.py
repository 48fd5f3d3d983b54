"""Files that appear complete or not at all, and paths checked before any work is done.

A run can be killed at any moment (a time limit, Ctrl-C, a full disk). Whatever it leaves behind
must not pass for a result: single files are written under a temporary name in their own folder
and renamed into place (`hub_models.files.write_atomically`), and a folder of results is filled in
a staging folder whose files are moved into place with the completion marker last.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from hub_models.files import write_atomically, write_text_atomically  # noqa: F401  (one writer, shared with the zoo)

NAME_MAX = 255  # bytes in one path component (Linux, macOS, Windows)


def shown(path: Path | str, limit: int = 120) -> str:
    """A path short enough for a one-line error message."""
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-20:]} ({len(text)} characters)"


def fresh_folder(folder: Path) -> Path:
    """An empty `folder` (a leftover from a killed run is removed first)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return folder


def publish_folder(staging: Path, target: Path, last: Sequence[str] = ()) -> None:
    """Move every entry of `staging` into `target`, the names in `last` at the end in that order,
    then remove `staging`. With the completion marker as the last name, a folder that has the
    marker has all the other files too."""
    names = sorted(entry.name for entry in staging.iterdir())
    for name in [n for n in names if n not in last] + [n for n in last if n in names]:
        destination = target / name
        if destination.is_dir() and not destination.is_symlink():
            shutil.rmtree(destination)
        os.replace(staging / name, destination)
    staging.rmdir()


def unusable_path(path: Path) -> str | None:
    """Why the name `path` cannot be used on this system (a component or the whole path too long),
    found without creating anything; None when it can. A too-long component below a folder that
    does not exist yet is only refused by the system on creation, hence the explicit check."""
    if any(len(os.fsencode(part)) > NAME_MAX for part in Path(path).parts):
        return f"a path component is longer than {NAME_MAX} bytes"
    try:
        Path(path).exists()
    except OSError as error:
        return error.strerror or str(error)
    return None


def output_dir_problem(folder: Path) -> str | None:
    """Why `folder` cannot become an output folder (an unusable name, an existing file, a file in
    the way above it), checked before any work; None when it can."""
    problem = unusable_path(folder)
    if problem is not None:
        return problem
    if folder.exists() and not folder.is_dir():
        return "it is a file, not a folder"
    existing = next((parent for parent in folder.parents if parent.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"{shown(existing)} is a file, not a folder"
    return None
