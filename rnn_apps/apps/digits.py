"""digits — one-to-one: a fixed-size input in, one label out (the lecture's "vanilla" network).

Topology: pixels [batch, 64] (8x8 grayscale, 0..16) -> a length-1 sequence [batch, 1, 64] ->
SimpleRNN stack (one step: h = tanh(W_xh x + b), h_0 = 0) -> Dense softmax [batch, 10].

Data: scikit-learn's bundled digits (1,797 images, no download; seeded stratified 80/20 split,
validation carved from train), or TFDS `mnist` online (resized to 8x8 on read).

Exports: SavedModel `serving_default(pixels: float32[batch, 64])` and
`classify_images(images: uint8[batch, height, width, channels])` (gray or RGB, any size, ink high)
-> label, label_id, probability, probabilities; TFLite `digits.tflite`:
`serving_default(pixels: float32[batch, 64])` -> probabilities, label_id; and `digits_image.tflite`,
`serving_default(image: float32[1, 32, 32, 3])` -> probabilities, with the TFLite metadata MediaPipe
Tasks' ImageClassifier reads (it runs the file unchanged). NaN pixels count as 0 and values are
clipped to 0..16 (0..255 for images) in every signature.

    rnn-apps train digits --data digits --out runs/digits
    rnn-apps predict runs/digits my_digit.png rows.csv
    rnn-apps export runs/digits --out exports
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers

from foundation.errors import UserError
from foundation.lazy import tensorflow as tf
from pipelines import batching, images
from rnn_apps import config as config_lib
from rnn_apps.app import Endpoint, ParityCase, TFLiteModel
from rnn_apps.families.classify import (
    ClassifierApp,
    classification_outputs,
    expected_outputs,
    phone_outputs,
    prediction_rows,
)
from rnn_apps.layers import optional_dropout, simple_rnn_stack

PIXELS = images.GRID * images.GRID
STATS_FILE = "pixel_stats.json"
IMAGE_SIDE = 32  # the MediaPipe variant's input: 32x32 RGB, average-pooled to 8x8 inside
IMAGE_FILE, IMAGE_CARD = "digits_image.tflite", "digits_image_card.json"


@dataclass
class PixelStatistics:
    """Per-pixel mean and variance of the training split, for the model's Normalization layer.
    Chosen over 0..1 rescaling, which scored lower (bench/RESULTS.md, "digits")."""

    label_names: list
    mean: list
    variance: list

    @classmethod
    def fit(cls, splits, config) -> PixelStatistics:
        pixels = splits.train["pixels"]
        # Floor of 1 intensity level: pixels that are always blank in training (corners) must not
        # turn a stray stroke there into a huge input.
        return cls(list(splits.label_names), pixels.mean(0).tolist(), np.maximum(pixels.var(0), 1.0).tolist())

    @classmethod
    def load(cls, folder, config) -> PixelStatistics:
        path = Path(folder) / STATS_FILE
        stored = config_lib.load(path)
        if not isinstance(stored, dict) or set(stored) != {"label_names", "mean", "variance"}:
            raise UserError(f"{path} does not hold label_names, mean and variance; the run folder is damaged")
        return cls(**stored)

    def files(self) -> dict:
        return {STATS_FILE: json.dumps(asdict(self)) + "\n"}


class Digits(ClassifierApp):
    name = "digits"
    topology = "one-to-one"
    task = "image classification (8x8 digits)"
    default_data = ("digits",)  # bundled with scikit-learn, so always there; `--data mnist` online
    preprocessor = PixelStatistics
    config = {
        **config_lib.COMMON,
        "epochs": 150,
        "batch_size": 64,
        "units": 512,
        "output_dropout": 0.0,
        "patience": 30,
        "weight_decay": 1e-4,
        # Without it the model scored lower (bench/RESULTS.md, "digits").
        "label_smoothing": 0.1,
    }
    config_checks = {"output_dropout": config_lib.FRACTION}
    presets = {"tiny": {"epochs": 2, "max_examples": 64, "batch_size": 16, "units": 8, "jit_compile": False}}

    def load_data(self, data, data_root, config, options):
        return images.load(data, config["seed"], options.get("tfds_data_dir"))

    def dataset(self, columns, preprocessing, config, shuffle_seed=None):
        ds = tf.data.Dataset.from_tensor_slices((columns["pixels"], columns["label"]))
        return batching.fixed_batches(ds, config["batch_size"], shuffle_seed)

    def build_model(self, config, preprocessing, unroll_length=None):
        if unroll_length:
            config = {**config, "dropout": 0.0, "output_dropout": 0.0}  # inference twin for TFLite
        pixels = keras.Input((PIXELS,), name="pixels")
        x = layers.Normalization(mean=preprocessing.mean, variance=preprocessing.variance)(pixels)
        x = layers.Reshape((1, PIXELS))(x)  # one time step: the one-to-one case of an RNN
        x = simple_rnn_stack(x, config, unroll=True, return_sequences=False)
        x = optional_dropout(x, config["output_dropout"])
        probabilities = layers.Dense(len(preprocessing.label_names), activation="softmax", name="probabilities")(x)
        return keras.Model(pixels, probabilities, name=self.name)

    def _read_inputs(self, inputs) -> tuple:
        names, rows = [], []
        for item in inputs:
            if Path(item).is_dir():
                raise UserError(f"{item}: a folder, not a file; give image files (PNG/JPEG) or CSV files of "
                                "64-pixel rows")
            if Path(item).suffix.lower() == ".csv":
                pixel_rows = images.read_pixel_rows(item)
                names += [f"{item}:{i + 1}" for i in range(len(pixel_rows))]
                rows.append(pixel_rows)
            elif Path(item).suffix.lower() in images.IMAGE_SUFFIXES or Path(item).is_file():
                names.append(item)
                rows.append(images.read_image_file(item)[None])
            else:
                raise UserError(f"{item}: no such file; give image files (PNG/JPEG) or CSV files of 64-pixel rows")
        return names, np.concatenate(rows) if rows else np.zeros((0, PIXELS), np.float32)

    def predict(self, run, inputs):
        names, pixels = self._read_inputs(inputs)
        probabilities = run.model.predict(images.sanitize(pixels).numpy(), verbose=0) if len(names) else []
        return prediction_rows(names, probabilities, run.label_names)

    def serving(self, run):
        model = run.model

        def classify_pixels(pixels):
            return classification_outputs(model(images.sanitize(pixels), training=False), run.label_names)

        def classify_images(image_batch):
            return classify_pixels(images.to_pixels(image_batch))

        return [
            Endpoint("serving_default", classify_pixels, [tf.TensorSpec([None, PIXELS], tf.float32, name="pixels")],
                     track=[model]),
            Endpoint("classify_images", classify_images,
                     [tf.TensorSpec([None, None, None, None], tf.uint8, name="images")], track=[model]),
        ]

    def tflite_models(self, run):
        twin = self.unrolled_twin(run, 1)

        def classify_pixels(pixels):
            return phone_outputs(twin(images.sanitize(pixels), training=False))

        # A variant that takes an image, for clients that feed images (MediaPipe Tasks'
        # ImageClassifier, Android Studio's image binding): the same preprocessing in the graph, one
        # output (class scores, labels.txt in its metadata), described by TFLite metadata's image
        # properties and normalisation (0..255 in, mean 0, std 1).
        def classify_image(image):
            return {"probabilities": twin(images.square_to_pixels(image), training=False)}

        image_spec = tf.TensorSpec([None, IMAGE_SIDE, IMAGE_SIDE, 3], tf.float32, name="image")
        image_card = {
            "app": self.name, "topology": self.topology, "task": self.task, "signature": "serving_default",
            "client": "MediaPipe Tasks ImageClassifier (mediapipe.tasks.vision.ImageClassifier, Android/iOS/web): "
                      "give it the .tflite alone; it resizes any image to the input and reads labels and "
                      "normalisation from the metadata",
            "input": {"name": "image", "dtype": "float32", "shape": [1, IMAGE_SIDE, IMAGE_SIDE, 3],
                      "layout": "RGB 0..255, any ink colour (light scans are inverted inside); "
                                "gray, averaged to 8x8 and scaled to 0..16 inside",
                      "image": {"color": "RGB", "mean": [0.0], "std": [1.0], "range": [0, 255]}},
            "outputs": {"probabilities": f"float32 [1, {len(run.label_names)}], order of labels.txt"},
        }

        card = {
            "app": self.name, "topology": self.topology, "task": self.task, "signature": "serving_default",
            "input": {"name": "pixels", "dtype": "float32", "shape": [1, PIXELS],
                      "layout": "8x8 grayscale, row-major, 0 = background .. 16 = ink; "
                                "area-resize larger images, invert dark-on-light scans"},
            "outputs": {"probabilities": f"float32 [1, {len(run.label_names)}], order of labels.txt",
                        "label_id": "int32 [1], index into labels.txt"},
        }
        return [TFLiteModel(f"{self.name}.tflite",
                            [Endpoint("serving_default", classify_pixels,
                                      [tf.TensorSpec([None, PIXELS], tf.float32, name="pixels")], track=[twin])],
                            assets={"labels.txt": "\n".join(run.label_names) + "\n",
                                    "model_card.json": json.dumps(card, indent=2) + "\n"}),
                TFLiteModel(IMAGE_FILE, [Endpoint("serving_default", classify_image, [image_spec], track=[twin])],
                            assets={"labels.txt": "\n".join(run.label_names) + "\n",
                                    IMAGE_CARD: json.dumps(image_card, indent=2) + "\n"},
                            card_file=IMAGE_CARD, quality=self.image_quality)]

    def image_quality(self, run, test, interpreter) -> float:
        """Accuracy of the image variant on the test pixels rendered as IMAGE_SIDE-pixel RGB images."""
        runner = interpreter.get_signature_runner("serving_default")
        rendered = images.render(test["pixels"], IMAGE_SIDE).astype(np.float32)
        predicted = [int(np.argmax(runner(image=image[None])["probabilities"])) for image in rendered]
        return float(np.mean(np.array(predicted) == np.asarray(test["label"])))

    def exported_inputs(self, inputs, tflite_dir):
        names, pixels = self._read_inputs(inputs)
        return names, {"pixels": pixels}, {"pixels": pixels}

    def parity_cases(self, run, examples):
        pixels = examples["pixels"]
        image_batch = np.round(pixels.reshape(-1, images.GRID, images.GRID, 1) * (255 / images.MAX_VALUE))
        image_batch = image_batch.astype(np.uint8)
        cases = []
        for name, signature, sm_inputs, keras_pixels in (
            ("test pixels", "serving_default", {"pixels": pixels}, pixels),
            ("test images", "classify_images", {"images": image_batch}, images.to_pixels(image_batch).numpy()),
        ):
            expected = expected_outputs(run.model.predict(keras_pixels, verbose=0))
            cases.append(ParityCase(name, expected, (signature, sm_inputs), f"{self.name}.tflite",
                                    ["probabilities", "label_id"], tflite_inputs={"pixels": keras_pixels}))
        # the image variant, on the test pixels rendered as its input size; the SavedModel's
        # classify_images on the same images
        rendered = images.render(pixels, IMAGE_SIDE)
        expected = expected_outputs(run.model.predict(images.to_pixels(rendered).numpy(), verbose=0))
        cases.append(ParityCase(f"test images ({IMAGE_SIDE}x{IMAGE_SIDE} RGB)", expected,
                                ("classify_images", {"images": rendered}), IMAGE_FILE, ["probabilities", "label_id"],
                                tflite_inputs={"image": rendered.astype(np.float32)}, tflite_compare=["probabilities"]))
        return cases


APP = Digits()
