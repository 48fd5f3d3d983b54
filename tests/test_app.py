"""The Gradio app through its public API (gradio_client against the launched app), plus the
webcam stream handler as plain Python (gradio_client cannot call stream endpoints)."""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from app_fixtures import EXAMPLES, app_url  # noqa: F401  (pytest fixture)
from PIL import Image

os.environ.setdefault("FER_APP_MODELS", "patt_lite,ddamfn")
MODEL_DIR = Path(tempfile.mkdtemp(prefix="fer-app-models-"))  # the operator's FER_APP_MODEL_DIRS
os.environ["FER_APP_MODEL_DIRS"] = str(MODEL_DIR)

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from hub_models import FER2013_LABELS  # noqa: E402

MODELS = ["patt_lite", "ddamfn"]
ENDPOINTS = {"/analyze", "/faithfulness", "/show_face", "/faithfulness_of_face", "/bundle", "/live_frame",
             "/activation_curves", "/activation_cost", "/dataset_evaluate", "/dataset_table", "/dataset_pick_cell",
             "/dataset_cell_after_pick", "/dataset_cell", "/target_choices", "/time_note", "/redraw",
             "/preview", "/probe_regions", "/explain_video", "/attention_atlas", "/robustness",
             "/dataset_probes"}
# /analyze outputs: status, faces image, face picker, then per model column (header, label, cam, gallery), regions,
# faithfulness table (layout columns are not outputs of the API).


@pytest.fixture(scope="module")
def client(app_url):  # noqa: F811
    return Client(app_url, verbose=False)


def analyze(client: Client, photo: Path | str, models=MODELS, method="gradcam", target="predicted class"):
    return client.predict(handle_file(str(photo)), models, method, target, api_name="/analyze")


def test_every_event_is_a_named_endpoint(client):
    named = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert named >= ENDPOINTS


def test_every_output_of_every_endpoint_is_named(client):
    endpoints = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    unnamed = [(name, item.get("label")) for name, endpoint in endpoints.items() for item in endpoint["returns"]
               if not item.get("label") or re.fullmatch(r"value_\d+", item["label"])]
    assert not unnamed


def test_a_rerun_keeps_the_chosen_face_and_can_score_faithfulness_at_once(client):
    photo = handle_file(str(EXAMPLES / "two_people.jpg"))
    out = client.predict(photo, MODELS[:1], "gradcam", "predicted class", 1, True, api_name="/analyze")
    assert out[2]["value"] == 1
    assert [row[0] for row in out[-1]["data"]] == MODELS[:1]  # scored in the same call
    again = client.predict(handle_file(str(EXAMPLES / "grace_hopper.jpg")), MODELS[:1], "gradcam",
                           "predicted class", 1, False, api_name="/analyze")
    assert again[2]["value"] == 0  # that photo has one face


def test_several_cam_methods_side_by_side_with_their_cost_announced(client):
    single = analyze(client, EXAMPLES / "grace_hopper.jpg", models=MODELS[:1], method=["gradcam"])
    several = client.predict(handle_file(str(EXAMPLES / "grace_hopper.jpg")), MODELS[:1], ["gradcam", "eigencam"],
                             "predicted class", None, True, api_name="/analyze")
    width = Image.open(several[5]).size[0]
    assert width > 1.4 * Image.open(single[5]).size[0]  # face | Grad-CAM | Eigen-CAM | colour bar
    assert sorted(row[0] for row in several[-1]["data"]) == [f"{MODELS[0]} · Eigen-CAM", f"{MODELS[0]} · Grad-CAM"]
    assert "Score-CAM is slow" in client.predict(["gradcam", "scorecam"], api_name="/time_note")
    assert client.predict(["gradcam"], api_name="/time_note") == ""
    with pytest.raises(AppError, match="at most 3"):
        analyze(client, EXAMPLES / "grace_hopper.jpg", models=MODELS[:1],
                method=["gradcam", "eigencam", "layercam", "xgradcam"])


def test_upload_previews_show_what_the_analysis_sees(client, tmp_path):
    tiff = tmp_path / "portrait.tiff"
    Image.open(EXAMPLES / "grace_hopper.jpg").save(tiff)
    shown, note = client.predict(handle_file(str(tiff)), api_name="/preview")
    assert Path(shown).suffix == ".png" and Image.open(shown).size == Image.open(tiff).size
    assert "browsers cannot display .tiff" in note
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    shown, note = client.predict(handle_file(str(broken)), api_name="/preview")
    assert shown is None and note.startswith("⚠ **Cannot use this file:**")


def test_one_spelling_per_class_across_label_sets(client):
    update = client.predict(["patt_lite"], "happiness", api_name="/target_choices")
    choices = [choice[0] if isinstance(choice, (list, tuple)) else choice for choice in update["choices"]]
    assert choices == ["predicted class", *FER2013_LABELS] and update["value"] == "happy"  # FER2013's name
    out = analyze(client, EXAMPLES / "grace_hopper.jpg", models=["patt_lite"], target="happiness")
    assert out[4]["label"] == "happy" or "maps explain **happy**" in out[3]
    assert "not among this model's labels" not in out[3]


def test_two_faces_side_by_side_then_faithfulness_other_face_and_bundle(client):
    out = analyze(client, EXAMPLES / "two_people.jpg")
    status, faces_image, picker = out[:3]
    assert "2 faces analysed" in status
    assert "Untrained models" in status  # freshly initialised architectures say so
    assert [choice[1] for choice in picker["choices"]] == [0, 1]
    assert Image.open(faces_image).size == Image.open(EXAMPLES / "two_people.jpg").size
    columns = out[3:3 + 4 * 3]
    for slot, name in enumerate(MODELS):
        header, label, cam, gallery = columns[4 * slot:4 * slot + 4]
        assert name in header and "untrained" in header
        assert label["label"] in FER2013_LABELS
        assert {c["label"] for c in label["confidences"]} <= set(FER2013_LABELS)
        cam_image = np.asarray(Image.open(cam))
        assert cam_image.shape[0] >= 224 and cam_image.shape[1] > cam_image.shape[0]  # face + colour bar
        assert gallery, f"{name} shows no native attention"
    assert tuple(columns[8:]) == ("", {}, None, [])  # third slot unused (and hidden)
    regions, table = out[-2:]
    assert regions is not None
    assert table["data"] == []  # faithfulness arrives in the next step

    scores = client.predict(0, api_name="/faithfulness")
    assert [row[0] for row in scores["data"]] == MODELS
    assert scores["headers"][1:] == ["deletion ↓", "insertion ↑", "ROAD MoRF ↓", "ROAD LeRF ↑"]
    assert all(0.0 <= value <= 1.0 for row in scores["data"] for value in row[1:])

    probe = client.predict(0, api_name="/probe_regions")
    assert [row[0] for row in probe["data"]] == MODELS
    assert {"eyes", "mouth", "Grad-CAM captures"} <= set(probe["headers"])

    shaken = client.predict(0, api_name="/robustness")
    from workbench import PERTURBATIONS

    assert len(shaken["data"]) == len(PERTURBATIONS) * len(MODELS)
    assert shaken["headers"][:3] == ["model", "perturbation", "predicted"]

    other = client.predict(1, api_name="/show_face")
    assert other[2]["value"] == 1
    assert client.predict(1, api_name="/faithfulness_of_face")["data"]

    archive = client.predict(api_name="/bundle")  # an update that also shows the (hidden) file box
    assert archive["visible"] is True
    with zipfile.ZipFile(archive["value"]) as bundle:
        names = bundle.namelist()
        assert "manifest.json" in names and "faces.png" in names
        assert any(name.startswith("face1/") and name.endswith("cam_gradcam.npy") for name in names)


def test_chosen_class_method_and_a_local_folder_model(client):
    import hub_models

    folder = MODEL_DIR / "my-patt-lite"
    hub_models.create_model("patt_lite").save_pretrained(folder)
    out = analyze(client, EXAMPLES / "grace_hopper.jpg", models=[str(folder)], method="layercam", target="surprise")
    assert out[3].startswith("### my-patt-lite") and "untrained" not in out[3]  # a saved folder counts as trained
    assert out[4]["label"] == "surprise" or "maps explain **surprise**" in out[3]
    assert Image.open(out[5]).size[0] > 224


def test_no_code_from_users_and_no_folder_probing(client, tmp_path):
    """An uploaded modeling file never runs, and a path outside the operator's model folders gets
    the same answer as an unknown name, whether it exists or not."""
    import hub_models

    marker = tmp_path / "code-ran"
    for root in (tmp_path, MODEL_DIR):
        evil = root / "evil-model"
        evil.mkdir(exist_ok=True)
        (evil / "config.json").write_text('{"model_type": "evil", "auto_map": {"AutoConfig": "modeling_x.C", '
                                          '"AutoModelForImageClassification": "modeling_x.M"}}')
        (evil / "modeling_x.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
        (evil / "model.safetensors").write_bytes(b"")
        hub_models.create_model("patt_lite").save_pretrained(root / "saved")  # a real model, wrong place
    answers = {}
    for spec in (str(tmp_path / "evil-model"), str(tmp_path / "saved"), "/etc", "/root", "..", str(tmp_path / "no"),
                 "/" + "a" * 300, "x" * 10_000):
        with pytest.raises(AppError) as raised:
            analyze(client, EXAMPLES / "grace_hopper.jpg", models=[spec])
        answers[spec] = re.sub(r"'[^']*'", "SPEC", str(raised.value))
    assert len(set(answers.values())) == 1, answers  # nothing tells an existing folder from a missing one
    with pytest.raises(AppError, match="code is disabled"):
        analyze(client, EXAMPLES / "grace_hopper.jpg", models=[str(MODEL_DIR / "evil-model")])
    assert not marker.exists()


def test_no_face_is_a_message_not_an_error(client, tmp_path):
    sky = tmp_path / "sky.png"
    gradient = np.linspace(60, 200, 400 * 300 * 3).reshape(300, 400, 3).astype(np.uint8)
    Image.fromarray(gradient).save(sky)
    out = analyze(client, sky, models=["patt_lite"])
    assert "No face found" in out[0]
    assert out[4] == {}  # no label shown


@pytest.mark.parametrize(("payload", "models", "expected"), [
    (b"this is not an image", ["patt_lite"], "not a recognised image format"),
    ("grace_hopper.jpg", ["nobody/no-such-model"], "offline"),
    ("grace_hopper.jpg", ["patt_lite", "ddamfn", "attention_cnn", "swin_ema"], "at most 3"),
])
def test_friendly_errors(client, tmp_path, payload, models, expected):
    if isinstance(payload, bytes):
        photo = tmp_path / "broken.jpg"
        photo.write_bytes(payload)
    else:
        photo = EXAMPLES / payload
    with pytest.raises(AppError, match=expected):
        analyze(client, photo, models=models)


def test_activation_endpoints(client):
    defaults = [0.8, 0.1, 1.0, 4.5, 0.5, 1.0]
    plot = client.predict(*defaults, api_name="/activation_curves")
    assert plot["type"] == "matplotlib" and plot["plot"].startswith("data:image")
    cost = client.predict(api_name="/activation_cost")
    assert [row[0] for row in cost["data"]] == ["c2_prelu", "c2_sigmoid", "sigmoid", "tanh", "elu", "relu"]
    assert all(row[1] > 0 for row in cost["data"])


def test_dataset_endpoints(client):
    from training.data import DataError, default_data_dir, find_fer2013_csv

    try:
        find_fer2013_csv(default_data_dir())
    except DataError as error:
        pytest.skip(f"FER2013 not available: {error}")
    out = client.predict(["patt_lite"], "fer2013", 32, api_name="/dataset_evaluate")
    status, figure, reliability, model, true_class, predicted, table = out
    assert reliability is not None  # the reliability diagram beside the matrices
    assert true_class["choices"] == predicted["choices"]
    assert "32 FER2013 PrivateTest images" in status
    assert figure is not None and model["value"] == "patt_lite"
    counts = np.array([row[1:] for row in table["data"]])
    assert counts.sum() == 32
    row, column = np.argwhere(counts > 0)[0]
    faces = client.predict("patt_lite", FER2013_LABELS[row], FER2013_LABELS[column], "gradcam",
                           api_name="/dataset_cell")
    assert 1 <= len(faces) <= min(12, counts[row, column])
    assert faces[0]["caption"].startswith(f"1 of {counts[row, column]} in this cell")
    assert client.predict("patt_lite", api_name="/dataset_table")["data"] == table["data"]
    assert client.predict("patt_lite", api_name="/dataset_pick_cell") is not None  # no click: pickers stay


def test_attention_atlas_endpoint(client):
    from training.data import DataError, default_data_dir, find_fer2013_csv

    try:
        find_fer2013_csv(default_data_dir())
    except DataError as error:
        pytest.skip(f"FER2013 not available: {error}")
    probes = client.predict(["patt_lite"], "fer2013", 5, "gradcam", api_name="/dataset_probes")
    assert [row[0] for row in probes["data"]] == ["patt_lite"] and "face mask: same prediction" in probes["headers"]
    figure, regions = client.predict(["patt_lite"], "fer2013", 5, "gradcam", api_name="/attention_atlas")
    assert figure is not None
    assert [row[1] for row in regions["data"]] == list(FER2013_LABELS) and all(row[2] == 5 for row in regions["data"])


def test_clicking_a_confusion_cell_picks_its_classes():
    import gradio as gr

    from spaces.dataset_view import DatasetRun, pick_cell
    from training.data import Split
    from workbench import TestFaces

    faces = TestFaces("fer2013", "FER2013 PrivateTest", FER2013_LABELS,
                      Split(np.zeros((2, 48, 48), np.uint8), np.array([3, 4]), ["row 1", "row 2"]))
    run = DatasetRun(faces, {"m": np.array([3, 6])}, {"m": "patt_lite"}, {})
    assert pick_cell(run, "m", gr.EventData(None, {"index": [4, 7], "value": 1})) == ("sad", "neutral")
    true_class, unchanged = pick_cell(run, "m", gr.EventData(None, {"index": [2, 0], "value": "fear"}))
    assert true_class == "fear" and unchanged == gr.update()
    assert pick_cell(run, "m", gr.EventData(None, None)) == (gr.update(), gr.update())


def test_a_model_without_attention_says_why_its_native_maps_are_missing(client):
    from spaces.compare_view import NO_NATIVE_MAPS

    out = analyze(client, EXAMPLES / "grace_hopper.jpg", models=["vgg19_none", "patt_lite"])
    (plain_header, _, _, plain_gallery), (attention_header, _, _, attention_gallery) = out[3:7], out[7:11]
    assert NO_NATIVE_MAPS in plain_header and not plain_gallery
    assert NO_NATIVE_MAPS not in attention_header and attention_gallery


def test_every_zoo_ablation_is_offered_next_to_its_model_and_named_as_such():
    from hub_models import zoo
    from spaces.model_choice import offered_models

    labels = {spec: label for label, spec in offered_models()}
    specs = list(labels)
    ablations = {model_id: zoo.ablation_note(model_id) for model_id in zoo.model_ids() if zoo.ablation_note(model_id)}
    if not ablations:
        pytest.skip("the embedded zoo holds no ablation")
    for model_id, note in ablations.items():
        of = f"{zoo.ORG}/{note.removeprefix('ablation of ').partition(':')[0]}"
        assert note in labels[model_id] and "trained" in labels[model_id]
        assert specs.index(model_id) == specs.index(of) + 1, f"{model_id} is not listed right after {of}"


def test_eight_simultaneous_users_all_get_answers(app_url):  # noqa: F811
    # Eight identical requests give identical output files under one content-hashed cache path,
    # downloaded while the other requests produce them again (written once, atomically).
    clients = [Client(app_url, verbose=False) for _ in range(8)]
    jobs = [c.submit(handle_file(str(EXAMPLES / "eileen_collins.jpg")), ["patt_lite"], "gradcam",
                     "predicted class", api_name="/analyze") for c in clients]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda job: job.result(timeout=180), jobs))
    assert all("1 face analysed" in result[0] for result in results)
    assert all(result[4]["label"] in FER2013_LABELS for result in results)


def test_cached_images_are_written_once_and_whole(tmp_path):
    from spaces.app import save_image_atomically

    picture = Image.new("RGB", (16, 16), (200, 10, 10))
    first = Path(save_image_atomically(picture, str(tmp_path)))
    stamp = first.stat().st_mtime_ns
    assert Path(save_image_atomically(picture.copy(), str(tmp_path))) == first
    assert first.stat().st_mtime_ns == stamp  # identical bytes are not rewritten under a reader
    assert [p.name for p in first.parent.iterdir()] == ["image.webp"]  # no partial file left
    assert Image.open(first).size == (16, 16)


def test_video_endpoint_explains_a_clip(client, tmp_path):
    import cv2

    clip = tmp_path / "clip.avi"
    photo = np.asarray(Image.open(EXAMPLES / "grace_hopper.jpg").convert("RGB").resize((240, 300)))
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), 10, (240, 300))
    for _ in range(10):
        writer.write(np.ascontiguousarray(photo[..., ::-1]))
    writer.release()
    video, timeline, table, status = client.predict(handle_file(str(clip)), ["patt_lite"], 0.5, "gradcam", 0.5,
                                                    api_name="/explain_video")
    assert "2 frames explained" in status and "1 face track" in status
    video = video["video"] if isinstance(video, dict) else video
    assert Path(video).suffix == ".webm" and Path(timeline).is_file() and Path(table).is_file()


def test_webcam_captions_keep_the_model_name_readable():
    from workbench import short_model_name
    from workbench.visualise import CAPTION_CHARS

    assert short_model_name("fer-workbench/patt-lite-fer2013") == "patt-lite-fer2013"
    long = short_model_name("org/a-very-long-model-name-that-goes-on-and-on-v2")
    assert len(long) == CAPTION_CHARS and long.startswith("a-very") and long.endswith("on-v2")


def test_live_frame_handler_draws_each_model_and_never_raises():
    from spaces.live_view import TILE, live_frame

    frame = np.asarray(Image.open(EXAMPLES / "eileen_collins.jpg").convert("RGB"))
    strip, summary = live_frame(frame, MODELS, "gradcam")
    assert strip.shape[0] > TILE and strip.shape[1] > 2 * TILE  # one tile per model + colour bar
    assert all(f"**{name}**" in summary for name in MODELS)
    assert live_frame(None, MODELS, "gradcam") == (None, "")
    assert live_frame(np.full((240, 320, 3), 90, np.uint8), MODELS, "gradcam") == (
        None, "No face in view — face the camera.")
    picture, message = live_frame(frame, ["nobody/no-such-model"], "gradcam")
    assert picture is None and message.startswith("⚠") and "no-such-model" in message
