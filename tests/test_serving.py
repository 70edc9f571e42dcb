"""What TF Serving and a phone get: defined outputs for odd but well-typed inputs."""

import numpy as np
import tensorflow as tf

from export import tflite
from tests.test_cli import ODD_TEXTS


def load_signature(root, name, signature="serving_default"):
    return tf.saved_model.load(str(root / name / "1")).signatures[signature]


def test_sentiment_signature_handles_odd_strings(tiny_export):
    root, _ = tiny_export("sentiment")
    classify = load_signature(root, "sentiment")
    batch = [t.encode("utf-8") for t in ODD_TEXTS] + [b"\xff\xfe\xfd invalid utf-8", b"\x00\x01 control"]
    outputs = {k: v.numpy() for k, v in classify(text=tf.constant(batch)).items()}
    assert outputs["label"].shape == (len(batch),)
    assert set(outputs["label"].tolist()) <= {b"negative", b"positive"}
    assert np.all((outputs["probability"] >= 0.5) & (outputs["probability"] <= 1.0))
    np.testing.assert_allclose(outputs["probabilities"].sum(-1), 1.0, rtol=1e-5)
    assert outputs["label_id"].tolist() == outputs["probabilities"].argmax(-1).tolist()
    # An empty batch is well-typed too.
    assert classify(text=tf.constant([], tf.string))["probabilities"].shape == (0, 2)


def test_sentiment_tflite_takes_fixed_length_ids_and_pads_with_zero(tiny_export):
    root, entry = tiny_export("sentiment")
    artefact = next(a for a in entry["artefacts"] if a["kind"] == "tflite")
    length = artefact["signatures"]["serving_default"]["inputs"]["token_ids"]["shape"][1]
    runner = tflite.interpreter(root / artefact["path"]).get_signature_runner("serving_default")
    empty = runner(token_ids=np.zeros((1, length), np.int32))
    unknown = runner(token_ids=np.array([[1] + [0] * (length - 1)], np.int32))
    for out in (empty, unknown):
        assert out["probabilities"].shape == (1, 2) and abs(out["probabilities"].sum() - 1) < 1e-5


def test_digits_signatures_handle_odd_pixels_and_images(tiny_export):
    root, _ = tiny_export("digits")
    pixels = np.zeros((4, 64), np.float32)
    pixels[1] = np.nan
    pixels[2] = 1e9
    pixels[3] = -5
    out = load_signature(root, "digits")(pixels=tf.constant(pixels))
    probabilities = out["probabilities"].numpy()
    assert np.isfinite(probabilities).all() and probabilities.shape == (4, 10)
    np.testing.assert_allclose(probabilities[1], probabilities[0], atol=1e-6)  # NaN counts as 0
    np.testing.assert_allclose(probabilities[3], probabilities[0], atol=1e-6)  # clipped to 0
    classify_images = load_signature(root, "digits", "classify_images")
    for shape in ((1, 1, 1, 1), (2, 300, 200, 1), (1, 28, 28, 3), (1, 20, 20, 4), (1, 0, 7, 1)):
        out = classify_images(images=tf.zeros(shape, tf.uint8))
        assert out["probabilities"].shape == (shape[0], 10)
        assert np.isfinite(out["probabilities"].numpy()).all()
