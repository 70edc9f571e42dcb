"""Every app's preprocessor (App.preprocessor: fit, load, files) keeps in its run folder exactly
the files it says, and reads back the same preprocessing. The encoder-decoder apps' preprocessors
(pipelines.translation.Preprocessor, pipelines.captions.Preprocessor) are also their phone clients,
as tagger's is through label_steps: what a run keeps, what the .tflite ships and what the client
reads back from those files and the model card must be one thing."""

import json

import numpy as np
import pytest

from rnn_apps import registry
from rnn_apps.app import CARD_FILE, read_card

APPS = ["digits", "sentiment", "tagger", "frames", "charlm", "translate", "caption"]


@pytest.mark.parametrize("name", APPS)
def test_a_runs_preprocessing_files_are_what_its_preprocessor_writes_and_reads_back(name, tiny_run):
    run, app = tiny_run(name), registry.get(name)
    kept = run.preprocessing.files()
    assert kept and all(text for text in kept.values())
    assert {file: (run.dir / file).read_text(encoding="utf-8") for file in kept} == kept
    assert app.preprocessor.load(run.dir, run.config).files() == kept


@pytest.mark.parametrize("name", ["tagger", "sentiment"])
def test_the_text_phone_client_on_the_shipped_files_gives_the_runs_own_inputs(name, tiny_run, tiny_export):
    run, app = tiny_run(name), registry.get(name)
    root, entry = tiny_export(name)
    folder = (root / next(a for a in entry["artefacts"] if a["kind"] == "tflite")["path"]).parent
    shipped = app.phone_files(run)
    ours_card = json.loads(shipped.pop(CARD_FILE))  # the export adds to the card (its files, the default file)
    assert len(shipped) >= 2 and {file: (folder / file).read_text(encoding="utf-8") for file in shipped} == shipped
    ours_card.pop("files", None)  # the export lists every file it ships there
    exported_card = read_card(folder)
    assert {k: exported_card[k] for k in ours_card} == ours_card
    texts = ["The cat sat on the mat .", "A completely unseenword here", ""]
    length = run.config["max_length"]
    if name == "tagger":
        ours = app.phone_inputs(run.preprocessing, texts, length)
        theirs = app.phone_inputs(app.preprocessor.from_card(folder, read_card(folder)), texts, length)
        assert ours.keys() == theirs.keys() == {"word_ids", "suffix_ids", "shape_ids"}
        assert (ours["word_ids"][0, :7] > 0).all() and (ours["word_ids"][2] == 0).all()
        for key in ours:
            np.testing.assert_array_equal(ours[key], theirs[key])
        shipped_words = app.shipped_preprocessing(run).words.get_vocabulary()  # what parity feeds through
        assert shipped_words == run.preprocessing.words.get_vocabulary() and len(shipped_words) > 10
    else:
        ours, theirs = app.padded_ids(run, texts), app.phone_ids(texts, folder)
        assert ours.shape == theirs.shape == (3, length) and (ours[0, :7] > 0).all() and (ours[2] == 0).all()
        np.testing.assert_array_equal(ours, theirs)
        assert (ours[1, :4] > 0).all() and ours[1, 2] == 1  # an unseen word takes its place as 1, unknown


@pytest.mark.parametrize("name", ["translate", "caption"])
def test_the_phone_client_read_from_the_export_is_the_runs_preprocessor(name, tiny_run, tiny_export):
    run, app = tiny_run(name), registry.get(name)
    root, entry = tiny_export(name)
    artefact = next(a for a in entry["artefacts"] if a["kind"] == "tflite")
    folder = (root / artefact["path"]).parent
    kept = run.preprocessing.files()
    # the run folder holds the files the .tflite ships, byte for byte
    assert {file: (run.dir / file).read_text(encoding="utf-8") for file in kept} == kept
    assert {file: (folder / file).read_text(encoding="utf-8") for file in kept} == kept
    card = read_card(folder)
    client = app.preprocessor.from_card(folder, card)
    assert client.files() == kept
    assert client.output_words == run.preprocessing.output_words and len(client.output_words) > 4
    assert client.output_language == run.preprocessing.output_language
    # the card the client reads states what the run's preprocessor says
    assert {k: card[k] for k in run.preprocessing.card(run.config)} == run.preprocessing.card(run.config)
    raw = run.preprocessing.encoder_inputs({k: v[:3] for k, v in run.parity_examples().items()})
    (run_feeds, run_limits), (client_feeds, client_limits) = run.preprocessing.phone_feed(raw), client.phone_feed(raw)
    np.testing.assert_array_equal(run_limits, client_limits)
    assert len(run_feeds) == len(client_feeds) == 3 and (client_limits > 0).all()
    for ours, theirs in zip(run_feeds, client_feeds, strict=True):
        assert ours.keys() == theirs.keys()
        for key in ours:
            np.testing.assert_array_equal(ours[key], theirs[key])
    # the SavedModel feed names the first serving form's inputs
    specs = next(iter(run.preprocessing.serving_forms(None).values()))[0]
    assert list(run.preprocessing.served(raw)) == [spec.name for spec in specs]
