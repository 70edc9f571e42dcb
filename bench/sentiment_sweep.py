"""Per-epoch SST-2 dev and test accuracy of one sentiment config variant, for choosing defaults
(choose on dev; test is printed only to report it). Fixed epochs, no early stopping, one model per
seed; with several seeds it also prints, per epoch, the accuracy of their averaged probabilities
(what `members=K` trains), so a variant can be judged as an ensemble member too.

    python bench/sentiment_sweep.py EPOCHS [--seeds 1,2,3] [KEY=VALUE ...]
    python bench/sentiment_sweep.py 2 --seeds 1,2,3,4,5 word_vectors=
"""

import argparse
import tempfile
import time

import common  # noqa: F401  (puts the repo on sys.path)
import keras
import numpy as np


def main():
    from pipelines import text
    from rnn_apps import registry
    from rnn_apps.config import parse_assignments

    parser = argparse.ArgumentParser()
    parser.add_argument("epochs", type=int)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("assignments", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_intermixed_args()
    overrides = parse_assignments(args.assignments)
    app = registry.get("sentiment")
    config = app.resolve_config(None, overrides)
    splits = app.load_data("sst2", common.DATA_ROOT, config, {}).capped(config["max_examples"], config["seed"])
    preprocessing = app.fit_preprocessing(splits, config, tempfile.mkdtemp())

    def padded(columns):
        return text.padded_ids(preprocessing.vectorizer, columns["text"], config["max_length"]), columns["label"]

    (dev_x, dev_y), (test_x, test_y) = padded(splits.validation), padded(splits.test)
    probabilities = {}  # epoch -> list of (dev, test) probabilities, one per seed
    for seed in (int(s) for s in args.seeds.split(",")):
        seeded = {**config, "seed": seed}
        keras.utils.set_random_seed(seed)
        train = app.dataset(splits.train, preprocessing, seeded, shuffle_seed=seed)
        model = app.build_model(seeded, preprocessing)
        app.compile(model, seeded)
        print(overrides, "seed", seed, "parameters", model.count_params(), flush=True)
        for epoch in range(1, args.epochs + 1):
            start = time.time()
            history = model.fit(train, epochs=1, verbose=0)
            seconds = time.time() - start
            app.after_training(model, seeded, preprocessing)  # as `rnn-apps train` does with each best model
            dev, test = (model.predict(x, batch_size=256, verbose=0) for x in (dev_x, test_x))
            probabilities.setdefault(epoch, []).append((dev, test))
            print(f"seed {seed} epoch {epoch} {seconds:.0f}s train_acc {history.history['accuracy'][0]:.4f} "
                  f"dev_acc {(dev.argmax(-1) == dev_y).mean():.4f} test_acc {(test.argmax(-1) == test_y).mean():.4f}",
                  flush=True)
    for epoch, pairs in probabilities.items():
        if len(pairs) > 1:
            dev, test = (np.mean(p, axis=0) for p in zip(*pairs, strict=True))
            print(f"average of {len(pairs)} seeds, epoch {epoch}: dev_acc {(dev.argmax(-1) == dev_y).mean():.4f} "
                  f"test_acc {(test.argmax(-1) == test_y).mean():.4f}")


if __name__ == "__main__":
    main()
