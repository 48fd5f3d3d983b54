"""Knowledge distillation as soft targets: the training labels become a blend of the true label and
the averaged class probabilities of one or more trained teachers.

Writing the teacher's knowledge into the labels, rather than running the teacher beside the
student, costs one pass over the training split per teacher (cached on disk under the teacher's
revision, so a resumed run or a second student pays nothing) and reuses the soft-label path that
FERPlus vote distributions already take: label smoothing and mixup/cutmix then mix the blended
targets like any others. The teachers see the un-augmented faces; a horizontal flip or a small warp
does not change a face's expression, and cutmix mixes the targets with the pixels.

This is soft-target distillation at temperature ``T`` on the teacher side only (the student is
trained at T = 1 with cross-entropy against the blend), so a temperature above 1 also makes the
student less confident; the temperature fitted after training corrects for that.

``online`` distillation (``OnlineTeachers``) is the other choice: the teachers run beside the
student on the very batch it sees, warped, erased and mixed ("consistent teaching", Beyer et al.
2022, *Knowledge distillation: A good teacher is patient and consistent*). A mixed or occluded face
then gets the teachers' answer for that image rather than a blend of answers for two clean ones.
It costs a teacher forward pass per step, so it suits teachers cheaper than the student.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hub_models.loading import LoadedModel, load_model, pinned_name
from hub_models.preprocessing import converted_pixel_values

from .batch_augment import soft_targets
from .calibration import softmax
from .data import DataError, FerData, cache_dir
from .evaluation import label_index_map, predict_logits
from .files import write_atomically
from .inputs import FaceDataset


@dataclass(frozen=True)
class Distillation:
    """Which teachers, how much of the target they take, and at what temperature."""

    teachers: tuple[str, ...]
    weight: float = 0.5
    temperature: float = 1.0
    revisions: tuple[str | None, ...] = ()  # the teachers' weights as used, once their logits are computed
    truth: str = "the true label"  # what the rest of the target is (FERPlus soft labels: the votes)
    online: bool = False  # the teachers see each augmented training batch (OnlineTeachers)

    def __post_init__(self) -> None:
        if not self.teachers:
            raise DataError("--distill-from needs at least one trained model (zoo id, folder or Hub id)")
        if not 0.0 < self.weight <= 1.0:
            raise DataError(f"--distill-weight must be in (0, 1], got {self.weight}")
        if self.temperature <= 0:
            raise DataError(f"--distill-temperature must be positive, got {self.temperature}")

    def describe(self) -> str:
        """A zoo id names whichever checkpoint holds it today, so the revision pins the teacher used."""
        named = [pinned_name(spec, revision)
                 for spec, revision in zip(self.teachers, self.revisions or [None] * len(self.teachers), strict=True)]
        seen = ("the teachers run on each augmented, mixed batch the student sees" if self.online
                else "teacher logits on the un-augmented training faces")
        return (f"{self.weight:g} × mean softmax(logits / {self.temperature:g}) of {', '.join(named)} "
                f"+ {1 - self.weight:g} × {self.truth} ({seen})")


def load_teacher(spec: str) -> LoadedModel:
    loaded = load_model(spec)
    if not loaded.trained:
        raise DataError(f"--distill-from {spec}: the teacher must be a trained model, not fresh weights")
    return loaded


def teacher_logits(spec: str, data: FerData, batch_size: int = 64,
                   cache: Path | None = None) -> tuple[np.ndarray, str | None]:
    """One teacher's logits on the training split, columns in the dataset's label order, and the
    teacher's revision.

    Cached under a key of the teacher's revision and the training split's content, so a changed
    teacher or dataset is never served stale logits."""
    loaded = load_teacher(spec)
    to_data_index = label_index_map(loaded.labels, data.labels)
    split = data.train
    digest = hashlib.sha256()
    digest.update(json.dumps([spec, loaded.revision, data.name, len(split)]).encode())
    digest.update(np.ascontiguousarray(split.hard_labels()).tobytes())
    if isinstance(split.images, np.ndarray):
        digest.update(np.ascontiguousarray(split.images).tobytes())
    else:
        digest.update("\n".join(map(str, split.images)).encode())
    path = (cache or cache_dir() / "teachers") / f"{digest.hexdigest()[:32]}.npy"
    if path.is_file():
        logits = np.load(path)
    else:
        print(f"[distill] {spec}: logits on {len(split)} training faces (cached in {path.parent})", flush=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=not torch.cuda.is_available()):
            logits = predict_logits(loaded.model, FaceDataset(split), batch_size).astype(np.float32)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda temporary: _save_array(temporary, logits))
    ordered = np.empty_like(logits)
    ordered[:, to_data_index] = logits
    return ordered, loaded.revision


def _save_array(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as handle:  # a file handle: np.save would add ".npy" to a path
        np.save(handle, array)


def teacher_probabilities(data: FerData, distillation: Distillation, batch_size: int = 64,
                          cache: Path | None = None) -> tuple[np.ndarray, Distillation]:
    """The teachers' mean class probabilities on the training split (N × classes, dataset order),
    and the distillation with the teachers' revisions recorded."""
    computed = [teacher_logits(spec, data, batch_size, cache) for spec in distillation.teachers]
    logits, revisions = zip(*computed, strict=True)
    probabilities = np.mean([softmax(each, distillation.temperature) for each in logits], axis=0)
    return probabilities, replace(distillation, revisions=tuple(revisions))


class OnlineTeachers:
    """Teachers that answer for the student's own augmented batch (``Distillation.online``).

    The batch arrives normalised by the student's image processor; each teacher gets the same
    pixels in its own normalisation and input size. The teachers stay in inference mode (their
    BatchNorm statistics and flip averaging as shipped) and are not part of the student's module
    tree, so they are neither trained nor saved in its checkpoints. They move to the training
    device once, here, not in every step."""

    def __init__(self, distillation: Distillation, data_labels: Sequence[str], student_config: Any,
                 device: torch.device | str = "cpu") -> None:
        loaded = [load_teacher(spec) for spec in distillation.teachers]
        self.distillation = replace(distillation, online=True, revisions=tuple(each.revision for each in loaded))
        self.models = [each.model.eval().requires_grad_(False).to(device) for each in loaded]
        self.columns = [torch.as_tensor(label_index_map(each.labels, data_labels), device=device) for each in loaded]
        self.num_labels = len(data_labels)
        self.student_config = student_config

    @torch.no_grad()
    def blend(self, pixel_values: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The student's targets (indices or distributions, dataset order) blended with the
        teachers' mean probabilities on `pixel_values`."""
        truth = soft_targets(labels, self.num_labels, 0.0).to(pixel_values.device)
        probabilities = torch.zeros_like(truth)
        with torch.autocast(pixel_values.device.type, dtype=torch.bfloat16):
            for model, columns in zip(self.models, self.columns, strict=True):
                inputs = converted_pixel_values(pixel_values, self.student_config, model.config)
                logits = model(pixel_values=inputs).logits.float()
                probabilities[:, columns] += torch.softmax(logits / self.distillation.temperature, dim=-1)
        weight = self.distillation.weight
        return (1 - weight) * truth + weight * probabilities / len(self.models)


def distilled_targets(labels: np.ndarray, probabilities: np.ndarray, weight: float) -> np.ndarray:
    """Class indices or label distributions blended with the teachers' probabilities (rows sum to 1)."""
    truth = labels if labels.ndim == 2 else np.eye(probabilities.shape[1], dtype=np.float32)[labels]
    return ((1 - weight) * truth + weight * probabilities).astype(np.float32)


def parse_teachers(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())
