"""The encoder-decoder apps' preprocessors (pipelines.translation.Preprocessor,
pipelines.captions.Preprocessor) are also their phone clients: what a run keeps, what the .tflite
ships and what the client reads back from those files and the model card must be one thing."""

import numpy as np
import pytest

from rnn_apps import registry
from rnn_apps.app import read_card


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
