"""The app as a Hugging Face Space: front matter, requirements, and an assembled Space that
imports its packages from its own root."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from app_fixtures import EXAMPLES, REPO

tomllib = pytest.importorskip("tomllib")  # Python ≥ 3.11
SPACE_README = REPO / "spaces" / "README.md"


def front_matter(path: Path) -> dict[str, str]:
    text = path.read_text()
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, f"{path} has no YAML front matter"
    return dict(line.split(": ", 1) for line in match.group(1).splitlines() if ": " in line)


def requirement_names(lines: list[str]) -> set[str]:
    return {re.split(r"[<>=!~\[; ]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")
            for line in lines if line.strip() and not line.lstrip().startswith("#")}


def test_front_matter_declares_a_gradio_space():
    meta = front_matter(SPACE_README)
    assert meta["sdk"] == "gradio"
    assert meta["app_file"] == "spaces/app.py"
    assert meta["sdk_version"] == metadata.version("gradio")  # the version the tests ran


def test_requirements_cover_every_package_dependency():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    listed = (REPO / "spaces" / "requirements.txt").read_text().splitlines()
    missing = requirement_names(declared) - requirement_names(listed)
    assert not missing, f"spaces/requirements.txt lacks {sorted(missing)} (a Space would fail to import)"


def test_examples_are_attributed():
    attribution = (EXAMPLES / "ATTRIBUTION.md").read_text()
    photos = [p.name for p in EXAMPLES.iterdir() if p.suffix in {".jpg", ".png"}]
    assert len(photos) >= 3
    assert all(f"`{name}`" in attribution for name in photos)


@pytest.mark.slow
def test_assembled_space_runs_its_app_file_from_its_own_root(tmp_path):
    from spaces.build_space import build_space

    root = build_space(tmp_path / "space")
    meta = front_matter(root / "README.md")
    app_file = root / meta["app_file"]
    assert app_file.is_file() and (root / "requirements.txt").is_file()
    assert not list(root.rglob("*.pyc")) and not list(root.rglob("tests"))
    with pytest.raises(FileExistsError):
        build_space(root)
    probe = (f"import runpy, sys; runpy.run_path({str(app_file)!r}, run_name='space_probe'); "
             "print(sys.modules['spaces'].__file__, sys.modules['workbench'].__file__)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=240,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    spaces_file, workbench_file = done.stdout.split()
    assert spaces_file.startswith(str(root)) and workbench_file.startswith(str(root))
