"""translate — many-to-many, encoder-decoder: a sentence in one language in, one in another out.

Topology: source ids [batch, source_time] -> Embedding -> bidirectional SimpleRNN encoder
(`depth` layers, `units` per direction) -> encoder outputs [batch, source_time, 2*units] and a
final state -> Dense tanh "bridge" -> the initial state of a SimpleRNN decoder (`decoder_units`).
Training (teacher forcing): target ids [START, w1, ...] -> Embedding -> decoder states
[batch, target_time, decoder_units] -> Luong attention over the encoder outputs (scaled scores,
padding masked) -> logits [batch, target_time, target_vocab] against the target embedding's own
table (`tied_output`; a Dense layer without it), label-smoothed loss masked on padding.
Decoding: the trained decoder's `cell` on one step with the same weights (`step`), driven by the
one loop in `rnn_apps/decoding.py`: greedy or beam search, at most
min(target_length, ceil(length_ratio * source tokens) + length_extra) tokens, stopping at END (none
for a source of no tokens).

Data: Tatoeba/Anki `../shared/data/spa_eng` (spa-en by default; `--set direction=en-spa`) and
`kor_eng` (`ko-en`, `en-ko`; Korean at character level), split by source sentence; TFDS
`ted_hrlr_translate/pt_to_en` online (`--set direction=pt-en`). See pipelines/translation.py.

Exports: SavedModel `serving_default(text: string[batch])` -> translation (string), token_ids
(int32 [batch, longest output], 0 after the end), lengths; `beam_search` the same with beam width
`beam_width`; tokenisation, the decoding loop and detokenisation run in the graph. TFLite
`translate.tflite` with two signatures a phone drives (export/step_loop.py is the reference loop):
`encode(source_ids: int32[1, source_length])` -> encoder_outputs, source_mask, state;
`decode_step(token: int32[1], state, encoder_outputs, source_mask)` -> log_probabilities, state;
source_vocab.txt, target_vocab.txt and model_card.json beside it.

    rnn-apps train translate --data spa_eng --data-root ../shared/data --out runs/translate
    rnn-apps evaluate runs/translate [--beam 4]        # BLEU, chrF, samples
    rnn-apps predict runs/translate "¿Dónde está la biblioteca?" [--beam 4]
    rnn-apps export runs/translate --out exports
    rnn-apps query exports --name translate "¿Dónde está la biblioteca?"
"""

from __future__ import annotations

import functools

import keras
from keras import layers

from foundation import internals
from foundation.lazy import tensorflow as tf
from pipelines import translation
from rnn_apps import config as config_lib
from rnn_apps import decoding, metrics
from rnn_apps.app import float32_twin
from rnn_apps.families.encode_decode import EncoderDecoderApp
from rnn_apps.layers import FastSimpleRNN, FrozenTailEmbedding, LuongAttention, simple_rnn_stack

SAMPLES = 5


class Translate(EncoderDecoderApp):
    name = "translate"
    topology = "many-to-many (encoder-decoder)"
    task = "translation"
    output_name = "translation"
    preprocessor = translation.Preprocessor
    decode_batch = 256
    default_data = ("spa_eng", "ted_hrlr_translate/pt_to_en")
    phone_metric = ("bleu", True, 1.0)
    prediction_notes = {"source_truncated": "[the source was cut: only its first source_length tokens were translated]"}
    config = {
        **config_lib.COMMON,
        "direction": "spa-en",  # SOURCE-TARGET languages
        # Smaller than issue 7's prototype (a 256 encoder, a 512 decoder): within the same training
        # time more epochs fit, and each teaches more (bench/RESULTS.md, "translate").
        "units": 128,  # encoder, per direction
        "bidirectional": True,
        "decoder_units": 256,
        # The size of the attentional vector the output layer reads, and (tied) of the target
        # embedding: the width that decides how much each epoch teaches. 512 learned more per epoch
        # but its steps were slower, and it was behind 384 at equal time (bench/RESULTS.md, "translate").
        "attention_units": 384,
        "embedding_dim": 384,
        # The output layer is the target embedding's table transposed (plus a bias per word), as in
        # Press & Wolf 2017: target_vocab_size x embedding_dim fewer weights for Adam to update each step,
        # and lower validation loss per epoch in a sweep (bench/RESULTS.md). Needs attention_units == embedding_dim.
        "tied_output": True,
        "source_vocab_size": 20000,
        "target_vocab_size": 8000,
        "source_length": 32,  # tokens; the TFLite encode input length
        "target_length": 32,  # tokens, END included: the longest output
        "length_ratio": 2.0,
        "length_extra": 10,
        "beam_width": 4,  # the SavedModel's beam_search signature
        "length_penalty": 1.0,
        "clipnorm": 1.0,
        # With the tied output layer and the decaying rate: higher BLEU at every epoch than the untied
        # model with a constant rate and no smoothing (bench/RESULTS.md, "translate").
        "label_smoothing": 0.1,
        "lr_half_life_steps": 4000,  # the rate halves every 4,000 steps: a quarter of it after 8,000
        # A step budget, the same model on every machine: what the earlier 25-minute clock budget
        # reached on the 2-core reference machine (bench/RESULTS.md gives its time).
        "max_train_steps": 10_000,
        "epochs": 10,
        "batch_size": 64,
        "patience": 2,
        # XLA fuses attention and the output layer too: faster training steps with it than without,
        # where the recurrence runs as the C++ op of rnn_apps/kernels (bench/RESULTS.md "Performance").
        "jit_compile": True,
        # bfloat16 compute (float32 weights) without XLA: faster steps on CPUs with AMX, slower
        # elsewhere (bench/RESULTS.md); evaluate, predict and export use a float32 twin.
        "mixed_precision": False,
    }
    config_relations = (
        (lambda c: c["length_ratio"] > 0 or c["length_extra"] > 0,
         "length_ratio and length_extra are both 0, so every translation would be empty; raise either"),
        (lambda c: not c["tied_output"] or c["attention_units"] == c["embedding_dim"],
         "tied_output: the output layer is the target embedding, so attention_units ({attention_units}) must "
         "equal embedding_dim ({embedding_dim}); set both, or tied_output=false"),
    )
    config_checks = {
        **EncoderDecoderApp.config_checks,
        "direction": config_lib.Range("SOURCE-TARGET, e.g. spa-en", lambda v: len(v.split("-")) == 2),
        "decoder_units": config_lib.POSITIVE,
        "attention_units": config_lib.POSITIVE,
        "embedding_dim": config_lib.POSITIVE,
        "source_vocab_size": config_lib.at_least(3),
        "target_vocab_size": config_lib.at_least(5),  # padding, unknown, START, END, a word
        "source_length": config_lib.POSITIVE,
        "target_length": config_lib.POSITIVE,
        "length_ratio": config_lib.NON_NEGATIVE_NUMBER,
        "length_extra": config_lib.NON_NEGATIVE,
        "beam_width": config_lib.POSITIVE,
        "length_penalty": config_lib.NON_NEGATIVE_NUMBER,
    }
    presets = {
        "tiny": {"epochs": 1, "max_examples": 96, "batch_size": 16, "units": 8, "decoder_units": 16,
                 "attention_units": 8, "embedding_dim": 8, "source_vocab_size": 200, "target_vocab_size": 200,
                 "source_length": 12, "target_length": 12, "jit_compile": False, "beam_width": 3,
                 "max_train_steps": 0},
    }

    # --- data ---------------------------------------------------------------------------
    def load_data(self, data, data_root, config, options):
        return translation.load(data, data_root, config["seed"], config["direction"], options.get("tfds_data_dir"))

    # --- model --------------------------------------------------------------------------
    def build_model(self, config, preprocessing, unroll_length=None):
        if unroll_length:
            config = {**config, "dropout": 0.0, "mixed_precision": False}
        policy = "mixed_bfloat16" if config["mixed_precision"] else "float32"
        source = keras.Input((unroll_length,), dtype="int32", name="source_ids")
        target = keras.Input((None,), dtype="int32", name="target_ids")
        x = FrozenTailEmbedding(preprocessing.source.vocabulary_size(), config["embedding_dim"],
                                name="source_embedding", dtype=policy)(source)
        encoder_outputs, final_state = simple_rnn_stack(x, config, unroll=unroll_length is not None,
                                                        return_state=True, dtype=policy)
        initial_state = layers.Dense(config["decoder_units"], activation="tanh", name="bridge",
                                     dtype=policy)(final_state)
        target_embedding = FrozenTailEmbedding(preprocessing.target.vocabulary_size(), config["embedding_dim"],
                                               reversible=config["tied_output"], name="target_embedding",
                                               dtype=policy)
        y = target_embedding(target)
        states = FastSimpleRNN(config["decoder_units"], return_sequences=True, name="decoder_rnn",
                               dtype=policy)(y, initial_state=initial_state)
        attended = LuongAttention(config["attention_units"], name="attention", dtype=policy)(
            states, encoder_outputs, translation.source_mask(source))
        # float32 logits: the softmax and loss stay in float32.
        if config["tied_output"]:
            logits = target_embedding(attended, reverse=True)
        else:
            logits = layers.Dense(preprocessing.target.vocabulary_size(), name="logits", dtype="float32")(attended)
        return keras.Model([source, target], logits, name=self.name)

    def for_inference(self, model, run):
        return float32_twin(self, model, run) if run.config["mixed_precision"] else model

    def stored_sizes(self, model, run):
        return [(file, vectorizer.vocabulary_size(), model.get_layer(layer_name).input_dim)
                for layer_name, vectorizer, file in (
                    ("source_embedding", run.preprocessing.source, translation.SOURCE_VOCAB),
                    ("target_embedding", run.preprocessing.target, translation.TARGET_VOCAB))]

    # --- decoding (rnn_apps/families/encode_decode.py drives these) ------------------------------
    def encoder(self, model):
        """source ids -> the decoding cache: encoder outputs, the source mask and the decoder's
        initial state, with the trained model's layers."""
        encoder_outputs = model.get_layer("attention").input[1]
        keras_encoder = keras.Model(model.inputs[0], [encoder_outputs, model.get_layer("bridge").output])

        def encode(source_ids):
            outputs, state = keras_encoder(source_ids, training=False)
            return {"encoder_outputs": outputs, "source_mask": translation.source_mask(source_ids), "state": state}

        return encode

    def step(self, model):
        """step(tokens [rows], cache) -> (log-probabilities [rows, vocab], cache): the trained
        decoder's cell, attention and output layer on one step."""
        embedding, cell = model.get_layer("target_embedding"), model.get_layer("decoder_rnn").cell
        attention = model.get_layer("attention")
        logits = functools.partial(embedding, reverse=True) if embedding.reversible else model.get_layer("logits")
        # Padding, START and "[UNK]" are never outputs (as in caption and charlm): "[UNK]" matches no
        # reference word, and the next likeliest word may.
        never = decoding.never_written(embedding.input_dim, translation.NEVER_WRITTEN)

        def step(tokens, cache):
            # A copy drops the padding mask Keras attaches to the embedding: one step has no time axis.
            output, new_state = cell(keras.ops.copy(embedding(tokens)), [cache["state"]])
            attended = attention(output[:, None, :], cache["encoder_outputs"], cache["source_mask"])[:, 0, :]
            log_probabilities = keras.ops.log_softmax(logits(attended) + never, axis=-1)
            return log_probabilities, {**cache, "state": new_state[0]}

        return step

    # --- use ----------------------------------------------------------------------------
    def evaluate(self, run, splits, beam=None) -> dict:
        """`text_scores` on the test split, and BLEU on the sentences whose reference is not a
        training target (what is not remembered)."""
        sources, references = list(splits.test["source"]), list(splits.test["target"])
        hypotheses = [t.decode("utf-8") for t in self.generate(run, sources, beam)["translation"]]
        seen = set(splits.train["target"])
        unseen = [i for i, reference in enumerate(references) if reference not in seen]
        unseen_bleu = self.text_scores(run, {"target": [references[i] for i in unseen]},
                                       [hypotheses[i] for i in unseen])["bleu"] if unseen else None
        return {
            "examples": len(references), "decoding": f"beam {beam}" if beam else "greedy",
            **self.text_scores(run, splits.test, hypotheses),
            "bleu_unseen_references": unseen_bleu, "unseen_references": len(unseen),
            "samples": [{"source": sources[i], "reference": references[i], "translation": hypotheses[i]}
                        for i in range(min(SAMPLES, len(references)))],
        }

    # --- the phone ----------------------------------------------------------------------
    def encode_signature(self, run):
        length = run.config["source_length"]
        return "encode", [tf.TensorSpec([None, length], tf.int32, name="source_ids")], self.unrolled_twin(run, length)

    def text_scores(self, run, test, texts):
        """Corpus BLEU and chrF (sacrebleu) against the test targets, and each sentence's BLEU
        statistics (bench resamples sentences for a bootstrap interval)."""
        import sacrebleu

        references, tokenize = list(test["target"]), metrics.bleu_tokenizer(run.preprocessing.target_language)
        return {"bleu": sacrebleu.corpus_bleu(texts, [references], tokenize=tokenize).score,
                "chrf": sacrebleu.corpus_chrf(texts, [references]).score, "bleu_tokenizer": tokenize,
                "per_example": {"bleu": {"bleu_stats": internals.bleu_statistics(texts, references, tokenize),
                                         "tokenize": tokenize}}}


APP = Translate()
