"""Session state on the server is bounded: a capped number of sessions, and an analysis expires.

A public Space meets thousands of visitors; each analysis holds several MB of faces and maps. With
Gradio's defaults (10,000 sessions, state kept for good) memory grows without end."""

from __future__ import annotations

import os
import time

import pytest
from app_fixtures import EXAMPLES, free_port
from PIL import Image

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

CAPACITY, TTL_S, SESSIONS = 3, 2, 6


@pytest.fixture(scope="module")
def small_app(tmp_path_factory, monkeypatch_module):
    from spaces.app import launch

    monkeypatch_module.setenv("FER_APP_SESSIONS", str(CAPACITY))
    monkeypatch_module.setenv("FER_APP_STATE_TTL", str(TTL_S))
    monkeypatch_module.setenv("FER_APP_MODELS", "patt_lite")
    photo = tmp_path_factory.mktemp("photo") / "face.jpg"
    Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB").resize((256, 300)).save(photo)
    demo, url = launch(port=free_port(), block=False)
    yield demo, url, photo
    demo.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def analyses_held(demo) -> int:
    """Session-state values that hold an analysis (the app's `gr.State`s), over every session."""
    holder = demo.state_holder
    return sum(value is not None for session in list(holder.session_data.values())
               for value in session.state_data.values())


def test_sessions_are_capped_and_analyses_expire(small_app):
    demo, url, photo = small_app
    for _ in range(SESSIONS):  # each Client is a new browser session
        client = Client(url, verbose=False)
        client.predict(handle_file(str(photo)), ["patt_lite"], "gradcam", "predicted class", api_name="/analyze")
    assert len(demo.state_holder.session_data) <= CAPACITY
    assert 0 < analyses_held(demo) <= CAPACITY
    deadline = time.monotonic() + TTL_S + 10
    while analyses_held(demo) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert analyses_held(demo) == 0, "expired analyses are still held"


def test_settings_come_from_the_environment(small_app):
    demo, _, _ = small_app
    assert demo.state_session_capacity == CAPACITY
    assert os.environ["FER_APP_STATE_TTL"] == str(TTL_S)
    states = [block for block in demo.blocks.values() if type(block).__name__ == "State"]
    assert states and all(block.time_to_live == TTL_S for block in states)
    assert demo.delete_cache and demo.delete_cache[1] > 0
