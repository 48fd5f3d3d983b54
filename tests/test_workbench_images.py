"""Hostile inputs: every one is either normalised to an RGB image or rejected with an ImageError
that names the problem — never a crash, never an unbounded allocation."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from image_bytes import encoded, png_chunk
from PIL import Image

from workbench import ImageError, load_image


def huge_png(side: int) -> bytes:
    """A valid side×side gray PNG built row by row, so the test never holds the pixels."""
    compressor = zlib.compressobj(1)
    row = b"\x00" + b"\x80" * side
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", body) + png_chunk(b"IEND", b"")


def gradient(width: int = 64, height: int = 48) -> np.ndarray:
    x = np.linspace(0, 255, width, dtype=np.float32)
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.stack([np.broadcast_to(x, (height, width)), np.broadcast_to(y, (height, width)),
                     np.full((height, width), 90.0)], axis=2).astype(np.uint8)


@pytest.mark.parametrize("data, problem", [
    (b"", "empty"),
    (b"this is not an image at all" * 10, "not a recognised image"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "image"),
])
def test_corrupt_bytes_are_rejected_by_name(data: bytes, problem: str) -> None:
    with pytest.raises(ImageError, match=problem):
        load_image(data)


def test_truncated_jpeg_is_rejected() -> None:
    data = encoded(Image.fromarray(gradient(256, 256)), "JPEG")
    with pytest.raises(ImageError, match="corrupt or truncated"):
        load_image(data[: len(data) // 2])


def test_tiny_image_is_rejected_naming_its_size() -> None:
    with pytest.raises(ImageError, match="1×1 pixels"):
        load_image(encoded(Image.new("RGB", (1, 1)), "PNG"))


def test_huge_png_is_refused_from_its_header() -> None:
    with pytest.raises(ImageError, match="20000×20000 pixels"):
        load_image(huge_png(20000))


@pytest.mark.slow
def test_huge_jpeg_is_decoded_reduced_with_bounded_memory(tmp_path: Path) -> None:
    """20000×20000 JPEG: decoded through JPEG draft mode (1/8 scale) then downscaled; the peak
    memory of the decode stays far below the 400 MB (gray) / 1.2 GB (RGB) of a full decode."""
    path = tmp_path / "huge.jpg"
    subprocess.run([sys.executable, "-c", "from PIL import Image; "
                    f"Image.new('L', (20000, 20000), 128).save({str(path)!r}, quality=30)"], check=True)
    probe = ("import json, resource, sys; from workbench.images import load_image; "
             "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; image = load_image(sys.argv[1]); "
             "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss; "
             "print(json.dumps({'size': image.size, 'scale': image.scale, 'notes': image.notes, "
             "'peak_mb': (after - before) / 1024}))")
    report = json.loads(subprocess.run([sys.executable, "-c", probe, str(path)], check=True,
                                       capture_output=True, text=True).stdout)
    assert max(report["size"]) == 2048
    assert report["scale"] == pytest.approx(2048 / 20000, rel=1e-3)
    assert report["peak_mb"] < 150, report


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "I;16", "L", "1"])
def test_every_pixel_mode_becomes_rgb_uint8(mode: str) -> None:
    base = Image.fromarray(gradient())
    image = base.convert("I;16") if mode == "I;16" else base.convert(mode)
    if mode == "I;16":
        image = Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257)
    fmt = "JPEG" if mode == "CMYK" else "PNG"
    loaded = load_image(encoded(image, fmt))
    assert loaded.rgb.dtype == np.uint8 and loaded.rgb.shape == (48, 64, 3)
    if mode == "I;16":
        assert loaded.rgb.max() == 255 and loaded.rgb.min() == 0 and "8 bits" in " ".join(loaded.notes)


def test_transparency_is_flattened_onto_white() -> None:
    image = Image.new("RGBA", (32, 32), (255, 0, 0, 0))
    loaded = load_image(encoded(image, "PNG"))
    assert (loaded.rgb == 255).all()
    assert "transparency" in " ".join(loaded.notes)


def test_animated_gif_uses_its_first_frame() -> None:
    frames = [Image.new("RGB", (32, 32), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    data = encoded(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    loaded = load_image(data)
    assert loaded.rgb[..., 0].mean() > 200 and loaded.rgb[..., 2].mean() < 50
    assert "first frame" in " ".join(loaded.notes)


def test_exif_rotation_is_applied() -> None:
    image = Image.fromarray(gradient(64, 32))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: display rotated 90° clockwise
    loaded = load_image(encoded(image, "JPEG", exif=exif))
    assert loaded.rgb.shape[:2] == (64, 32)
    assert "EXIF" in " ".join(loaded.notes)


def test_arrays_paths_and_pil_images_give_the_same_pixels(tmp_path: Path) -> None:
    rgb = gradient()
    path = tmp_path / "g.png"
    Image.fromarray(rgb).save(path)
    for source in (rgb, rgb.astype(np.float32) / 255, path, str(path), Image.fromarray(rgb), path.read_bytes()):
        assert np.array_equal(load_image(source).rgb, rgb)
    assert load_image(path).name == "g.png"


@pytest.mark.parametrize("source, problem", [
    (np.full((32, 32), np.nan, dtype=np.float32), "NaN"),
    (np.zeros((4, 32, 32)), "not an image"),
    (12345, "unsupported image input"),
    (Path("/nonexistent/face.jpg"), "not found"),
])
def test_bad_python_inputs_are_named(source, problem: str) -> None:
    with pytest.raises(ImageError, match=problem):
        load_image(source)
