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
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

MIN_SIDE = 16
MAX_SIDE = 2048
MAX_DECODED_PIXELS = 64_000_000
MAX_JPEG_PIXELS = 1_000_000_000
EXIF_ORIENTATION = 0x0112
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

    `scale` is working size / original size (≤ 1), so boxes can be mapped back.
    """
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, max_side)
    if isinstance(source, Image.Image):
        digest = hashlib.sha256(source.tobytes()).hexdigest()
        return _normalise(source, digest, None, max_side)
    if isinstance(source, (bytes, bytearray)):
        return _from_bytes(bytes(source), None, max_side)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"image file not found: {path}")
        return _from_bytes(path.read_bytes(), path.name, max_side)
    raise ImageError(f"unsupported image input of type {type(source).__name__}; "
                     "give a path, bytes, a PIL image or a numpy array")


def _from_bytes(data: bytes, name: str | None, max_side: int) -> LoadedImage:
    label = f"'{name}'" if name else "the image"
    if not data:
        raise ImageError(f"{label} is empty (0 bytes)")
    digest = hashlib.sha256(data).hexdigest()
    image = _open_header(data, label)
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
    try:
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(f"{label} is corrupt or truncated ({error})") from error
    loaded = _normalise(image, digest, name, max_side, original_size=(width, height))
    return loaded


def _open_header(data: bytes, label: str) -> Image.Image:
    """Read only the header. PIL's own decompression-bomb limit is lifted here because our
    limits above replace it (and JPEGs are decoded reduced); the lock keeps the change local."""
    with _PIL_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(io.BytesIO(data))
        except UnidentifiedImageError as error:
            raise ImageError(f"{label} is not a recognised image format (corrupt or not an image)") from error
        except (OSError, SyntaxError, ValueError) as error:
            raise ImageError(f"{label} could not be read ({error})") from error
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _normalise(image: Image.Image, digest: str, name: str | None, max_side: int,
               original_size: tuple[int, int] | None = None) -> LoadedImage:
    notes: list[str] = []
    n_frames = getattr(image, "n_frames", 1)
    if n_frames > 1:
        image.seek(0)
        notes.append(f"animated image with {n_frames} frames: the first frame is used")
    original_size = original_size or image.size
    if image.getexif().get(EXIF_ORIENTATION, 1) not in (0, 1):
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


def _to_rgb(image: Image.Image, notes: list[str]) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        values = (values - low) / (high - low) * 255 if high > low else np.zeros_like(values)
        notes.append(f"{mode} image rescaled to 8 bits")
        return np.repeat(values.astype(np.uint8)[..., None], 3, axis=2)
    if mode == "P":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
        notes.append("transparency flattened onto white")
    elif mode == "CMYK":
        notes.append("CMYK converted to RGB")
    return np.asarray(image.convert("RGB"))


def _from_array(array: np.ndarray, max_side: int) -> LoadedImage:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"array of shape {array.shape} is not an image (expected H×W, H×W×3 or H×W×4)")
    if array.dtype == np.uint8:
        data = array
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
