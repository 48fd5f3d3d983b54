"""Hostile inputs to the engine, the bundle writer and the CLI, built at test time: truncated and
lazily opened files, header bombs, odd PIL modes and EXIF values, long paths, broken links,
clashing file names, invalid arguments, a save that fails midway, and tiled faces. Every case
ends in the right result or in a `WorkbenchError` naming the problem — never another exception."""

from __future__ import annotations

import csv
import io
import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from image_bytes import encoded, png_chunk
from PIL import Image, features
from tiny_fer_model import one_torch_thread, tiny_model  # noqa: F401 (autouse fixture)

import workbench.cli as cli
import workbench.result as result_module
from workbench import (
    ArgumentError,
    BundleError,
    BundleExistsError,
    Detection,
    ImageError,
    Workbench,
    WorkbenchError,
    load_image,
)
from workbench.faces import RetinaFaceDetector, template_points
from workbench.faces.detect import merge_duplicates

HOPPER = Path(__file__).resolve().parents[1] / "spaces" / "examples" / "grace_hopper.jpg"
FACE = np.random.default_rng(0).integers(0, 256, (48, 48, 3), dtype=np.uint8)
CHEAP = {"methods": ["gradcam"], "faithfulness": False, "regions": False, "native": False}


@pytest.fixture(scope="module")
def bench() -> Workbench:
    return Workbench([tiny_model()])


def png_header_bomb(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height pixels and whose data is a few bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def photo_bytes(fmt: str) -> bytes:
    return encoded(Image.fromarray(np.random.default_rng(1).integers(0, 256, (96, 96, 3), dtype=np.uint8)), fmt)


def closed_image(lazy: bool) -> Image.Image:
    image = Image.open(io.BytesIO(photo_bytes("PNG"))) if lazy else Image.new("RGB", (64, 64))
    image.close()
    return image


def hostile_sources(tmp_path: Path) -> dict[str, tuple[object, str]]:
    """name → (input, words the error must contain)."""
    png, jpeg = photo_bytes("PNG"), photo_bytes("JPEG")
    (tmp_path / "folder.jpg").mkdir()
    (tmp_path / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    return {
        "empty uint8 array": (np.zeros((0, 0, 3), np.uint8), "empty"),
        "empty float array": (np.zeros((0, 10), np.float32), "empty"),
        "empty int array": (np.zeros((5, 0, 4), np.int32), "empty"),
        "lazy truncated PNG": (Image.open(io.BytesIO(png[: len(png) // 2])), "truncated"),
        "lazy truncated JPEG": (Image.open(io.BytesIO(jpeg[: len(jpeg) // 2])), "truncated"),
        "closed PIL image": (closed_image(lazy=False), "closed"),
        "closed lazy PIL image": (closed_image(lazy=True), "closed"),
        "PNG header bomb bytes": (png_header_bomb(100_000, 100_000), "refused"),
        "lazy PNG header bomb": (Image.open(io.BytesIO(png_header_bomb(9000, 9000))), "refused"),
        "10,000-character path": ("x" * 10_000, "File name too long"),
        "300-character component": (str(tmp_path / ("y" * 300 + ".jpg")), "File name too long"),
        "broken symbolic link": (tmp_path / "gone.jpg", "broken symbolic link"),
        "folder named like an image": (tmp_path / "folder.jpg", "not a regular file"),
        "NaN float image": (Image.fromarray(np.full((32, 32), np.nan, np.float32)), "NaN"),
        "EPS (Pillow would run Ghostscript)": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 64 64\n"
                                               b"%%EndComments\nshowpage\n", "EPS, which is refused"),
    }


def test_hostile_inputs_are_named_image_errors(bench: Workbench, tmp_path: Path) -> None:
    for name, (source, words) in hostile_sources(tmp_path).items():
        with pytest.raises(ImageError, match=words) as caught:
            bench.analyze(source, **CHEAP)
        assert len(str(caught.value)) < 400, f"{name}: the message must stay readable"


def test_unreadable_file_is_named(bench: Workbench, tmp_path: Path, monkeypatch) -> None:
    """Permission bits cannot make a file unreadable for root, so the refusal is simulated."""
    path = tmp_path / "locked.png"
    path.write_bytes(photo_bytes("PNG"))

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)
    with pytest.raises(ImageError, match="Permission denied"):
        bench.analyze(path, **CHEAP)


def mode_image(mode: str) -> tuple[Image.Image, int]:
    """A 48×48 image in `mode` and the gray value it must decode to (over white where transparent)."""
    if mode == "La":  # premultiplied: stored 100 at alpha 128 → 100 + (255 − 128) over white
        return Image.new("La", (48, 48), (100, 128)), 227
    if mode in ("LA", "PA"):
        return Image.new(mode, (48, 48), (0, 0)), 255
    if mode == "P":
        image = Image.new("P", (48, 48), 3)
        image.info["transparency"] = 3
        return image, 255
    if mode == "I;16":
        values = np.linspace(0, 65535, 48 * 48).reshape(48, 48).astype(np.uint16)
        return Image.fromarray(values), -1
    if mode == "F":
        return Image.fromarray(np.linspace(-3, 5, 48 * 48, dtype=np.float32).reshape(48, 48)), -1
    if mode == "CMYK":
        return Image.new("CMYK", (48, 48), (0, 0, 0, 0)), 255
    if mode == "YCbCr":
        return Image.new("YCbCr", (48, 48), (128, 128, 128)), 128
    return Image.new("1", (48, 48), 1), 255


@pytest.mark.parametrize("mode", ["La", "LA", "PA", "P", "I;16", "F", "CMYK", "YCbCr", "1"])
def test_odd_pil_modes_are_analysed(bench: Workbench, mode: str) -> None:
    image, gray = mode_image(mode)
    result = bench.analyze(image, assume_face=True, **CHEAP)
    assert result.image.shape == (48, 48, 3) and result.image.dtype == np.uint8
    assert len(result.faces) == 1
    if gray >= 0:
        assert abs(int(result.image.mean()) - gray) <= 1, (mode, result.image.mean())
    else:  # high bit depths are stretched to the full 8-bit range
        assert result.image.min() == 0 and result.image.max() == 255


def exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encoded(Image.new("RGB", (64, 32), (90, 120, 150)), "JPEG", exif=exif)


@pytest.mark.parametrize("orientation", [9, 255, 65535])
def test_invalid_exif_orientation_is_ignored_not_claimed(orientation: int) -> None:
    loaded = load_image(exif_jpeg(orientation))
    assert loaded.rgb.shape[:2] == (32, 64)
    notes = " ".join(loaded.notes)
    assert "rotated" not in notes and f"ignored invalid EXIF orientation {orientation}" in notes


def test_valid_exif_orientation_still_rotates() -> None:
    loaded = load_image(exif_jpeg(6))
    assert loaded.rgb.shape[:2] == (64, 32) and "rotated according to its EXIF orientation" in loaded.notes


@pytest.mark.parametrize("variant", ["rgb-jpeg", "ycbcr-raw", "ycbcr-lzw", "ycbcr-jpeg"])
def test_ycbcr_tiffs_decode(tmp_path: Path, variant: str) -> None:
    rgb = np.zeros((64, 80, 3), np.uint8)
    rgb[:, :40] = (200, 30, 40)
    rgb[:, 40:] = (20, 60, 210)
    image = Image.fromarray(rgb) if variant == "rgb-jpeg" else Image.fromarray(rgb).convert("YCbCr")
    compression = {"rgb-jpeg": "jpeg", "ycbcr-raw": None, "ycbcr-lzw": "tiff_lzw", "ycbcr-jpeg": "jpeg"}[variant]
    path = tmp_path / "face.tif"
    image.save(path, format="TIFF", **({"compression": compression} if compression else {}))
    loaded = load_image(path)
    assert loaded.rgb.shape == (64, 80, 3)
    assert np.abs(loaded.rgb[8:-8, 8:32].astype(int) - (200, 30, 40)).max() <= 12
    assert np.abs(loaded.rgb[8:-8, 48:-8].astype(int) - (20, 60, 210)).max() <= 12


@pytest.mark.parametrize("arguments, words", [
    ({"target": 99}, "out of range.*0–6"),
    ({"target": -1}, "out of range.*0–6"),
    ({"target": True}, "not bool"),
    ({"target": 3.5}, "not float"),
    ({"target": np.bool_(True)}, "not bool"),
    ({"methods": ["gradcam", "magiccam"]}, "unknown CAM method.*'magiccam'.*known: gradcam"),
    ({"methods": [7]}, "must be names"),
    ({"faithfulness": ["nocam"]}, "unknown CAM method"),
    ({"max_faces": -1}, "max_faces.*-1"),
    ({"max_faces": 0}, "max_faces.*0"),
    ({"max_faces": True}, "max_faces.*True"),
    ({"max_faces": 2.5}, "max_faces.*2.5"),
])
def test_bad_arguments_are_argument_errors_raised_first(bench: Workbench, arguments: dict, words: str) -> None:
    """The image here is itself unreadable: the argument error must win, i.e. come before any work."""
    with pytest.raises(ArgumentError, match=words):
        bench.analyze("x" * 10_000, **{"methods": ["gradcam"], **arguments})


def test_argument_errors_are_workbench_errors() -> None:
    assert issubclass(ArgumentError, WorkbenchError) and issubclass(ArgumentError, ValueError)
    with pytest.raises(ArgumentError, match="at least one model"):
        Workbench([])


class FixedDetector:
    """Three faces of decreasing size, in scrambled order, without running a network."""

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        boxes = [(10.0, 10.0, 40.0, 40.0), (50.0, 10.0, 110.0, 70.0), (10.0, 60.0, 30.0, 80.0)]
        return sorted((Detection(box, template_points("fer2013", (48, 48)) + box[:2], 0.9) for box in boxes),
                      key=lambda d: -d.area)

    def describe(self) -> dict:
        return {"name": "fixed"}


@pytest.mark.parametrize("max_faces, expected", [(None, 3), (1, 1), (2, 2), (5, 3)])
def test_max_faces_keeps_the_n_largest(max_faces: int | None, expected: int) -> None:
    bench = Workbench([tiny_model()], detector=FixedDetector())
    result = bench.analyze(np.full((120, 120, 3), 128, np.uint8), max_faces=max_faces, **CHEAP)
    assert len(result.faces) == expected
    areas = [(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]) for f in result.faces]
    assert areas == sorted(areas, reverse=True) and areas[0] == 3600


# Bundles ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def analysis(bench: Workbench):
    return bench.analyze(FACE, assume_face=True, methods=["gradcam"], faithfulness=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_save_onto_a_file_is_refused_by_name(analysis, tmp_path: Path) -> None:
    path = tmp_path / "bundle"
    path.write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(BundleExistsError, match="is a file, not a bundle directory"):
            analysis.save(path, overwrite=overwrite)
    with pytest.raises(BundleError, match="is a file"):
        analysis.save(path / "inner", overwrite=True)
    assert path.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def failing_write_maps(folder: Path, model_analysis) -> list[Path]:
    (folder / "face.png").write_bytes(b"half written")
    raise OSError(28, "No space left on device")


def test_failed_save_leaves_nothing_and_keeps_the_old_bundle(analysis, tmp_path: Path, monkeypatch) -> None:
    old = analysis.save(tmp_path / "kept")
    before = snapshot(old)
    monkeypatch.setattr(result_module, "_write_maps", failing_write_maps)
    with pytest.raises(BundleError, match="No space left on device"):
        analysis.save(tmp_path / "fresh")
    with pytest.raises(BundleError, match="No space left on device"):
        analysis.save(old, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"], "no final, partial or old folder is left"
    assert snapshot(old) == before
    monkeypatch.undo()
    assert analysis.save(old, overwrite=True) == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert json.loads((old / "manifest.json").read_text())["input"]["sha256"] == analysis.input["sha256"]


def test_long_bundle_names(analysis, tmp_path: Path) -> None:
    """A 250-character name is legal: the temporary sibling must not push past the limit."""
    assert (analysis.save(tmp_path / ("b" * 250)) / "manifest.json").is_file()
    with pytest.raises(BundleError, match="File name too long"):
        analysis.save(tmp_path / ("c" * 300))


# Command line -----------------------------------------------------------------------------


@pytest.fixture()
def cheap_cli(monkeypatch) -> None:
    """The CLI builds its Workbench from specs; here every spec is the tiny test model."""
    monkeypatch.setattr(cli, "Workbench", lambda models, detector: Workbench([tiny_model()], detector=detector))


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with path.open() as handle:
        return {Path(row["image"]).name: row for row in csv.DictReader(handle)}


def square(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8))


def hostile_folder(root: Path) -> set[str]:
    """Images in formats the decoder reads, clashing names, a broken link; returns the image names."""
    root.mkdir()
    formats = {"face.ico": "ICO", "face.tga": "TGA", "face.ppm": "PPM", "face.jp2": "JPEG2000"}
    if features.check("avif"):
        formats["face.avif"] = "AVIF"
    for index, (name, fmt) in enumerate(formats.items()):
        square(index).save(root / name, format=fmt)
    square(10).convert("L").save(root / "face.pgm", format="PPM")
    square(11).save(root / "A.JPG", format="JPEG")
    square(12).save(root / "A.jpg", format="JPEG")
    (root / "a_jpg").mkdir()  # a folder whose name a bundle would otherwise take
    square(13).save(root / "a_jpg" / "inner.png")
    (root / "gone.jpg").symlink_to(root / "missing.jpg")
    (root / "notes.txt").write_text("not an image")
    return {*formats, "face.pgm", "A.JPG", "A.jpg", "inner.png", "gone.jpg"}


def test_folder_run_reads_every_format_and_keeps_clashing_names_apart(cheap_cli, tmp_path: Path, capsys) -> None:
    names = hostile_folder(tmp_path / "in")
    out = tmp_path / "out"
    for overwrite in ([], ["--overwrite"]):
        code = cli.main(["explain", str(tmp_path / "in"), "--models", "tiny", "--assume-face", "--no-faithfulness",
                         "--out", str(out), *overwrite])
        assert code == 1, "the broken link makes the run exit 1"
        rows = read_rows(out / "predictions.csv")
        assert set(rows) == names
        assert "broken symbolic link" in rows["gone.jpg"]["error"]
        assert all(not row["error"] for name, row in rows.items() if name != "gone.jpg"), rows
        bundles = [row["bundle"] for row in rows.values() if row["bundle"]]
        assert len({b.casefold() for b in bundles}) == len(bundles) == len(names) - 1
        for name in ("A.JPG", "A.jpg"):
            manifest = json.loads((Path(rows[name]["bundle"]) / "manifest.json").read_text())
            assert manifest["input"]["name"] == name
        assert (out / "a_jpg" / "inner_png" / "manifest.json").is_file(), "a bundle never replaces a folder"
        assert "Traceback" not in capsys.readouterr().err


def test_unreadable_image_is_a_csv_row(cheap_cli, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "in").mkdir()
    square(0).save(tmp_path / "in" / "ok.png")
    square(1).save(tmp_path / "in" / "locked.png")
    read_bytes = Path.read_bytes

    def refuse_locked(self: Path) -> bytes:
        if self.name == "locked.png":
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", refuse_locked)
    out = tmp_path / "out"
    assert cli.main(["explain", str(tmp_path / "in"), "--models", "tiny", "--assume-face", "--no-faithfulness",
                     "--out", str(out)]) == 1
    rows = read_rows(out / "predictions.csv")
    assert "Permission denied" in rows["locked.png"]["error"] and not rows["ok.png"]["error"]


def run_failing(argv: list[str], capsys) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err and len(err) < 600, err
    return err


def test_out_naming_a_file_is_a_clean_error(cheap_cli, tmp_path: Path, capsys) -> None:
    square(0).save(tmp_path / "face.png")
    (tmp_path / "taken").write_text("a file")
    base = ["explain", str(tmp_path / "face.png"), "--models", "tiny", "--assume-face"]
    assert "is a file, not a folder" in run_failing([*base, "--out", str(tmp_path / "taken")], capsys)
    assert "is a file" in run_failing([*base, "--out", str(tmp_path / "taken" / "below")], capsys)
    assert (tmp_path / "taken").read_text() == "a file"


def test_long_strings_are_clean_errors(cheap_cli, tmp_path: Path, capsys) -> None:
    square(0).save(tmp_path / "face.png")
    out = ["--out", str(tmp_path / "out")]
    assert "File name too long" in run_failing(["explain", "x" * 10_000, "--models", "tiny", *out], capsys)
    long_component = str(tmp_path / ("y" * 300) / "face.png")
    assert "File name too long" in run_failing(["explain", long_component, "--models", "tiny", *out], capsys)
    assert "File name too long" in run_failing(
        ["explain", str(tmp_path / "face.png"), "--models", "tiny", "--out", "z" * 10_000], capsys)


def test_long_model_spec_is_a_clean_error(tmp_path: Path, capsys) -> None:
    """The real model loader: whatever it raises for a 10,000-character spec, the CLI prints one line."""
    square(0).save(tmp_path / "face.png")
    for spec in ("m" * 10_000, "owner/" + "n" * 300):
        run_failing(["explain", str(tmp_path / "face.png"), "--models", spec, "--out", str(tmp_path / "out")], capsys)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("arguments, words", [
    (["--target", "99"], "out of range"),
    (["--target", "-1"], "out of range"),
    (["--max-faces", "0"], "max_faces"),
    (["--max-faces", "-1"], "max_faces"),
    (["--methods", "magiccam"], "unknown CAM method"),
])
def test_bad_cli_arguments_end_the_run_once(cheap_cli, tmp_path: Path, capsys, arguments: list[str],
                                            words: str) -> None:
    square(0).save(tmp_path / "face.png")
    err = run_failing(["explain", str(tmp_path / "face.png"), "--models", "tiny", "--assume-face",
                       "--out", str(tmp_path / "out"), *arguments], capsys)
    assert words in err
    assert not (tmp_path / "out").exists()


# Detection --------------------------------------------------------------------------------


def test_contained_and_overlapping_boxes_are_one_face() -> None:
    points = np.zeros((5, 2))
    face = Detection((0.0, 0.0, 100.0, 100.0), points, 0.95)
    inner = Detection((20.0, 20.0, 60.0, 60.0), points, 0.7)       # IoU 0.16, fully inside
    shifted = Detection((5.0, 5.0, 105.0, 105.0), points, 0.9)     # IoU 0.82
    neighbour = Detection((95.0, 0.0, 195.0, 100.0), points, 0.8)  # touches: 5 % overlap
    kept = merge_duplicates([inner, shifted, neighbour, face], iou_threshold=0.4)
    assert kept == [face, neighbour] or kept == [neighbour, face]
    assert {d.score for d in kept} == {0.95, 0.8}


def face_tile() -> np.ndarray:
    photo = np.asarray(Image.open(HOPPER).convert("RGB"))
    detections = RetinaFaceDetector().detect(photo)
    assert len(detections) == 1
    x0, y0, x1, y1 = detections[0].box
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, 1.6 * max(x1 - x0, y1 - y0)  # generous crop
    top, left = max(0, round(cy - side / 2)), max(0, round(cx - side / 2))
    return photo[top:top + round(side), left:left + round(side)]


def tiled(tile: np.ndarray, count: int, size: int, columns: int) -> np.ndarray:
    rows = -(-count // columns)
    small = cv2.resize(tile, (size, size), interpolation=cv2.INTER_AREA)
    canvas = np.full((rows * size, columns * size, 3), 255, np.uint8)
    for index in range(count):
        row, column = divmod(index, columns)
        canvas[row * size:(row + 1) * size, column * size:(column + 1) * size] = small
    return canvas


def test_tiled_faces_are_counted_once_each() -> None:
    """4, 12 and 30 copies of one face at 60 and 120 px per tile, in roughly square grids.
    (Far from square layouts, e.g. 30 in one row, are shrunk by the detector's 640-px long side
    until the faces are below its smallest anchor: those are not counted here.)"""
    tile = face_tile()
    detector = RetinaFaceDetector()
    for count, columns in ((4, 2), (12, 4), (30, 6)):
        for size in (60, 120):
            found = detector.detect(tiled(tile, count, size, columns))
            assert len(found) == count, (count, size, len(found))
