"""Turn whatever a user hands over (path, bytes, PIL image, array) into one bounded RGB image.

Hostile inputs are the norm for an upload box: corrupt bytes, 1×1 pixels, 20000×20000 photos,
16-bit PNGs, CMYK JPEGs, animated GIFs, phone photos stored sideways with an EXIF rotation.
Each is either normalised here or rejected with an `ImageError` that names the problem, and
memory stays bounded: pixel counts are checked from the header before decoding, and JPEGs are
decoded at a reduced DCT scale (`draft`) when they are larger than needed.
"""

from __future__ import annotations

import hashlib
import io
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, TiffImagePlugin, UnidentifiedImageError

from .errors import ImageError, WorkbenchError

MIN_SIDE = 16
MAX_SIDE = 2048
MAX_DECODED_PIXELS = 64_000_000
MAX_JPEG_PIXELS = 1_000_000_000
MAX_FILE_BYTES = 1 << 30
EXIF_ORIENTATION = 0x0112
TIFF_PHOTOMETRIC = 262
TIFF_YCBCR = 6
# Formats Pillow identifies but must not decode here: EPS/PS are rendered by running Ghostscript.
REFUSED_FORMATS = {"EPS": "PostScript is decoded by running Ghostscript"}
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_PIL_LIMIT_LOCK = threading.Lock()

ImageInput = str | Path | bytes | bytearray | Image.Image | np.ndarray


@dataclass
class LoadedImage:
    """An RGB uint8 image ready for detection, plus what is needed to reproduce it."""

    rgb: np.ndarray
    sha256: str
    original_size: tuple[int, int]
    scale: float
    name: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def load_image(source: ImageInput, max_side: int = MAX_SIDE) -> LoadedImage:
    """Decode `source` into an RGB uint8 array whose longest side is at most `max_side`.

    `scale` is working size / original size (≤ 1), so boxes can be mapped back. Every failure is
    an `ImageError`: Pillow's plugins raise many exception types on malformed data (OSError,
    SyntaxError, EOFError, struct.error, IndexError…), so anything else escaping the decoder is
    named and converted here rather than crashing the caller.
    """
    if isinstance(source, LoadedImage):
        return source
    try:
        return _dispatch(source, max_side)
    except WorkbenchError:
        raise
    except MemoryError as error:
        raise ImageError("the image is too large to decode in the memory available") from error
    except Exception as error:  # hostile input: see the docstring
        raise ImageError(f"the image could not be decoded ({type(error).__name__}: {error})") from error


def _dispatch(source: ImageInput, max_side: int) -> LoadedImage:
    if isinstance(source, np.ndarray):
        return _from_array(source, max_side)
    if isinstance(source, Image.Image):
        return _from_pil(source, max_side)
    if isinstance(source, (bytes, bytearray)):
        return _from_bytes(bytes(source), None, max_side)
    if isinstance(source, (str, Path)):
        return _from_path(Path(source), max_side)
    raise ImageError(f"unsupported image input of type {type(source).__name__}; "
                     "give a path, bytes, a PIL image or a numpy array")


def short_path(path: str | Path, limit: int = 120) -> str:
    """A path fit for an error line: a 10,000-character path is cut, saying how long it was."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _from_path(path: Path, max_side: int) -> LoadedImage:
    """Read a file, naming each way it can fail: missing, a broken link, not a regular file,
    too big to read whole, or an OS refusal (permissions, a name too long)."""
    shown = short_path(path)
    try:
        if not path.exists():
            if path.is_symlink():
                raise ImageError(f"image file {shown} is a broken symbolic link (its target does not exist)")
            raise ImageError(f"image file not found: {shown}")
        if not path.is_file():
            raise ImageError(f"{shown} is not a regular file (a folder or a device)")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageError(f"{shown} is {size / 2**20:.0f} MiB; image files above "
                             f"{MAX_FILE_BYTES // 2**20} MiB are refused")
        data = path.read_bytes()
    except OSError as error:
        raise ImageError(f"image file {shown} could not be read ({error.strerror or error})") from error
    return _from_bytes(data, path.name, max_side)


def _from_pil(image: Image.Image, max_side: int) -> LoadedImage:
    """A caller's PIL image may still be lazily opened (header read, pixels not decoded), and then
    truncated or huge; or it may be closed. Decode it under the same bounds as a file."""
    label = "the PIL image"
    if _is_closed(image):
        raise ImageError(f"{label} is closed (Image.close() was called); pass an open image, its file or its bytes")
    if isinstance(image, ImageFile.ImageFile) and image.tile:
        _check_pixels(image, label, max_side)
        _decode(image, label)
    try:
        digest = hashlib.sha256(image.tobytes()).hexdigest()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{label} cannot be read ({error}); pass an open image, its file or its bytes") from error
    return _normalise(image, digest, None, max_side)


def _is_closed(image: Image.Image) -> bool:
    """A lazily opened image whose file handle is gone cannot be decoded; a decoded one that was
    closed has a pixel store that raises on access (Pillow's own marker)."""
    if isinstance(image, ImageFile.ImageFile) and image.tile:
        return getattr(image, "fp", None) is None
    try:
        image.im  # noqa: B018 (the access is the test)
    except ValueError:
        return True
    return False


def _from_bytes(data: bytes, name: str | None, max_side: int) -> LoadedImage:
    label = f"'{short_path(name)}'" if name else "the image"
    if not data:
        raise ImageError(f"{label} is empty (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    image = _open_header(data, label)
    if image.format in REFUSED_FORMATS:
        raise ImageError(f"{label} is {image.format}, which is refused: {REFUSED_FORMATS[image.format]}")
    if _is_ycbcr_tiff(image):
        image = _open_header(data, label, libtiff=True)
    width, height = image.size
    _check_pixels(image, label, max_side)
    _decode(image, label)
    return _normalise(image, digest, name, max_side, original_size=(width, height))


def _check_pixels(image: Image.Image, label: str, max_side: int) -> None:
    """Bound memory from the header alone: JPEGs are set to decode reduced (DCT draft), other
    formats above `MAX_DECODED_PIXELS` are refused before a byte of pixels is decoded."""
    width, height = image.size
    pixels = width * height
    if image.format == "JPEG":
        if pixels > MAX_JPEG_PIXELS:
            raise ImageError(f"{label} is {width}×{height} pixels, larger than the "
                             f"{MAX_JPEG_PIXELS // 1_000_000} megapixels accepted")
        # Decode at 1/2, 1/4 or 1/8 scale straight from the DCT: memory follows the request.
        image.draft("RGB", (max_side, max_side))
    elif pixels > MAX_DECODED_PIXELS:
        raise ImageError(f"{label} is {width}×{height} pixels ({pixels / 1e6:.0f} MP); {image.format or 'this'} "
                         f"images above {MAX_DECODED_PIXELS // 1_000_000} MP are refused "
                         "(save it as JPEG or downscale it)")


def _decode(image: Image.Image, label: str) -> None:
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageError(f"{label} is corrupt or truncated ({error})") from error


def _is_ycbcr_tiff(image: Image.Image) -> bool:
    """Pillow's own TIFF reader unpacks uncompressed YCbCr strips as 4-byte RGBX and then reports
    a valid file as truncated; libtiff converts YCbCr (any subsampling) correctly."""
    return image.format == "TIFF" and getattr(image, "tag_v2", {}).get(TIFF_PHOTOMETRIC) == TIFF_YCBCR


def _open_header(data: bytes, label: str, libtiff: bool = False) -> Image.Image:
    """Read only the header. PIL's own decompression-bomb limit is lifted here because our
    limits above replace it (and JPEGs are decoded reduced); the lock keeps the change local,
    as it does for `libtiff` (Pillow reads that switch when the file is opened)."""
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, saved_libtiff = Image.MAX_IMAGE_PIXELS, TiffImagePlugin.READ_LIBTIFF
        Image.MAX_IMAGE_PIXELS = None
        TiffImagePlugin.READ_LIBTIFF = libtiff or saved_libtiff
        try:
            return Image.open(io.BytesIO(data))
        except UnidentifiedImageError as error:
            raise ImageError(f"{label} is not a recognised image format (corrupt or not an image)") from error
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            raise ImageError(f"{label} could not be read ({error})") from error
        finally:
            Image.MAX_IMAGE_PIXELS = saved
            TiffImagePlugin.READ_LIBTIFF = saved_libtiff


def _normalise(image: Image.Image, digest: str, name: str | None, max_side: int,
               original_size: tuple[int, int] | None = None) -> LoadedImage:
    notes: list[str] = []
    n_frames = getattr(image, "n_frames", 1)
    if n_frames > 1:
        image.seek(0)
        notes.append(f"animated image with {n_frames} frames: the first frame is used")
    original_size = original_size or image.size
    if _orientation(image, notes) != 1:
        transposed = ImageOps.exif_transpose(image)
        notes.append("rotated according to its EXIF orientation")
        if transposed.size != image.size:
            original_size = original_size[::-1]
        image = transposed
    if min(image.size) < MIN_SIDE:
        raise ImageError(f"image is {image.size[0]}×{image.size[1]} pixels; at least {MIN_SIDE}×{MIN_SIDE} "
                         "is needed to see a face")
    rgb = _to_rgb(image, notes)
    scale = 1.0
    height, width = rgb.shape[:2]
    if max(width, height) > max_side:
        scale = max_side / max(width, height)
        resized = Image.fromarray(rgb).resize((round(width * scale), round(height * scale)), Image.Resampling.LANCZOS)
        rgb = np.asarray(resized)
        notes.append(f"downscaled from {width}×{height} to {resized.size[0]}×{resized.size[1]}")
    # The reported scale is against the file's own size (a JPEG draft already reduced it).
    scale = rgb.shape[1] / original_size[0]
    return LoadedImage(np.ascontiguousarray(rgb), digest, original_size, scale, name, notes)


def _orientation(image: Image.Image, notes: list[str]) -> int:
    """The EXIF orientation to apply: 2–8 are the seven stored flips/rotations; 0, 1, a missing
    tag and out-of-range values (9, 255, 65535 from broken writers) all mean "as stored"."""
    try:
        value = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # EXIF is optional metadata: unreadable means "as stored"
        notes.append("ignored unreadable EXIF data")
        return 1
    if isinstance(value, int) and 2 <= value <= 8:
        return value
    if value not in (0, 1, None):
        notes.append(f"ignored invalid EXIF orientation {value!r}")
    return 1


def _to_rgb(image: Image.Image, notes: list[str]) -> np.ndarray:
    """Any Pillow mode → RGB uint8: high bit depths rescaled, transparency (straight or
    premultiplied) flattened onto white, anything Pillow cannot convert refused by mode name."""
    mode = image.mode
    if mode in HIGH_BIT_MODES:
        return _rescaled_gray(image, notes)
    if mode in ("La", "RGBa"):
        return _flatten_premultiplied(image, notes)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and image.has_transparency_data):
        return _flatten_straight(image, notes)
    try:
        rgb = np.asarray(image.convert("RGB"))
    except ValueError as error:
        raise ImageError(f"images in PIL mode {mode!r} are not supported ({error})") from error
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    return rgb


def _rescaled_gray(image: Image.Image, notes: list[str]) -> np.ndarray:
    values = np.asarray(image, dtype=np.float32)
    if not np.isfinite(values).all():
        raise ImageError(f"{image.mode} image contains NaN or infinite values")
    low, high = float(values.min()), float(values.max())
    values = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
    notes.append(f"{image.mode} image rescaled to 8 bits")
    return np.repeat(values.round().astype(np.uint8)[..., None], 3, axis=2)


def _flatten_straight(image: Image.Image, notes: list[str]) -> np.ndarray:
    rgba = image.convert("RGBA")
    if rgba.getextrema()[3][0] < 255:
        notes.append("transparency flattened onto white")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(background, rgba).convert("RGB"))


def _flatten_premultiplied(image: Image.Image, notes: list[str]) -> np.ndarray:
    """'La'/'RGBa' store colour × alpha; Pillow cannot convert 'La' at all. Over white, a
    premultiplied pixel is colour + (255 − alpha)."""
    values = np.asarray(image).astype(np.int32)
    colour, alpha = values[..., :-1], values[..., -1:]
    if alpha.min() < 255:
        notes.append("transparency flattened onto white")
    flat = np.clip(colour + (255 - alpha), 0, 255).astype(np.uint8)
    return flat if flat.shape[2] == 3 else np.repeat(flat, 3, axis=2)


def _from_array(array: np.ndarray, max_side: int) -> LoadedImage:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"array of shape {array.shape} is not an image (expected H×W, H×W×3 or H×W×4)")
    if array.size == 0:
        raise ImageError(f"image array of shape {array.shape} is empty (no pixels)")
    if array.dtype == np.uint8:
        data = array
    elif array.dtype == np.bool_:
        data = array.astype(np.uint8) * 255
    elif np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ImageError("image array contains NaN or infinite values")
        high = 1.0 if array.max() <= 1.0 else 255.0
        data = np.clip(array / high * 255.0, 0, 255).round().astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        high = 255 if array.max() <= 255 else 65535
        data = np.clip(array.astype(np.float64) / high * 255.0, 0, 255).round().astype(np.uint8)
    else:
        raise ImageError(f"image array has unsupported dtype {array.dtype}")
    digest = hashlib.sha256(np.ascontiguousarray(data).tobytes()).hexdigest()
    return _normalise(Image.fromarray(np.ascontiguousarray(data)), digest, None, max_side)
