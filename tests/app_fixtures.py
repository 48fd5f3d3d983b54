"""Helpers for the app tests: a launched app, Chromium launch settings and a fake-camera video.

Kept out of conftest.py so the other areas' tests see none of it.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "spaces" / "examples"
CHROMIUM = Path(os.environ.get("FER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]

requires_chromium = pytest.mark.skipif(
    not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None,
    reason=f"Chromium not found at {CHROMIUM} (apt-get install chromium; .ci/run does this)",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_fake_camera_video(photo: Path, path: Path, frames: int = 24, size: tuple[int, int] = (320, 240)) -> Path:
    """A short YUV4MPEG2 clip of `photo` drifting a few pixels, for Chromium's fake camera.

    Chromium loops the file; the drift makes consecutive frames differ like a real camera's.
    """
    width, height = size
    image = Image.open(photo).convert("RGB")
    scale = max((width + 16) / image.width, (height + 16) / image.height)
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode())
        for index in range(frames):
            dx = round(8 + 6 * np.sin(2 * np.pi * index / frames))
            frame = image.crop((dx, 8, dx + width, 8 + height)).convert("YCbCr")
            y, cb, cr = (np.asarray(channel) for channel in frame.split())
            out.write(b"FRAME\n")
            out.write(y.tobytes())
            for chroma in (cb, cr):  # 4:2:0 subsampling
                out.write(chroma.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3)).astype(np.uint8).tobytes())
    return path


@pytest.fixture(scope="session")
def app_url():
    """The app launched in this process on a free port, as a user or the Space would see it."""
    from spaces.app import launch

    demo, url = launch(port=free_port(), block=False)
    yield url
    demo.close()
