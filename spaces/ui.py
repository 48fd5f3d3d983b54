"""The app's layout and event wiring. Handlers live in the tab modules (`*_view.py`);
this module only places components and names every event as an API endpoint."""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from workbench import data_status

from . import activations_view, common, compare_view, dataset_view, live_view, video_view
from .model_choice import MAX_MODELS, default_models, offered_models

TITLE = "FER Workbench"
INTRO = (
    "See **why** facial-expression models decide what they decide. Pick up to three models, give a photo "
    "(upload, paste, an example or the webcam) and compare their predictions, class-activation maps, "
    "native attention, face-region attribution and faithfulness on the same aligned face."
)
READING_GUIDE = (Path(__file__).resolve().parent / "reading_guide.md").read_text()
CSS = """
.model-col {border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 8px !important;}
.model-head p {margin: 0 !important;}
.untrained {color: #b45309; font-weight: 600;}
/* An untrained model's prediction means nothing: greyed, never bold. */
.untrained-col .output-class {font-weight: normal !important; font-size: var(--text-lg) !important;
                              color: var(--body-text-color-subdued) !important;}
.untrained-col .confidence-set {opacity: 0.45; filter: grayscale(1);}
#status {min-height: 1.5em;}
"""


# What one browser session may hold on the server: an analysis (faces, maps, models' outputs) is
# several MB, so state expires after STATE_TTL_S of inactivity, cached output files after
# CACHE_AGE_S (checked every CACHE_SWEEP_S), and the app keeps at most SESSION_CAPACITY sessions
# (the least recently used is dropped first; spaces/app.py).
STATE_TTL_S = 900
CACHE_SWEEP_S, CACHE_AGE_S = 300, 1800


def state_ttl() -> int:
    """Seconds an idle session's analysis is kept (``FER_APP_STATE_TTL`` overrides)."""
    return int(os.environ.get("FER_APP_STATE_TTL", STATE_TTL_S))


def build_demo() -> gr.Blocks:
    with gr.Blocks(title=TITLE, delete_cache=(CACHE_SWEEP_S, CACHE_AGE_S)) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        models = gr.Dropdown(
            choices=offered_models(), value=default_models(), multiselect=True, max_choices=MAX_MODELS,
            allow_custom_value=True, label="Models (up to three)", elem_id="models",
            info="Embedded trained models, architectures with random weights (untrained), or type a local "
                 "folder or a Hub id (owner/name; needs the Hub online).",
        )
        # Wrap rather than hide tabs in a "more" menu: at phone width every tab stays one tap away.
        with gr.Tabs(overflow_behavior="wrap"):
            with gr.Tab("Compare", id="compare") as compare_tab:
                _compare_tab(models)
            with gr.Tab("Webcam", id="webcam") as webcam_tab:
                _webcam_tab(models)
            with gr.Tab("Video", id="video") as video_tab:
                _video_tab(models)
            with gr.Tab("Activations", id="activations") as activations_tab:
                _activations_tab(activations_tab)
            with gr.Tab("Dataset", id="dataset") as dataset_tab:
                _dataset_tab(models)
        # The model picker only where models are used (the Activations tab has none).
        for tab, uses_models in ((compare_tab, True), (webcam_tab, True), (video_tab, True), (activations_tab, False),
                                 (dataset_tab, True)):
            tab.select(_visibility(uses_models), outputs=[models], api_visibility="private", show_progress="hidden",
                       concurrency_limit=None)  # never waits behind an analysis
    return demo


def _visibility(visible: bool):
    return lambda: gr.update(visible=visible)


def _video_tab(models: gr.Dropdown) -> None:
    gr.Markdown(video_view.INTRO)
    with gr.Row():
        with gr.Column(min_width=300):
            clip = gr.Video(label="Video", sources=["upload"], elem_id="video-input", height=300)
            with gr.Row():
                every = gr.Slider(0.1, 3.0, value=0.5, step=0.1, label="Seconds between explained frames",
                                  elem_id="video-every")
                smoothing = gr.Slider(0.0, 0.9, value=0.5, step=0.1, label="Smoothing over time",
                                      elem_id="video-smoothing")
            method = gr.Dropdown(choices=common.fast_methods(), value=common.DEFAULT_METHOD,
                                 label="CAM method (fast set)", elem_id="video-method")
            run = gr.Button("Explain the video", variant="primary", elem_id="video-btn")
            status = gr.Markdown(label="Status", elem_id="video-status")
        with gr.Column(min_width=300):
            explained = gr.Video(label="Explained video", interactive=False, elem_id="video-output")
            timeline = gr.Image(label="Timeline: the longest-seen face's class probabilities", type="filepath",
                                interactive=False, elem_id="video-timeline")
            table = gr.File(label="Per-frame CSV", interactive=False, elem_id="video-csv")
    run.click(video_view.explain, inputs=[clip, models, every, method, smoothing],
              outputs=[explained, timeline, table, status], api_name="explain_video", concurrency_id="analysis")


def _compare_tab(models: gr.Dropdown) -> None:
    state = gr.State(time_to_live=state_ttl())
    with gr.Row():
        with gr.Column(scale=2, min_width=300):
            # PNG: a converted preview (see compare_view.preview) stays lossless.
            image = gr.Image(
                sources=["upload", "clipboard", "webcam"], type="filepath", label="Photo", elem_id="input-image",
                height=320, format="png",
            )
            examples = gr.Examples(examples=[[str(path)] for path in compare_view.example_photos()], inputs=[image],
                                   label="Examples (public domain): a click runs the comparison",
                                   elem_id="examples")
        with gr.Column(scale=2, min_width=300):
            with gr.Row():
                method = gr.Dropdown(choices=common.cam_methods(), value=[common.DEFAULT_METHOD], multiselect=True,
                                     max_choices=compare_view.MAX_METHODS, label="CAM methods (up to three)",
                                     elem_id="method", info="Several: side by side on the same face")
                target = gr.Dropdown(choices=compare_view.target_choices(default_models()),
                                     value=compare_view.PREDICTED, allow_custom_value=True, label="Explain class",
                                     elem_id="target")
            method_note = gr.Markdown(label="Expected time", elem_id="method-note")
            opacity = gr.Slider(0.1, 1.0, value=compare_view.DEFAULT_OPACITY, step=0.05, label="Map opacity",
                                elem_id="opacity", info="How strongly the maps tint the face where they are highest")
            run = gr.Button("Compare models", variant="primary", elem_id="analyze-btn")
            status = gr.Markdown(label="Status", elem_id="status")
            # No label drawn over the picture: it would hide the number of a face at the top left.
            faces = gr.Image(label="Faces found (numbered, largest first)", show_label=False, type="numpy",
                             format="jpeg", interactive=False, height=220, elem_id="faces-image")
            face = gr.Dropdown(choices=[], value=None, label="Face to show (numbered on the photo, largest first; "
                               "the one shown is outlined in orange)", elem_id="face-choice", interactive=True)
            # For API clients: score faithfulness in the /analyze call itself (the page scores it in
            # the follow-up event, after the maps are on screen).
            score_now = gr.Checkbox(value=False, visible=False, label="Score faithfulness in this call")
    columns = []
    with gr.Row(equal_height=False):
        for index in range(MAX_MODELS):
            with gr.Column(min_width=260, elem_classes=["model-col"], visible=False) as column:
                header = gr.Markdown(label=f"Model {index + 1}: heading", elem_id=f"model-{index}-head",
                                     elem_classes=["model-head"])
                label = gr.Label(num_top_classes=3, label=f"Model {index + 1}: probabilities", show_label=False,
                                 elem_id=f"model-{index}-label")
                # WebP: a quarter of PNG's encoding time; the bundle keeps lossless PNGs and raw maps.
                cam = gr.Image(type="numpy", format="webp", interactive=False, show_label=True, height=300,
                               label=f"Model {index + 1}: class-activation map", elem_id=f"model-{index}-cam")
                native = gr.Gallery(label=f"Model {index + 1}: native attention", columns=1, height="auto",
                                    format="webp", object_fit="contain", fit_columns=False,
                                    elem_id=f"model-{index}-native")
            columns.append(compare_view.ModelColumn(column, header, label, cam, native))
    with gr.Accordion("How to read this", open=False, elem_id="reading-guide"):
        gr.Markdown(READING_GUIDE)
    with gr.Row():
        regions = gr.Plot(label="Face-region attribution", show_label=False, elem_id="regions-plot")
        faithfulness = gr.Dataframe(label="Faithfulness of each CAM: AUCs of the explained class's probability "
                                    "(↓ lower / ↑ higher is better)", interactive=False,
                                    elem_id="faithfulness-table", wrap=True)
    with gr.Row(equal_height=True):
        probe = gr.Button("Probe the regions: blur each one and watch the class", elem_id="probe-btn", size="sm",
                          scale=0)
        probe_table = gr.Dataframe(
            label="Region probe: change of the explained class's probability when a region is blurred (points; "
                  "negative = the model relied on it), and the share of the largest drop each CAM's mass captures "
                  "(1 = all on the region that hurts most)", interactive=False, elem_id="probe-table", wrap=True)
    with gr.Row(equal_height=True):
        shake = gr.Button("Probe robustness: blur, light, JPEG, tilt, sunglasses, a mask", elem_id="robust-btn",
                          size="sm", scale=0)
        robust_table = gr.Dataframe(
            label="Robustness: each model's prediction on the changed face (⚠ = it changed), the probability left to "
                  "its original prediction, and r between its CAM there and on the clean face (1 = the map held)",
            interactive=False, elem_id="robust-table", wrap=True)
    with gr.Row(equal_height=True):
        bundle = gr.Button("Prepare the analysis bundle (.zip: overlays, raw maps, manifest)", elem_id="bundle-btn",
                           size="sm")
        bundle_file = gr.File(label="Bundle", interactive=False, elem_id="bundle-file", visible=False)

    shown = [status, faces, face, *compare_view.column_outputs(columns), regions, faithfulness]
    if len(shown) != compare_view.SHOWN_OUTPUTS:
        raise RuntimeError(f"the Compare tab has {len(shown)} outputs; compare_view.SHOWN_OUTPUTS says "
                           f"{compare_view.SHOWN_OUTPUTS}")
    models.change(compare_view.update_targets, inputs=[models, target], outputs=[target], api_name="target_choices",
                  show_progress="hidden")
    analysis_inputs = [image, models, method, target, face, score_now, opacity]
    # The page's button writes mistakes in the status line; API clients get them as errors from
    # /analyze, which hangs on a button nobody sees.
    api_only = gr.Button(visible=False)
    api_only.click(compare_view.analyze, inputs=analysis_inputs, outputs=[state, *shown], api_name="analyze",
                   concurrency_id="analysis", preprocess=False)
    run.click(compare_view.analyze_on_page, inputs=analysis_inputs, outputs=[state, *shown],
              api_visibility="private", concurrency_id="analysis", preprocess=False).then(
        compare_view.score_faithfulness, inputs=[state, face], outputs=[faithfulness], api_name="faithfulness",
        concurrency_id="analysis", show_progress="minimal")
    examples.load_input_event.then(
        compare_view.analyze_on_page, inputs=analysis_inputs, outputs=[state, *shown], api_visibility="private",
        concurrency_id="analysis", preprocess=False).then(
        compare_view.score_faithfulness, inputs=[state, face], outputs=[faithfulness], api_visibility="private",
        concurrency_id="analysis", show_progress="minimal")
    image.upload(compare_view.preview, inputs=[image], outputs=[image, status], api_name="preview",
                 preprocess=False, show_progress="hidden")
    method.change(compare_view.time_note, inputs=[method, state], outputs=[method_note], api_name="time_note",
                  show_progress="hidden", concurrency_limit=None)
    opacity.release(compare_view.show_face, inputs=[state, face, opacity], outputs=shown, api_name="redraw",
                    show_progress="hidden")
    face.input(compare_view.show_face, inputs=[state, face, opacity], outputs=shown, api_name="show_face").then(
        compare_view.score_faithfulness, inputs=[state, face], outputs=[faithfulness], api_name="faithfulness_of_face",
        concurrency_id="analysis", show_progress="minimal")
    probe.click(compare_view.region_probe, inputs=[state, face], outputs=[probe_table], api_name="probe_regions",
                concurrency_id="analysis")
    shake.click(compare_view.robustness, inputs=[state, face], outputs=[robust_table], api_name="robustness",
                concurrency_id="analysis")
    bundle.click(compare_view.bundle, inputs=[state], outputs=[bundle_file], api_name="bundle")


def _webcam_tab(models: gr.Dropdown) -> None:
    gr.Markdown("Live overlays with the fast methods: every frame goes through detection, alignment, each "
                "chosen model and the CAM below. Allow camera access, then press record.")
    with gr.Row():
        with gr.Column(min_width=300):
            frame = gr.Image(sources=["webcam"], streaming=True, type="numpy", label="Camera",
                             webcam_options=gr.WebcamOptions(mirror=True), elem_id="webcam-input")
            method = gr.Dropdown(choices=common.fast_methods(), value=common.DEFAULT_METHOD,
                                 label="CAM method (fast set)", elem_id="live-method")
        with gr.Column(min_width=300):
            overlay = gr.Image(type="numpy", format="jpeg", label="Live explanation", show_label=False,
                               interactive=False, elem_id="live-output")
            summary = gr.Markdown(label="Live summary", elem_id="live-summary")
    frame.stream(live_view.live_frame, inputs=[frame, models, method], outputs=[overlay, summary],
                 api_name="live_frame", stream_every=0.2, time_limit=120, concurrency_limit=2,
                 show_progress="hidden")


def _activations_tab(tab: gr.Tab) -> None:
    gr.Markdown(activations_view.INTRO)
    sliders = []
    for function in activations_view.FUNCTIONS:
        with gr.Row():
            sliders += [gr.Slider(minimum=low, maximum=high, value=value, step=step, label=label, min_width=200,
                                  elem_id="c2-" + key.replace(".", "-"))
                        for key, label, low, high, value, step in activations_view.PARAMETERS
                        if key.startswith(function + ".")]
    curves = gr.Plot(label="Activation curves", show_label=False, elem_id="activation-curves")
    with gr.Row():
        cost = gr.Dataframe(label=f"Measured CPU cost: median of {activations_view.COST_REPEATS} runs and the range of "
                                  "their middle half (IQR), 2 threads", interactive=False, elem_id="activation-cost")
        measure = gr.Button("Measure again", size="sm", scale=0, elem_id="activation-measure")
    gr.on([tab.select, *(slider.release for slider in sliders)], activations_view.activation_curves,
          inputs=sliders, outputs=[curves], api_name="activation_curves")
    gr.on([tab.select, measure.click], activations_view.cost_table, outputs=[cost], api_name="activation_cost",
          concurrency_limit=1)


def _dataset_tab(models: gr.Dropdown) -> None:
    available, note = data_status()
    gr.Markdown(dataset_view.INTRO + "\n\n" + note, elem_id="dataset-note")
    with gr.Row():
        dataset = gr.Dropdown(choices=dataset_view.DATASETS, value=dataset_view.DATASETS[0][1], label="Test set",
                              elem_id="dataset-choice")
        size = gr.Slider(minimum=16, maximum=dataset_view.MAX_SUBSET, value=dataset_view.DEFAULT_SUBSET, step=16,
                         label="Images (a subset keeps CPU time short)", elem_id="dataset-size")
        run = gr.Button("Evaluate", variant="primary", interactive=available, elem_id="dataset-btn")
    state = gr.State(time_to_live=state_ttl())
    status = gr.Markdown(label="Status", elem_id="dataset-status")
    matrices = gr.Plot(label="Confusion matrices", show_label=False, elem_id="confusion-plot")
    gr.Markdown("**Calibration.** A model is *calibrated* when, among the faces it gives 70% confidence, about 70% "
                "are right: its points then lie on the dashed diagonal. Below the diagonal it is over-confident. "
                "ECE (expected calibration error) is the average gap, weighted by how many faces fall in each of 15 "
                "confidence bins. The temperature T, fitted on the validation split after training, divides the "
                "logits: it changes the confidence, never the prediction.")
    reliability = gr.Plot(label="Reliability diagrams", show_label=False, elem_id="reliability-plot")
    gr.Markdown("**Choose a cell** — click it in the table, or pick model / true / predicted class — to see "
                "those faces with their explanations.")
    with gr.Row():
        model = gr.Dropdown(choices=[], label="Model", elem_id="cell-model")
        true_class = gr.Dropdown(choices=[], label="True class", elem_id="cell-true")
        predicted = gr.Dropdown(choices=[], label="Predicted class", elem_id="cell-pred")
        method = gr.Dropdown(choices=common.fast_methods(), value=common.DEFAULT_METHOD, label="CAM method",
                             elem_id="cell-method")
    table = gr.Dataframe(interactive=False, label="Counts for the chosen model (click a cell)",
                         elem_id="confusion-table")
    show = gr.Button("Show faces", elem_id="cell-btn")
    gallery = gr.Gallery(label="Faces in the cell, with the CAM for the predicted class", columns=6,
                         height="auto", format="png", fit_columns=False, elem_id="cell-gallery")
    gr.Markdown("**Attention atlas** — what each model looks at for each expression: the mean CAM of the true "
                "class over that class's first faces, on their mean face, and the regions holding most of it.")
    with gr.Row():
        per_class = gr.Slider(5, 200, value=20, step=5, label="Faces per class", elem_id="atlas-per-class")
        draw_atlas = gr.Button("Draw the atlas", elem_id="atlas-btn")
    atlas_plot = gr.Plot(label="Attention atlas", show_label=False, elem_id="atlas-plot")
    atlas_regions = gr.Dataframe(label="Where each class's mean map lies", interactive=False, elem_id="atlas-table")
    gr.Markdown("**Probes over the test set** — for each model: how much blurring each face region lowers the "
                "explained class, how much of that its CAM captures, and how often the prediction survives blur, "
                "light, JPEG, a tilt, sunglasses or a mask (and how far the map moves).")
    with gr.Row():
        probe_count = gr.Slider(5, 200, value=20, step=5, label="Faces", elem_id="probe-count")
        run_probes = gr.Button("Probe the models", elem_id="probes-btn")
    probe_rows = gr.Dataframe(label="Probes per model (drops: probability points ×0.01; shares 0–1; r: map stability)",
                              interactive=False, elem_id="probes-table")

    run_probes.click(dataset_view.probes, inputs=[models, dataset, probe_count, method], outputs=[probe_rows],
                     api_name="dataset_probes", concurrency_id="analysis")
    draw_atlas.click(dataset_view.atlas, inputs=[models, dataset, per_class, method],
                     outputs=[atlas_plot, atlas_regions], api_name="attention_atlas", concurrency_id="analysis")
    run.click(dataset_view.evaluate, inputs=[models, dataset, size],
              outputs=[state, status, matrices, reliability, model, true_class, predicted, table],
              api_name="dataset_evaluate", concurrency_id="analysis")
    model.input(dataset_view.model_table, inputs=[state, model], outputs=[table], api_name="dataset_table")
    table.select(dataset_view.pick_cell, inputs=[state, model], outputs=[true_class, predicted],
                 api_name="dataset_pick_cell").then(
        dataset_view.show_cell, inputs=[state, model, true_class, predicted, method], outputs=[gallery],
        api_name="dataset_cell_after_pick")
    show.click(dataset_view.show_cell, inputs=[state, model, true_class, predicted, method], outputs=[gallery],
               api_name="dataset_cell", concurrency_id="analysis")
