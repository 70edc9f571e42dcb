"""Soak: many requests mixing valid and hostile inputs through every exported app's SavedModel
signatures and TFLite signature runners, in one long-lived process, as a server or a phone app is.

Inputs are made from each signature's own input spec, so every registered app is covered without
code of its own here: strings (real SST-2 test sentences, empty, whitespace, 1 MB, invalid UTF-8,
emoji, control characters, other scripts), float rows (in range, NaN, ±inf, 1e30, negative),
images (0x0 to 600x600, 1/3/4 channels, at most 4 a request), token ids (in range, negative, past
the vocabulary, INT32_MAX); a decoder step's state and encoder outputs get values in the range the
model itself produces, since they come from the previous step, not from a client. Batches of 0 to
1,000 for the SavedModel (at most 32 where a signature decodes sequences), 1 for TFLite; requests
go round-robin over the apps, and within an app over its signatures. Each answer must have the
batch's length and finite numbers; probabilities must sum to 1. Resident memory (VmRSS) is read
after the warm-up (the first 10% of requests) and at the end: the growth between them is what a
leak would show.

    python bench/soak.py [--exports EXPORT_ROOT] [--requests 20000] [--seed 0]

Apps missing from the export root are trained and exported first (bench/common.py). Writes
bench/results/soak.json.
"""

import argparse
import json
import time

import common
import numpy as np

HOSTILE_TEXTS = ["", "   ", "\t\n", "😀" * 50, "good " * 200_000, "x" * 100_000, "\x00\x01\x02 control",
                 "mixed Ελληνικά русский 中文 عربى text", "‮reversed‬", "<script>alert(1)</script>"]
HOSTILE_BYTES = [b"\xff\xfe\xfd invalid utf-8", b"\xc3\x28", b"good \xe2\x82 film"]
HOSTILE_NUMBERS = [np.nan, np.inf, -np.inf, 1e30, -1e30, -5.0]
# SavedModel batch sizes and how often each is drawn (sorted by size).
BATCHES = [(0, 0.02), (1, 0.3), (2, 0.2), (8, 0.2), (32, 0.14), (64, 0.1), (300, 0.03), (1000, 0.01)]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


class Inputs:
    """Random valid and hostile values for a (dtype, shape) input spec; -1/None = any size."""

    def __init__(self, seed: int, sentences: list):
        self.rng, self.sentences = np.random.default_rng(seed), sentences

    def text(self):
        roll = self.rng.random()
        if roll < 0.6:
            return self.sentences[self.rng.integers(len(self.sentences))].encode()
        if roll < 0.9:
            return HOSTILE_TEXTS[self.rng.integers(len(HOSTILE_TEXTS))].encode("utf-8", "surrogatepass")
        return HOSTILE_BYTES[self.rng.integers(len(HOSTILE_BYTES))]

    def numbers(self, shape, dtype, high):
        values = self.rng.uniform(0, high, shape).astype(dtype)
        if self.rng.random() < 0.4 and values.size:
            flat = values.reshape(-1)
            hits = self.rng.integers(0, flat.size, max(1, flat.size // 10))
            flat[hits] = self.rng.choice(HOSTILE_NUMBERS, len(hits))
        return values

    def ids(self, shape, vocabulary: int):
        ids = self.rng.integers(0, vocabulary, shape)
        if self.rng.random() < 0.3 and ids.size:  # (a batch of 0 has no column to spoil)
            ids[..., self.rng.integers(shape[-1])] = self.rng.choice([-1, -5000, vocabulary, 2**31 - 1])
        if self.rng.random() < 0.1:
            ids[:] = 0  # all padding
        return ids.astype(np.int32)

    def scalar(self, spec_dtype: str):
        """A request-wide option (charlm's length, temperature, top_k, seed): mostly ordinary,
        sometimes negative, huge or not a number. Huge lengths are rare: each costs the signature's
        full bound of decoding steps."""
        if spec_dtype.startswith("int"):
            return np.array(self.rng.choice([0, 1, 7, 40, 300, -3, 2**31 - 1], p=[.1, .2, .3, .2, .1, .09, .01]),
                            dtype=spec_dtype)
        return np.array(self.rng.choice([0.0, 0.5, 1.0, 10.0, -1.0, np.inf, np.nan]), dtype=spec_dtype)

    def batch(self, spec_dtype: str, spec_shape: list, batch: int, vocabulary: int, hostile: bool = True):
        if not spec_shape:
            return self.scalar(spec_dtype)
        if spec_dtype == "string" and len(spec_shape) == 2:  # pre-tokenised input (tagger): "" pads
            width = int(self.rng.integers(0, 12))
            tokens = np.empty((batch, width), dtype=object)
            for i in range(batch):
                words = self.text().split()[:width]
                tokens[i] = words + [b""] * (width - len(words))
            return tokens
        if spec_dtype == "string":
            return np.array([self.text() for _ in range(batch)], dtype=object)
        shape = [batch] + [d if d not in (-1, None) else None for d in spec_shape[1:]]
        if len(shape) > 2 and shape[1] is None and None not in shape[2:]:  # sequences of frames, any length
            shape[1] = int(self.rng.choice([0, 1, 50, 400]))
        if None in shape:  # images [batch, height, width, channels] of any size, at most 4 a request
            h, w = (int(v) for v in self.rng.choice([0, 1, 8, 28, 300, 600], 2))
            shape = [min(batch, 4), h, w, int(self.rng.choice([1, 3, 4]))]
        if spec_dtype == "int32":
            return self.ids(shape, vocabulary)
        if spec_dtype == "uint8":
            return self.rng.integers(0, 256, shape).astype(np.uint8)
        if not hostile:  # a decoder's state between steps: what the previous step gave (tanh range)
            return self.rng.uniform(-1, 1, shape).astype(spec_dtype)
        return self.numbers(shape, spec_dtype, 16.0)


def check(outputs: dict, batch: int) -> str | None:
    """Why an answer is wrong, or None."""
    for name, value in outputs.items():
        value = np.asarray(value)
        if value.shape[:1] != (batch,):
            return f"{name}: shape {value.shape} for a batch of {batch}"
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            return f"{name}: not finite"
    # a distribution over classes sums to 1, except on padding steps, zero by definition (frames);
    # tagger's `probabilities` is each token's chosen-tag probability, not a distribution
    if "probabilities" in outputs and batch and "tag_ids" not in outputs:
        sums = np.asarray(outputs["probabilities"]).sum(-1)
        sums = sums[sums != 0]
        if sums.size and not np.allclose(sums, 1.0, atol=1e-4):
            return f"probabilities sum to {sums.min()}..{sums.max()}"
    return None


def targets(root):
    """(app, label, call, [(input name, dtype, shape)], vocabulary size, [(batch size, weight)]) for
    every signature of the newest export of every model in the root."""
    import tensorflow as tf

    from export import exporter, tflite

    latest = {}
    for entry in exporter.read_manifest(root)["exports"]:
        if entry["version"] >= latest.get(entry["model_name"], {"version": 0})["version"]:
            latest[entry["model_name"]] = entry
    found = []
    for name, entry in sorted(latest.items()):
        for artefact in entry["artefacts"]:
            path = root / artefact["path"]
            vocab_file = next((path.with_name(n) for n in ("vocab.txt", "source_vocab.txt", "target_vocab.txt",
                                                           "vocabulary.json")
                               if path.with_name(n).exists()), None) if artefact["kind"] == "tflite" else None
            if vocab_file is None:
                vocabulary = 1
            elif vocab_file.suffix == ".json":  # charlm: a JSON list of characters
                vocabulary = len(json.loads(vocab_file.read_text(encoding="utf-8")))
            else:
                vocabulary = len(vocab_file.read_text(encoding="utf-8").split("\n")) - 1
            if artefact["kind"] == "saved_model":
                loaded = tf.saved_model.load(str(path))
                for signature, spec in artefact["signatures"].items():
                    fn = loaded.signatures[signature]
                    inputs = [(k, v["dtype"], v["shape"]) for k, v in spec["inputs"].items()]
                    # A signature that writes sequences (it reports their lengths) costs a decoding
                    # loop per row: its requests stay at most 32 rows, so the soak ends in minutes.
                    batches = BATCHES[:5] if "lengths" in spec["outputs"] else BATCHES
                    found.append((name, f"{name} SavedModel {signature}", _saved_model_call(fn), inputs, vocabulary,
                                  batches, loaded))  # the loaded object is kept alive with it
            else:
                interpreter = tflite.interpreter(path)
                for signature, spec in artefact["signatures"].items():
                    runner = interpreter.get_signature_runner(signature)
                    inputs = [(k, v["dtype"], v["shape"]) for k, v in spec["inputs"].items()]
                    found.append((name, f"{name} TFLite {signature}", runner, inputs, vocabulary, [(1, 1.0)]))
    return found


def _saved_model_call(fn):
    import tensorflow as tf

    def call(**inputs):
        return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in inputs.items()}).items()}

    return call


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--exports", help="export root; apps it lacks are trained and exported into it first")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from pipelines import text_classification

    root = common.exports_root(args.exports)
    sentences = list(text_classification.load("sst2", common.DATA_ROOT, 0).test["text"])
    make = Inputs(args.seed, sentences)
    found = targets(root)
    per_target = {t[1]: {"requests": 0, "failures": 0, "examples": 0, "seconds": 0.0} for t in found}
    failures, warm_rss, peak_rss = [], None, 0.0
    start = time.time()
    apps = sorted({t[0] for t in found})
    by_app = {app: [t for t in found if t[0] == app] for app in apps}
    for i in range(args.requests):
        # Round-robin over the apps, and within each app over its signatures.
        app_targets = by_app[apps[i % len(apps)]]
        _, label, call, inputs, vocabulary, batches = app_targets[(i // len(apps)) % len(app_targets)][:6]
        sizes, weights = zip(*batches, strict=True)
        batch = int(make.rng.choice(sizes, p=np.array(weights) / sum(weights)))
        # A step signature's state inputs (state_i, encoder outputs) come from the model itself, not
        # from a client: they get values of the range the model produces; its token id, or the
        # frame a camera gives it, is hostile.
        step = label.endswith("step")
        request = {name: make.batch(dtype, shape, batch, vocabulary, not step or name in ("token", "frame"))
                   for name, dtype, shape in inputs}
        batch = next(len(v) for v in request.values() if np.ndim(v))  # scalar options (charlm's length) aside
        t = time.time()
        try:
            why = check(call(**request), batch)
        except Exception as e:  # what the soak is for: any failure is counted, not raised
            why = f"{type(e).__name__}: {str(e)[:200]}"
        stats = per_target[label]
        stats["seconds"] += time.time() - t
        stats["requests"] += 1
        stats["examples"] += batch
        if why:
            stats["failures"] += 1
            failures.append({"request": i, "target": label, "why": why})
        if i + 1 == args.requests // 10:
            warm_rss = rss_mb()
        peak_rss = max(peak_rss, rss_mb()) if i % 100 == 0 else peak_rss
        if (i + 1) % 1000 == 0:
            print(f"{i + 1} requests, {len(failures)} failures, RSS {rss_mb():.0f} MB, {time.time() - start:.0f} s",
                  flush=True)
            # written as it goes: a soak of hours that is stopped still leaves what it measured
            write(args, root, i + 1, failures, warm_rss, peak_rss, start, per_target)
    write(args, root, args.requests, failures, warm_rss, peak_rss, start, per_target)


def write(args, root, done: int, failures: list, warm_rss, peak_rss: float, start: float, per_target: dict):
    end_rss = rss_mb()
    common.write("soak", {
        "exports": str(root), "requests": args.requests, "requests_done": done, "finished": done == args.requests,
        "failures": len(failures), "first_failures": failures[:20],
        "rss_after_warmup_mb": round(warm_rss, 1) if warm_rss else None, "rss_end_mb": round(end_rss, 1),
        "rss_growth_after_warmup_mb": round(end_rss - warm_rss, 1) if warm_rss else None,
        "rss_peak_mb": round(max(peak_rss, end_rss), 1), "seconds": round(time.time() - start, 1),
        "targets": {k: {**v, "seconds": round(v["seconds"], 1)} for k, v in per_target.items()},
    })


if __name__ == "__main__":
    main()
