"""The model card (README.md with model-index metadata) of a trained or re-evaluated checkpoint.

Every number on the card comes from the metrics reports measured for that checkpoint; nothing
is copied from papers. The card says how the weights were initialised and what the model
cannot be trusted with.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hub_models.loading import model_labels
from hub_models.model_cards import architecture_section
from training.files import write_text_atomically

LIMITATIONS = """\
- Facial *expressions* are not felt emotions: the model maps the appearance of a face to one of a
  fixed set of prototypical expression labels. Do not use it to infer anyone's emotional state,
  intent or character, or for decisions about people (hiring, policing, education, health).
- {dataset_note}
- Accuracy differs between groups of people and between imaging conditions; these were not
  measured. Performance on faces unlike the training data (other ages, ethnicities, poses,
  occlusions, lighting, image sizes) is unknown.
- The figures on this card are from one training run with the recipe shown, not the best of several runs.
"""

DATASET_NOTES = {
    "fer2013": "FER2013 is 48×48 grayscale web images with noisy single-annotator labels; the test "
               "split (PrivateTest) shares the label noise, so accuracy above roughly 75% is not expected.",
    "ferplus": "FERPlus relabels FER2013 with 10 annotators; rows whose majority vote is unknown or "
               "not-a-face are excluded from training and evaluation.",
    "ckplus": "CK+ is posed expressions of 118 lab subjects (peak frames); results on it say little about "
              "spontaneous expressions in the wild.",
}


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}%"


def _metrics_row(label: str, measured: Mapping[str, Any]) -> str:
    return f"| {label} | {measured['num_samples']} | {_percent(measured['accuracy'])} | {measured['macro_f1']:.4f} |"


def _metrics_table(reports: Mapping[str, Mapping[str, Any]]) -> str:
    """One row per split, then one per reported subset of it, and what each subset is."""
    rows = ["| split | samples | accuracy | macro-F1 |", "|---|---|---|---|"]
    notes: dict[str, str] = {}
    for report in reports.values():
        rows.append(_metrics_row(report["split"], report))
        for name, subset in report["subsets"].items():
            rows.append(_metrics_row(f"{report['split']}, {name}", subset))
            notes[name] = subset["about"]
    if notes:
        rows += ["", *(f"*{name}*: {about}." for name, about in notes.items())]
    return "\n".join(rows)


def _recall_table(report: Mapping[str, Any]) -> str:
    labels = report["labels"]
    rows = ["| class | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels),
            "| recall | " + " | ".join(_percent(report["per_class_recall"][n]) for n in labels) + " |",
            "| support | " + " | ".join(str(report["support"][n]) for n in labels) + " |"]
    return "\n".join(rows)


def card_metadata(name: str, dataset_id: str, reports: Mapping[str, Mapping[str, Any]], config: Any) -> str:
    results = []
    for report in reports.values():
        common = {"task_type": "image-classification", "task_name": "Facial expression recognition",
                  "dataset_type": dataset_id, "dataset_name": report["dataset"], "dataset_split": report["split"]}
        results.append(EvalResult(metric_type="accuracy", metric_value=round(report["accuracy"], 4),
                                  metric_name="Accuracy", **common))
        results.append(EvalResult(metric_type="f1", metric_value=round(report["macro_f1"], 4),
                                  metric_name="Macro F1", metric_args={"average": "macro"}, **common))
    data = ModelCardData(model_name=name, library_name="transformers", license="mit",
                         pipeline_tag="image-classification",
                         tags=["facial-expression-recognition", "fer-workbench", config.model_type],
                         datasets=[dataset_id] if dataset_id in DATASET_NOTES else None, eval_results=results)
    return data.to_yaml()


def results_section(reports: Mapping[str, Mapping[str, Any]], config: Any) -> str:
    """The card's "## Results": the metrics of every measured split and the headline split's recall."""
    headline = reports.get("test") or next(iter(reports.values()))
    views = (" with flip test-time averaging: the logits are the mean of the face's and its mirror image's "
             "(`config.test_time_flip`)" if getattr(config, "test_time_flip", False) else "")
    return "\n".join([
        "## Results", "",
        f"Measured on this checkpoint{views} (`training/evaluation.py`; re-measure with "
        "`python training/evaluate.py`):", "",
        _metrics_table(reports), "",
        f"Per-class recall on {headline['split']}:", "", _recall_table(headline), "",
        "Confusion matrices: `confusion_<split>.png` / `.json`; all metrics: `metrics_<split>.json`.", ""])


def render_model_card(*, name: str, model: Any, data_description: Mapping[str, str],
                      reports: Mapping[str, Mapping[str, Any]], initialisation: str,
                      training: Mapping[str, Any] | None = None) -> str:
    """`reports` maps a split key ("validation", "test") to `classification_report` output;
    `training` holds the recipe and run facts (None for a card written by evaluation only)."""
    config = model.config
    dataset_id = data_description.get("dataset_id", "")
    params = sum(p.numel() for p in model.parameters())
    labels = model_labels(model)
    lines = [
        "---", card_metadata(name, dataset_id, reports, config).strip(), "---", "",
        f"# {name}", "",
        f"A `{config.model_type}` facial-expression classifier (FER Workbench) trained on "
        f"{data_description.get('dataset', dataset_id)}. It predicts {len(labels)} classes: {', '.join(labels)}.",
        "", results_section(reports, config),
        "## Model", "",
        f"- architecture: `{config.model_type}`, {params:,} parameters",
        f"- input: {config.image_size}×{config.image_size}, {config.num_channels} channel(s) inside the model, "
        f"3-channel tensors normalised with mean {list(config.image_mean)} / std {list(config.image_std)} "
        "(`preprocessor_config.json`), face crop `" + str(config.face_template) + "`",
        f"- initialisation: {initialisation}",
        "- load: `import hub_models` (the FER Workbench package registers the architecture), then "
        "`AutoModelForImageClassification.from_pretrained(<this folder or id>)`; without the package, "
        "`trust_remote_code=True` runs this folder's modeling code instead",
        *(["", section.rstrip()] if (section := architecture_section(model)) else []),
        "", "## Data", "",
        *(f"- {key}: {value}" for key, value in data_description.items() if key not in ("dataset_id",)),
    ]
    if training:
        lines += ["", "## Training", "", *(f"- {key}: {value}" for key, value in training.items())]
    lines += ["", "## Limitations", "",
              LIMITATIONS.format(dataset_note=DATASET_NOTES.get(dataset_id, "The training data's biases carry over "
                                                                            "to the model.")).rstrip()]
    return "\n".join(lines) + "\n"


def write_model_card(folder: Path, **kwargs: Any) -> Path:
    path = Path(folder) / "README.md"
    path.write_text(render_model_card(**kwargs))
    return path


def update_results(card: Path, reports: Mapping[str, Mapping[str, Any]], model: Any, dataset_id: str) -> None:
    """Replace a card's model-index metadata and "## Results" section with freshly measured reports
    (after a checkpoint was re-measured, e.g. with flip averaging switched on); the rest stays."""
    text = card.read_text()
    if not text.startswith("---\n") or "\n## Results\n" not in text:
        raise ValueError(f"{card} is not a FER Workbench model card (no metadata or no Results section)")
    name = ModelCard(text).data.model_name or card.parent.name
    metadata = card_metadata(name, dataset_id, reports, model.config)
    head, rest = text.split("---\n", 2)[2].split("## Results\n", 1)
    following = [index for marker in ("\n<!--", "\n## ") if (index := rest.find(marker)) >= 0]
    tail = rest[min(following) + 1:] if following else ""
    write_text_atomically(card, f"---\n{metadata.strip()}\n---\n{head}{results_section(reports, model.config)}\n{tail}")
