"""Images with human captions (one-to-many), and the image decoding shared by training and serving.

`--data` resolves, in this order:
  1. a folder laid out as `../shared/data/coco_captions_mini`: `captions.tsv` (TAB-separated,
     header `split file_name ... caption`, one row per caption) and the images under
     `images/<split>/<file_name>` (or `images/<file_name>`);
  2. a bare name under the data root (`coco_captions_mini`);
  3. TFDS `coco_captions` (its Karpathy `train` and `test` splits; validation a seeded 10% of train).
The TSV's `split` column names the splits: a value holding "train" trains; "test" tests; "val"
(COCO's val2017) validates, or, without a test split, is divided by image into validation (a
seeded quarter) and test. Splits are by image, never by caption.

Columns, one row per image: `image` (the encoded JPEG/PNG bytes, as on disk), `name` (the file
name, the key of `--set features=PATH`), `references` (its human captions, one per line).

Images are decoded and resized in TF ops (`decode_images`), the same function in tf.data and in
the SavedModel; a phone resizes the same way before `encode_image` (the model card says how).
Captions are lower-cased and stripped of punctuation before tokenising (what COCO's evaluation
does to both sides), so outputs compare with references as they are written.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from foundation.errors import UserError
from foundation.lazy import tensorflow as tf
from pipelines import batching, images, tfds_source, translation
from pipelines.splits import Splits, local_path, not_found, select

CAPTIONS_FILE = "captions.tsv"
TFDS_NAME = "coco_captions"
VALIDATION_FRACTION = 0.25  # of a TSV's val images, when it has no test split
TFDS_LONGEST_SIDE = 256  # TFDS images are shrunk to this as they are read, like the offline copy
LANGUAGE = "en"
FEATURE_LIMIT = 1e4  # a precomputed feature value past this is clipped (pooled CNN features stay far below)
PUNCTUATION = r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']"
PREPROCESSING_RULES = ("decode JPEG/PNG/GIF/BMP as RGB (grayscale repeated, alpha dropped); resize to "
                       "SIZE x SIZE (bilinear with antialiasing, aspect ratio not kept); float32 values 0..255")


def load(spec: str, data_root, seed: int, tfds_data_dir=None) -> Splits:
    path = local_path(spec, data_root)
    if path.is_dir():
        return _folder(path, seed)
    if tfds_source.exists(spec):
        return _tfds(spec, tfds_data_dir)
    raise not_found("caption dataset", spec, f"a folder with {CAPTIONS_FILE} and images/", data_root, "coco_captions")


def _folder(path: Path, seed: int) -> Splits:
    table = path / CAPTIONS_FILE
    if not table.is_file():
        raise UserError(f"{path} has no {CAPTIONS_FILE} (TAB-separated: split, file_name, caption)")
    images: dict = {}  # (split, file name) -> captions, in file order
    with table.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = {"split", "file_name", "caption"} - set(reader.fieldnames or [])
        if missing:
            raise UserError(f"{table}: missing column(s) {', '.join(sorted(missing))}")
        for row in reader:
            caption = " ".join((row["caption"] or "").split())
            if caption:
                images.setdefault((row["split"], row["file_name"]), []).append(caption)
    columns: dict = {"image": [], "name": [], "references": [], "split": []}
    for (split, name), captions in images.items():
        file = next((f for f in (path / "images" / split / name, path / "images" / name) if f.is_file()), None)
        if file is None:
            raise UserError(f"{table} names {name} ({split}) but neither images/{split}/{name} nor images/{name} "
                            "exists")
        columns["image"].append(file.read_bytes())
        columns["name"].append(name)
        columns["references"].append("\n".join(captions))
        columns["split"].append(split.lower())
    columns = {k: _objects(v) for k, v in columns.items()}
    kind = columns.pop("split")
    train = np.array(["train" in s for s in kind])
    test = np.array(["test" in s for s in kind])
    held = ~train & ~test
    if not train.any() or not (held.any() or test.any()):
        raise UserError(f"{table}: the split column needs training images ('train...') and held-out ones "
                        f"('val...' or 'test...'); found {', '.join(sorted(set(kind)))}")
    where = f"{path}/{CAPTIONS_FILE}"
    if test.any():
        validation_index, test_index = np.flatnonzero(held), np.flatnonzero(test)
        origin = {"validation": f"{where} (split val)", "test": f"{where} (split test)"}
        if not held.any():
            raise UserError(f"{table}: no validation images (a split value holding 'val')")
    else:
        order = np.random.default_rng(seed).permutation(np.flatnonzero(held))
        cut = max(1, int(round(VALIDATION_FRACTION * len(order))))
        validation_index, test_index = np.sort(order[:cut]), np.sort(order[cut:])
        origin = {"validation": f"{where} (split val, a seeded {VALIDATION_FRACTION:.0%} of its images)",
                  "test": f"{where} (split val, the other {1 - VALIDATION_FRACTION:.0%})"}
    origin["train"] = f"{where} (split train)"
    return Splits(path.name, select(columns, np.flatnonzero(train)), select(columns, validation_index),
                  select(columns, test_index), [], origin)


def _tfds(spec: str, data_dir) -> Splits:
    def shrink(example):
        """The decoded image back to a JPEG no longer than TFDS_LONGEST_SIDE: the columns hold
        encoded images, as the local folders do, and 118k COCO images fit in memory that way."""
        image = tf.constant(example["image"])
        scale = TFDS_LONGEST_SIDE / max(1, max(image.shape[:2]))
        if scale < 1:
            size = [max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale))]
            image = tf.cast(tf.round(tf.image.resize(image, size, antialias=True)), tf.uint8)
        return {"image": tf.io.encode_jpeg(image, quality=90).numpy(),
                "name": example["image/filename"],
                "references": "\n".join(t.decode("utf-8", "replace") for t in example["captions"]["text"])}

    def convert(columns):
        return {"image": columns["image"], "name": _objects([n.decode("utf-8") for n in columns["name"]]),
                "references": _objects(list(columns["references"]))}

    return tfds_source.load(spec, 0, convert, data_dir, splits=("train", "test"), label_names=[], each=shrink,
                            note=f", images re-encoded at most {TFDS_LONGEST_SIDE} px")


def _objects(values) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    column[:] = list(values)
    return column


def references(column) -> list:
    """The `references` column -> a list of caption lists."""
    return [str(r).split("\n") for r in column]


# --- images --------------------------------------------------------------------------------------

def decode_images(encoded, size: int) -> tuple:
    """Encoded images [batch] (bytes) -> (pixels float32 [batch, size, size, 3] in 0..255, is_image
    bool [batch]).

    Anything that does not decode (not an image, a truncated file, an empty string), or whose header
    says more than images.MAX_IMAGE_PIXELS pixels (read before decoding: an 8200x8200 PNG took 2 GB
    to decode), gives a black image and is_image False instead of an error: one bad request in a
    batch must not fail the others. Decoding runs in a tf.data pipeline whose failed elements are
    dropped (`ignore_errors`), then the survivors are put back in their places."""
    encoded = tf.reshape(tf.convert_to_tensor(encoded, tf.string), [-1])
    rows = tf.shape(encoded)[0]
    limit = images.MAX_IMAGE_PIXELS

    def decode(index, data):
        tf.debugging.assert_less_equal(header_pixels(data), tf.constant(limit, tf.int64),
                                       message="more pixels than MAX_IMAGE_PIXELS")
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        return index, resize(image[None], size)[0]

    decoded = (tf.data.Dataset.from_tensor_slices((tf.range(rows), encoded)).map(decode).ignore_errors()
               .batch(2 ** 31 - 1))
    empty = (tf.zeros([0], tf.int32), tf.zeros([0, size, size, 3], tf.float32))
    index, pixels = decoded.reduce(empty, lambda _, batch: batch)  # one batch, or none if nothing decoded
    placed = tf.scatter_nd(index[:, None], pixels, [rows, size, size, 3])
    is_image = tf.scatter_nd(index[:, None], tf.ones_like(index, tf.bool), [rows])
    return placed, is_image


def header_pixels(data: tf.Tensor) -> tf.Tensor:
    """Width x height (int64) as an encoded image's header states it, read without decoding: JPEG
    (its SOF marker), PNG (IHDR), GIF (the logical screen), BMP (the info header); 0 for other data,
    which decode_image refuses anyway. A header too short to hold the fields fails, as decoding would."""

    def number(start: int, size: int, big_endian: bool) -> tf.Tensor:
        raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, start, size), tf.uint8), tf.int64)
        tf.debugging.assert_equal(tf.size(raw), size, message="image header too short")
        weights = tf.constant([256 ** (size - 1 - i) if big_endian else 256 ** i for i in range(size)], tf.int64)
        return tf.reduce_sum(raw * weights)

    def signed32(value):
        return tf.abs(tf.where(value >= 2 ** 31, value - 2 ** 32, value))  # BMP heights are negative top-down

    magic = tf.strings.substr(data, 0, 4)
    return tf.case([
        (tf.strings.substr(magic, 0, 2) == b"\xff\xd8",
         lambda: tf.reduce_prod(tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64))),
        (magic == b"\x89PNG", lambda: number(16, 4, True) * number(20, 4, True)),
        (tf.strings.substr(magic, 0, 3) == b"GIF", lambda: number(6, 2, False) * number(8, 2, False)),
        (tf.strings.substr(magic, 0, 2) == b"BM",
         lambda: signed32(number(18, 4, False)) * signed32(number(22, 4, False))),
    ], default=lambda: tf.constant(0, tf.int64))


def resize(pixels, size: int) -> tf.Tensor:
    """Pixels [batch, height, width, 1, 3 or 4 channels] (uint8 or float 0..255) -> float32
    [batch, size, size, 3]: gray repeated, alpha dropped, an empty image black."""
    pixels = tf.cast(pixels, tf.float32)
    channels = tf.shape(pixels)[-1]
    rgb = tf.cond(channels >= 3, lambda: pixels[..., :3], lambda: tf.repeat(pixels[..., :1], 3, axis=-1))
    height, width = tf.shape(rgb)[1], tf.shape(rgb)[2]
    return tf.cond((height > 0) & (width > 0),
                   lambda: tf.clip_by_value(tf.image.resize(rgb, [size, size], antialias=True), 0.0, 255.0),
                   lambda: tf.zeros([tf.shape(rgb)[0], size, size, 3]))


def clean_encoder_input(values, on_features: bool) -> tf.Tensor:
    """What the encoder reads from a client's floats, defined for any value: NaN -> 0, pixels
    clipped to 0..255, feature values to ±FEATURE_LIMIT. The SavedModel's features signature and
    the TFLite encoder run it in their graphs."""
    if on_features:
        return images.sanitize(values, -FEATURE_LIMIT, FEATURE_LIMIT)
    return images.sanitize(values, 0.0, 255.0)


def augment(image, seed) -> tf.Tensor:
    """Light training augmentation of one image [size, size, 3]: a random crop of 80-100% of
    each side resized back, a horizontal flip half of the time, brightness and contrast jitter."""
    size = tf.shape(image)[0]
    seeds = tf.random.experimental.stateless_split(seed, 5)
    scale = tf.random.stateless_uniform([2], seeds[0], 0.8, 1.0)
    offset = tf.random.stateless_uniform([2], seeds[1], 0.0, 1.0) * (1.0 - scale)
    box = tf.concat([offset, offset + scale], 0)[None]
    image = tf.image.crop_and_resize(image[None], box, [0], tf.stack([size, size]))[0]
    image = tf.cond(tf.random.stateless_uniform([], seeds[2]) < 0.5, lambda: tf.reverse(image, [1]), lambda: image)
    image = image * tf.random.stateless_uniform([], seeds[3], 0.8, 1.2)
    mean = tf.reduce_mean(image)
    image = (image - mean) * tf.random.stateless_uniform([], seeds[4], 0.8, 1.2) + mean
    return tf.clip_by_value(image, 0.0, 255.0)


# --- captions ------------------------------------------------------------------------------------

def standardize(text):
    """Lower-cased, punctuation removed, whitespace collapsed: in TF ops (the vectorizer's)."""
    text = tf.strings.unicode_transcode(text, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)
    text = tf.strings.regex_replace(tf.strings.lower(text, encoding="utf-8"), PUNCTUATION, " ")
    return tf.strings.strip(tf.strings.regex_replace(text, r"\s+", " "))


def standardize_text(text: str) -> str:
    """`standardize` on one Python string: how references are read for BLEU and CIDEr."""
    return standardize(tf.constant(text)).numpy().decode("utf-8")


# --- precomputed image features (`--set features=PATH`) ------------------------------------------

def read_features(path) -> dict:
    """A features file -> {image name: float32 vector}, all of one length.

    `.npz`: one 1-D array per image, named by the image's file name (`np.savez(path, **{name:
    vector})`), or two arrays `names` [n] and `features` [n, d]. `.npy`: a dict {name: vector}
    saved with `np.save` (a pickle: load only files you trust)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"features file {path} does not exist (config features: a .npz or .npy file)")
    try:
        if path.suffix == ".npy":
            loaded = np.load(path, allow_pickle=True)
            table = loaded.item() if loaded.dtype == object and loaded.shape == () else None
            if not isinstance(table, dict):
                raise UserError(f"{path}: expected a dict {{image name: vector}} saved with np.save")
        else:
            with np.load(path, allow_pickle=False) as stored:
                if {"names", "features"} <= set(stored.files):
                    table = dict(zip(stored["names"].astype(str), stored["features"], strict=True))
                else:
                    table = {name: stored[name] for name in stored.files}
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"features file {path} is unreadable ({e})") from None
    table = {str(k): np.asarray(v, np.float32).reshape(-1) for k, v in table.items()}
    sizes = {len(v) for v in table.values()}
    if len(sizes) != 1 or 0 in sizes:
        raise UserError(f"{path}: expected one non-empty vector length for every image, found "
                        f"{sorted(sizes)[:5] or 'no vectors'}")
    if not all(np.isfinite(v).all() for v in table.values()):
        raise UserError(f"{path}: some feature vectors hold NaN or infinity")
    return table


def features_of(table: dict, names, path) -> np.ndarray:
    """The vectors of `names` [n, d]; a name without one is a one-line error."""
    missing = [str(n) for n in names if str(n) not in table]
    if missing:
        raise UserError(f"{path} has no features for {len(missing)} image(s), e.g. {missing[0]!r}")
    size = len(next(iter(table.values())))
    return np.array([table[str(n)] for n in names], np.float32).reshape(len(names), size)


def training_examples(columns: dict, words, features, size: int, length: int, batch_size: int,
                      augment_images: bool, shuffle_seed=None) -> tf.data.Dataset:
    """Split columns -> batches of ({"image" or "features", "caption_ids" [START, w1, ...]},
    [w1, ..., END]), one example per caption (at most `length` ids with END): images decoded to
    `size` pixels once and cached, augmented per example while training (`augment_images`, with a
    seed); with `features` (vectors [images, d], in the columns' order) those in place of the images."""
    per_image_captions = references(columns["references"])
    flat = [c for refs in per_image_captions for c in refs]
    ids = translation.token_ids(words, tf.constant(flat, tf.string), length - 1)
    per_image = tf.RaggedTensor.from_row_lengths(ids, [len(refs) for refs in per_image_captions])
    if features is None:
        key = "image"
        inputs = tf.data.Dataset.from_tensor_slices(tf.constant(list(columns["image"]), tf.string)).batch(64).map(
            lambda encoded: tf.cast(tf.round(decode_images(encoded, size)[0]), tf.uint8)).unbatch()
    else:
        key = "features"
        inputs = tf.data.Dataset.from_tensor_slices(features)
    ds = tf.data.Dataset.zip(inputs, tf.data.Dataset.from_tensor_slices(per_image)).cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(batching.SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.flat_map(lambda image, caps: tf.data.Dataset.from_tensor_slices(caps).map(lambda c: (image, c)))
    if shuffle_seed is not None:
        ds = ds.shuffle(batching.SHUFFLE_BUFFER, seed=shuffle_seed + 1, reshuffle_each_iteration=True)
    augmenting = shuffle_seed is not None and augment_images and key == "image"
    seeds = tf.data.Dataset.random(seed=shuffle_seed or 0).batch(2)

    def example(pair, seed):
        image, caption = pair
        image = tf.cast(image, tf.float32)
        if augmenting:
            image = augment(image, seed)
        caption = tf.cast(caption, tf.int32)
        return ({key: image, "caption_ids": tf.concat([[translation.START_ID], caption], 0)},
                tf.concat([caption, [translation.END_ID]], 0))

    ds = tf.data.Dataset.zip(ds, seeds).map(example, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.padded_batch(batch_size, drop_remainder=False)
    return ds.prefetch(tf.data.AUTOTUNE)


# --- the preprocessor: what caption learns from the training split, keeps, and ships --------------

VOCABULARY = "vocabulary.txt"


class Preprocessor:
    """caption's preprocessing (keras-hub's sense of the word): the caption vocabulary, learnt from
    the training split, in the file a run keeps and caption.tflite ships; the image decoding (or,
    with `--set features=PATH`, the precomputed vectors by image name) that training batches, the
    SavedModel graph and the phone client share. `from_card` is the phone client's: it reads only
    the shipped vocabulary and the model card."""

    def __init__(self, words, image_size: int, caption_length: int, features_path: str = ""):
        self.words = words  # caption text -> ids; START and END are ids 2 and 3
        self.image_size, self.caption_length = image_size, caption_length
        self.features_path = str(Path(features_path).expanduser().resolve()) if features_path else ""
        # image name -> vector, with `--set features=PATH`
        self.features = read_features(self.features_path) if features_path else None

    @classmethod
    def fit(cls, splits, config: dict) -> Preprocessor:
        texts = [c for refs in references(splits.train["references"]) for c in refs]
        words = translation.adapt(texts, LANGUAGE, "target", config["vocab_size"], standardize)
        preprocessor = cls(words, config["image_size"], config["caption_length"], config["features"])
        for split in ("train", "validation", "test"):
            preprocessor.encoder_inputs(splits[split])  # every image has a vector, before training starts
        return preprocessor

    @classmethod
    def load(cls, folder, config: dict) -> Preprocessor:
        return cls(cls._words(folder), config["image_size"], config["caption_length"], config["features"])

    @classmethod
    def from_card(cls, folder, card: dict) -> Preprocessor:
        preprocessing = card["preprocessing"]
        size = preprocessing["size"][0] if "size" in preprocessing else 0
        return cls(cls._words(folder), size, card["max_output_tokens"], preprocessing.get("file", ""))

    @staticmethod
    def _words(folder):
        return translation.from_vocabulary(Path(folder) / VOCABULARY, LANGUAGE, "target", standardize)

    @property
    def tokens(self) -> list:
        return [str(t) for t in self.words.get_vocabulary()]

    output_words = tokens  # the decoder's words: what detokenising reads
    output_language = LANGUAGE
    lookup_layers = ()  # the SavedModel's graph looks no words up

    @property
    def feature_size(self) -> int:
        return len(next(iter(self.features.values())))

    def files(self) -> dict:
        return {VOCABULARY: "\n".join(self.tokens) + "\n"}

    def card(self, config: dict) -> dict:
        size = self.image_size
        if self.features is not None:
            preprocessing = {"features": f"the image's feature vector, float32 [1, {self.feature_size}], as in "
                                         f"{self.features_path} (NaN reads as 0, values are clipped to "
                                         f"±{FEATURE_LIMIT:g})",
                             "file": self.features_path}
        else:
            preprocessing = {"size": [size, size], "channels": "RGB, in that order",
                             "scaling": "0..255 floats (the model scales inside; NaN reads as 0, "
                                        "values outside 0..255 are clipped)",
                             "layout": "[1, height, width, channels]",
                             "rule": PREPROCESSING_RULES.replace("SIZE", str(size))}
        return {"encoder": config["encoder"], "preprocessing": preprocessing, "vocabulary": VOCABULARY,
                "detokenise": "join the words of the ids before end_id with spaces (captions are lower-case, "
                              "without punctuation)",
                "max_output_tokens": self.caption_length}

    def dataset(self, columns: dict, config: dict, shuffle_seed=None) -> tf.data.Dataset:
        features = None if self.features is None else self.encoder_inputs(columns)
        return training_examples(columns, self.words, features, self.image_size, self.caption_length,
                                 config["batch_size"], config["augment"], shuffle_seed)

    # --- raw inputs: what the SavedModel's first form and the phone client take ------------------
    def encoder_inputs(self, columns: dict):
        """What the model's encoder reads for split columns: the encoded images (decoded in the
        graph), or the precomputed feature vectors [n, d] of their names."""
        if self.features is None:
            return list(columns["image"])
        return features_of(self.features, columns["name"], self.features_path)

    def raw_inputs(self, inputs: list):
        """CLI inputs -> raw inputs: image files (read as they are; one that is not an image is
        refused), or, on features, image names (or paths: their file names) of the features file."""
        if self.features is not None:
            return features_of(self.features, [Path(name).name for name in inputs], self.features_path)
        encoded = images.read_image_bytes(inputs)
        if encoded:
            images.refuse_unreadable(inputs, decode_images(encoded, self.image_size)[1].numpy())
        return encoded

    def served(self, raw) -> dict:
        if self.features is not None:
            return {"features": np.asarray(raw, np.float32)}
        return {"image_bytes": np.array(raw, dtype=object)}

    def further_feeds(self, raw) -> dict:
        """{form: its SavedModel feed} for the same inputs in the further forms: the images as
        uint8 pixels (from_pixels)."""
        if self.features is not None:
            return {}
        return {"pixels": {"pixels": np.round(decode_images(raw, self.image_size)[0].numpy()).astype(np.uint8)}}

    def serving_forms(self, write) -> dict:
        """Encoded images (bytes [batch]: JPEG/PNG/GIF/BMP, decoded in the graph; adds is_image) and
        pixels (uint8 [batch, h, w, 3], any size); or, on features, vectors [batch, d] -> caption,
        token_ids, lengths. At most caption_length tokens each."""
        size, length = self.image_size, self.caption_length

        def caption_encoded(inputs):
            return write(inputs, tf.fill([tf.shape(inputs)[0]], length))

        def caption_bytes(image_bytes):
            pixels, is_image = decode_images(image_bytes, size)
            out = caption_encoded(pixels)
            return {"caption": tf.where(is_image, out["caption"], ""),
                    "token_ids": tf.where(is_image[:, None], out["token_ids"], 0),
                    "lengths": tf.where(is_image, out["lengths"], 0), "is_image": is_image}

        if self.features is not None:
            return {"features": ([tf.TensorSpec([None, self.feature_size], tf.float32, name="features")],
                                 caption_encoded)}
        return {"bytes": ([tf.TensorSpec([None], tf.string, name="image_bytes")], caption_bytes),
                "pixels": ([tf.TensorSpec([None, None, None, 3], tf.uint8, name="pixels")],
                           lambda pixels: caption_encoded(resize(pixels, size)))}

    def phone_feed(self, raw) -> tuple:
        """Encoded images (decoded and resized as the card says) or feature vectors -> encode feeds
        and output limits, as a phone computes them."""
        limits = np.full(len(raw), self.caption_length, np.int32)
        if self.features is not None:
            return [{"features": np.asarray(x, np.float32)[None]} for x in raw], limits
        pixels = decode_images(raw, self.image_size)[0].numpy()
        return [{"image": p[None]} for p in pixels], limits
