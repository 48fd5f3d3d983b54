"""The app in a real browser: Debian's Chromium driven by Playwright (upload → comparison, and the
webcam tab fed by Chromium's fake camera from a face video)."""

from __future__ import annotations

import os
import re

import pytest
from app_fixtures import CHROMIUM, CHROMIUM_ARGS, EXAMPLES, app_url, requires_chromium, write_fake_camera_video  # noqa: F401

os.environ.setdefault("FER_APP_MODELS", "patt_lite,ddamfn")
playwright = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import expect, sync_playwright  # noqa: E402

from hub_models import FER2013_LABELS  # noqa: E402
from spaces.compare_view import NO_NATIVE_MAPS  # noqa: E402

pytestmark = [pytest.mark.browser, requires_chromium]
LABELS = re.compile("|".join(FER2013_LABELS))
# The models the page opens on. The tests use two untrained architectures (fast); the README's
# screenshots are taken with the trained zoo (FER_APP_MODELS=fer-workbench/…), and the checks
# below follow whichever models are configured.
MODELS = [spec.strip() for spec in os.environ["FER_APP_MODELS"].split(",") if spec.strip()]
UNTRAINED = [slot for slot, spec in enumerate(MODELS[:3]) if "/" not in spec]


@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    """One Chromium for the module; its fake camera plays a clip made from an example photo."""
    video = write_fake_camera_video(EXAMPLES / "eileen_collins.jpg", tmp_path_factory.mktemp("camera") / "face.y4m")
    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"]
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=args)
        yield browser
        browser.close()


@pytest.fixture
def app_page(chromium, app_url):  # noqa: F811
    context = chromium.new_context(viewport={"width": 1400, "height": 1000}, permissions=["camera"])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(app_url, wait_until="domcontentloaded")
    page.locator("#analyze-btn").wait_for(state="visible", timeout=60_000)
    yield page
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


def save_screenshot(page, tmp_path, name: str) -> None:
    """Into the test's folder, and into ``FER_SCREENSHOT_DIR`` when set (the README's pictures)."""
    page.screenshot(path=str(tmp_path / name), full_page=True)
    assert (tmp_path / name).stat().st_size > 10_000
    if os.environ.get("FER_SCREENSHOT_DIR"):  # 256 colours: a tenth of the size, for the repository
        from PIL import Image

        with Image.open(tmp_path / name) as shot:
            shot.convert("RGB").quantize(256).save(os.path.join(os.environ["FER_SCREENSHOT_DIR"], name), optimize=True)


def test_upload_compare_shows_labels_and_overlays(app_page, tmp_path):
    page = app_page
    page.locator("#input-image input[type=file]").set_input_files(str(EXAMPLES / "grace_hopper.jpg"))
    page.locator("#input-image img").first.wait_for(state="visible")
    page.locator("#analyze-btn").click()
    for slot in (0, 1):
        expect(page.locator(f"#model-{slot}-label .output-class")).to_have_text(LABELS, timeout=120_000)
        page.locator(f"#model-{slot}-cam img").first.wait_for(state="visible")
        if NO_NATIVE_MAPS not in page.locator(f"#model-{slot}-head").inner_text():  # an ablation has none
            page.locator(f"#model-{slot}-native img").first.wait_for(state="visible")
    expect(page.locator("#model-0-head")).to_contain_text(MODELS[0].rsplit("/", 1)[-1])
    for slot in UNTRAINED:
        expect(page.locator(f"#model-{slot}-head")).to_contain_text("untrained")
    expect(page.locator("#model-2-head")).to_be_hidden()
    expect(page.locator("#status")).to_contain_text("1 face analysed")
    page.locator("#faces-image img").first.wait_for(state="visible")
    page.locator("#regions-plot img").first.wait_for(state="visible")
    expect(page.locator("#faithfulness-table")).to_contain_text("ROAD MoRF", timeout=120_000)
    # An untrained model's top class is greyed and not bold.
    for slot in UNTRAINED:
        weight = page.locator(f"#model-{slot}-label .output-class").evaluate("e => getComputedStyle(e).fontWeight")
        assert int(weight) < 600, f"model {slot}: an untrained prediction is drawn bold ({weight})"
    page.locator("#reading-guide").get_by_text("How to read this").click()
    expect(page.locator("#reading-guide")).to_contain_text("Deletion")
    save_screenshot(page, tmp_path, "compare_desktop.png")


def test_dataset_tab_cell_click_shows_faces(app_page, tmp_path):
    page = app_page
    from training.data import DataError, default_data_dir, find_fer2013_csv

    try:
        find_fer2013_csv(default_data_dir())
    except DataError as error:
        pytest.skip(f"FER2013 not available: {error}")
    page.get_by_role("tab", name="Dataset").click()
    size = page.locator("#dataset-size input[type=number]")
    size.fill("32")
    size.press("Enter")
    page.locator("#dataset-btn").click()
    expect(page.locator("#dataset-status")).to_contain_text("32 FER2013 PrivateTest images", timeout=120_000)
    page.locator("#confusion-plot img").first.wait_for(state="visible")
    cells = page.locator("#confusion-table [data-testid^='cell-']:not([data-col='0'])")
    counts = [int(text) for text in cells.all_inner_texts()]
    nonzero = cells.nth(next(i for i, count in enumerate(counts) if count > 0))
    nonzero.click()
    expect(page.locator("#cell-true input")).not_to_have_value("", timeout=30_000)
    page.locator("#cell-gallery img").first.wait_for(state="visible", timeout=120_000)
    save_screenshot(page, tmp_path, "dataset_desktop.png")


def test_webcam_stream_with_fake_camera(app_page, tmp_path):
    page = app_page
    page.get_by_role("tab", name="Webcam").click()
    page.get_by_text("Click to Access Webcam").locator("visible=true").first.click()
    page.locator("#webcam-input").get_by_role("button", name=re.compile("record|capture", re.I)).first.click()
    page.locator("#live-output img").first.wait_for(state="visible", timeout=120_000)
    expect(page.locator("#live-summary")).to_contain_text(MODELS[0].rsplit("/", 1)[-1], timeout=60_000)
    save_screenshot(page, tmp_path, "webcam_desktop.png")


def test_activations_tab_draws_curves_and_costs(app_page, tmp_path):
    page = app_page
    page.get_by_role("tab", name="Activations").click()
    page.locator("#activation-curves img").first.wait_for(state="visible", timeout=120_000)
    expect(page.locator("#activation-cost")).to_contain_text("relu", timeout=120_000)
    save_screenshot(page, tmp_path, "activations_desktop.png")


def test_a_mistake_is_written_in_the_status_line(app_page):
    page = app_page
    page.locator("#analyze-btn").click()
    expect(page.locator("#status")).to_contain_text("Give a photo first", timeout=60_000)
    expect(page.locator(".toast-body")).to_have_count(0)  # no pop-up


def test_clicking_an_example_runs_the_comparison(app_page):
    page = app_page
    page.locator("#examples button").first.click()
    expect(page.locator("#status")).to_contain_text("face", timeout=120_000)
    expect(page.locator("#model-0-label .output-class")).to_have_text(LABELS, timeout=120_000)


def test_phone_width_reaches_every_tab(chromium, app_url, tmp_path):  # noqa: F811
    context = chromium.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True)
    page = context.new_page()
    page.goto(app_url, wait_until="domcontentloaded")
    page.locator("#analyze-btn").wait_for(state="visible", timeout=60_000)
    page.locator("#examples button").first.click()
    expect(page.locator("#faithfulness-table")).to_contain_text("ROAD MoRF", timeout=180_000)
    wide = page.evaluate("() => document.documentElement.scrollWidth")
    assert wide <= 390 + 2, f"the page scrolls sideways at phone width ({wide} px): something is clipped or too wide"
    for name in ("Compare", "Webcam", "Video", "Activations", "Dataset"):
        expect(page.get_by_role("tab", name=name)).to_be_visible()
    page.get_by_role("tab", name="Activations").click()
    expect(page.locator("#models")).to_be_hidden(timeout=60_000)  # no models on that tab
    page.get_by_role("tab", name="Compare").click()
    expect(page.locator("#models")).to_be_visible(timeout=60_000)
    save_screenshot(page, tmp_path, "compare_phone.png")
    context.close()


def test_compare_probes_fill_their_tables(app_page, tmp_path):
    page = app_page
    page.locator("#examples button").first.click()
    expect(page.locator("#faithfulness-table")).to_contain_text("ROAD MoRF", timeout=180_000)
    page.locator("#probe-btn").click()
    expect(page.locator("#probe-table")).to_contain_text("mouth", timeout=180_000)
    page.locator("#robust-btn").click()
    expect(page.locator("#robust-table")).to_contain_text("sunglasses", timeout=180_000)
    page.locator("#probe-table").scroll_into_view_if_needed()
    save_screenshot(page, tmp_path, "probes_desktop.png")


def test_video_tab_explains_an_uploaded_clip(app_page, tmp_path):
    from test_workbench_video import drifting_clip

    # VP8: the browser previews the upload too
    clip = drifting_clip(EXAMPLES / "grace_hopper.jpg", tmp_path / "drift.webm", frames=10, fourcc="VP80")
    page = app_page
    page.get_by_role("tab", name="Video").click()
    page.locator("#video-input input[type=file]").set_input_files(str(clip))
    page.locator("#video-btn").click()
    expect(page.locator("#video-status")).to_contain_text("frames explained", timeout=180_000)
    expect(page.locator("#video-status")).to_contain_text("1 face track")
    expect(page.locator(".toast-body")).to_have_count(0)  # the upload previews without an error
    page.locator("#video-output video").first.wait_for(state="visible", timeout=60_000)
    page.locator("#video-timeline img").first.wait_for(state="visible", timeout=60_000)
    save_screenshot(page, tmp_path, "video_desktop.png")


def test_dataset_tab_draws_the_atlas_and_probes_the_models(app_page, tmp_path):
    from training.data import DataError, default_data_dir, find_fer2013_csv

    try:
        find_fer2013_csv(default_data_dir())
    except DataError as error:
        pytest.skip(f"FER2013 not available: {error}")
    page = app_page
    page.get_by_role("tab", name="Dataset").click()
    for slider, value in (("#atlas-per-class", "5"), ("#probe-count", "5")):
        number = page.locator(f"{slider} input[type=number]")
        number.fill(value)
        number.press("Enter")
    page.locator("#atlas-btn").click()
    page.locator("#atlas-plot img").first.wait_for(state="visible", timeout=180_000)
    expect(page.locator("#atlas-table")).to_contain_text("disgust", timeout=60_000)
    page.locator("#probes-btn").click()
    expect(page.locator("#probes-table")).to_contain_text("blur", timeout=180_000)
    page.locator("#atlas-plot").scroll_into_view_if_needed()
    save_screenshot(page, tmp_path, "atlas_desktop.png")
