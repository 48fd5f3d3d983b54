"""Files that appear complete or not at all: the zoo's rewrites and every training output use this.

A write can be killed at any moment (a time limit, Ctrl-C, a full disk). A single file is written
under a temporary name in its own folder and renamed into place (``os.replace`` is atomic within
one file system), so readers see the old file or the whole new one, never a half-written one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: Path, write: Callable[[Path], object]) -> Path:
    """Let `write` fill a temporary sibling of `path`, then rename it onto `path`. A file that is
    replaced keeps its permissions (safetensors writes 0600, which would hide shipped weights)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        write(temporary)
        if path.exists():
            shutil.copymode(path, temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def write_text_atomically(path: Path, text: str) -> Path:
    return write_atomically(path, lambda temporary: temporary.write_text(text))
