"""Run the FER Workbench app: ``python spaces/app.py`` (locally, or as the Space's app_file).

Works without installing the package: run as a script, it puts the repository root (the
folder holding hub_models/, workbench/ and spaces/) first on the import path.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import gradio as gr

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


def launch(port: int | None = None, host: str | None = None, block: bool = True) -> tuple[gr.Blocks, str]:
    """Build, queue and start the app; returns it with its URL (``block=False`` for tests)."""
    bound_native_heap()
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
