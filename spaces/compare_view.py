"""The Compare tab: one photo, up to three models side by side on the same aligned face."""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import gradio as gr
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from workbench import (
    FAITHFULNESS_METRICS,
    LABEL_SETS,
    METHODS,
    REGIONS,
    AnalysisResult,
    LoadedModel,
    ModelAnalysis,
    WorkbenchError,
    add_faithfulness,
    bar_chart,
    canonical,
    draw_faces,
    label_union,
    load_image,
    map_panels,
    overlay,
    probe_perturbations,
    probe_regions,
)

from .common import DEFAULT_METHOD, friendly, user_error
from .model_choice import MAX_MODELS, POOL, parse_choice

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
PREDICTED = "predicted class"
MAX_FACES = 4
MAX_METHODS = 3
# What `render` returns: status, faces picture, face picker, five per model column, regions, faithfulness.
SHOWN_OUTPUTS = 3 + 5 * MAX_MODELS + 2
BROWSER_FORMATS = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
DISPLAY_SIDE = 320
DEFAULT_OPACITY = 0.6
# An ablation without attention (e.g. VGG-19 beside VGG-19 + CBAM) has nothing to show there.
NO_NATIVE_MAPS = "no native maps: this model has no attention module to read them from"
METRIC_TITLES = {"deletion_auc": "deletion ↓", "insertion_auc": "insertion ↑", "road_morf": "ROAD MoRF ↓",
                 "road_lerf": "ROAD LeRF ↑"}


@dataclass
class ModelColumn:
    column: gr.Column
    header: gr.Markdown
    label: gr.Label
    cam: gr.Image
    native: gr.Gallery

    def components(self) -> list[gr.components.Component | gr.Column]:
        return [self.column, self.header, self.label, self.cam, self.native]


@dataclass
class Analysis:
    """What a session keeps between events: the result and the models that produced it.

    The working image (up to 2048 px, ≈ 9 MB as an array) is kept JPEG-compressed (≈ 0.5 MB): every
    open session holds one, and it is only needed again to redraw the face boxes or write a bundle.
    """

    result: AnalysisResult
    method: str
    models: dict[str, LoadedModel]
    image_jpeg: bytes = b""

    @classmethod
    def keep(cls, result: AnalysisResult, models: list[LoadedModel]) -> Analysis:
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(result.image[..., ::-1]),
                                   [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            return cls(result, result.methods[0], {m.name: m for m in models})
        compact = dataclasses.replace(result, image=np.zeros((1, 1, 3), np.uint8))
        return cls(compact, result.methods[0], {m.name: m for m in models}, encoded.tobytes())

    def image(self) -> np.ndarray:
        if not self.image_jpeg:
            return self.result.image
        return cv2.imdecode(np.frombuffer(self.image_jpeg, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]

    def full_result(self) -> AnalysisResult:
        return dataclasses.replace(self.result, image=np.ascontiguousarray(self.image()))

    @property
    def trained(self) -> dict[str, bool]:
        return {name: model.trained for name, model in self.models.items()}


def example_photos() -> list[Path]:
    return sorted(p for p in EXAMPLES_DIR.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})


def target_choices(models: list[str] | str | None = None) -> list[str]:
    """"predicted class", then every expression the chosen models know, once, in one spelling (all
    the zoo's label sets when no model can be loaded yet)."""
    try:
        label_lists = [POOL.model(spec).labels for spec in parse_choice(models)] if models else []
    except (WorkbenchError, ValueError):
        label_lists = []
    return [PREDICTED, *label_union(label_lists or LABEL_SETS.values())]


def update_targets(models: list[str] | str | None, current: str | None) -> dict[str, Any]:
    """New model choice → the class picker lists what these models know; a still-valid choice stays."""
    choices = target_choices(models)
    keep = canonical(current) if current and canonical(current) in choices else PREDICTED
    return gr.update(choices=choices, value=keep)


def column_outputs(columns: list[ModelColumn]) -> list[Any]:
    return [component for column in columns for component in column.components()]


def image_source(payload: Any) -> str | None:
    """The uploaded file's path. The Compare event skips Gradio's preprocessing (`preprocess=False`),
    which would open every upload with PIL, so a corrupt file or a 20000×20000 photo would fail
    inside Gradio with a bare "Error"; the engine's decoder bounds memory and names the problem."""
    if isinstance(payload, dict):
        return payload.get("path")
    return None if payload is None else str(payload)


def preview(upload: Any) -> tuple[Any, str]:
    """What the photo box shows after an upload. A file the browser cannot draw (TIFF, PPM …) is
    replaced by the engine's decoding of it, the pixels the analysis will use; an unreadable file is
    cleared at once, and the status line says why."""
    path = image_source(upload)
    if path is None:
        return gr.skip(), ""
    try:
        loaded = load_image(path)
    except WorkbenchError as error:
        return None, f"⚠ **Cannot use this file:** {error}"
    suffix = Path(path).suffix.lower()
    if suffix in BROWSER_FORMATS:
        return gr.skip(), ""
    return loaded.rgb, f"Shown as the analysis sees it: browsers cannot display {suffix or 'this kind of'} files."


def analyze(image: Any, models: list[str] | str | None, method: list[str] | str | None, target: str | None,
            face: int | None = None, faithfulness: bool = False, opacity: float = DEFAULT_OPACITY,
            progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008 (Gradio's way)
    """Detect every face, run each chosen model with each chosen CAM method (up to three, side by
    side) for the predicted (or chosen) class.

    `image` is a path, or the raw upload payload (a dict with its path) when called by Gradio.
    `face`: the face to show, kept from the previous run when this photo has it. `faithfulness`:
    score the shown face's maps in this call (API clients) instead of in the follow-up event.
    `opacity`: of the maps drawn over the face, where they are highest.
    """
    image = image_source(image)
    if image is None:
        raise user_error("Give a photo first: upload, paste, pick an example or take a webcam picture.",
                         title="No photo")
    try:
        specs = parse_choice(models)
        methods = chosen_methods(method)
        workbench = POOL.workbench(specs)
        with POOL.using(workbench.models):
            result = workbench.analyze(image, methods=methods, target=_target(target), faithfulness=False,
                                       max_faces=MAX_FACES, progress=lambda share, step: progress(share, desc=step))
    except (WorkbenchError, ValueError) as error:
        raise friendly(error) from error
    session = Analysis.keep(result, workbench.models)
    shown = int(face) if isinstance(face, (int, float)) and 0 <= int(face) < len(result.faces) else 0
    if faithfulness:
        score_faithfulness(session, shown)
    return session, *render(session, shown, opacity)


def analyze_on_page(*args: Any, progress: gr.Progress = gr.Progress()) -> tuple[Any, ...]:  # noqa: B008
    """`analyze` for the page: a mistake (no photo, an unknown model, an unreadable file) is written in
    the status line and the previous results stay, instead of a pop-up that vanishes and red
    "Error" badges on every output. API clients call `analyze` itself and get the error."""
    try:
        return analyze(*args, progress=progress)
    except gr.Error as error:
        status = f"⚠ **{error.title or 'Cannot analyse this'}:** {error.message}"
        return gr.skip(), status, *(gr.skip() for _ in range(SHOWN_OUTPUTS - 1))


def chosen_methods(method: list[str] | str | None) -> list[str]:
    """The picker's value as CAM method names: one or a list, at most `MAX_METHODS`."""
    methods = [method] if isinstance(method, str) else [m for m in (method or []) if m]
    if len(methods) > MAX_METHODS:
        raise WorkbenchError(f"choose at most {MAX_METHODS} CAM methods to compare, not {len(methods)}")
    return list(dict.fromkeys(methods)) or [DEFAULT_METHOD]


def time_note(method: list[str] | str | None, session: Analysis | None) -> str:
    """Before a run: what the chosen methods cost, from this session's last run where it used them
    (median per face and model), else a plain warning for the slow ones."""
    try:
        methods = chosen_methods(method)
    except WorkbenchError as error:
        return f"⚠ {error}"
    measured: dict[str, list[float]] = {}
    for face in session.result.faces if session is not None else []:
        for analysis in face.models.values():
            for name in methods:
                if f"cam_{name}" in analysis.timings_ms:
                    measured.setdefault(name, []).append(analysis.timings_ms[f"cam_{name}"] / 1000)
    notes = []
    for name in methods:
        if name in measured and statistics.median(measured[name]) >= 1:
            notes.append(f"{METHODS[name].title}: ≈ {statistics.median(measured[name]):.0f} s per face and model "
                         "(measured on your last photo)")
        elif name not in measured and METHODS[name].slow:
            notes.append(f"{METHODS[name].title} is slow: it runs the model once per feature channel, often tens of "
                         "seconds per face and model on a small CPU; a progress bar follows it")
    return "⏱ " + "; ".join(notes) if notes else ""


def score_faithfulness(session: Analysis | None, face: int | None) -> pd.DataFrame | None:
    """Deletion/insertion/ROAD scores of the shown face's maps, computed after the maps are on screen
    (they cost a batch of perturbed forwards per map) and kept for the bundle."""
    if session is None or not session.result.faces:
        return None
    analyses = list(session.result.faces[int(face or 0)].models.values())
    with POOL.using(list(session.models.values())):
        for analysis in analyses:
            if not analysis.faithfulness and analysis.cams:
                add_faithfulness(session.models[analysis.model_name], analysis)
    return faithfulness_table(analyses)


def _probed_face(session: Analysis | None, face: int | None) -> list[ModelAnalysis]:
    """The shown face's analyses, which the probes work on."""
    if session is None or not session.result.faces:
        raise user_error("Run a comparison first; the probe works on its face.", title="Nothing analysed yet")
    return list(session.result.faces[int(face or 0)].models.values())


def region_probe(session: Analysis | None, face: int | None) -> pd.DataFrame:
    """Blur each face region of the shown face in turn: how each model's explained class moves
    (percentage points; negative = the region supported it), and how much of the largest drop each
    map's region shares capture (1 = all its mass on the region whose removal hurts most)."""
    analyses = _probed_face(session, face)
    rows = []
    with POOL.using(list(session.models.values())):
        for analysis in analyses:
            probe = probe_regions(session.models[analysis.model_name], analysis)
            row = {"model": analysis.model_name, "class": probe.target, "intact": f"{probe.intact:.0%}"}
            row.update({region: round(-100 * drop, 1) for region, drop in probe.drops.items()})
            row.update({f"{METHODS[name].title if name in METHODS else name} captures": round(value, 2)
                        for name, value in probe.agreement.items() if name in METHODS})
            rows.append(row)
    return pd.DataFrame(rows)


def robustness(session: Analysis | None, face: int | None) -> pd.DataFrame:
    """What a camera does to the shown face (blur, light, JPEG, a small tilt, sunglasses, a mask):
    each model's new prediction, the probability left to its original one, and how far its first
    CAM moved (r with the clean map)."""
    analyses = _probed_face(session, face)
    rows = []
    with POOL.using(list(session.models.values())):
        for analysis in analyses:
            for row in probe_perturbations(session.models[analysis.model_name], analysis, session.method):
                rows.append({"model": analysis.model_name, "perturbation": row["perturbation"],
                             "predicted": row["predicted"] + ("" if row["predicted"] == analysis.predicted else " ⚠"),
                             f"p({analysis.predicted})": f"{row['p(original prediction)']:.0%}",
                             "map r": round(float(row["map r"]), 2)})
    return pd.DataFrame(rows)


def show_face(session: Analysis | None, face: int | None, opacity: float = DEFAULT_OPACITY) -> tuple[Any, ...]:
    """Show another face of the last analysis, or redraw it at another opacity (no models run again)."""
    if session is None:
        raise user_error("Run a comparison first.", title="Nothing analysed yet")
    index = int(face or 0)
    if not 0 <= index < max(1, len(session.result.faces)):
        raise user_error(f"There is no face {index}; this photo has {len(session.result.faces)}.")
    return render(session, index, opacity)


def bundle(session: Analysis | None) -> dict[str, Any]:
    """The engine's bundle of the last analysis (PNGs, raw maps, manifest) as a zip file."""
    if session is None:
        raise user_error("Run a comparison first; the bundle holds its results.", title="Nothing to download")
    workdir = Path(tempfile.mkdtemp(prefix="fer-bundle-"))
    folder = session.full_result().save(workdir / "analysis")
    archive = shutil.make_archive(str(workdir / f"fer-workbench-{session.result.input['sha256'][:12]}"), "zip",
                                  folder)
    shutil.rmtree(folder)
    return gr.update(value=archive, visible=True)


def render(session: Analysis, face_index: int, opacity: float = DEFAULT_OPACITY) -> tuple[Any, ...]:
    """Every Compare output for one face: status, boxes, face picker, model columns, charts."""
    result = session.result
    boxes_image = draw_faces(session.image(), [f.box for f in result.faces], [f.landmarks for f in result.faces],
                             chosen=face_index if len(result.faces) > 1 else None)
    choices = [(_face_label(i, face), i) for i, face in enumerate(result.faces)]
    picker = gr.update(choices=choices, value=face_index if choices else None, interactive=len(choices) > 1)
    status = _status(result, session.trained)
    if not result.faces:
        hidden = [gr.update(visible=False), "", None, None, []] * MAX_MODELS
        return status, boxes_image, picker, *hidden, None, None
    analyses = list(result.faces[face_index].models.values())
    columns: list[Any] = []
    for slot in range(MAX_MODELS):
        if slot < len(analyses):
            columns += _column(analyses[slot], session.result.methods,
                               session.trained.get(analyses[slot].model_name, True), _opacity(opacity))
        else:
            columns += [gr.update(visible=False), "", None, None, []]
    return (status, boxes_image, picker, *columns, region_chart(analyses, session.method),
            faithfulness_table(analyses))


def _column(analysis: ModelAnalysis, methods: tuple[str, ...], trained: bool, opacity: float) -> list[Any]:
    lines = [f"### {analysis.model_name}"]
    if not trained:
        lines.append("<span class='untrained'>⚠ untrained (random weights): ignore its prediction</span>")
    if analysis.target != analysis.predicted:
        lines.append(f"maps explain **{analysis.target}** (predicted: {analysis.predicted})")
    lines += [f"<small>{note}</small>" for note in analysis.notes]
    if not analysis.native:
        lines.append(f"<small>{NO_NATIVE_MAPS}</small>")
    maps = {METHODS[method].title: analysis.cams[method] for method in methods if method in analysis.cams}
    if len(maps) == 1:
        cam = overlay(analysis.face, next(iter(maps.values())), opacity, min_side=DISPLAY_SIDE, beside=True)
    else:
        cam = map_panels(analysis.face, maps, opacity, min_side=DISPLAY_SIDE) if maps else None
    column = gr.update(visible=True, elem_classes=["model-col"] if trained else ["model-col", "untrained-col"])
    return [column, "\n\n".join(lines), analysis.probabilities, cam, _native_gallery(analysis, opacity)]


def _opacity(value: Any) -> float:
    try:
        return min(1.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return DEFAULT_OPACITY


def _native_gallery(analysis: ModelAnalysis, opacity: float) -> list[tuple[np.ndarray, str]]:
    """The spatial native maps as one picture, side by side at the CAM's size with one colour bar
    (titles carry `r`, so nothing is cut), then each channel-gate vector as a bar chart."""
    spatial: dict[str, np.ndarray] = {}
    for name, values in analysis.native.items():
        if values.ndim == 2:
            agreement = analysis.agreement.get(name)
            shown = agreement is not None and np.isfinite(agreement) and analysis.agreement_method
            spatial[f"{name} r={agreement:+.2f}" if shown else name] = values
    items = []
    if spatial:
        reference = METHODS[analysis.agreement_method].title if analysis.agreement_method else "the CAM"
        items.append((map_panels(analysis.face, spatial, opacity, min_side=DISPLAY_SIDE, with_face=False),
                      f"native attention maps; r = correlation with {reference}"))
    items += [(bar_chart(values, name, size=(480, 240)), f"{name} (channel gates)")
              for name, values in analysis.native.items() if values.ndim == 1]
    return items


def region_chart(analyses: list[ModelAnalysis], method: str) -> Figure | None:
    """Grouped bars: for each face region, each model's share of its CAM's mass."""
    rows = [(a.model_name, a.regions[method]) for a in analyses if method in a.regions]
    if not rows:
        return None
    regions = [region for region in (*REGIONS, "other") if any(region in shares for _, shares in rows)]
    figure = Figure(figsize=(6.4, 2.8), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    width = 0.8 / len(rows)
    positions = np.arange(len(regions))
    for index, (name, shares) in enumerate(rows):
        axes.bar(positions + (index - (len(rows) - 1) / 2) * width, [shares.get(r, 0.0) for r in regions], width,
                 label=name)
    axes.set_xticks(positions, regions)
    axes.set_ylabel("share of the map's mass", fontsize=9)
    axes.set_title(f"Face-region attribution of each model's {METHODS[method].title}", fontsize=10)
    figure.legend(fontsize=8, frameon=False, loc="outside lower center", ncols=len(rows))
    axes.spines[["top", "right"]].set_visible(False)
    return figure


def faithfulness_table(analyses: list[ModelAnalysis]) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for analysis in analyses:
        for method, scores in analysis.faithfulness.items():
            row = {"model": analysis.model_name if len(analysis.faithfulness) == 1
                   else f"{analysis.model_name} · {METHODS[method].title}"}
            row.update({METRIC_TITLES[m]: round(float(scores[m]), 3) for m in FAITHFULNESS_METRICS if m in scores})
            rows.append(row)
    return pd.DataFrame(rows)


def _status(result: AnalysisResult, trained: dict[str, bool]) -> str:
    lines = []
    if not result.faces:
        lines.append("**No face found** in this photo. Try a brighter, more frontal photo, or crop closer to "
                     "the face.")
    else:
        found = len(result.faces)
        lines.append(f"{found} face{'s' if found > 1 else ''} analysed in "
                     f"{result.timings_ms.get('total', 0.0) / 1000:.2f} s." + (f" {result.message}." if
                                                                               result.message else ""))
    untrained = [name for name, ok in trained.items() if not ok]
    if untrained:
        lines.append(f"⚠ **Untrained models:** {', '.join(untrained)} have random weights — their predictions "
                     "mean nothing; their maps show what an untrained network responds to.")
    return "\n\n".join(lines)


def _face_label(index: int, face: Any) -> str:
    x0, y0, x1, y1 = (round(v) for v in face.box)
    kind = "whole image" if face.whole_image else f"{x1 - x0}×{y1 - y0} px"
    return f"Face {index} ({kind})"


def _target(target: str | None) -> str | None:
    return None if not target or target == PREDICTED else target
