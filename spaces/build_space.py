"""Assemble a Hugging Face Space repository for the app: ``python spaces/build_space.py OUT_DIR``.

A Space installs `requirements.txt` before its files are copied in, so the packages cannot be
pip-installed from the Space's own folder; instead the Space's root holds them as source, and
`spaces/app.py` (the `app_file`) imports them from there. Only source and package data are
copied: no caches, tests, data or training outputs.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("hub_models", "workbench", "training", "spaces")
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi", ".pytest_cache")


def build_space(out_dir: Path) -> Path:
    """Write the Space into `out_dir`, which must not exist or be empty (nothing is overwritten)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; choose a new folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        shutil.copytree(REPO / package, out_dir / package, ignore=IGNORE)  # links become files
    shutil.copy2(REPO / "spaces" / "README.md", out_dir / "README.md")
    shutil.copy2(REPO / "spaces" / "requirements.txt", out_dir / "requirements.txt")
    return out_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="new or empty folder for the Space repository")
    print(build_space(parser.parse_args().out_dir))


if __name__ == "__main__":
    main()
