"""The embedded model zoo: trained checkpoints shipped inside the package as complete Hub folders.

Users write ``AutoModel.from_pretrained("fer-workbench/<name>")`` whether they are online or not.
Online, the Hub answers; offline, the Hugging Face cache must already hold the repo. So
``import hub_models`` places every zoo folder into the cache as a snapshot (``refs/main`` +
``snapshots/<revision>/``, files linked to the package copy), which is how huggingface_hub
resolves ids with no network. A repo the user downloaded from the real Hub is never touched.

``manifest.json`` pins each entry's revision (a hash of its files, written by :func:`add`), so
importing never hashes tens of megabytes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import load_file, save_file

from ..files import write_atomically, write_text_atomically
from ..model_cards import put_section
from ..shared.fer_base import quantize_rows

ORG = "fer-workbench"
ZOO_DIR = Path(__file__).resolve().parent
MANIFEST = ZOO_DIR / "manifest.json"
EMBEDDED_MARKER = ".fer-workbench-embedded"
SHIPPED_SUFFIXES = {".json", ".py", ".md", ".safetensors", ".csv"}  # .csv: the training curves
# What the app, the CLI and the benchmarks fall back on, clearly marked untrained, when no trained
# model is embedded.
UNTRAINED_FALLBACK = ("patt_lite", "ddamfn", "attention_cnn")
REQUIRED_FILES = ("config.json", "model.safetensors", "preprocessor_config.json", "README.md")
STORAGE_START, STORAGE_END = "<!-- storage -->", "<!-- /storage -->"


def _read_manifest(zoo_dir: Path) -> dict[str, dict]:
    path = zoo_dir / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def model_ids(zoo_dir: Path = ZOO_DIR) -> list[str]:
    """Hub ids of the embedded checkpoints, in the manifest's order (the app's defaults)."""
    return [f"{ORG}/{name}" for name in _read_manifest(zoo_dir)]


def default_ids(zoo_dir: Path = ZOO_DIR, limit: int = 3) -> list[str]:
    """The trained models the app and the CLI open on: the entries the manifest marks
    ``"default": true`` (else its first ones), at most `limit`."""
    manifest = _read_manifest(zoo_dir)
    chosen = [name for name, entry in manifest.items() if entry.get("default")] or list(manifest)
    return [f"{ORG}/{name}" for name in chosen[:limit]]


def ablation_note(model_id: str, zoo_dir: Path = ZOO_DIR) -> str:
    """"ablation of <entry>: <how it differs>" for an entry added as one, else ""."""
    entry = _read_manifest(zoo_dir).get(model_id.partition("/")[2], {})
    ablation = entry.get("ablation")
    return f"ablation of {ablation['of']}: {ablation['differs']}" if ablation else ""


def folder(model_id: str, zoo_dir: Path = ZOO_DIR) -> Path:
    """The package folder that holds an embedded checkpoint."""
    org, _, name = model_id.partition("/")
    if org != ORG or name not in _read_manifest(zoo_dir):
        embedded = ", ".join(model_ids(zoo_dir)) or "none"
        raise ValueError(f"{model_id!r} is not in the embedded zoo; embedded: {embedded}")
    return zoo_dir / name


def revision(model_id: str, zoo_dir: Path = ZOO_DIR) -> str:
    """The pinned revision of an embedded checkpoint (its Hub commit hash in the cache)."""
    return _read_manifest(zoo_dir)[folder(model_id, zoo_dir).name]["revision"]


def _revision(files: list[Path]) -> str:
    digest = hashlib.sha1()
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _cast_to_fp16(weights: Path) -> None:
    tensors = load_file(str(weights))
    halved = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    write_atomically(weights, lambda p: save_file(halved, str(p), metadata={"format": "pt", "stored_dtype": "float16"}))


def _store_int8(target: Path, linears: Sequence[str]) -> list[str]:
    """Rewrite the named dense layers of a folder's weights as int8 rows with float32 scales and
    record them in its config (``int8_linears``), so the folder loads with int8 layers; returns
    the layers now stored so."""
    weights, config_path = target / "model.safetensors", target / "config.json"
    tensors = load_file(str(weights))
    with safe_open(str(weights), "pt") as handle:  # the header only: its metadata
        metadata = handle.metadata()
    config = json.loads(config_path.read_text())
    stored = list(config.get("int8_linears") or [])
    for name in linears:
        if name in stored:
            continue
        weight = tensors.get(f"{name}.weight")
        if weight is None or weight.ndim != 2 or not weight.is_floating_point():
            raise ValueError(f"{target.name}: {name!r} is not a dense layer with a float weight in model.safetensors")
        tensors[f"{name}.weight"], tensors[f"{name}.weight_scale"] = quantize_rows(weight)
        stored.append(name)
    if stored == config.get("int8_linears"):
        return stored  # already stored so: leave the files (and the revision) as they are
    config["int8_linears"] = stored
    write_atomically(weights, lambda p: save_file(tensors, str(p), metadata=metadata))
    write_text_atomically(config_path, json.dumps(config, indent=2, sort_keys=True) + "\n")
    card = target / "README.md"
    if card.is_file():
        write_text_atomically(card, put_section(card.read_text(encoding="utf-8"), _storage_section(stored),
                                                STORAGE_START, STORAGE_END, "## Limitations"))
    return stored


def _storage_section(stored: Sequence[str]) -> str:
    """The card's note of which layers are int8."""
    layers = ", ".join(f"`{name}`" for name in stored)
    return (f"{STORAGE_START}\n## Storage\n\nThe dense layers {layers} are stored as int8 with one float32 "
            "scale per output row (`config.int8_linears`, about a quarter of their float32 bytes); the model "
            "rebuilds their float weights when it first runs and computes in float. Fine-tuning turns them "
            "back into float layers (`model.float_linears()`).\n" + STORAGE_END + "\n")


def store_int8(name: str, linears: Sequence[str], zoo_dir: Path = ZOO_DIR) -> str:
    """Store an entry's named dense layers as int8 (see :func:`add`) and re-pin its revision: a
    storage change of the same checkpoint, whose accuracy change the card must state."""
    target = folder(f"{ORG}/{name}", zoo_dir)
    stored = _store_int8(target, linears)
    manifest = _read_manifest(zoo_dir)
    manifest[name]["int8_linears"] = stored
    manifest[name]["revision"] = _revision(sorted(target.iterdir()))
    (zoo_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest[name]["revision"]


def add(checkpoint: Path, name: str, *, fp16: bool = False, int8_linears: Sequence[str] = (),
        default: bool = False, ablation_of: str | None = None, differs: str | None = None,
        zoo_dir: Path = ZOO_DIR) -> str:
    """Copy a trained Hub folder into the zoo as ``fer-workbench/<name>`` and pin its revision.

    Refuses to replace an existing entry: git history keeps every committed checkpoint, so a
    checkpoint goes in once, when final. ``fp16`` stores weights in half precision (they load
    back as float32) to keep the zoo small; ``int8_linears`` names dense layers stored as int8 with
    one scale per row on top of that (``FerConfig.int8_linears``). ``default`` marks it as one the
    app and the CLI open on.
    ``ablation_of`` names the zoo entry this one is an ablation of (same recipe and budget) and
    ``differs`` says how, e.g. "no attention": the app's picker shows the pair as such.
    """
    if (ablation_of is None) != (differs is None):
        raise ValueError("an ablation names both the entry it is an ablation of and how it differs")
    checkpoint = Path(checkpoint)
    missing = [f for f in REQUIRED_FILES if not (checkpoint / f).is_file()]
    if missing:
        raise ValueError(f"{checkpoint} is not a complete Hub folder: missing {', '.join(missing)}")
    target = zoo_dir / name
    if target.exists():
        raise FileExistsError(f"zoo entry {name!r} already exists at {target}; remove it deliberately first")
    files = [p for p in checkpoint.iterdir() if p.is_file() and p.suffix in SHIPPED_SUFFIXES
             and p.name not in {"trainer_state.json", "training_args.json"}]
    target.mkdir(parents=True)
    for path in files:
        shutil.copy2(path, target / path.name)
    if fp16:
        _cast_to_fp16(target / "model.safetensors")
    if int8_linears:
        _store_int8(target, int8_linears)
    name_card(target / "README.md", checkpoint.name, name)
    manifest = _read_manifest(zoo_dir)
    entry = {"revision": _revision(sorted(target.iterdir())), "fp16": fp16,
             **({"int8_linears": list(int8_linears)} if int8_linears else {}),
             **({"default": True} if default else {}),
             **({"ablation": {"of": ablation_of, "differs": differs}} if ablation_of else {})}
    # An ablation follows the entry it ablates, so the picker lists the pair together.
    names = [key for key in manifest if key != name]
    at = names.index(ablation_of) + 1 if ablation_of in names else len(names)
    manifest = {**{key: manifest[key] for key in names[:at]}, name: entry, **{key: manifest[key] for key in names[at:]}}
    (zoo_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return f"{ORG}/{name}"


def name_card(card: Path, old: str, new: str) -> None:
    """A run's card is titled with the run's folder name; in the zoo it must carry the entry's id
    (its heading and the model-index name the Hub shows)."""
    if old == new or not card.is_file():
        return
    renamed = {f"- name: {old}": f"- name: {new}", f"# {old}": f"# {new}"}
    lines = card.read_text(encoding="utf-8").split("\n")
    card.write_text("\n".join(renamed.get(line, line) for line in lines), encoding="utf-8")


def source_file(filename: str) -> Path:
    """The package's current copy of a remote-code file (``modeling_x.py``, ``fer_base.py`` …)."""
    package = ZOO_DIR.parent
    found = [path.resolve() for path in sorted(package.glob(f"*/{filename}")) if path.parent != ZOO_DIR]
    if not found:
        raise FileNotFoundError(f"no package source for {filename!r} under {package}")
    return found[0]


def refresh_code(name: str, zoo_dir: Path = ZOO_DIR) -> str:
    """Give an entry the package's current remote-code files and re-pin its revision.

    Weights, metrics and card stay as trained: a code change that keeps the state dict (the
    output type, documentation) must not cost a new checkpoint, and Hub users who load the
    folder with ``trust_remote_code`` must run the same code as the package."""
    target = folder(f"{ORG}/{name}", zoo_dir)
    for path in target.glob("*.py"):
        shutil.copyfile(source_file(path.name), path)
    manifest = _read_manifest(zoo_dir)
    manifest[name]["revision"] = _revision(sorted(target.iterdir()))
    (zoo_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest[name]["revision"]


def _link_or_copy(source: Path, destination: Path) -> None:
    try:
        destination.symlink_to(source)
    except OSError:
        shutil.copy2(source, destination)


def install(cache_dir: str | Path | None = None, zoo_dir: Path = ZOO_DIR) -> list[str]:
    """Make every embedded checkpoint resolvable by id from the Hugging Face cache.

    Returns the ids placed. Never raises: a read-only cache only means the zoo must be loaded
    by folder (:func:`folder`), which a warning says.
    """
    from huggingface_hub import constants

    cache = Path(cache_dir or constants.HF_HUB_CACHE)
    placed = []
    for name, entry in _read_manifest(zoo_dir).items():
        revision = entry["revision"]
        repo = cache / f"models--{ORG}--{name}"
        ref = repo / "refs" / "main"
        snapshot = repo / "snapshots" / revision
        try:
            current = ref.read_text().strip() if ref.is_file() else None
            if current and current != revision and not (repo / "snapshots" / current / EMBEDDED_MARKER).exists():
                continue  # the user's copy from the real Hub wins
            sources = list((zoo_dir / name).iterdir())
            # Links from an earlier install may dangle (that package copy moved or was deleted).
            if not all((snapshot / path.name).exists() for path in [*sources, Path(EMBEDDED_MARKER)]):
                snapshot.mkdir(parents=True, exist_ok=True)
                for path in sources:
                    destination = snapshot / path.name
                    if destination.is_symlink() and not destination.exists():
                        destination.unlink()
                    if not destination.exists():
                        _link_or_copy(path, destination)
                (snapshot / EMBEDDED_MARKER).write_text(revision + "\n")
            if current != revision:
                ref.parent.mkdir(parents=True, exist_ok=True)
                ref.write_text(revision)
            placed.append(f"{ORG}/{name}")
        except OSError as error:
            warnings.warn(f"could not place zoo model {name!r} in the Hugging Face cache {cache}: {error}; "
                          f"load it with hub_models.zoo.folder('{ORG}/{name}')", stacklevel=2)
    return placed

