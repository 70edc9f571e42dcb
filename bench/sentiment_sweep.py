"""Per-epoch SST-2 dev and test accuracy of one sentiment config variant, for choosing defaults
(choose on dev; test is printed only to report it). Fixed epochs, no early stopping.

    python bench/sentiment_sweep.py EPOCHS [KEY=VALUE ...]
    python bench/sentiment_sweep.py 4 embedding_dim=64 units=64 word_dropout=0.25

Prints one line per epoch: seconds, train accuracy (phrases), dev accuracy, dev loss, test accuracy.
"""

import sys
import tempfile
import time

import common  # noqa: F401  (puts the repo on sys.path)
import keras


def main():
    from rnn_apps import registry
    from rnn_apps.config import parse_assignments

    epochs, overrides = int(sys.argv[1]), parse_assignments(sys.argv[2:])
    app = registry.get("sentiment")
    config = app.resolve_config(None, overrides)
    keras.utils.set_random_seed(config["seed"])
    splits = app.load_data("sst2", common.DATA_ROOT, config, {})
    preprocessing = app.fit_preprocessing(splits, config, tempfile.mkdtemp())
    train = app.dataset(splits.train, preprocessing, config, shuffle_seed=config["seed"])
    dev, test = (app.dataset(splits[s], preprocessing, config) for s in ("validation", "test"))
    model = app.build_model(config, preprocessing)
    app.compile(model, config)
    print(overrides, "parameters", model.count_params(), flush=True)
    for epoch in range(1, epochs + 1):
        start = time.time()
        history = model.fit(train, epochs=1, verbose=0)
        seconds = time.time() - start
        d, t = (model.evaluate(ds, verbose=0, return_dict=True) for ds in (dev, test))
        print(f"epoch {epoch} {seconds:.0f}s train_acc {history.history['accuracy'][0]:.4f} "
              f"dev_acc {d['accuracy']:.4f} dev_loss {d['loss']:.4f} test_acc {t['accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
