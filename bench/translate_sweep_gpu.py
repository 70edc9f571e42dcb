"""Which translate training choices learn fastest per epoch: a sweep run on a GPU (the `device`
machine: Keras on JAX, no TensorFlow) of the app's own model and decoder, `rnn_apps/apps/translate.py`
(`build_model`, `compile`, and for greedy decoding `encoder` and `step`, with
`pipelines.translation.output_limits`, driven by `rnn_apps/decoding.py`), with each recipe's config
overrides. Nothing here restates the model.

Input: the spa_eng splits as the app tokenises them (`--prepare`, run where TensorFlow is):
padded id arrays, the vocabulary sizes, the target vocabulary and the raw validation references.
On the GPU each recipe trains in its own process (all at once) and writes, after every epoch, its
validation loss and its greedy translations of the validation sentences as ids; `--score` (back
where TensorFlow is) detokenises them with the app's own rules and scores them with sacrebleu as
`rnn-apps evaluate` does. Choices are made on validation only (bench/RESULTS.md, the protocol).
Epochs, not minutes, transfer between machines. On the H200, set
XLA_FLAGS="--xla_gpu_enable_triton_gemm=false --xla_gpu_autotune_level=0": with Triton GEMM
autotuning, eight processes spent over 2 minutes compiling each matrix product.

    python bench/translate_sweep_gpu.py --prepare DIR               # here: DIR/translate_ids.npz
    KERAS_BACKEND=jax python bench/translate_sweep_gpu.py --sweep DIR OUT [EPOCHS]   # on the GPU
    python bench/translate_sweep_gpu.py --score DIR OUT             # here: results/translate_sweep.json
(results/translate_sweep_gpu.json is an earlier sweep, of the hand-written twin this replaced, scored on test.)
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# recipe name -> the app's config keys it changes from the default
RECIPES = {
    "default": {},
    "rate 2e-3": {"learning_rate": 2e-3},
    "constant rate": {"lr_half_life_steps": 0},
    "untied output layer": {"tied_output": False},
    "no label smoothing": {"label_smoothing": 0.0},
    "batch 128, rate 2e-3": {"batch_size": 128, "learning_rate": 2e-3},
    "decoder 384": {"decoder_units": 384},
    "encoder 192": {"units": 192},
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
    for name in ("train", "validation"):
        columns = getattr(splits, name)
        source = translation.token_ids(preprocessing.source, columns["source"], config["source_length"])
        target = translation.token_ids(preprocessing.target, columns["target"], config["target_length"] - 1)
        source = source.to_tensor(shape=[None, config["source_length"]]).numpy()
        target = target.to_tensor(shape=[None, config["target_length"] - 1]).numpy()
        rows = len(source)
        target_out = np.concatenate([target, np.zeros((rows, 1), target.dtype)], 1)
        target_out[np.arange(rows), (target > 0).sum(1)] = translation.END_ID
        arrays[f"{name}_source"] = source.astype(np.int16)
        arrays[f"{name}_target_in"] = np.concatenate([np.full((rows, 1), translation.START_ID), target],
                                                     1).astype(np.int16)
        arrays[f"{name}_target_out"] = target_out.astype(np.int16)
    np.savez_compressed(folder / "translate_ids.npz", **arrays,
                        source_vocab_size=preprocessing.source.vocabulary_size(),
                        target_vocab_size=preprocessing.target.vocabulary_size())
    (folder / "references.json").write_text(json.dumps({
        "target_tokens": preprocessing.target_tokens, "target_language": preprocessing.target_language,
        "validation_references": list(splits.validation["target"]), "train_targets": list(splits.train["target"])}))


def vocabulary_sizes(source: int, target: int):
    """What build_model reads of the preprocessing: the two vocabularies' sizes (the TextVectorization
    layers themselves need TensorFlow)."""
    return SimpleNamespace(source=SimpleNamespace(vocabulary_size=lambda: source),
                           target=SimpleNamespace(vocabulary_size=lambda: target))


def greedy(app, model, config: dict, source: np.ndarray) -> np.ndarray:
    """Greedy translations as ids [rows, target_length] (0 after the end), as the app decodes."""
    from keras import ops

    from pipelines import translation
    from rnn_apps import decoding

    out = np.zeros((len(source), config["target_length"]), np.int32)
    for start in range(0, len(source), app.decode_batch):
        batch = source[start: start + app.decode_batch]
        ids, _ = decoding.greedy(app.step(model), app.encoder(model)(batch), translation.START_ID,
                                 translation.END_ID, translation.output_limits(config, batch))
        ids = ops.convert_to_numpy(ids)
        out[start: start + len(batch), :ids.shape[1]] = ids
    return out


def train_recipe(name: str, folder: Path, out: Path, epochs: int):
    import keras

    from pipelines import translation
    from rnn_apps import registry
    from rnn_apps.layers import SparseCrossentropy

    data = dict(np.load(folder / "translate_ids.npz"))
    if os.environ.get("SWEEP_ROWS"):  # a smoke run: fewer rows, and SWEEP_SET's config overrides (JSON)
        data = {k: v[: int(os.environ["SWEEP_ROWS"])] if k.startswith(("train", "validation")) else v
                for k, v in data.items()}
    app = registry.get("translate")
    config = app.resolve_config(None, {**RECIPES[name], **json.loads(os.environ.get("SWEEP_SET", "{}"))})
    keras.utils.set_random_seed(0)
    model = app.build_model(config, vocabulary_sizes(int(data["source_vocab_size"]), int(data["target_vocab_size"])))
    app.compile(model, config)
    unsmoothed = SparseCrossentropy(0.0, from_logits=True, ignore_class=translation.PADDING_ID)
    train = ([data["train_source"].astype(np.int32), data["train_target_in"].astype(np.int32)],
             data["train_target_out"].astype(np.int32))
    validation = ([data["validation_source"].astype(np.int32), data["validation_target_in"].astype(np.int32)],
                  data["validation_target_out"].astype(np.int32))
    slug = "".join(c if c.isalnum() else "_" for c in name)
    rows, ids_by_epoch, start = [], {}, time.time()
    for epoch in range(1, epochs + 1):
        model.fit(*train, batch_size=config["batch_size"], epochs=1, shuffle=True, verbose=0)
        logits = model.predict(validation[0], batch_size=500, verbose=0)
        val_loss = float(unsmoothed(validation[1], logits))  # without label smoothing: recipes compare
        ids_by_epoch[f"epoch{epoch}"] = greedy(app, model, config, validation[0][0]).astype(np.int16)
        rows.append({"epoch": epoch, "val_loss": round(val_loss, 4), "seconds": round(time.time() - start, 1)})
        # One file a recipe, rewritten whole each epoch (the device returns at most 8 files); written
        # beside it and renamed, as a rename across filesystems (/tmp to OUT) can fail.
        partial = out / f"{slug}.partial.npz"
        np.savez_compressed(partial, curve=json.dumps({"recipe": name, "overrides": RECIPES[name], "epochs": rows}),
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
    references = refs["validation_references"]
    seen = set(refs["train_targets"])
    unseen = [i for i, r in enumerate(references) if r not in seen]
    table = {}
    for file in sorted(out.glob("*.npz")):
        stored = np.load(file)
        curve = json.loads(str(stored["curve"]))
        for row in curve["epochs"]:
            ids = stored[f"epoch{row['epoch']}"].astype(np.int64)
            ids = np.where(ids == translation.END_ID, 0, ids)
            tokens = np.where(ids > 0, vocabulary[ids], "")
            text = translation.detokenize(tf.constant(tokens.astype(str)), refs["target_language"]).numpy()
            hypotheses = [t.decode("utf-8") for t in text]
            row["bleu"] = round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2)
            row["bleu_unseen"] = round(sacrebleu.corpus_bleu([hypotheses[i] for i in unseen],
                                                             [[references[i] for i in unseen]]).score, 2)
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
        (ROOT / "bench" / "results" / "translate_sweep.json").write_text(json.dumps(result, indent=1) + "\n")
