"""The encoder-decoder family (one-to-many, many-to-many encoder-decoder): an encoder reads the
input once into a decoding cache ({"state", ...}); the decoder's step writes one token at a time.
`translate` (a sentence from a sentence) and `caption` (a sentence from an image) are its apps.

Written once here, for every app of the family:
  - `compile`: Adam with the config's clipnorm, label-smoothed cross-entropy on the logits, padding ignored;
  - `writer`: encode, decode (rnn_apps/decoding.py: greedy or beam search, in the graph) and
    detokenise: what predict, evaluate, the report and every SavedModel signature run;
  - `generate`: many raw inputs in batches through it; `predict` and its rows' text;
  - `serving`: `serving_default` (greedy) and `beam_search` on the first input form, a greedy
    `from_<form>` for each further form;
  - `tflite_models`: one .tflite with the app's encode signature and `decode_step`, whose inputs are
    `token` plus every output of encode (export/step_loop.py's convention), and the model card's
    signature entries, derived from the functions themselves;
  - the phone client's start (`phone_start`: the encode signature, then START) and text (detokenised)
    for the loop every generating app shares (families/generate.py: `on_phone`, `query`), and with
    it parity (Keras = SavedModel = the phone loop, word for word) and phone quality.

An app writes what is its own:
  - `output_name` ("translation", "caption"), and its data (`load_data`);
  - its Keras model (`build_model`), and from it `encoder(model)`: encoder inputs -> the decoding
    cache, and `step(model)`: (tokens, cache) -> (log-probabilities, cache);
  - `encode_signature(run)`: the .tflite's encode signature (name, input specs, model);
  - `text_scores(run, test, texts)`: the scores of decoded texts, which evaluate reports and phone
    quality reads `phone_metric` from; and `evaluate`;
  - `preprocessor`: its preprocessor class, in pipelines/ beside the data (keras-hub's sense of the
    word: what turns raw inputs into model inputs, with its files). App fits it on the training
    split and keeps its `files()` in the run folder; the family ships the same files beside the
    .tflite. It has
      - `fit(splits, config)`, `load(folder, config)` (a run's), `from_card(folder, card)` (the
        phone client's: the shipped files and the model card, nothing else), `files()`, `card(config)`;
      - `dataset(columns, config, shuffle_seed)`: teacher-forcing batches;
      - `serving_forms(write)`: {form: (input specs, fn)}: each fn turns that raw form into encoder
        inputs and limits in the graph, calls `write`, and may add outputs of its own
        (`source_truncated`, `is_image`); `lookup_layers` the graph uses;
      - `encoder_inputs(columns)` (raw inputs of the first form from split columns),
        `raw_inputs(cli inputs)`, `served(raw)` (the SavedModel's feed), `further_feeds(raw)`
        ({further form: its feed}, for parity);
      - the phone client: `phone_feed(raw)` -> (encode feeds, output limits), and `output_words`
        and `output_language` (the SavedModel's detokeniser reads the same words). Parity and
        phone quality run it on the files written out as the export writes them, query on the
        export's own;
  - `prediction_notes`.
"""

from __future__ import annotations

import json

import keras
import numpy as np

from export import step_loop
from foundation.lazy import tensorflow as tf
from pipelines import translation
from rnn_apps import config as config_lib
from rnn_apps import decoding
from rnn_apps.app import CARD_FILE, Endpoint, ParityCase, TFLiteModel, read_as_shipped, read_card
from rnn_apps.families.generate import GeneratingApp
from rnn_apps.layers import SparseCrossentropy

START_ID, END_ID = translation.START_ID, translation.END_ID
DECODE_STEP = "decode_step"


class EncoderDecoderApp(GeneratingApp):
    beam_search = True
    step_signature, end_id = DECODE_STEP, END_ID
    output_name: str  # the decoded text's output name: "translation", "caption"
    decode_batch = 64  # raw inputs per call when `generate` decodes many

    # --- what the app supplies ---------------------------------------------------------------
    def encoder(self, model):
        """-> fn(encoder inputs) -> the decoding cache {"state", ...}, with the trained layers."""
        raise NotImplementedError

    def step(self, model):
        """-> step(tokens [rows], cache) -> (log-probabilities [rows, vocabulary], cache)."""
        raise NotImplementedError

    def encode_signature(self, run) -> tuple:
        """-> (encode signature name, [its one input spec], the model whose layers it and the step run)."""
        raise NotImplementedError

    def text_scores(self, run, test: dict, texts: list) -> dict:
        """{metric: value} of decoded texts against the test split's references: what evaluate
        reports, and (its phone_metric) what phone quality measures on the .tflite."""
        raise NotImplementedError

    # --- preprocessing: App fits and loads the preprocessor; its files are also what ships ------
    def dataset(self, columns, preprocessing, config, shuffle_seed=None):
        return preprocessing.dataset(columns, config, shuffle_seed)

    def serving_forms(self, run, write) -> dict:
        """{form: ([input spec], fn(raw) -> outputs)}: the preprocessor's, over `write`."""
        return run.preprocessing.serving_forms(write)

    def phone_vocabulary(self, folder, card):
        client = self.preprocessor.from_card(folder, card)
        return client.output_words, client.output_language

    def exported_inputs(self, inputs, tflite_dir):
        """CLI inputs -> the SavedModel's feed and the phone client's, from the export's files alone."""
        client = self.preprocessor.from_card(tflite_dir, read_card(tflite_dir))
        raw = client.raw_inputs(inputs)
        feeds, limits = client.phone_feed(raw)
        return list(inputs), client.served(raw), {"feeds": feeds, "limits": limits}

    # --- training -----------------------------------------------------------------------------
    def compile(self, model, config):
        """Teacher forcing: the model's logits for every next token, padding out of the loss."""
        model.compile(
            optimizer=keras.optimizers.Adam(config_lib.learning_rate(config), clipnorm=config["clipnorm"]),
            loss=SparseCrossentropy(config["label_smoothing"], from_logits=True, ignore_class=translation.PADDING_ID),
            jit_compile=config["jit_compile"],
        )

    # --- decoding, in the graph ---------------------------------------------------------------
    def writer(self, run, beam=None):
        """-> write(encoder inputs, limits int32 [batch]) -> {output_name, "token_ids" (int32
        [batch, longest], 0 after the end), "lengths"}."""
        encode, step = self.encoder(run.model), self.step(run.model)
        vocabulary, language = tf.constant(run.preprocessing.output_words), run.preprocessing.output_language

        def write(inputs, limits):
            cache = encode(inputs)
            if beam:
                token_ids, lengths = decoding.beam_search(step, cache, START_ID, END_ID, limits, beam,
                                                          run.config["length_penalty"])
            else:
                token_ids, lengths = decoding.greedy(step, cache, START_ID, END_ID, limits)
            tokens = tf.where(token_ids > 0, tf.gather(vocabulary, token_ids), "")
            return {self.output_name: translation.detokenize(tokens, language), "token_ids": token_ids,
                    "lengths": lengths}

        return write

    def decoder(self, run, beam=None) -> dict:
        """{form: fn(raw inputs) -> outputs}: one function per input form, shared by predict,
        evaluate, the report and the SavedModel."""
        return {form: fn for form, (_, fn) in self.serving_forms(run, self.writer(run, beam)).items()}

    def generate(self, run, inputs, beam=None) -> dict:
        """Decode many raw inputs of the first form in batches -> numpy outputs (token_ids padded with 0)."""
        form, (specs, _) = next(iter(self.serving_forms(run, None).items()))
        fn = run.traced(("generate", beam), lambda: self.decoder(run, beam)[form])
        parts = [{k: v.numpy() for k, v in fn(tf.constant(inputs[i: i + self.decode_batch])).items()}
                 for i in range(0, len(inputs), self.decode_batch)]
        if parts:
            return decoding.join_batches(parts, {})
        outputs = fn.get_concrete_function(*specs).structured_outputs  # no rows: each output empty
        return {k: np.zeros([0] + [d or 0 for d in v.shape[1:].as_list()], v.dtype.as_numpy_dtype)
                for k, v in outputs.items()}

    def serving(self, run):
        greedy, beam = self.decoder(run), self.decoder(run, beam=run.config["beam_width"])
        forms = self.serving_forms(run, None)
        first, *others = forms
        track = [run.model, *run.preprocessing.lookup_layers]
        return ([Endpoint("serving_default", greedy[first], forms[first][0], track=track),
                 Endpoint("beam_search", beam[first], forms[first][0], track=track)]
                + [Endpoint(f"from_{form}", greedy[form], forms[form][0], track=track) for form in others])

    # --- predict ------------------------------------------------------------------------------
    # Outputs of the first serving form that predict's rows keep beside the text, each with the note
    # format_prediction adds where it is true (translate: a source cut to source_length).
    prediction_notes = {}

    def predict(self, run, inputs, beam=None):
        out = self.generate(run, run.preprocessing.raw_inputs(inputs), beam)
        return [{"input": item, self.output_name: out[self.output_name][i].decode("utf-8"),
                 "tokens": int(out["lengths"][i]), **{flag: bool(out[flag][i]) for flag in self.prediction_notes}}
                for i, item in enumerate(inputs)]

    def format_prediction(self, row):
        notes = "".join(f"\t{note}" for flag, note in self.prediction_notes.items() if row[flag])
        return f"{row[self.output_name]}\t{row['input']}{notes}"

    # --- the phone: TFLite file, model card, reference loop -------------------------------------
    def tflite_models(self, run):
        name, specs, model = self.encode_signature(run)
        facts = run.preprocessing.card(run.config)
        encode, step = self.encoder(model), self.step(model)
        cache_specs = tf.function(encode).get_concrete_function(*specs).structured_outputs
        names = list(cache_specs)

        def decode_step(token, *cache):
            log_probabilities, cache = step(token, dict(zip(names, cache, strict=True)))
            return {"log_probabilities": log_probabilities, "state": cache["state"]}

        step_specs = [tf.TensorSpec([None], tf.int32, name="token")] + [
            tf.TensorSpec(cache_specs[n].shape, cache_specs[n].dtype, name=n) for n in names]
        vocabulary_size = len(run.preprocessing.output_words)
        card = {
            "app": self.name, "topology": self.topology, "task": self.task,
            "signatures": {
                name: {"inputs": {s.name: _card_shape(s) for s in specs},
                       "outputs": {n: _card_shape(cache_specs[n]) for n in names}},
                DECODE_STEP: {"inputs": {s.name: _card_shape(s) for s in step_specs},
                              "outputs": {"log_probabilities": f"float32 [1, {vocabulary_size}]",
                                          "state": _card_shape(cache_specs["state"])}},
            },
            "start_id": START_ID, "end_id": END_ID,
            **facts,
            "loop": [f"cache = {name}({', '.join(s.name for s in specs)})"] + step_loop.GREEDY_PSEUDOCODE[1:],
        }
        return [TFLiteModel(f"{self.name}.tflite", [
            Endpoint(name, encode, specs, track=[model]),  # one input: an encoder reads one thing
            Endpoint(DECODE_STEP, decode_step, step_specs, track=[model]),
        ], assets={**run.preprocessing.files(), CARD_FILE: json.dumps(card, indent=2, ensure_ascii=False) + "\n"})]

    def phone_start(self, interpreter, feed):
        """The encode signature on one input: its outputs are the decoding cache; START first."""
        encode = interpreter.get_signature_runner(
            next(s for s in interpreter.get_signature_list() if s != DECODE_STEP))
        return encode(**feed), START_ID

    def phone_text(self, token_ids, words, language):
        tokens = np.array(words, dtype=object)[token_ids]  # padding (id 0) is "" in the vocabulary file
        return translation.detokenize(tf.constant(tokens, tf.string), language).numpy()

    def phone_quality(self, run, test, interpreter):
        """phone_metric of the TFLite reference loop's greedy outputs on the test split."""
        feeds, limits, words, language = self.phone_client_inputs(run, run.preprocessing.encoder_inputs(test))
        out = self.on_phone(interpreter, feeds, limits, words, language)
        return self.text_scores(run, test, [t.decode("utf-8") for t in out[self.output_name]])[self.phone_metric[0]]

    def phone_client_inputs(self, run, raw) -> tuple:
        """Raw inputs -> (feeds, limits, output words, their language), by the phone client from the
        files the run's .tflite ships and its card, written out as the export writes them."""
        def read(folder):
            client = self.preprocessor.from_card(folder, run.preprocessing.card(run.config))
            return *client.phone_feed(raw), client.output_words, client.output_language

        return read_as_shipped(run.preprocessing.files(), read)

    def parity_cases(self, run, examples):
        """Greedy decoding of real test inputs: the SavedModel's outputs and the TFLite reference
        loop's (fed by the phone client) equal Keras's exactly (strings and ids); and each further
        serving form (caption's from_pixels) on the same inputs equals Keras's on that form."""
        raw = run.preprocessing.encoder_inputs(examples)
        expected = self.generate(run, raw)
        feeds, limits, words, language = self.phone_client_inputs(run, raw)
        cases = [ParityCase(f"greedy {self.output_name}s of test examples", expected,
                            ("serving_default", run.preprocessing.served(raw)), f"{self.name}.tflite", list(expected),
                            tflite_loop=lambda interpreter: self.on_phone(interpreter, feeds, limits, words, language),
                            tflite_compare=[self.output_name, "token_ids", "lengths"])]
        decoder = self.decoder(run)
        for form, feed in run.preprocessing.further_feeds(raw).items():
            keras_outputs = tf.function(decoder[form])(*(tf.constant(v) for v in feed.values()))
            cases.append(ParityCase(f"greedy {self.output_name}s of test examples ({form})",
                                    {k: v.numpy() for k, v in keras_outputs.items()}, (f"from_{form}", feed), None,
                                    [self.output_name, "token_ids", "lengths"]))
        return cases


def _card_shape(spec) -> str:
    """A tensor spec as the model card states it, at the batch of 1 every .tflite has."""
    return f"{spec.dtype.name} [{', '.join(['1'] + [str(d) for d in spec.shape[1:]])}]"
