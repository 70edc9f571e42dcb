"""caption — one-to-many: an image in, a sentence out (the lecture's image captioning).

Topology: image [batch, image_size, image_size, 3] (RGB, 0..255) -> image encoder -> features
-> Dense tanh "bridge" -> the initial state of a SimpleRNN decoder (`units`). The encoder is a
small CNN trained here (`conv_blocks` blocks of conv-batchnorm-relu-maxpool, global average
pooling), or EfficientNet-Lite0 with its ImageNet weights, frozen (`--preset pretrained`, 224
pixels, 1280 features), or none: `--set features=PATH` reads precomputed vectors by image name.
Training (teacher forcing): caption ids [START, w1, ...] -> Embedding (with `image_inputs` > 0,
the features projected to that many numbers beside every word: a SimpleRNN forgets its initial
state within a few words) -> SimpleRNN states [batch, time, units] -> Dense logits [batch, time,
vocabulary] for [w1, ..., END], loss masked on padding. Every caption of an image is an example
(COCO has five); images are lightly augmented.
Decoding: the trained decoder's `cell` on one step with the same weights (`step`), driven by the
one loop in `rnn_apps/decoding.py` (greedy or beam search), at most `caption_length` tokens.

Data: `../shared/data/coco_captions_mini` (213 COCO 2017 images, 5 captions each: train2017
trains, val2017 is divided by image into validation and test) or any folder of images with a
captions TSV in its format; TFDS `coco_captions` online. See pipelines/captions.py. With 77
training images the model memorises: evaluate reports train and test BLEU/CIDEr side by side,
with a nearest-neighbour baseline.

Exports: SavedModel `serving_default(image_bytes: string[batch])` (JPEG/PNG/GIF/BMP; decoded,
resized and scaled in the graph) -> caption, token_ids (int32 [batch, longest], 0 after the end),
lengths, is_image (False: not a decodable image; its caption is "" and its length 0);
`beam_search` the same with beam width `beam_width`; `from_pixels(pixels: uint8[batch, height,
width, 3])`. TFLite `caption.tflite` with two signatures a phone drives (export/step_loop.py is the
reference loop): `encode_image(image: float32[1, S, S, 3])` -> state (and image_inputs);
`decode_step(token: int32[1], state[, image_inputs])` -> log_probabilities, state; vocabulary.txt
and model_card.json (preprocessing: size, scaling, channel order) beside it. A run on features
exports `serving_default(features)`, `beam_search(features)` and `encode_features` instead.

    rnn-apps train caption --data coco_captions_mini --data-root ../shared/data --out runs/caption
    rnn-apps train caption --data coco_captions_mini --out runs/caption_pretrained --preset pretrained
    rnn-apps evaluate runs/caption [--beam 3]          # BLEU-1..4 and CIDEr-D, train and test
    rnn-apps predict runs/caption photo.jpg [--beam 3] [--json]
    rnn-apps report runs/caption --out report.html     # test images beside their captions
    rnn-apps export runs/caption --out exports
    rnn-apps query exports --name caption photo.jpg
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from foundation.lazy import tensorflow as tf
from pipelines import captions, translation
from rnn_apps import config as config_lib
from rnn_apps import decoding, efficientnet_lite, metrics, report
from rnn_apps.families.encode_decode import EncoderDecoderApp
from rnn_apps.layers import AppendToEveryStep, FastSimpleRNN, FrozenTailEmbedding

SAMPLES = 5


class Caption(EncoderDecoderApp):
    name = "caption"
    topology = "one-to-many"
    task = "image captioning"
    output_name = "caption"
    preprocessor = captions.Preprocessor
    default_data = ("coco_captions_mini", "coco_captions")
    phone_metric = ("bleu_4", True, 1.0)
    config = {
        **config_lib.COMMON,
        # "cnn": a small CNN trained here; "efficientnet_lite0": EfficientNet-Lite0 with ImageNet
        # weights, frozen (rnn_apps/efficientnet_lite.py; image_size 224, preset "pretrained").
        "encoder": "cnn",
        # A .npz/.npy of precomputed feature vectors keyed by image name (pipelines/captions.py):
        # the model then reads them instead of images (no encoder of its own; predict takes names).
        "features": "",
        "image_size": 96,  # pixels a side: what the encoder sees (the TFLite encode_image input)
        "conv_blocks": 4,
        "conv_filters": 32,  # the first block's; doubled each block, at most 256
        "feature_dropout": 0.3,
        # 77 training images: a small decoder with strong dropout memorises less (bench/RESULTS.md).
        "units": 128,
        "embedding_dim": 128,
        # The image also beside every word's embedding (projected to `image_inputs` numbers), not
        # only in the initial state, which a SimpleRNN forgets within a few words. 0 = state only.
        "image_inputs": 64,
        "dropout": 0.5,  # on the word embeddings and the decoder states
        "vocab_size": 4000,
        "caption_length": 20,  # tokens, END included: the longest output
        "augment": True,
        "beam_width": 3,  # the SavedModel's beam_search signature
        "length_penalty": 1.0,
        "clipnorm": 1.0,
        "learning_rate": 2e-3,
        "batch_size": 32,
        "epochs": 60,
        "patience": 8,
        "jit_compile": False,
    }
    config_checks = {
        **EncoderDecoderApp.config_checks,
        "encoder": config_lib.one_of("cnn", "efficientnet_lite0"),
        "image_size": config_lib.at_least(16),
        "conv_blocks": config_lib.Range("an integer from 1 to 6", lambda v: 1 <= v <= 6),
        "conv_filters": config_lib.POSITIVE,
        "feature_dropout": config_lib.Range("a number from 0 to below 1", lambda v: 0 <= v < 1),
        "embedding_dim": config_lib.POSITIVE,
        "image_inputs": config_lib.NON_NEGATIVE,
        "vocab_size": config_lib.at_least(5),  # padding, unknown, START, END, a word
        "caption_length": config_lib.POSITIVE,
        "beam_width": config_lib.POSITIVE,
        "length_penalty": config_lib.NON_NEGATIVE_NUMBER,
        # One SimpleRNN layer, one direction: its state is what the image initialises.
        "depth": config_lib.one_of(1),
        "bidirectional": config_lib.one_of(False),
    }
    config_relations = (
        (lambda c: c["encoder"] != "efficientnet_lite0" or c["image_size"] == efficientnet_lite.SIZE,
         f"image_size: the efficientnet_lite0 encoder takes {efficientnet_lite.SIZE} pixels a side, got "
         "{image_size} (use --preset pretrained)"),
    )
    presets = {
        # label smoothing 0.1: higher validation CIDEr-D at every seed (bench/RESULTS.md, "caption")
        "pretrained": {"encoder": "efficientnet_lite0", "image_size": efficientnet_lite.SIZE, "label_smoothing": 0.1},
        "tiny": {"epochs": 2, "batch_size": 16, "image_size": 32, "conv_blocks": 2, "conv_filters": 4, "units": 16,
                 "embedding_dim": 8, "image_inputs": 4, "vocab_size": 100, "caption_length": 8, "beam_width": 2,
                 "max_examples": 12},
    }

    # --- data ---------------------------------------------------------------------------
    def load_data(self, data, data_root, config, options):
        return captions.load(data, data_root, config["seed"], options.get("tfds_data_dir"))

    # --- model --------------------------------------------------------------------------
    def build_model(self, config, preprocessing, unroll_length=None):
        if preprocessing.features is None:
            source = keras.Input((config["image_size"], config["image_size"], 3), name="image")
            features = image_encoder(config)(source)
        else:
            source = features = keras.Input((preprocessing.feature_size,), name="features")
        features = layers.Dropout(config["feature_dropout"])(features)
        initial_state = layers.Dense(config["units"], activation="tanh", name="bridge")(features)
        caption_ids = keras.Input((None,), dtype="int32", name="caption_ids")
        vocabulary_size = preprocessing.words.vocabulary_size()
        # ids outside the vocabulary (a phone's off-by-one) read as [UNK], as in every app's embedding
        words = FrozenTailEmbedding(vocabulary_size, config["embedding_dim"], unknown_id=translation.UNKNOWN_ID,
                                    name="word_embedding")(caption_ids)
        words = layers.Dropout(config["dropout"])(words)
        if config["image_inputs"]:
            image_inputs = layers.Dense(config["image_inputs"], activation="tanh", name="image_inputs")(features)
            words = AppendToEveryStep(name="append_image")(words, image_inputs)
        states = FastSimpleRNN(config["units"], return_sequences=True, name="decoder_rnn")(
            words, initial_state=initial_state)
        states = layers.Dropout(config["dropout"])(states)
        logits = layers.Dense(vocabulary_size, name="logits")(states)
        return keras.Model({source.name: source, "caption_ids": caption_ids}, logits, name=self.name)

    def stored_sizes(self, model, run):
        vocabulary = run.preprocessing.words.vocabulary_size()
        return [(captions.VOCABULARY, vocabulary, model.get_layer("word_embedding").input_dim)]

    # --- decoding (rnn_apps/families/encode_decode.py drives these) ------------------------------
    def _encoder(self, model) -> keras.Model:
        """image (or features) -> (features, the decoding cache: {"state"} and, with
        image_inputs, {"image_inputs"}), with the trained model's layers (the bridge reads the
        features through a dropout, idle at inference)."""
        bridge = model.get_layer("bridge")
        source = next(t for t in model.inputs if t.name in ("image", "features"))
        cache = {"state": bridge.output}
        if any(layer.name == "image_inputs" for layer in model.layers):
            cache["image_inputs"] = model.get_layer("image_inputs").output
        return keras.Model(source, [bridge.input, cache])

    def encoder(self, model):
        """image [batch, S, S, 3] (0..255) or features -> the decoding cache, the client's floats
        cleaned first (NaN, out of range: captions.clean_encoder_input), in every export alike."""
        keras_encoder = self._encoder(model)
        on_features = keras_encoder.inputs[0].name == "features"
        return lambda inputs: keras_encoder(captions.clean_encoder_input(inputs, on_features), training=False)[1]

    def step(self, model):
        """step(tokens [rows], cache) -> (log-probabilities [rows, vocab], cache): the trained
        decoder's cell and output layer on one step."""
        embedding, cell = model.get_layer("word_embedding"), model.get_layer("decoder_rnn").cell
        logits = model.get_layer("logits")
        # never outputs: padding, START, and "[UNK]" (a caption says no "[UNK]")
        never = decoding.never_written(embedding.input_dim, translation.NEVER_WRITTEN)

        def step(tokens, cache):
            # tf.identity drops the padding mask Keras attaches to the embedding: one step has no time axis.
            inputs = tf.identity(embedding(tokens))
            if "image_inputs" in cache:
                inputs = tf.concat([inputs, cache["image_inputs"]], axis=-1)
            output, new_state = cell(inputs, [cache["state"]])
            return tf.nn.log_softmax(logits(output) + never, axis=-1), {**cache, "state": new_state[0]}

        return step

    def features(self, run, inputs) -> np.ndarray:
        """The features the decoder starts from [n, d] (what nearest neighbours compare): the
        image encoder's output, or the precomputed vectors themselves."""
        if run.preprocessing.features is not None:
            return np.asarray(inputs, np.float32)
        encoder = self._encoder(run.model)
        out = []
        for i in range(0, len(inputs), self.decode_batch):
            images, _ = captions.decode_images(inputs[i: i + self.decode_batch], run.config["image_size"])
            out.append(keras.ops.convert_to_numpy(encoder(images, training=False)[0]))
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    # --- use ----------------------------------------------------------------------------
    def evaluate(self, run, splits, beam=None) -> dict:
        """BLEU-1..4 and CIDEr-D (pycocoevalcap's implementations, every human caption a reference,
        both sides lower-cased without punctuation) on test and train images, and the
        nearest-neighbour baseline on test: each test image gets the consensus caption of the
        training image whose encoder features are closest (cosine)."""
        test, train = splits.test, splits.train
        inputs = {name: run.preprocessing.encoder_inputs(split) for name, split in (("test", test), ("train", train))}
        generated = {name: [c.decode("utf-8") for c in self.generate(run, inputs[name], beam)["caption"]]
                     for name in inputs}
        test_references = captions.references(test["references"])
        neighbours = metrics.nearest(self.features(run, inputs["test"]), self.features(run, inputs["train"]))
        typical = metrics.consensus(captions.references(train["references"]))
        baseline = [typical[i] for i in neighbours]
        return {
            "images": {"test": len(test["name"]), "train": len(train["name"])},
            "decoding": f"beam {beam}" if beam else "greedy",
            "metrics": "pycocoevalcap BLEU-1..4 and CIDEr-D, all human captions as references, tokenised as "
                       "each score's `tokenizer` says (ptb: COCO's own); "
                       "lower-cased, punctuation removed",
            "test": self.text_scores(run, test, generated["test"]),
            "train": self.text_scores(run, train, generated["train"]),
            "nearest_neighbour_test": metrics.caption_scores(baseline, test_references),
            "samples": [{"image": str(test["name"][i]), "caption": generated["test"][i],
                         "references": test_references[i]} for i in range(min(SAMPLES, len(test_references)))],
        }

    def report_sections(self, run, limit: int) -> list:
        """The test images (at most `limit`), each inlined beside its generated and human captions."""
        test = {k: v[:limit] for k, v in run.load_data().test.items()}
        generated = [c.decode("utf-8") for c in self.generate(run, run.preprocessing.encoder_inputs(test))["caption"]]
        items = list(zip(test["name"], test["image"], generated, captions.references(test["references"]), strict=True))
        title = f"Test images: generated caption (greedy), then the human captions ({len(items)} images)"
        return [(title, report.captioned_images(items))]

    # --- the phone ----------------------------------------------------------------------
    def encode_signature(self, run):
        preprocessing, size = run.preprocessing, run.config["image_size"]
        spec = tf.TensorSpec([None, preprocessing.feature_size], tf.float32, name="features") \
            if preprocessing.features is not None else tf.TensorSpec([None, size, size, 3], tf.float32, name="image")
        return f"encode_{spec.name}", [spec], run.model

    def text_scores(self, run, test, texts):
        """BLEU-1..4 and CIDEr-D (pycocoevalcap) against every human caption of the test images."""
        return metrics.caption_scores(texts, captions.references(test["references"]))


def image_encoder(config) -> keras.Model:
    """0..255 RGB -> features: a small CNN trained here ([batch, filters of the last block]), or
    EfficientNet-Lite0 with its ImageNet weights, frozen ([batch, 1280])."""
    if config["encoder"] == "efficientnet_lite0":
        return efficientnet_lite.pretrained(name="image_encoder")
    blocks = [layers.Rescaling(1 / 127.5, offset=-1.0)]
    for i in range(config["conv_blocks"]):
        filters = min(256, config["conv_filters"] * 2 ** i)
        blocks += [layers.Conv2D(filters, 3, padding="same", use_bias=False), layers.BatchNormalization(),
                   layers.ReLU(), layers.MaxPooling2D(2)]
    return keras.Sequential([*blocks, layers.GlobalAveragePooling2D()], name="image_encoder")


APP = Caption()
