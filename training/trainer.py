"""The HF `Trainer` pieces a FER recipe needs: its optimizer and epoch-based LR schedule, a frozen
first stage, metrics on tuple predictions, and logs the user can plot (CSV + JSON lines)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .batchnorm import recompute_batchnorm_statistics
from .distill import OnlineTeachers
from .files import write_atomically, write_text_atomically
from .recipes import Recipe


def compute_metrics(prediction: Any) -> dict[str, float]:
    """Accuracy and macro-F1 from Trainer predictions. Models may return attentions next to the
    logits (a tuple); soft-label batches carry label distributions (argmax them)."""
    from .metrics import classification_report

    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    labels = np.asarray(prediction.label_ids)
    labels = labels.argmax(axis=1) if labels.ndim == 2 else labels
    names = [str(i) for i in range(logits.shape[-1])]
    report = classification_report(labels, np.asarray(logits).argmax(axis=-1), names)
    return {"accuracy": report["accuracy"], "macro_f1": report["macro_f1"]}


def resolve_module(model: torch.nn.Module, dotted: str) -> torch.nn.Module:
    module = model
    for part in dotted.split("."):
        if not hasattr(module, part):
            raise ValueError(f"recipe names frozen module {dotted!r}, but {type(model).__name__} has no {part!r}")
        module = getattr(module, part)
    return module


class FerTrainer(Trainer):
    """`Trainer` with the recipe's optimizer (Adam / AdamW / SGD) and its schedule evaluated per
    fractional epoch, so StepLR-style paper schedules survive any batch size or resume.

    A two-stage recipe's frozen module gets its own parameter group whose learning rate is 0
    during stage 1. (Switching ``requires_grad`` instead would break under DistributedDataParallel,
    which registers the trainable parameters once, when it wraps the model.)
    """

    def __init__(self, *args: Any, recipe: Recipe, frozen: torch.nn.Module | None = None,
                 teachers: OnlineTeachers | None = None, **kwargs: Any) -> None:
        self.recipe, self.frozen, self.teachers = recipe, frozen, teachers
        super().__init__(*args, **kwargs)
        # FER models take **kwargs but return a per-batch mean loss: without this the Trainer
        # assumes a token-count-normalised loss and multiplies it by the number of processes.
        self.model_accepts_loss_kwargs = False

    def training_step(self, model: torch.nn.Module, inputs: dict[str, Any], *args: Any, **kwargs: Any):
        augment = self.recipe.batch_augment
        if augment is not None:
            num_labels = self.accelerator.unwrap_model(model).config.num_labels
            pixel_values, labels = augment(inputs["pixel_values"], inputs["labels"], num_labels)
            inputs = {**inputs, "pixel_values": pixel_values, "labels": labels}
        if self.teachers is not None:  # after the augmentation: the teachers see what the student sees
            inputs = {**inputs, "labels": self.teachers.blend(inputs["pixel_values"], inputs["labels"])}
        return super().training_step(model, inputs, *args, **kwargs)

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            frozen = {id(p) for p in self.frozen.parameters()} if self.frozen is not None else set()
            params = list((model or self.model).parameters())
            groups = [{"params": [p for p in params if id(p) not in frozen]}]
            if frozen:
                groups.append({"params": [p for p in params if id(p) in frozen]})
            lr, wd = self.args.learning_rate, self.args.weight_decay
            # torch uses the multi-tensor ("foreach") update only on GPUs by default; on a CPU the
            # per-tensor loop costs ~15 % of a small model's training step.
            if self.recipe.optimizer == "sgd":
                self.optimizer = torch.optim.SGD(groups, lr=lr, momentum=self.recipe.momentum, weight_decay=wd,
                                                 foreach=True)
            elif self.recipe.optimizer == "adam":
                self.optimizer = torch.optim.Adam(groups, lr=lr, weight_decay=wd, foreach=True)
            elif self.recipe.optimizer == "adamw":
                self.optimizer = torch.optim.AdamW(groups, lr=lr, weight_decay=wd, foreach=True)
            else:
                raise ValueError(f"unknown optimizer {self.recipe.optimizer!r}; expected adam, adamw or sgd")
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None):
        if self.lr_scheduler is None:
            optimizer = optimizer or self.optimizer
            epochs = float(self.args.num_train_epochs)
            steps_per_epoch = max(num_training_steps / epochs, 1.0)
            recipe = self.recipe

            def trained(step: int) -> float:
                return recipe.lr_factor(step / steps_per_epoch, epochs)

            def frozen(step: int) -> float:
                return 0.0 if step / steps_per_epoch < recipe.frozen_epochs else trained(step)

            lambdas = [trained, frozen][: len(optimizer.param_groups)]
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
            self._created_lr_scheduler = True
        return self.lr_scheduler


def _inference_mode_hook(module: torch.nn.Module, _inputs: Any) -> None:
    module.eval()  # Trainer switches the whole model to train mode before every step


class FrozenStageCallback(TrainerCallback):
    """Stage 1 of a two-stage recipe (its learning rate is 0, see `FerTrainer`): the frozen module
    also runs in inference mode, so its BatchNorm statistics stay those of the trained weights."""

    def __init__(self, module: torch.nn.Module, epochs: int) -> None:
        self.module, self.epochs, self.hook = module, epochs, None

    def _apply(self, epoch: float) -> None:
        frozen = epoch < self.epochs
        if frozen and self.hook is None:
            self.hook = self.module.register_forward_pre_hook(_inference_mode_hook)
        elif not frozen and self.hook is not None:
            self.hook.remove()
            self.hook = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._apply(state.epoch or 0.0)

    def on_epoch_begin(self, args, state, control, **kwargs):
        self._apply(round(state.epoch or 0.0))


class TimeBudgetCallback(TrainerCallback):
    """End training after the epoch that would otherwise overrun a wall-time budget (CPU runs):
    that epoch is still evaluated and checkpointed, so the best-epoch choice stays valid."""

    def __init__(self, minutes: float) -> None:
        self.seconds = 60.0 * minutes
        self.started = self.epoch_started = 0.0
        self.longest_epoch = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.epoch_started = time.monotonic()

    def on_epoch_end(self, args, state, control, **kwargs):
        now = time.monotonic()
        self.longest_epoch = max(self.longest_epoch, now - self.epoch_started)
        if now - self.started + self.longest_epoch > self.seconds:
            print(f"[finetune] stopping after epoch {state.epoch:.0f}: another epoch would exceed the "
                  f"{self.seconds / 60:.0f}-minute budget", flush=True)
            control.should_training_stop = True
        return control


class WeightEmaCallback(TrainerCallback):
    """An exponential moving average of the weights, which is what each epoch evaluates, what its
    checkpoint holds as the model, and so what the best-epoch choice ships.

    The live weights keep training: they are swapped back after the checkpoint is written and saved
    beside it (``LIVE_WEIGHTS``), so `--resume` continues them with the average from the checkpoint.
    The decay warms up as min(decay, (1 + n) / (10 + n)) over the first steps n (timm's ModelEma):
    early weights, still near their initialisation, are soon forgotten.
    """

    LIVE_WEIGHTS = "live_weights.safetensors"

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema-decay must lie strictly between 0 and 1, got {decay}")
        self.model, self.decay = model, decay
        self.weights: dict[str, torch.Tensor] = {}  # the model's state, shared with it (updated in place)
        self.average: dict[str, torch.Tensor] = {}
        self.live: dict[str, torch.Tensor] | None = None  # set while the average sits in the model

    def _live_file(self, args, state) -> Path:
        return Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}" / self.LIVE_WEIGHTS

    def on_train_begin(self, args, state, control, **kwargs):
        self.weights = self.model.state_dict()
        self.average = {name: value.clone() for name, value in self.weights.items()}
        live = self._live_file(args, state)
        if state.global_step and live.is_file():  # resumed: the checkpoint's model is the average
            self.model.load_state_dict(load_file(live), strict=True)

    @torch.no_grad()
    def on_step_end(self, args, state, control, **kwargs):
        steps = state.global_step
        decay = min(self.decay, (1.0 + steps) / (10.0 + steps))
        for name, value in self.weights.items():
            if value.is_floating_point():
                self.average[name].lerp_(value, 1.0 - decay)
            else:
                self.average[name].copy_(value)

    @torch.no_grad()
    def on_epoch_end(self, args, state, control, **kwargs):
        self.live = {name: value.clone() for name, value in self.weights.items()}
        for name, value in self.weights.items():
            value.copy_(self.average[name])

    def on_save(self, args, state, control, **kwargs):
        if self.live is not None:
            tensors = {name: value.contiguous() for name, value in self.live.items()}
            write_atomically(self._live_file(args, state), lambda temporary: save_file(tensors, temporary))
            self._restore_live()

    def on_step_begin(self, args, state, control, **kwargs):
        self._restore_live()  # an epoch that evaluated without saving

    @torch.no_grad()
    def _restore_live(self) -> None:
        if self.live is None:
            return
        for name, value in self.weights.items():
            value.copy_(self.live[name])
        self.live = None


class PreciseBatchNormCallback(TrainerCallback):
    """Before each evaluation, the BatchNorm statistics of the weights about to be evaluated (the
    weight average's, when `WeightEmaCallback` runs before this one) are recomputed on a fixed
    sample of training faces without augmentation (`training.batchnorm`): each checkpoint, and so
    the best-epoch choice, holds statistics that belong to its weights. Training itself uses batch
    statistics and is unaffected."""

    def __init__(self, model: torch.nn.Module, dataset: torch.utils.data.Dataset, collator: Any, faces: int) -> None:
        self.model, self.dataset, self.collator, self.faces = model, dataset, collator, faces

    def on_epoch_end(self, args, state, control, **kwargs):
        recompute_batchnorm_statistics(self.model, self.dataset, self.collator, self.faces,
                                       args.per_device_eval_batch_size, seed=args.seed)


class LogFilesCallback(TrainerCallback):
    """Every log entry (loss, learning rate, evaluation metrics) to ``log_history.jsonl`` and a
    rewritten ``log_history.csv`` with one column per key.

    A resumed run repeats the steps after its checkpoint, and a run resumed only to finish its
    final files logs its training summary again: at the start of training both files are therefore
    rewritten from the Trainer state's history (the checkpoint's, when resuming), so that each
    step's entries appear once."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def on_train_begin(self, args, state, control, **kwargs):
        if not state.is_world_process_zero:
            return
        if state.log_history or (self.folder / "log_history.jsonl").exists():
            self._write([log_entry(e["step"], {k: v for k, v in e.items() if k != "step"}, e.get("epoch"))
                         for e in state.log_history])

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with (self.folder / "log_history.jsonl").open("a") as handle:
            handle.write(json.dumps(log_entry(state.global_step, logs, state.epoch)) + "\n")
        self._write_csv([json.loads(line) for line in (self.folder / "log_history.jsonl").read_text().splitlines()])

    def _write(self, entries: list[dict[str, Any]]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.folder / "log_history.jsonl", "".join(json.dumps(e) + "\n" for e in entries))
        self._write_csv(entries)

    def _write_csv(self, entries: list[dict[str, Any]]) -> None:
        columns = list(dict.fromkeys(key for e in entries for key in e))

        def write(path: Path) -> None:
            with path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=columns)
                writer.writeheader()
                writer.writerows(entries)

        write_atomically(self.folder / "log_history.csv", write)


def log_entry(step: int, logs: dict[str, Any], epoch: float | None) -> dict[str, Any]:
    """One line of the log files: the step and epoch first, then the logged values."""
    return {"step": step, "epoch": epoch, **logs}


SESSIONS = "sessions.json"


def read_sessions(folder: Path) -> list[dict[str, Any]]:
    """The training sessions recorded in `folder` (empty when none, or when the record is unreadable:
    it only informs the run summary and must not stop a resume)."""
    try:
        sessions = json.loads((Path(folder) / SESSIONS).read_text())
    except (OSError, ValueError):
        return []
    return sessions if isinstance(sessions, list) else []


class SessionsCallback(TrainerCallback):
    """One record per training session (the first run and each ``--resume``) in ``sessions.json``,
    rewritten at every log, checkpoint and at the end of training, so that the run summary can add
    up the wall time of all sessions, including those that were killed."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.sessions: list[dict[str, Any]] = []
        self.started = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = time.monotonic()
        session = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from_step": state.global_step,
                   "to_step": state.global_step, "wall_time_s": 0.0, "training_finished": False}
        self.sessions = [*read_sessions(self.folder), session]
        self._record(state, finished=False)

    def on_log(self, args, state, control, **kwargs):
        self._record(state, finished=False)

    def on_save(self, args, state, control, **kwargs):
        self._record(state, finished=False)

    def on_train_end(self, args, state, control, **kwargs):
        self._record(state, finished=True)

    def _record(self, state, finished: bool) -> None:
        if not state.is_world_process_zero or not self.sessions:
            return
        self.sessions[-1].update(to_step=state.global_step, wall_time_s=round(time.monotonic() - self.started, 1),
                                 training_finished=finished)
        self.folder.mkdir(parents=True, exist_ok=True)
        write_text_atomically(self.folder / SESSIONS, json.dumps(self.sessions, indent=2) + "\n")
