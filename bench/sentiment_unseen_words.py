"""What placing unseen words is worth: SST-2 dev and test accuracy of the default sentiment model
when the vocabulary holds the first N GloVe words outside the training vocabulary (rows placed by
`word_vectors.place_unseen_words`), for several N, from the same trained models (one per seed):
ids past the first N such words are read as the unknown token. Also the 3-seed average (what
`members` trains). Choose N on dev; test is printed only to report it.

    python bench/sentiment_unseen_words.py [--seeds 1,2,3] [--sizes 0,10000,25000,50000,100000,400000]
"""

import argparse
import tempfile

import common  # noqa: F401  (puts the repo on sys.path)
import keras
import numpy as np


def main():
    from pipelines import text
    from rnn_apps import registry

    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--sizes", default="0,10000,25000,50000,100000,400000")
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]
    app = registry.get("sentiment")
    config = app.resolve_config(None, {"word_vectors_unseen_words": max(sizes)})
    splits = app.load_data("sst2", common.DATA_ROOT, config, {})
    preprocessing = app.fit_preprocessing(splits, config, tempfile.mkdtemp())
    seen = preprocessing.training_words

    def padded(columns):
        return text.padded_ids(preprocessing.vectorizer, columns["text"], config["max_length"]), columns["label"]

    (dev_x, dev_y), (test_x, test_y) = padded(splits.validation), padded(splits.test)

    def unknown_past(ids, n):  # the vocabulary as if it held only the first n unseen words
        return np.where(ids >= seen + n, 1, ids)

    for n in sizes:
        print(f"N={n}: unknown tokens dev {(unknown_past(dev_x, n) == 1).sum()} test "
              f"{(unknown_past(test_x, n) == 1).sum()}")
    probabilities = {n: [] for n in sizes}
    for seed in (int(s) for s in args.seeds.split(",")):
        seeded = {**config, "seed": seed}
        keras.utils.set_random_seed(seed)
        model = app.build_model(seeded, preprocessing)
        app.compile(model, seeded)
        model.fit(app.dataset(splits.train, preprocessing, seeded, shuffle_seed=seed),
                  epochs=config["epochs"], verbose=0)
        app.after_training(model, seeded, preprocessing)
        for n in sizes:
            dev, test = (model.predict(unknown_past(x, n), batch_size=256, verbose=0) for x in (dev_x, test_x))
            probabilities[n].append((dev, test))
            print(f"seed {seed} N={n}: dev_acc {(dev.argmax(-1) == dev_y).mean():.4f} "
                  f"test_acc {(test.argmax(-1) == test_y).mean():.4f}", flush=True)
    for n, pairs in probabilities.items():
        dev, test = (np.mean(p, axis=0) for p in zip(*pairs, strict=True))
        singles = np.mean([[(d.argmax(-1) == dev_y).mean(), (t.argmax(-1) == test_y).mean()] for d, t in pairs], 0)
        print(f"N={n}: single models dev {singles[0]:.4f} test {singles[1]:.4f}; average of {len(pairs)}: "
              f"dev {(dev.argmax(-1) == dev_y).mean():.4f} test {(test.argmax(-1) == test_y).mean():.4f}")


if __name__ == "__main__":
    main()
