"""Run the FER Workbench app: ``python spaces/app.py`` (locally, or as the Space's app_file).

Works without installing the package: run as a script, it puts the repository root (the
folder holding hub_models/, workbench/ and spaces/) first on the import path.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradio as gr
from gradio import processing_utils
from PIL import Image

from spaces.ui import CSS, build_demo

# Answers for 8 people at once on a 2-core machine: two analyses run at a time (each already
# uses the cores through torch), the rest wait in the queue instead of being refused.
CONCURRENT_ANALYSES = 2
QUEUE_SIZE = 32
MAX_UPLOAD = "25mb"
# Sessions kept at once (Gradio's default is 10,000, at several MB each): beyond it the least
# recently used session's state is dropped, so memory stays bounded under any number of visitors.
SESSION_CAPACITY = 24


# glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
MMAP_THRESHOLD = 1 << 20
ARENAS = 2


def session_capacity() -> int:
    return int(os.environ.get("FER_APP_SESSIONS", SESSION_CAPACITY))


def bound_native_heap() -> bool:
    """Make freed image buffers go back to the system (glibc only; elsewhere a no-op).

    glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MB), after
    which the 10–50 MB arrays of decoded uploads come from the heap, where they fragment it and
    the resident set creeps up with every large photo. A fixed threshold keeps them mmapped
    (released on free), and two arenas stop each of the server's worker threads from growing a
    heap of its own."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_ARENA_MAX, ARENAS))
    except (OSError, AttributeError):
        return False


def save_image_atomically(image: Image.Image, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """Gradio's image cache, written so that a reader never sees a half-written file.

    Gradio names a cached output by the hash of its bytes and rewrites the file in place each
    time, so when two requests produce the same picture at once (two visitors on the same
    example photo) one browser's download can race the other request's rewrite and end early.
    Here identical bytes are written once, through a temporary file and an atomic rename."""
    data = processing_utils.encode_pil_to_bytes(image, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(parents=True, exist_ok=True)
    target = (folder / f"{name}.{format}").resolve()
    if not target.exists():
        handle, partial = tempfile.mkstemp(dir=folder, suffix=".partial")
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
    return str(target)


def launch(port: int | None = None, host: str | None = None, block: bool = True) -> tuple[gr.Blocks, str]:
    """Build, queue and start the app; returns it with its URL (``block=False`` for tests)."""
    bound_native_heap()
    processing_utils.save_pil_to_cache = save_image_atomically  # every image and gallery output
    demo = build_demo().queue(default_concurrency_limit=CONCURRENT_ANALYSES, max_size=QUEUE_SIZE)
    _, url, _ = demo.launch(
        server_name=host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=port or int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        prevent_thread_lock=True, quiet=not block, max_file_size=MAX_UPLOAD, footer_links=["api"],
        state_session_capacity=session_capacity(),
        theme=gr.themes.Soft(primary_hue="indigo"), css=CSS,
    )
    if block:
        demo.block_thread()
    return demo, url


if __name__ == "__main__":
    launch()
