"""What several tabs share: the CAM method choices and how an error reaches the person at the screen."""

from __future__ import annotations

import gradio as gr

from workbench import FAST_METHODS, METHODS

DEFAULT_METHOD = "gradcam"


def cam_methods() -> list[tuple[str, str]]:
    return [(method.title + (" (slow)" if method.slow else ""), name) for name, method in METHODS.items()]


def fast_methods() -> list[tuple[str, str]]:
    return [(METHODS[name].title, name) for name in FAST_METHODS]


def user_error(message: str, title: str = "Cannot do this") -> gr.Error:
    """A message for the person at the screen (and the API client). An ordinary mistake, such as
    pressing a button before giving a photo, is not a server fault: no traceback in the log."""
    return gr.Error(message, title=title, print_exception=False)


def friendly(error: Exception) -> gr.Error:
    """An engine error as a `user_error`, in the engine's words."""
    return user_error(str(error), title="Cannot analyse this")
