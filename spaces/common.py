"""What several tabs share: the CAM method choices and how an error reaches the person at the screen."""

from __future__ import annotations

import gradio as gr

from workbench import FAST_METHODS, METHODS

DEFAULT_METHOD = "gradcam"


def cam_methods() -> list[tuple[str, str]]:
    return [(method.title + (" (slow)" if method.slow else ""), name) for name, method in METHODS.items()]


def fast_methods() -> list[tuple[str, str]]:
    return [(METHODS[name].title, name) for name in FAST_METHODS]


def friendly(error: Exception) -> gr.Error:
    """A message for the person at the screen (and the API client), not a traceback."""
    return gr.Error(str(error), title="Cannot analyse this", print_exception=False)
