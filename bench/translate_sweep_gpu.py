"""Which translate training choices learn fastest per epoch: a sweep run on a GPU (the `device`
machine: Keras on JAX, no TensorFlow), of the app's own model built from `rnn_apps/layers.py`
with the layers and names of `rnn_apps/apps/translate.py` (`build_model`; kept in step by hand).

Input: the spa_eng splits as the app tokenises them (`--prepare`, run where TensorFlow is):
padded id arrays, the target vocabulary and the raw test references. On the GPU each recipe
trains in its own process (all at once) and writes, after every epoch, its validation loss and
its greedy translations of the 2,000 test sentences as ids; `--score` (back where TensorFlow is)
detokenises them with the app's own rules and scores them with sacrebleu as `rnn-apps evaluate`
does. Epochs, not minutes, transfer between machines: read each curve at the number of epochs
2 CPU cores reach in the budget (bench/RESULTS.md). On the H200, set
XLA_FLAGS="--xla_gpu_enable_triton_gemm=false --xla_gpu_autotune_level=0": with Triton GEMM
autotuning, eight processes spent over 2 minutes compiling each matrix product.

    python bench/translate_sweep_gpu.py --prepare DIR               # here: DIR/translate_ids.npz
    KERAS_BACKEND=jax python bench/translate_sweep_gpu.py --sweep DIR OUT [EPOCHS]   # on the GPU
    python bench/translate_sweep_gpu.py --score DIR OUT             # here: BLEU per recipe and epoch
"""

import functools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pipelines/translation.py's ids (it imports TensorFlow, absent there)
START_ID, END_ID, PADDING_ID, UNKNOWN_ID = 2, 3, 0, 1
BASE = {"learning_rate": 1e-3, "batch_size": 64, "lr_half_life_steps": 0, "label_smoothing": 0.0,
        "tied_output": False, "units": 256, "decoder_units": 512, "attention_units": 256,
        "embedding_dim": 256, "clipnorm": 1.0, "warmup_steps": 0}
RECIPES = {
    "default": {},
    "rate 2e-3": {"learning_rate": 2e-3},
    "half-life 4000": {"lr_half_life_steps": 4000},
    "rate 2e-3, half-life 4000": {"learning_rate": 2e-3, "lr_half_life_steps": 4000},
    "tied output embedding": {"tied_output": True},
    "label smoothing 0.1": {"label_smoothing": 0.1},
    "batch 128, rate 2e-3": {"batch_size": 128, "learning_rate": 2e-3},
    "rate 3e-3, warm-up 1000, half-life 3000": {"learning_rate": 3e-3, "warmup_steps": 1000,
                                                "lr_half_life_steps": 3000},
}


def prepare(folder: Path):
    """Tokenise with the app's pipeline (TensorFlow) -> DIR/translate_ids.npz and DIR/references.json."""
    sys.path.insert(0, str(ROOT / "bench"))
    import common

    from pipelines import translation
    from rnn_apps import registry

    app = registry.get("translate")
    config = app.resolve_config(None, {})
    splits = app.load_data("spa_eng", common.DATA_ROOT, config, {})
    folder.mkdir(parents=True, exist_ok=True)
    preprocessing = app.fit_preprocessing(splits, config, folder)
    arrays = {}
    for name in ("train", "validation", "test"):
        columns = getattr(splits, name)
        source = translation.token_ids(preprocessing.source, columns["source"], config["source_length"])
        target = translation.token_ids(preprocessing.target, columns["target"], config["target_length"] - 1)
        source = source.to_tensor(shape=[None, config["source_length"]]).numpy()
        target = target.to_tensor(shape=[None, config["target_length"] - 1]).numpy()
        rows = len(source)
        target_out = np.concatenate([target, np.zeros((rows, 1), target.dtype)], 1)
        target_out[np.arange(rows), (target > 0).sum(1)] = END_ID
        arrays[f"{name}_source"] = source.astype(np.int16)
        arrays[f"{name}_target_in"] = np.concatenate([np.full((rows, 1), START_ID), target], 1).astype(np.int16)
        arrays[f"{name}_target_out"] = target_out.astype(np.int16)
    np.savez_compressed(folder / "translate_ids.npz", **arrays, config=json.dumps(config),
                        source_vocab_size=preprocessing.source.vocabulary_size(),
                        target_vocab_size=preprocessing.target.vocabulary_size())
    (folder / "references.json").write_text(json.dumps({
        "target_tokens": preprocessing.target_tokens, "target_language": preprocessing.target_language,
        "test_references": list(splits.test["target"]), "train_targets": list(splits.train["target"])}))


def build_model(recipe: dict, source_vocab: int, target_vocab: int):
    """translate.build_model's layers and names, with the recipe's choices."""
    import keras
    from keras import layers, ops

    from rnn_apps.layers import FastSimpleRNN, FrozenTailEmbedding, LuongAttention, simple_rnn_stack

    source = keras.Input((None,), dtype="int32", name="source_ids")
    target = keras.Input((None,), dtype="int32", name="target_ids")
    x = FrozenTailEmbedding(source_vocab, recipe["embedding_dim"], name="source_embedding")(source)
    stack = {"depth": 1, "units": recipe["units"], "bidirectional": True, "dropout": 0.0}
    encoder_outputs, final_state = simple_rnn_stack(x, stack, return_state=True)
    initial_state = layers.Dense(recipe["decoder_units"], activation="tanh", name="bridge")(final_state)
    target_embedding = FrozenTailEmbedding(target_vocab, recipe["embedding_dim"], reversible=recipe["tied_output"],
                                           name="target_embedding")
    y = target_embedding(target)
    states = FastSimpleRNN(recipe["decoder_units"], return_sequences=True, name="decoder_rnn")(
        y, initial_state=initial_state)
    mask = ops.cast(ops.not_equal(source, PADDING_ID), "float32")
    attended = LuongAttention(recipe["attention_units"], name="attention")(states, encoder_outputs, mask)
    if recipe["tied_output"]:
        logits = target_embedding(attended, reverse=True)
    else:
        logits = layers.Dense(target_vocab, name="logits")(attended)
    return keras.Model([source, target], logits)


def masked_loss(label_smoothing: float):
    from rnn_apps.layers import SparseCrossentropy

    return SparseCrossentropy(label_smoothing, from_logits=True, ignore_class=PADDING_ID)


def schedule(recipe: dict):
    """The app's rate (config_lib.learning_rate: halving every lr_half_life_steps), after a linear warm-up."""
    import keras
    from keras import ops

    from rnn_apps import config as config_lib

    rate, warmup = config_lib.learning_rate(recipe), recipe["warmup_steps"]
    if not warmup:
        return rate

    class WarmUp(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return rate(step) * ops.minimum(1.0, (ops.cast(step, "float32") + 1) / warmup)

    return WarmUp()


def greedy(model, source: np.ndarray, config: dict) -> np.ndarray:
    """Greedy translations as ids [rows, target_length] (0 after the end): the app's own loop,
    `rnn_apps/decoding.py` (keras.ops, so it runs here on JAX), over the trained layers' step as
    Translate.step writes it, with the app's length rule (Translate.limits) from its config."""
    import keras
    from keras import ops

    from rnn_apps import decoding

    encoder = keras.Model(model.inputs[0], [model.get_layer("attention").input[1], model.get_layer("bridge").output])
    embedding, cell = model.get_layer("target_embedding"), model.get_layer("decoder_rnn").cell
    attention = model.get_layer("attention")
    logits = functools.partial(embedding, reverse=True) if embedding.reversible else model.get_layer("logits")
    never = decoding.never_written(embedding.input_dim, (PADDING_ID, UNKNOWN_ID, START_ID))
    mask = (source != PADDING_ID).astype(np.float32)
    limits = np.minimum(np.ceil(config["length_ratio"] * mask.sum(1)) + config["length_extra"],
                        config["target_length"]).astype(np.int32)
    encoder_outputs, state = encoder(source)

    def step(tokens, cache):
        output, new_state = cell(embedding(tokens), [cache["state"]])
        scores = logits(attention(output[:, None, :], cache["encoder_outputs"], cache["mask"])[:, 0, :])
        return ops.log_softmax(scores + never), {**cache, "state": new_state[0]}

    ids, _ = decoding.greedy(step, {"encoder_outputs": encoder_outputs, "state": state, "mask": mask},
                             START_ID, END_ID, limits)
    out = np.zeros((len(source), config["target_length"]), np.int32)
    ids = ops.convert_to_numpy(ids)
    out[:, :ids.shape[1]] = ids
    return out


def train_recipe(name: str, folder: Path, out: Path, epochs: int):
    import keras

    data = dict(np.load(folder / "translate_ids.npz"))
    if os.environ.get("SWEEP_ROWS"):  # a smoke run
        data = {k: v[: int(os.environ["SWEEP_ROWS"])] if k.startswith("train") else v for k, v in data.items()}
    recipe = {**BASE, **RECIPES[name]}
    keras.utils.set_random_seed(0)
    model = build_model(recipe, int(data["source_vocab_size"]), int(data["target_vocab_size"]))
    model.compile(optimizer=keras.optimizers.Adam(schedule(recipe), clipnorm=recipe["clipnorm"]),
                  loss=masked_loss(recipe["label_smoothing"]), jit_compile=True)
    train = ([data["train_source"].astype(np.int32), data["train_target_in"].astype(np.int32)],
             data["train_target_out"].astype(np.int32))
    validation = ([data["validation_source"].astype(np.int32), data["validation_target_in"].astype(np.int32)],
                  data["validation_target_out"].astype(np.int32))
    slug = "".join(c if c.isalnum() else "_" for c in name)
    rows, ids_by_epoch, start = [], {}, time.time()
    for epoch in range(1, epochs + 1):
        model.fit(*train, batch_size=recipe["batch_size"], epochs=1, shuffle=True, verbose=0)
        # Validation loss without smoothing, so recipes compare.
        logits = model.predict(validation[0], batch_size=500, verbose=0)
        val_loss = float(masked_loss(0.0)(validation[1], logits))
        ids_by_epoch[f"epoch{epoch}"] = greedy(model, data["test_source"].astype(np.int32),
                                               json.loads(str(data["config"]))).astype(np.int16)
        rows.append({"epoch": epoch, "val_loss": round(val_loss, 4), "seconds": round(time.time() - start, 1)})
        # One file a recipe, rewritten whole each epoch (the device returns at most 8 files); written
        # beside it and renamed, as a rename across filesystems (/tmp to OUT) can fail.
        partial = out / f"{slug}.partial.npz"
        np.savez_compressed(partial, curve=json.dumps({"recipe": name, "settings": recipe, "epochs": rows}),
                            **ids_by_epoch)
        partial.replace(out / f"{slug}.npz")
        print(name, rows[-1], flush=True)


def sweep(folder: Path, out: Path, epochs: int):
    out.mkdir(parents=True, exist_ok=True)
    children = [subprocess.Popen([sys.executable, __file__, "--recipe", name, str(folder), str(out), str(epochs)])
                for name in RECIPES]
    for child in children:
        child.wait()


def score(folder: Path, out: Path):
    import sacrebleu
    import tensorflow as tf

    from pipelines import translation

    refs = json.loads((folder / "references.json").read_text())
    vocabulary = np.array(refs["target_tokens"], dtype=object)
    seen = set(refs["train_targets"])
    unseen = [i for i, r in enumerate(refs["test_references"]) if r not in seen]
    table = {}
    for file in sorted(out.glob("*.npz")):
        stored = np.load(file)
        curve = json.loads(str(stored["curve"]))
        for row in curve["epochs"]:
            ids = stored[f"epoch{row['epoch']}"].astype(np.int64)
            ids = np.where(ids == END_ID, 0, ids)
            tokens = np.where(ids > 0, vocabulary[ids], "")
            text = translation.detokenize(tf.constant(tokens.astype(str)), refs["target_language"]).numpy()
            hypotheses = [t.decode("utf-8") for t in text]
            row["bleu"] = round(sacrebleu.corpus_bleu(hypotheses, [refs["test_references"]]).score, 2)
            row["bleu_unseen"] = round(sacrebleu.corpus_bleu([hypotheses[i] for i in unseen],
                                                             [[refs["test_references"][i] for i in unseen]]).score, 2)
        table[curve["recipe"]] = curve
        print(curve["recipe"], [(r["epoch"], r["val_loss"], r["bleu"]) for r in curve["epochs"]])
    return table


if __name__ == "__main__":
    if sys.argv[1] == "--prepare":
        prepare(Path(sys.argv[2]))
    elif sys.argv[1] == "--sweep":
        sweep(Path(sys.argv[2]), Path(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 10)
    elif sys.argv[1] == "--recipe":
        train_recipe(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1] == "--score":
        result = score(Path(sys.argv[2]), Path(sys.argv[3]))
        (ROOT / "bench" / "results" / "translate_sweep_gpu.json").write_text(json.dumps(result, indent=1) + "\n")
