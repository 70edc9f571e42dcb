"""Which charlm training choices help, at the number of training steps the default config gets
on 2 CPU cores: a sweep run on a GPU (the `device` machine: Keras on JAX, no TensorFlow) of the
app's own model, `rnn_apps/apps/charlm.py` (`build_model`, `compile`, its config with each
recipe's overrides), on the app's own split of the text (pipelines/characters.py: 90/5/5) and
windows (`window_arrays`). Nothing here restates the model: a change to the app is what the sweep
measures.

Each recipe trains from seed 0 on shuffled windows (as `rnn-apps train`), and every EVERY steps
reports its validation loss two ways: per window from a fresh state (`model.evaluate`) and over
the whole validation text, batch 1, the state carried from window to window (the app's `Reader`,
as `rnn-apps evaluate` reads). Choices are made on validation only (bench/RESULTS.md, the
protocol). Steps, not minutes, are what transfer between machines: read each curve at the step
count the CPU reaches.

    KERAS_BACKEND=jax python bench/charlm_sweep_gpu.py DATA/input.txt OUT.json first|second [STEPS [EVERY]]
    (earlier results, from the JAX twin this replaced: bench/results/charlm_sweep_first.json, _second.json)
"""

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import common  # noqa: E402,F401 -- puts the repository on sys.path
import keras  # noqa: E402
import numpy as np  # noqa: E402

from pipelines import characters  # noqa: E402
from rnn_apps import registry  # noqa: E402
from rnn_apps.apps import charlm  # noqa: E402
from rnn_apps.families import language_model  # noqa: E402

# recipe name -> the app's config keys it changes from the default
SWEEPS = {"first": {
    "constant rate, no dropout": {"lr_half_life_steps": 0, "dropout": 0.0},
    "half-life 600": {"lr_half_life_steps": 600, "dropout": 0.0},
    "half-life 600, dropout 0.1": {"lr_half_life_steps": 600, "dropout": 0.1},
    "half-life 600, dropout 0.2": {"lr_half_life_steps": 600, "dropout": 0.2},
    "half-life 1000, dropout 0.1": {"lr_half_life_steps": 1000, "dropout": 0.1},
    "half-life 600, dropout 0.1, identity init": {"lr_half_life_steps": 600, "dropout": 0.1,
                                                  "recurrent_initializer": "identity"},
}, "second": {
    "default": {},
    "half-life 1000, dropout 0.05": {"lr_half_life_steps": 1000, "dropout": 0.05},
    "half-life 2000, dropout 0.05": {"lr_half_life_steps": 2000, "dropout": 0.05},
    "rate 3e-3, half-life 1000": {"learning_rate": 3e-3, "lr_half_life_steps": 1000},
}}


def carried_loss(model, ids: np.ndarray) -> float:
    """Nats per character over a whole text, batch 1, the state carried (as evaluate reads it)."""
    reader, states, total = language_model.Reader(model), None, 0.0
    states = reader.zero_states(1)
    for start in range(0, len(ids) - 1, language_model.READ_WINDOW):
        chunk = ids[start: start + language_model.READ_WINDOW + 1]
        logits, states = reader(chunk[None, :-1], states)
        total += float(keras.ops.sum(keras.losses.sparse_categorical_crossentropy(chunk[None, 1:], logits,
                                                                                  from_logits=True)))
    return total / (len(ids) - 1)


def sweep_one(name: str, overrides: dict, splits, steps: int, every: int) -> list:
    app = registry.get("charlm")
    keras.utils.set_random_seed(0)
    config = app.resolve_config(None, overrides)
    preprocessing = charlm.Preprocessing(characters.build_vocabulary(splits.train["text"][0]))
    train = characters.ids_of(splits.train["text"][0], preprocessing.vocabulary)
    validation = characters.ids_of(splits.validation["text"][0], preprocessing.vocabulary)
    inputs, targets = characters.window_arrays(train, config["window"])
    val_inputs, val_targets = characters.window_arrays(validation, config["window"])
    model = app.build_model(config, preprocessing)
    app.compile(model, config)
    rng, batch, done, curve, start = np.random.default_rng(0), config["batch_size"], 0, [], time.time()
    order = np.zeros(0, int)
    while done < steps:
        chunk = min(every, steps - done)
        while len(order) < chunk * batch:  # epochs of shuffled windows, back to back
            order = np.concatenate([order, rng.permutation(len(inputs))[: len(inputs) // batch * batch]])
        picked, order = order[: chunk * batch], order[chunk * batch:]
        history = model.fit(inputs[picked], targets[picked], batch_size=batch, epochs=1, shuffle=False, verbose=0)
        done += chunk
        fresh = model.evaluate(val_inputs, val_targets, batch_size=batch, verbose=0)
        curve.append({"step": done, "train_loss": round(float(history.history["loss"][-1]), 4),
                      "val_fresh": round(float(fresh), 4), "val_carried": round(carried_loss(model, validation), 4),
                      "seconds": round(time.time() - start, 1)})
        print(name, curve[-1], flush=True)
    return curve


def main(path, out, sweep="first", steps=3000, every=250):
    import jax

    splits = characters.load(str(path), None)
    results = {"device": str(jax.devices()[0]), "steps": steps, "sweep": sweep, "runs": {}}
    for name, overrides in SWEEPS[sweep].items():
        results["runs"][name] = {"overrides": overrides,
                                 "curve": sweep_one(name, overrides, splits, steps, every)}
        Path(out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], *(int(a) for a in sys.argv[4:]))
