"""Sources for small fixed-size images (one-to-one): scikit-learn's bundled digits (offline, no
download) and TFDS `mnist` (online), both as 8x8 grayscale pixels in digits' scale 0..16 (ink high).

MNIST's 28x28 images are area-resized to 8x8 when read, so one model and one code path serve both.

Also the image files a user gives: one digit's photo or scan as 64 pixels (`read_image_file`), any
image's bytes for a model that decodes them in its graph (`read_image_bytes`), each refused in one
line when missing, unreadable or larger than MAX_IMAGE_PIXELS.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from foundation.errors import UserError
from foundation.lazy import tensorflow as tf
from pipelines import tfds_source
from pipelines.splits import Splits

GRID = 8
MAX_VALUE = 16.0  # sklearn digits' pixel scale
TEST_FRACTION, VALIDATION_FRACTION = 0.2, 0.1
LOCAL_NAMES = ("digits", "sklearn_digits")


def to_pixels(images: tf.Tensor) -> tf.Tensor:
    """Images [batch, height, width, channels] (uint8 0..255 or float 0..1) -> [batch, 64] in 0..16.

    RGB(A) is converted to gray; an image whose mean is light (dark ink on paper) is inverted so
    that ink is high, as in the training data; any size is area-resized to 8x8; an empty image gives
    zeros. The one preprocessing of an image: `rnn-apps predict` (read_image_file) and the SavedModel's
    classify_images both run it, so a scan gets the same answer from both.
    """
    images = tf.convert_to_tensor(images)
    scale = 1.0 if images.dtype.is_floating else 255.0
    images = tf.cast(images, tf.float32) / scale
    channels = tf.shape(images)[-1]
    gray = tf.cond(channels >= 3, lambda: tf.image.rgb_to_grayscale(images[..., :3]), lambda: images[..., :1])
    light = tf.reduce_mean(gray, axis=[1, 2, 3], keepdims=True) > 0.5  # an empty image's NaN mean: not light
    gray = tf.where(light, 1.0 - gray, gray)
    height, width = tf.shape(gray)[1], tf.shape(gray)[2]
    resized = tf.cond(
        tf.logical_and(height > 0, width > 0),
        lambda: tf.image.resize(gray, [GRID, GRID], method="area"),
        lambda: tf.zeros([tf.shape(gray)[0], GRID, GRID, 1]),
    )
    return tf.reshape(resized, [-1, GRID * GRID]) * MAX_VALUE


def square_to_pixels(images: tf.Tensor) -> tf.Tensor:
    """float RGB images [batch, S, S, 3] (0..255, S a multiple of GRID) -> [batch, 64] in 0..16:
    `to_pixels` for one fixed square size, in ops TFLite has builtin (the area resize is an
    average pool), for a phone graph that takes an image (digits' MediaPipe variant)."""
    side = images.shape[1]
    gray = tf.reduce_sum(sanitize(images, 0.0, 255.0) * tf.constant([0.2989, 0.5870, 0.1140]), axis=-1,
                         keepdims=True) / 255.0  # tf.image.rgb_to_grayscale's weights
    light = tf.reduce_mean(gray, axis=[1, 2, 3], keepdims=True) > 0.5
    gray = tf.where(light, 1.0 - gray, gray)
    return tf.reshape(tf.nn.avg_pool2d(gray, side // GRID, side // GRID, "VALID"), [-1, GRID * GRID]) * MAX_VALUE


def render(pixels: np.ndarray, side: int) -> np.ndarray:
    """8x8 pixels [n, 64] (0..16) -> uint8 RGB images [n, side, side, 3]: each pixel a square of
    side / 8, light ink on dark as in the data. What a test photographs for a phone client."""
    squares = np.kron(np.asarray(pixels, np.float32).reshape(-1, GRID, GRID), np.ones((side // GRID, side // GRID)))
    return np.repeat(np.round(squares * (255 / MAX_VALUE)).astype(np.uint8)[..., None], 3, axis=-1)


def sanitize(values: tf.Tensor, low: float = 0.0, high: float = MAX_VALUE) -> tf.Tensor:
    """Defined output for odd but well-typed float input: NaN -> 0, values (±inf too) clipped to
    low..high (digits' 0..16 by default). Builtin TFLite ops only (NOT_EQUAL, SELECT, MINIMUM,
    MAXIMUM), so a phone graph and the SavedModel clean their input the same way."""
    values = tf.where(tf.math.is_nan(values), tf.zeros_like(values), values)
    return tf.clip_by_value(values, low, high)


def load(spec: str, seed: int, tfds_data_dir: str | None = None) -> Splits:
    if spec in LOCAL_NAMES:
        return _sklearn_digits(seed)
    if tfds_source.exists(spec):
        return _tfds(spec, seed, tfds_data_dir)
    raise UserError(f"no image dataset {spec!r}: use 'digits' (bundled with scikit-learn) or a TFDS name like 'mnist'")


def _stratified(columns: dict, fraction: float, seed: int) -> tuple:
    from sklearn.model_selection import train_test_split

    index = np.arange(len(columns["label"]))
    keep, held = train_test_split(index, test_size=fraction, random_state=seed, stratify=columns["label"])
    return ({k: v[np.sort(keep)] for k, v in columns.items()}, {k: v[np.sort(held)] for k, v in columns.items()})


def _sklearn_digits(seed: int) -> Splits:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    everything = {"pixels": bunch.data.astype(np.float32), "label": bunch.target.astype(np.int64)}
    train, test = _stratified(everything, TEST_FRACTION, seed)
    train, validation = _stratified(train, VALIDATION_FRACTION, seed + 1)
    where = f"scikit-learn load_digits (1,797 8x8 images), stratified split seed {seed}"
    origin = {"train": f"{where}: 72%", "validation": f"{where}: 8%", "test": f"{where}: 20%"}
    return Splits("digits", train, validation, test, [str(d) for d in range(10)], origin)


def _tfds(name: str, seed: int, data_dir: str | None) -> Splits:
    def convert(cols):
        images = cols["image"]
        pixels = [to_pixels(images[i : i + 4096]).numpy() for i in range(0, len(images), 4096)]
        return {"pixels": np.concatenate(pixels).astype(np.float32), "label": cols["label"].astype(np.int64)}

    return tfds_source.load(name, seed, convert, data_dir, note=", resized to 8x8")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
MAX_IMAGE_PIXELS = 64_000_000  # larger files are refused rather than decoded


def read_image_file(path) -> np.ndarray:
    """A PNG/JPEG/... photo or scan of one digit -> 64 pixels in 0..16, ink high.

    8-bit, 16-bit and float grayscale keep their full range; transparency is composited on white;
    then `to_pixels` (a light background inverted, area-resized). Images of more than
    MAX_IMAGE_PIXELS pixels are refused before they are decoded.
    """
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # PIL only warns between its limit and twice it; the size check below refuses those.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(image.size)
            if image.width * image.height == 0:
                raise UserError(f"{path}: the image is empty")
            image.load()
            gray = _gray(image)
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not an image file") from None
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnidentifiedImageError:
        raise UserError(f"{path}: not a readable image (expected PNG, JPEG, BMP, GIF or WebP)") from None
    except Image.DecompressionBombError:
        raise UserError(f"{path}: image larger than {MAX_IMAGE_PIXELS:,} pixels; crop or shrink it") from None
    except OSError as e:
        raise UserError(f"{path}: damaged or unreadable image ({e})") from None
    return to_pixels(gray[None, :, :, None]).numpy()[0]


def refuse_huge(file, name) -> None:
    """A one-line error for an image whose header says more than MAX_IMAGE_PIXELS pixels, before
    anything decodes it (`file`: a path or a binary file object). What PIL cannot identify is left to
    the decoder that follows, which says so itself."""
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                pixels = image.width * image.height
    except Image.DecompressionBombError:
        pixels = MAX_IMAGE_PIXELS + 1
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return
    if pixels > MAX_IMAGE_PIXELS:
        raise UserError(f"{name}: image larger than {MAX_IMAGE_PIXELS:,} pixels; crop or shrink it")


def read_image_bytes(paths: list) -> list:
    """CLI inputs -> their bytes; a missing or unreadable file, or one larger than
    MAX_IMAGE_PIXELS, is a one-line error."""
    encoded = []
    for path in paths:
        try:
            encoded.append(Path(path).read_bytes())
        except OSError as e:
            raise UserError(f"{path}: cannot read it ({e.strerror or e})") from None
        refuse_huge(io.BytesIO(encoded[-1]), path)
    return encoded


def refuse_unreadable(paths: list, is_image):
    """A one-line error for the first input that is not a decodable image."""
    for path, ok in zip(paths, is_image, strict=True):
        if not ok:
            raise UserError(f"{path}: not a readable image (JPEG, PNG, GIF or BMP, whole)")


def mime_type(data: bytes) -> str:
    return "image/png" if data[:4] == b"\x89PNG" else "image/gif" if data[:3] == b"GIF" else \
        "image/bmp" if data[:2] == b"BM" else "image/jpeg"


def _gray(image) -> np.ndarray:
    """A PIL image of any mode -> float32 gray levels in 0..1 (0 = black)."""
    if image.mode.startswith("I;16") or image.mode == "I":
        # 16-bit grayscale (PNG, TIFF); convert("L") would saturate it to white.
        return np.clip(np.asarray(image, dtype=np.float32) / 65535.0, 0.0, 1.0)
    if image.mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float32))
        return np.clip(values / (255.0 if values.max() > 1.0 else 1.0), 0.0, 1.0)
    if image.mode in ("RGBA", "LA", "P", "PA", "La", "RGBa"):
        from PIL import Image

        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def read_pixel_rows(path) -> np.ndarray:
    """A CSV file of pixel rows: 64 numbers each (8x8, 0..16); an optional header row is skipped."""
    import csv

    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for number, row in enumerate(csv.reader(f), start=1):
                if not row or not "".join(row).strip():
                    continue
                try:
                    values = [float(v) for v in row]
                except ValueError:
                    if number == 1:
                        continue  # header
                    raise UserError(f"{path} row {number}: not all values are numbers") from None
                if len(values) != GRID * GRID:
                    raise UserError(f"{path} row {number}: {len(values)} values; expected {GRID * GRID} "
                                    f"(8x8 pixels, 0..16)")
                rows.append(values)
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a CSV file") from None
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text CSV file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror or e})") from None
    if not rows:
        raise UserError(f"{path}: no pixel rows")
    return np.asarray(rows, dtype=np.float32)
