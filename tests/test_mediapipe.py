"""The exports in MediaPipe Tasks, run as a mobile engineer runs them: the .tflite alone, with the
metadata inside it (issue 29)."""

import json

import numpy as np
import pytest

from export import metadata, tflite
from pipelines import images
from rnn_apps.apps import digits
from rnn_apps.families.classify import MEDIAPIPE_VOCABULARY


def test_digits_image_variant_runs_in_mediapipes_image_classifier(tiny_export, tiny_run):
    vision = pytest.importorskip("mediapipe.tasks.python.vision")
    import mediapipe as mp
    from mediapipe.tasks.python.core import base_options

    root, entry = tiny_export("digits")
    artefact = next(a for a in entry["artefacts"] if a["kind"] == "tflite" and a["card"] == digits.IMAGE_CARD)
    path = root / artefact["path"]
    assert path.name == digits.IMAGE_FILE and artefact["signatures"]["serving_default"]["inputs"]["image"]["shape"] \
        == [1, digits.IMAGE_SIDE, digits.IMAGE_SIDE, 3]
    # what MediaPipe reads: an RGB image input normalised (x - 0) / 1, class scores labelled by labels.txt
    meta, packed = metadata.read(path)
    image, scores = meta.subgraphMetadata[0].inputTensorMetadata[0], meta.subgraphMetadata[0].outputTensorMetadata[0]
    assert image.processUnits[0].options.mean == [0.0] and image.processUnits[0].options.std == [1.0]
    assert [f.name.decode() for f in scores.associatedFiles] == ["labels.txt"]
    label_names = packed["labels.txt"].split("\n")[:-1]
    card = json.loads(path.with_name(digits.IMAGE_CARD).read_text())
    assert card["default_file"] == digits.IMAGE_FILE and card["quantization"]["modes"][0]["accuracy"] >= 0
    # the test images, through MediaPipe and through the project's own TFLite run: same scores
    run = tiny_run("digits")
    test = run.load_data().test
    rendered = images.render(test["pixels"][:32], digits.IMAGE_SIDE)
    runner = tflite.interpreter(path).get_signature_runner("serving_default")
    options = vision.ImageClassifierOptions(base_options=base_options.BaseOptions(model_asset_path=str(path)),
                                            max_results=-1)
    with vision.ImageClassifier.create_from_options(options) as classifier:
        for picture in rendered:
            result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(picture)))
            categories = result.classifications[0].categories
            by_index = {c.index: c.score for c in categories}
            ours = runner(image=picture[None].astype(np.float32))["probabilities"][0]
            np.testing.assert_allclose([by_index[i] for i in range(len(ours))], ours, atol=1e-4)
            assert categories[0].category_name == label_names[int(np.argmax(ours))]
        # a photo of another size and ink colour: MediaPipe resizes it; the model inverts a light scan
        photo = np.full((96, 80, 3), 255, np.uint8)
        photo[20:76, 36:44] = 0  # a dark "1" on white
        top = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=photo)).classifications[0]
        assert len(top.categories) == len(label_names) and sum(c.score for c in top.categories) == \
            pytest.approx(1.0, abs=1e-4)


def test_the_image_graph_preprocesses_as_the_saved_model_does():
    rng = np.random.default_rng(0)
    pictures = rng.integers(0, 256, (6, digits.IMAGE_SIDE, digits.IMAGE_SIDE, 3)).astype(np.uint8)
    pictures[:3] //= 4  # dark ones: not inverted; the rest light
    np.testing.assert_allclose(images.square_to_pixels(pictures.astype(np.float32)).numpy(),
                               images.to_pixels(pictures).numpy(), atol=1e-4)
    drawn = images.render(np.full((1, 64), 16.0), 16)
    assert drawn.shape == (1, 16, 16, 3) and drawn.dtype == np.uint8 and (drawn == 255).all()


def test_regex_sentiment_runs_in_mediapipes_text_classifier(tmp_path, train_tiny):
    """tokenisation=regex: MediaPipe's TextClassifier, given sentiment_text.tflite alone, tokenises
    raw text by the file's metadata and gives the project's TFLite scores; the SavedModel agrees."""
    text_tasks = pytest.importorskip("mediapipe.tasks.python.text")
    from mediapipe.tasks.python.core import base_options

    from export import exporter
    from pipelines import text
    from rnn_apps.apps import sentiment

    run = train_tiny("sentiment", tmp_path / "run", tokenisation="regex")
    vocabulary = run.preprocessing.vectorizer.get_vocabulary()
    # PTB's "is n't" and "film 's" are joined back when read: no clitic is a word of its own
    assert "n't" not in vocabulary and "'s" not in vocabulary and any(w.endswith("'s") for w in vocabulary)
    root = tmp_path / "exports"
    entry = exporter.export_run(run, root, echo=lambda *_: None)  # parity: Keras, SavedModel, both .tflite files
    assert entry["parity"]["ok"], entry["parity"]
    text_file, text_card = sentiment.APP.mediapipe_text_files()
    assert text_file == "sentiment_text.tflite"
    artefact = next(a for a in entry["artefacts"] if a["kind"] == "tflite" and a["card"] == text_card)
    path = root / artefact["path"]
    meta, packed = metadata.read(path)
    tokens = meta.subgraphMetadata[0].inputTensorMetadata[0]
    assert tokens.processUnits[0].options.delimRegexPattern.decode() == text.REGEX_DELIMITER
    assert sorted(packed) == ["labels.txt", MEDIAPIPE_VOCABULARY] and meta.minParserVersion.decode() == "1.2.1"
    label_names = packed["labels.txt"].split("\n")[:-1]

    sentences = list(run.load_data().test["text"][:24]) + [
        "It DOESN'T work, and the Film's cast is GOOD!", "McQueen's café: naïve 😀 fun", "", "!!! ???",
        " ".join(["good"] * 100)]  # longer than max_length: both read the first tokens
    ids = text.regex_ids(sentences, packed[MEDIAPIPE_VOCABULARY], run.config["max_length"])
    runner = tflite.interpreter(path).get_signature_runner("serving_default")
    options = text_tasks.TextClassifierOptions(base_options=base_options.BaseOptions(model_asset_path=str(path)),
                                               max_results=-1)
    with text_tasks.TextClassifier.create_from_options(options) as classifier:
        for sentence, row in zip(sentences, ids, strict=True):
            categories = classifier.classify(sentence).classifications[0].categories
            ours = runner(token_ids=row[None])["probabilities"][0]
            np.testing.assert_allclose([{c.index: c.score for c in categories}[i] for i in range(len(ours))], ours,
                                       atol=1e-4, err_msg=sentence)
            assert categories[0].category_name == label_names[int(np.argmax(ours))]
    # the SavedModel, fed the raw sentences, tokenises them to the same ids and gives the same scores
    np.testing.assert_array_equal(text.padded_ids(run.preprocessing.vectorizer, sentences, run.config["max_length"]),
                                  ids)
    import tensorflow as tf

    served = tf.saved_model.load(str(root / entry["artefacts"][0]["path"])).signatures["serving_default"](
        text=tf.constant(sentences))["probabilities"].numpy()
    phone = np.concatenate([runner(token_ids=row[None])["probabilities"] for row in ids])
    np.testing.assert_allclose(served, phone, atol=1e-5)


def test_the_default_ptb_tokenisation_exports_without_a_mediapipe_file(tiny_run, tiny_export):
    """The default tokenisation=ptb (SST-2's own tokens, which a regex tokenizer cannot express): the
    clitics stay words of their own, the export passes parity and ships no MediaPipe text file."""
    from rnn_apps.apps import sentiment

    run = tiny_run("sentiment")
    assert run.config["tokenisation"] == "ptb" and "n't" in run.preprocessing.vectorizer.get_vocabulary()
    root, entry = tiny_export("sentiment")
    assert entry["parity"]["ok"], entry["parity"]
    files = [a["path"].rsplit("/", 1)[-1] for a in entry["artefacts"] if a["kind"] == "tflite"]
    assert "sentiment.tflite" in files and sentiment.APP.mediapipe_text_files()[0] not in files
    card = json.loads((root / "tflite" / "sentiment" / "1" / "model_card.json").read_text())
    assert card["tokenizer"] == "ptb"
