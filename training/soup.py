"""Average the weights of checkpoints of one lineage into one model: a greedy "model soup"
(Wortsman et al., ICML 2022), chosen on the validation split.

    python training/soup.py --model runs/c4 --ingredients runs/c4-epochs/checkpoint-* fer-workbench/patt-lite-ferplus \\
        --dataset ferplus --test-time-flip --output-dir runs/c4-soup

Why: the epochs of one run, and a warm restart and the run it restarted from, sit in one basin of
the loss; the mean of their weights is often more accurate than any of them, and unlike an
ensemble it costs nothing at inference (one model, the same size and speed).

Greedy: `--model` and every ingredient are first measured alone; ranked by that accuracy and
starting from the best, each is added to the average only if the average's validation accuracy
does not drop. Only the validation split (FER2013 / FERPlus PublicTest) decides; the test split is
measured once, on the result. With ``--precise-bn FACES`` the BatchNorm statistics of every average
are recomputed from training faces before it is measured (the mean of the checkpoints' running
statistics is not what the averaged weights produce); a checkpoint measured alone keeps its own.

The output is `--model`'s folder (card, run summary, remote code) with the averaged weights, then
re-measured, recalibrated and described as the finetune end does it: ``soup.json`` lists every
ingredient with its accuracy and whether it went in, and the card gets a "Weight soup" section.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hub_models.model_cards import put_section
from hub_models.zoo import name_card
from training.batchnorm import recompute_batchnorm_statistics
from training.calibrate import calibrate_model, card_section, split_logits, split_targets, update_card
from training.cli import add_data_arguments, face_count, load_data_from_arguments, run_cli
from training.data import DataError, FerData
from training.evaluation import evaluate_split
from training.files import fresh_folder, publish_folder, shown, write_text_atomically
from training.finetune import EMA_SHIPS, RUN_SUMMARY, check_output_dir
from training.inputs import FaceDataset, ProcessorCollator
from training.model_card import update_results
from training.model_source import load_model, model_labels

SOUP_START, SOUP_END = "<!-- soup -->", "<!-- /soup -->"
SOUP_FILE = "soup.json"
STAGING = ".soup-staging"
# finetune's card line for a weight average that "ships": in a soup, what ships is the mean of such checkpoints
WEIGHTS_LINE = re.compile(rf"^- weights: (?!the mean of the checkpoints)(.*?)(?: {re.escape(EMA_SHIPS)})?$",
                          re.MULTILINE)
REMEASURED = ("metrics_", "confusion_", "reliability_", "calibration.json")  # rewritten for the averaged weights


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python training/soup.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model", required=True,
                        help="finished training folder the soup is built from (its weights are an ingredient too)")
    parser.add_argument("--ingredients", nargs="+", required=True,
                        help="more checkpoints of the same architecture and labels: folders, zoo ids or Hub ids")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_data_arguments(parser)
    parser.add_argument("--test-time-flip", action=argparse.BooleanOptionalAction, default=None,
                        help="measure and ship the soup with flip test-time averaging (default: --model's setting)")
    parser.add_argument("--precise-bn", type=face_count, default=0, metavar="FACES",
                        help="recompute every candidate's BatchNorm statistics from this many training faces")
    parser.add_argument("--batch-size", type=int, default=128)
    return parser


@dataclass
class Ingredient:
    name: str
    weights: dict[str, torch.Tensor]
    accuracy: float = 0.0
    kept: bool = False


def float_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict in float32 (an fp16 zoo entry averages with fp32 run weights)."""
    return {key: value.detach().float().clone() if value.is_floating_point() else value.detach().clone()
            for key, value in model.state_dict().items()}


def check_compatible(base: dict[str, torch.Tensor], other: dict[str, torch.Tensor], name: str) -> None:
    if base.keys() != other.keys():
        missing, extra = sorted(base.keys() - other.keys()), sorted(other.keys() - base.keys())
        raise DataError(f"ingredient {name!r} has different layers from --model "
                        f"(missing {missing[:3]}, unexpected {extra[:3]}): only checkpoints of one architecture "
                        "and configuration can be averaged")
    shapes = [key for key in base if base[key].shape != other[key].shape]
    if shapes:
        raise DataError(f"ingredient {name!r} differs from --model in the shape of {shapes[0]} "
                        f"({tuple(other[shapes[0]].shape)} vs {tuple(base[shapes[0]].shape)})")


def average(weights: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform mean of float tensors; integer buffers (BatchNorm's batch counter) from the first."""
    return {key: torch.stack([w[key] for w in weights]).mean(0) if value.is_floating_point() else value
            for key, value in weights[0].items()}


class SoupJudge:
    """Loads weights into one model and measures validation accuracy the way the soup will ship."""

    def __init__(self, model: torch.nn.Module, data: FerData, precise_bn: int, batch_size: int) -> None:
        self.model, self.data, self.precise_bn, self.batch_size = model, data, precise_bn, batch_size
        self.targets = split_targets(model, data, "validation")
        self.train, self.collator = FaceDataset(data.train), ProcessorCollator(model.image_processor())

    def load(self, weights: dict[str, torch.Tensor], averaged: bool) -> None:
        dtype = next(self.model.parameters()).dtype
        self.model.load_state_dict({k: v.to(dtype) if v.is_floating_point() else v for k, v in weights.items()})
        if averaged and self.precise_bn:
            recompute_batchnorm_statistics(self.model, self.train, self.collator, self.precise_bn, self.batch_size)

    def accuracy(self, weights: dict[str, torch.Tensor], averaged: bool) -> float:
        self.load(weights, averaged)
        logits = split_logits(self.model, self.data, "validation", self.batch_size)
        return float((logits.argmax(1) == self.targets).mean())


def greedy_soup(judge: SoupJudge, ingredients: list[Ingredient]) -> tuple[list[Ingredient], float]:
    """Ranked by their own accuracy, each ingredient joins the average if it does not lower it."""
    for ingredient in ingredients:
        ingredient.accuracy = judge.accuracy(ingredient.weights, averaged=False)
        print(f"[soup] {ingredient.name}: validation accuracy {100 * ingredient.accuracy:.2f}% alone", flush=True)
    ranked = sorted(ingredients, key=lambda ingredient: -ingredient.accuracy)
    soup, best = [ranked[0]], ranked[0].accuracy
    ranked[0].kept = True
    for ingredient in ranked[1:]:
        candidate = judge.accuracy(average([i.weights for i in [*soup, ingredient]]), averaged=True)
        ingredient.kept = candidate >= best
        print(f"[soup] + {ingredient.name}: {100 * candidate:.2f}% "
              f"({'kept' if ingredient.kept else 'left out'}; soup {100 * best:.2f}%)", flush=True)
        if ingredient.kept:
            soup, best = [*soup, ingredient], candidate
    return soup, best


def soup_section(ingredients: Sequence[Ingredient], accuracy: float, dataset: str, precise_bn: int) -> str:
    rows = "\n".join(f"| `{i.name}` | {100 * i.accuracy:.2f}% | {'yes' if i.kept else 'no'} |" for i in ingredients)
    statistics = (f" The BatchNorm statistics of every average were recomputed from {precise_bn:,} training faces "
                  "before it was measured (a checkpoint alone kept its own), and the soup ships with its own."
                  if precise_bn else "")
    kept = sum(i.kept for i in ingredients)
    return (f"{SOUP_START}\n## Weight soup\n\nThe weights are the uniform mean of {kept} checkpoint(s) of one lineage, "
            "a greedy model soup (Wortsman et al., ICML 2022; `python training/soup.py`): ranked by their own "
            "validation accuracy, each checkpoint joined the mean only if the mean's validation accuracy did not drop. "
            f"Chosen on the validation split of {dataset} only; the figures above are the soup's.{statistics}\n\n"
            f"| checkpoint | validation accuracy alone | in the soup |\n|---|---:|:---:|\n{rows}\n\n"
            f"The soup: {100 * accuracy:.2f}% validation accuracy.\n{SOUP_END}\n")


def souped_card(text: str, section: str) -> str:
    """The card with the soup section in place and its training section's "weights" line saying
    that the weights shipped are the soup's mean, not one run's checkpoint."""
    text = WEIGHTS_LINE.sub(lambda match: f"- weights: the mean of the checkpoints in the weight soup below "
                                          f"(each one: {match.group(1)})", text, count=1)
    return put_section(text, section, SOUP_START, SOUP_END, "## Limitations")


def check_output(out: Path, overwrite: bool) -> None:
    check_output_dir(out)
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise DataError(f"--output-dir {shown(out)} is not empty; pass --overwrite to replace it")


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    base_folder = Path(args.model)
    if not (base_folder / "README.md").is_file() or not (base_folder / "config.json").is_file():
        raise DataError(f"--model {shown(base_folder)} is not a finished training folder (it needs the README.md card "
                        "and config.json that training/finetune.py writes)")
    check_output(args.output_dir, args.overwrite)
    if args.output_dir.resolve() == base_folder.resolve():
        raise DataError("--output-dir is the --model folder: write the soup to a new folder, the run stays as it is")
    data = load_data_from_arguments(args)
    model = load_model(str(base_folder)).model
    if args.test_time_flip is not None:
        model.config.test_time_flip = args.test_time_flip
    model.config.calibration_temperature = 1.0  # refitted below for the averaged weights
    ingredients = [Ingredient(str(base_folder), float_state(model))]
    for spec in args.ingredients:
        other = load_model(spec)
        if other.model.config.model_type != model.config.model_type:
            raise DataError(f"ingredient {spec!r} is a {other.model.config.model_type} model; --model is a "
                            f"{model.config.model_type}")
        if model_labels(other.model) != model_labels(model):
            raise DataError(f"ingredient {spec!r} predicts {', '.join(model_labels(other.model))}; --model predicts "
                            f"{', '.join(model_labels(model))}: only checkpoints with one label set can be averaged")
        weights = float_state(other.model)
        check_compatible(ingredients[0].weights, weights, spec)
        pinned = f" (revision {other.revision[:12]})" if other.kind in ("zoo", "hub") and other.revision else ""
        ingredients.append(Ingredient(spec + pinned, weights))
    judge = SoupJudge(model, data, args.precise_bn, args.batch_size)
    soup, accuracy = greedy_soup(judge, ingredients)
    judge.load(average([i.weights for i in soup]), averaged=len(soup) > 1)

    out = args.output_dir
    out.mkdir(parents=True, exist_ok=True)
    (out / SOUP_FILE).unlink(missing_ok=True)  # written last: a folder without it is not a finished soup
    staging = fresh_folder(out / STAGING)
    for path in base_folder.iterdir():
        if path.is_file() and not path.name.startswith(REMEASURED) and path.name not in ("model.safetensors",
                                                                                          "config.json"):
            shutil.copy2(path, staging / path.name)
    logits = {split: split_logits(model, data, split, args.batch_size) for split in ("validation", "test")}
    reports = {split: evaluate_split(model, data, split, staging, logits=logits[split]) for split in logits}
    calibration = calibrate_model(model, data, staging, args.batch_size, f"{out.name} on {data.name} test",
                                  logits=logits)
    model.save_pretrained(staging)
    card = staging / "README.md"
    name_card(card, base_folder.name, out.name)
    update_results(card, reports, model, data.name)
    update_card(card, card_section(calibration, data.name))
    write_text_atomically(card, souped_card(card.read_text(),
                                            soup_section(ingredients, accuracy, data.name, args.precise_bn)))
    record = {"dataset": data.name, "chosen_on": "validation", "precise_bn_faces": args.precise_bn,
              "test_time_flip": bool(getattr(model.config, "test_time_flip", False)),
              "validation_accuracy": accuracy, "test_accuracy": reports["test"]["accuracy"],
              "ingredients": [{"name": i.name, "validation_accuracy_alone": i.accuracy, "kept": i.kept}
                              for i in ingredients]}
    if (staging / RUN_SUMMARY).is_file():
        summary = json.loads((staging / RUN_SUMMARY).read_text())
        summary.update({"validation_accuracy": reports["validation"]["accuracy"],
                        "test_accuracy": reports["test"]["accuracy"], "test_macro_f1": reports["test"]["macro_f1"],
                        "temperature": model.config.calibration_temperature,
                        "test_ece_before": calibration["test"]["ece_before"],
                        "test_ece_after": calibration["test"]["ece_after"], "soup": record})
        (staging / RUN_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    (staging / SOUP_FILE).write_text(json.dumps(record, indent=2) + "\n")
    publish_folder(staging, out, last=("model.safetensors", "config.json", SOUP_FILE))
    print(f"[soup] {sum(i.kept for i in ingredients)} of {len(ingredients)} checkpoints averaged: validation accuracy "
          f"{100 * accuracy:.2f}%, test accuracy {100 * reports['test']['accuracy']:.2f}% → {out}", flush=True)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
