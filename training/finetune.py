"""Fine-tune a FER Workbench model with the HF Trainer.

    python training/finetune.py --model attention_cnn --dataset fer2013 --output-dir runs/x
    python training/finetune.py --model patt_lite --config image_size=64 --epochs 20 --batch-size 64 ...
    python training/finetune.py --model ./some/checkpoint --dataset ckplus --fold all ...
    accelerate launch training/finetune.py ...            (several GPUs)

The model is an architecture name (fresh weights, ``--config key=value`` overrides), a saved
folder or a Hub id. Defaults come from the architecture's recipe (training/recipes.py). The
output folder becomes a complete Hub folder: config, safetensors, preprocessor config, remote
code, model card, metrics files and logs; Trainer checkpoints live in its ``checkpoints/``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainingArguments, set_seed

from training.backbone_weights import load_backbone_weights
from training.calibrate import calibrate_model, card_section, split_logits, update_card
from training.cli import face_count, load_data_from_arguments, run_cli
from training.data import DATASETS, DataError, FerData, load_data
from training.distill import (
    Distillation,
    OnlineTeachers,
    distilled_targets,
    parse_teachers,
    teacher_probabilities,
)
from training.evaluation import evaluate_split
from training.files import fresh_folder, output_dir_problem, publish_folder, shown
from training.inputs import AUGMENTATIONS, FaceDataset, ProcessorCollator, build_augmentation
from training.model_card import write_model_card
from training.model_source import LoadedModel, load_model, parse_overrides
from training.recipes import PRECISIONS, RECIPE_KINDS, SCHEDULES, Recipe, recipe_for
from training.trainer import (
    FerTrainer,
    FrozenStageCallback,
    LogFilesCallback,
    PreciseBatchNormCallback,
    SessionsCallback,
    TimeBudgetCallback,
    WeightEmaCallback,
    compute_metrics,
    resolve_module,
)

CHECKPOINTS = "checkpoints"
STAGING = ".final.partial"  # the final files of a run, before they are moved into place
RUN_SUMMARY = "run_summary.json"  # written last: a folder without it is an unfinished run
EMA_SHIPS = "(what each epoch evaluated and what ships)"  # the card's note on a weight average (training/soup.py)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python training/finetune.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--model", required=True,
                       help="architecture or variant name (hub_models.variants), saved folder, or Hub id (org/name)")
    model.add_argument("--config", action="append", default=[], metavar="KEY=VALUE",
                       help="config override for an architecture (repeatable; values parsed as JSON when possible)")
    model.add_argument("--image-size", type=int, help="input side in pixels (config image_size)")
    model.add_argument("--backbone-weights", type=Path, metavar="FILE.safetensors",
                       help="pretrained weights for a fresh architecture's `backbone` (e.g. ImageNet "
                            "MobileNetV2 for cf_dan or patt_lite with backbone=mobilenet_v2: "
                            "tools/convert_mobilenet_v2.py)")
    data = parser.add_argument_group("data")
    data.add_argument("--dataset", choices=DATASETS, default="fer2013")
    data.add_argument("--data-dir", type=Path, help="data root (default: $FER_DATA_DIR or ../shared/data); "
                                                    "for --dataset folder: the folder with train/ and test/")
    data.add_argument("--labels", help="comma-separated class order for --dataset folder")
    data.add_argument("--soft-labels", action="store_true", help="FERPlus: train on the vote distributions")
    data.add_argument("--fold", default="0", help="CK+: test fold index, or 'all' for every fold (mean ± std)")
    data.add_argument("--n-folds", type=int, default=10, help="CK+: subject-independent folds")
    data.add_argument("--limit", type=int, help="keep the first N rows of each split (smoke runs)")
    data.add_argument("--on-bad", choices=("error", "skip"), default="error",
                      help="corrupt rows/files: stop at the first, or skip them and report the count")
    data.add_argument("--augment", help=f"comma-separated subset of {','.join(AUGMENTATIONS)}, or 'none' "
                                        "(default: the architecture's recipe)")
    train = parser.add_argument_group("training (defaults: the architecture's recipe)")
    train.add_argument("--output-dir", type=Path, required=True)
    train.add_argument("--overwrite", action="store_true", help="replace an existing, non-empty output folder")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output-dir")
    train.add_argument("--recipe", choices=RECIPE_KINDS, default="paper",
                       help="'paper': the architecture's published recipe; 'cpu': a recipe that converges in the "
                            "epochs a 2-core CPU can give (training/recipes.py CPU_RECIPES, near-native input size)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimizer steps (smoke runs)")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--lr", type=float)
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--optimizer", choices=("adam", "adamw", "sgd"))
    train.add_argument("--freeze-epochs", type=int,
                       help="epochs of the frozen-backbone stage (default: the recipe's, for pretrained models only)")
    train.add_argument("--time-budget", type=float, metavar="MINUTES",
                       help="stop after the last epoch that fits in this wall time (evaluated and checkpointed)")
    train.add_argument("--schedule", choices=SCHEDULES, help="learning-rate schedule over the epochs")
    train.add_argument("--threads", type=int, help="CPU threads for torch (1 is fastest on a crowded machine)")
    train.add_argument("--channels-last", action=argparse.BooleanOptionalAction,
                       help="channels-last memory format on CPU (default: the recipe's; always used on GPU)")
    train.add_argument("--precision", choices=PRECISIONS,
                       help="CPU precision: bf16 autocast or fp32 (default: the recipe's; GPUs always use bf16/fp16)")
    train.add_argument("--compile", action=argparse.BooleanOptionalAction,
                       help="torch.compile the model (default: the recipe's)")
    train.add_argument("--ema-decay", type=float,
                       help="evaluate, checkpoint and ship an exponential moving average of the weights with this "
                            "per-step decay (e.g. 0.999); pass it again with --resume (default: off)")
    train.add_argument("--precise-bn", type=face_count, metavar="FACES",
                       help="recompute the BatchNorm statistics from this many training faces before each "
                            "evaluation, 0 to keep the running averages (default: the recipe's)")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--workers", type=int, help="dataloader workers (default 0 on CPU, 4 on GPU)")
    train.add_argument("--logging-steps", type=int, default=50)
    distill = parser.add_argument_group("distillation (soft targets from trained teachers)")
    distill.add_argument("--distill-from", metavar="MODELS",
                         help="comma-separated trained teachers (zoo ids, folders, Hub ids) with the dataset's labels")
    distill.add_argument("--distill-weight", type=float, default=0.5,
                         help="share of each training target taken from the teachers' mean probabilities")
    distill.add_argument("--distill-temperature", type=float, default=1.0,
                         help="temperature of the teachers' softmax")
    distill.add_argument("--distill-online", action="store_true",
                         help="run the teachers on each augmented, mixed training batch the student sees "
                              "(consistent teaching) instead of once on the clean faces; costs a teacher "
                              "forward pass per step")
    hub = parser.add_argument_group("hub")
    hub.add_argument("--push-to-hub", action="store_true", help="upload the finished folder to the Hub")
    hub.add_argument("--hub-model-id", help="org/name to push to")
    return parser


def check_output_dir(folder: Path) -> None:
    """An --output-dir that cannot work (a file, a name too long) is refused before any data is loaded."""
    problem = output_dir_problem(folder)
    if problem is not None:
        raise DataError(f"--output-dir {shown(folder)} cannot be used: {problem}")


def prepare_output_dir(folder: Path, resume: bool, overwrite: bool, main_process: bool = True) -> None:
    """Never touch an existing result unless asked: --resume continues it, --overwrite replaces it.
    Every process checks; only the main one changes the folder."""
    check_output_dir(folder)
    if resume:
        if not any((folder / CHECKPOINTS).glob("checkpoint-*")):
            raise DataError(f"--resume: no checkpoint to resume in {folder / CHECKPOINTS}")
        return
    occupied = folder.exists() and any(folder.iterdir())
    if occupied and not overwrite:
        raise DataError(f"output directory {folder} already exists and is not empty; pass --overwrite to "
                        "replace it or --resume to continue its last checkpoint")
    if main_process:
        try:
            if occupied:
                shutil.rmtree(folder)
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(f"--output-dir {shown(folder)}: {error.strerror or error}") from error


def choose_recipe(args: argparse.Namespace, loaded: LoadedModel) -> Recipe:
    recipe = recipe_for(loaded.model.config.model_type, args.recipe)
    augment = None
    if args.augment is not None:
        names = tuple(a.strip() for a in args.augment.split(",") if a.strip())
        augment = () if names == ("none",) else names
    # A frozen first stage only makes sense on trained weights: by default it is used for
    # loaded checkpoints, never for fresh ones.
    frozen = args.freeze_epochs if args.freeze_epochs is not None else (
        recipe.frozen_epochs if loaded.kind != "architecture" else 0)
    recipe = recipe.with_overrides(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, augment=augment,
                                   weight_decay=args.weight_decay, optimizer=args.optimizer, frozen_epochs=frozen,
                                   schedule=args.schedule, precision=args.precision, compile=args.compile,
                                   channels_last=args.channels_last, precise_bn=args.precise_bn)
    if recipe.frozen_epochs and not recipe.frozen_module:
        raise DataError(f"--freeze-epochs: the {loaded.model.config.model_type} recipe names no module to freeze")
    if recipe.frozen_epochs >= recipe.epochs:
        raise DataError(f"--freeze-epochs ({recipe.frozen_epochs}) must be smaller than --epochs ({recipe.epochs})")
    return recipe


def training_arguments(args: argparse.Namespace, recipe: Recipe, output_dir: Path) -> TrainingArguments:
    cuda = torch.cuda.is_available()
    bf16 = torch.cuda.is_bf16_supported() if cuda else recipe.precision == "bf16"
    return TrainingArguments(
        output_dir=str(output_dir / CHECKPOINTS),
        num_train_epochs=recipe.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=max(recipe.batch_size, 64),
        learning_rate=recipe.lr,
        weight_decay=recipe.weight_decay,
        max_grad_norm=recipe.max_grad_norm,
        eval_strategy="epoch",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="accuracy",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=args.logging_steps,
        logging_first_step=True,
        remove_unused_columns=False,
        label_names=["labels"],
        report_to="none",
        seed=args.seed,
        use_cpu=not cuda,
        bf16=bf16,
        fp16=cuda and not bf16,
        dataloader_num_workers=args.workers if args.workers is not None else (4 if cuda else 0),
        dataloader_pin_memory=cuda,
        torch_compile=recipe.compile,
        dataloader_drop_last=recipe.compile,  # one batch shape: no recompilation for a short last batch
        disable_tqdm=not sys.stderr.isatty(),
    )


def describe_recipe(recipe: Recipe, args: TrainingArguments, data: FerData) -> dict[str, Any]:
    facts = {
        "recipe source": recipe.source,
        "optimizer": f"{recipe.optimizer}, lr {recipe.lr:g}, weight decay {recipe.weight_decay:g}, "
                     f"gradient-norm clip {recipe.max_grad_norm:g}",
        "schedule": recipe.schedule + (f" (step {recipe.step_epochs:g} epochs, ×{recipe.gamma:g})"
                                       if recipe.schedule == "step" else ""),
        "epochs": recipe.epochs,
        "batch size": recipe.batch_size,
        "augmentation": ", ".join(recipe.augment) or "none",
        "batch augmentation": str(recipe.batch_augment) if recipe.batch_augment else "none",
        "config from the recipe (fresh models)": ", ".join(f"{k}={v}" for k, v in recipe.model_config.items())
                                                 or "none",
        "precision": ("bf16" if args.bf16 else "fp16" if args.fp16 else "fp32")
                     + (", torch.compile" if args.torch_compile else "")
                     + (", channels-last" if recipe.channels_last or torch.cuda.is_available() else ""),
        "seed": args.seed,
        "training samples": len(data.train),
        "validation samples (model selection)": len(data.validation),
    }
    if recipe.precise_bn:
        facts["BatchNorm statistics"] = (f"recomputed from {recipe.precise_bn:,} training faces (no augmentation) "
                                         "before each evaluation, to match the weights evaluated")
    if recipe.frozen_epochs:
        facts["stages"] = (f"{recipe.frozen_epochs} epochs with `{recipe.frozen_module}` frozen, then all layers at "
                           f"lr × {recipe.finetune_lr_scale:g}")
    return facts


def distill_into(args: argparse.Namespace, data: FerData, targs: TrainingArguments,
                 student_config: Any) -> tuple[Distillation | None, OnlineTeachers | None]:
    """With --distill-from: the teachers that run in each training step (--distill-online), or
    the training labels replaced by the blend of truth and teachers."""
    if not args.distill_from:
        return None, None
    truth = "the annotators' vote distribution" if data.train.labels.ndim == 2 else "the true label"
    distillation = Distillation(parse_teachers(args.distill_from), args.distill_weight, args.distill_temperature,
                                truth=truth, online=args.distill_online)
    if distillation.online:
        teachers = OnlineTeachers(distillation, data.labels, student_config, targs.device)
        return teachers.distillation, teachers
    probabilities, distillation = teacher_probabilities(data, distillation, targs.per_device_eval_batch_size)
    agreement = float((probabilities.argmax(axis=1) == data.train.hard_labels()).mean())
    print(f"[distill] teachers agree with {agreement:.2%} of the training labels", flush=True)
    data.train.labels = distilled_targets(data.train.labels, probabilities, distillation.weight)
    return distillation, None


def train_one(args: argparse.Namespace, data: FerData, output_dir: Path, command: str,
              callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    """Train, pick the best epoch on validation, measure validation and test, write the Hub folder."""
    from accelerate import PartialState

    processes = PartialState()  # one per device under `accelerate launch`
    prepare_output_dir(output_dir, args.resume, args.overwrite, processes.is_main_process)
    processes.wait_for_everyone()
    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    overrides = parse_overrides(args.config)
    if args.image_size is not None:
        overrides["image_size"] = args.image_size
    loaded = load_model(args.model, overrides, labels=data.labels)
    recipe = choose_recipe(args, loaded)
    if loaded.kind == "architecture" and recipe.model_config:  # the recipe's input size etc.; the user's win
        loaded = load_model(args.model, {**recipe.model_config, **overrides}, labels=data.labels)
    if args.backbone_weights is not None:
        loaded = load_backbone_weights(loaded, args.backbone_weights)
    model = loaded.model
    model.float_linears()  # layers a zoo entry stores as int8 train as float (the zoo re-quantises)
    if loaded.trained:  # fitted to the old head and data: train on raw one-view logits, refit at the end
        model.config.calibration_temperature, model.config.test_time_flip = 1.0, False
    targs = training_arguments(args, recipe, output_dir)
    channels_last = torch.cuda.is_available() or recipe.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    processor = model.image_processor()
    distillation, teachers = distill_into(args, data, targs, model.config)
    sessions = SessionsCallback(output_dir)
    all_callbacks: list[TrainerCallback] = [LogFilesCallback(output_dir), sessions]
    if args.ema_decay is not None:  # before the caller's callbacks: its live weights are saved first
        all_callbacks.append(WeightEmaCallback(model, args.ema_decay))
    all_callbacks.extend(callbacks)
    collator = ProcessorCollator(processor, channels_last)
    if recipe.precise_bn:  # after the weight average is swapped in: its statistics are the ones evaluated
        all_callbacks.append(PreciseBatchNormCallback(model, FaceDataset(data.train), collator, recipe.precise_bn))
    if args.time_budget:
        all_callbacks.append(TimeBudgetCallback(args.time_budget))
    frozen = resolve_module(model, recipe.frozen_module) if recipe.frozen_epochs else None
    if frozen is not None:
        all_callbacks.append(FrozenStageCallback(frozen, recipe.frozen_epochs))
    trainer = FerTrainer(
        model=model, args=targs, recipe=recipe, frozen=frozen, teachers=teachers,
        train_dataset=FaceDataset(data.train, build_augmentation(recipe.augment)),
        eval_dataset=FaceDataset(data.validation),
        data_collator=collator, compute_metrics=compute_metrics,
        processing_class=processor, callbacks=all_callbacks)
    print(f"[finetune] {args.model} ({model.config.model_type}, {sum(p.numel() for p in model.parameters()):,} "
          f"params, {loaded.initialisation}) on {data.name}: train {len(data.train)}, validation "
          f"{len(data.validation)}, test {len(data.test)}; {len(data.problems)} bad entries skipped", flush=True)
    started = time.time()
    train_output = trainer.train(resume_from_checkpoint=True if args.resume else None)
    wall = time.time() - started
    if not trainer.is_world_process_zero():
        return {}
    model = trainer.accelerator.unwrap_model(trainer.model)
    # The final files are written to a staging folder and moved into place only when all of them
    # exist, run_summary.json last: a run killed on the way leaves no folder that passes for a
    # finished one (training/model_source.py refuses it), and --resume writes them again.
    (output_dir / RUN_SUMMARY).unlink(missing_ok=True)
    staging = fresh_folder(output_dir / STAGING)
    # One pass over each split serves both the metrics (argmax) and the temperature fit (raw logits).
    logits = {split: split_logits(model, data, split, targs.per_device_eval_batch_size)
              for split in ("validation", "test")}
    reports = {split: evaluate_split(model, data, split, staging, logits=logits[split]) for split in logits}
    calibration = calibrate_model(model, data, staging, targs.per_device_eval_batch_size,
                                  f"{output_dir.name} on {data.name} test", logits=logits)
    model.save_pretrained(staging)
    (staging / "training_args.json").write_text(targs.to_json_string())
    best = trainer.state.best_metric
    best_epoch = next((e["epoch"] for e in trainer.state.log_history if e.get("eval_accuracy") == best), None)
    earlier_s = sum(session["wall_time_s"] for session in sessions.sessions[:-1])
    # One clock for the summary and sessions.json: the sessions' own records, this one included.
    total_wall = earlier_s + sessions.sessions[-1]["wall_time_s"]
    summary = {
        "command": command, "model": args.model, "initialisation": loaded.initialisation,
        "dataset": data.name, "output_dir": str(output_dir),
        "wall_time_s": round(total_wall, 1),
        "train_runtime_s": round(earlier_s + train_output.metrics.get("train_runtime", wall), 3),
        "train_samples_per_second": train_output.metrics.get("train_samples_per_second"),
        "sessions": sessions.sessions,
        "global_step": trainer.state.global_step, "best_epoch": best_epoch,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "validation_accuracy": reports["validation"]["accuracy"], "test_accuracy": reports["test"]["accuracy"],
        "test_macro_f1": reports["test"]["macro_f1"], "skipped_entries": len(data.problems),
        "temperature": model.config.calibration_temperature, "test_ece_before": calibration["test"]["ece_before"],
        "test_ece_after": calibration["test"]["ece_after"],
        "distillation": distillation.describe() if distillation else None,
        "weight_ema_decay": args.ema_decay,
    }
    (staging / RUN_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    training_facts = describe_recipe(recipe, targs, data) | {
        "best epoch (validation accuracy)": best_epoch, "optimizer steps": trainer.state.global_step,
        "wall time": f"{total_wall / 60:.1f} min on {'GPU' if torch.cuda.is_available() else 'CPU'}"
                     + (f" in {len(sessions.sessions)} sessions (resumed)" if len(sessions.sessions) > 1 else ""),
        "command": f"`{command}`"}
    if distillation:
        training_facts["knowledge distillation"] = distillation.describe()
    if args.ema_decay is not None:
        training_facts["weights"] = (f"exponential moving average of the trained weights, decay {args.ema_decay} per "
                                     f"step {EMA_SHIPS}")
    write_model_card(staging, name=args.hub_model_id or output_dir.name, model=model,
                     data_description=data.description, reports=reports, initialisation=loaded.initialisation,
                     training=training_facts)
    update_card(staging / "README.md", card_section(calibration, data.name))
    if data.problems:
        (staging / "skipped_entries.txt").write_text("\n".join(data.problems) + "\n")
    publish_folder(staging, output_dir, last=("model.safetensors", "config.json", RUN_SUMMARY))
    print(f"[finetune] done in {total_wall / 60:.1f} min: validation accuracy "
          f"{reports['validation']['accuracy']:.4f}, test accuracy {reports['test']['accuracy']:.4f} → {output_dir}",
          flush=True)
    return summary


def push_folder(folder: Path, repo_id: str) -> str:
    """Upload the Hub folder (not the Trainer checkpoints) to `repo_id`."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder),
                             ignore_patterns=[f"{CHECKPOINTS}/*", f"{STAGING}/*"],
                             commit_message="Upload FER Workbench checkpoint")
    return str(info)


def cross_validate(args: argparse.Namespace, command: str, callbacks: Sequence[TrainerCallback]) -> dict[str, Any]:
    """CK+ --fold all: one complete run per fold in ``fold-<k>/``, then mean ± std of test accuracy."""
    if not args.resume:
        prepare_output_dir(args.output_dir, resume=False, overwrite=args.overwrite)
    results = []
    for fold in range(args.n_folds):
        data = load_data("ckplus", args.data_dir, fold=fold, n_folds=args.n_folds, limit=args.limit, on_bad=args.on_bad)
        fold_args = argparse.Namespace(**{**vars(args), "overwrite": False,
                                          "resume": args.resume and (args.output_dir / f"fold-{fold}").exists()})
        results.append(train_one(fold_args, data, args.output_dir / f"fold-{fold}", command, callbacks))
    accuracies = [r["test_accuracy"] for r in results]
    summary = {"command": command, "folds": args.n_folds, "test_accuracy_per_fold": accuracies,
               "test_accuracy_mean": statistics.mean(accuracies),
               "test_accuracy_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0}
    (args.output_dir / "cross_validation.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"[finetune] {args.n_folds}-fold CK+: test accuracy {summary['test_accuracy_mean']:.4f} ± "
          f"{summary['test_accuracy_std']:.4f}", flush=True)
    return summary


def run(argv: Sequence[str] | None = None, callbacks: Sequence[TrainerCallback] = ()) -> dict[str, Any]:
    args = build_parser().parse_args(argv)
    argv = list(sys.argv[1:] if argv is None else argv)
    command = "python training/finetune.py " + shlex.join(argv)
    if args.push_to_hub and not args.hub_model_id:
        raise DataError("--push-to-hub needs --hub-model-id org/name")
    if args.distill_online and not args.distill_from:
        raise DataError("--distill-online needs teachers: --distill-from MODELS")
    if args.labels and args.dataset != "folder":
        raise DataError("--labels applies only to --dataset folder (the other datasets fix their labels)")
    if args.fold == "all":
        if args.dataset != "ckplus":
            raise DataError("--fold all needs --dataset ckplus")
        if args.push_to_hub:
            raise DataError("--push-to-hub with --fold all: push one fold's folder instead")
        return cross_validate(args, command, callbacks)
    try:
        fold = int(args.fold)
    except ValueError:
        raise DataError(f"--fold must be a fold index or 'all', got {args.fold!r}") from None
    check_output_dir(args.output_dir)  # before the data: a bad folder is refused at once
    data = load_data_from_arguments(args, soft_labels=args.soft_labels, fold=fold)
    summary = train_one(args, data, args.output_dir, command, callbacks)
    if args.push_to_hub and summary:
        summary["pushed"] = push_folder(args.output_dir, args.hub_model_id)
        print(f"[finetune] pushed {args.output_dir} to {args.hub_model_id}", flush=True)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(run, argv)


if __name__ == "__main__":
    sys.exit(main())
