"""A run folder (RUN_DIR) and what `rnn-apps train` writes into it:

  run.json            app, data spec and where it resolved, label names, options
  config.json         the resolved config
  vocab.txt, ...      preprocessing learned from the training split (the app decides)
  parity_examples.npz the first test examples, raw: what export checks parity on
  checkpoints/        last.keras (every epoch, with optimizer state, for --resume), best.keras
  state.json          epochs done, best validation loss, epochs without improvement
  logs/               TensorBoard
  metrics.json        training history, best epoch, and test metrics once evaluated
  per_example_*.json  what evaluate counted per example (bench's bootstrap intervals)
"""

import base64
import copy
import dataclasses
import hashlib
import json
from functools import cached_property
from pathlib import Path

import keras
import numpy as np

from foundation.errors import UserError
from foundation.files import write_json
from rnn_apps import config as config_lib
from rnn_apps import registry

RUN_FILE, CONFIG_FILE, STATE_FILE, METRICS_FILE = "run.json", "config.json", "state.json", "metrics.json"
PARITY_FILE, PARITY_EXAMPLES = "parity_examples.npz", 64
PER_EXAMPLE_FILE = "per_example_{split}.json"  # evaluate's per-example parts of its metrics
BASE64 = ".base64"  # the suffix of a bytes column's name in PARITY_FILE


def save_parity_examples(run_dir: Path, test_columns: dict):
    """The first PARITY_EXAMPLES raw test examples, kept with the run so that export checks parity
    without reading the data again (a run trained on TFDS exports offline)."""
    columns = {}
    for key, values in test_columns.items():
        values = np.asarray(values[:PARITY_EXAMPLES])
        if values.dtype == object and len(values) and isinstance(values[0], bytes):  # encoded images
            columns[key + BASE64] = np.array([base64.b64encode(v).decode("ascii") for v in values])
        else:
            columns[key] = values.astype(str) if values.dtype == object else values  # no pickles on disk
    np.savez(Path(run_dir) / PARITY_FILE, **columns)


def fingerprint(columns: dict) -> str:
    """A short hash of a split's raw columns: two evaluations read the same examples if and only if
    their fingerprints are equal (bench pairs its bootstrap draws across seeds on it)."""
    digest = hashlib.sha256()
    for key in sorted(columns):
        values = np.asarray(columns[key])
        digest.update(key.encode())
        digest.update(values.tobytes() if values.dtype != object else repr(values.tolist()).encode())
    return digest.hexdigest()[:16]


def _stored_column(stored, key: str) -> tuple:
    """One column of parity_examples.npz as the sources give it: text as object arrays of str,
    bytes (stored as base64 text) as object arrays of bytes."""
    values = stored[key]
    if key.endswith(BASE64):
        column = np.empty(len(values), dtype=object)
        column[:] = [base64.b64decode(v) for v in values]
        return key.removesuffix(BASE64), column
    return key, values.astype(object) if values.dtype.kind == "U" else values


def read_json(path: Path, default=None):
    if not path.exists() and default is not None:
        return default
    return config_lib.load(path)


# run.json: key -> (type, what it holds), for the message when a file is damaged.
RUN_INFO_KEYS = {"app": (str, "the app's name"), "data": (str, "the --data it trained on"),
                 "options": (dict, "data options"), "label_names": (list, "the label names")}


def read_run_info(path: Path) -> dict:
    info = read_json(path)
    if not isinstance(info, dict):
        raise UserError(f"{path} holds {type(info).__name__}, not a run object; the run folder is damaged")
    for key, (kind, meaning) in RUN_INFO_KEYS.items():
        if not isinstance(info.get(key), kind):
            raise UserError(f"{path}: {key!r} ({meaning}) is missing or not a {kind.__name__}; "
                            "the run folder is damaged")
    return info


class Run:
    def __init__(self, run_dir):
        self.dir = Path(run_dir)
        if self.dir.exists() and not self.dir.is_dir():
            raise UserError(f"{self.dir} is a file, not a run folder (the --out folder `rnn-apps train` wrote)")
        if not self.dir.is_dir():
            raise UserError(f"run folder {self.dir} does not exist; "
                            f"train one with `rnn-apps train APP --out {self.dir}`")
        self.info = read_run_info(self.dir / RUN_FILE)
        self.app = registry.get(self.info["app"])
        self.config = self.app.stored_config(read_json(self.dir / CONFIG_FILE), self.dir / CONFIG_FILE)
        self.label_names = self.info["label_names"]
        self.member_index = None  # set on the run member() returns

    @property
    def checkpoints(self) -> Path:
        return self.dir / "checkpoints"

    @cached_property
    def preprocessing(self):
        try:
            return self.app.load_preprocessing(self.dir, self.config)
        except (OSError, ValueError) as e:
            raise UserError(f"preprocessing files in {self.dir} are unreadable ({e}); retrain this run") from None

    @cached_property
    def model(self) -> keras.Model:
        model = load_model(self.checkpoints / "best.keras")
        self.app.check_model(model, self)
        return self.app.for_inference(model, self)

    def traced(self, key, make):
        """tf.function(make()), traced once per loaded run and key: predict's chunks of input and
        repeated calls reuse one graph instead of tracing (and keeping) a new one each time."""
        import tensorflow as tf

        cache = self.__dict__.setdefault("_traced", {})
        if key not in cache:
            cache[key] = tf.function(make(), reduce_retracing=True)
        return cache[key]

    def member(self, index) -> "Run":
        """Member `index` (or "best": the best on validation) of an ensemble run, as a run of its
        own: its best checkpoint with the run's preprocessing and data (a phone-sized export)."""
        count = self.config["members"]
        if count == 1:
            raise UserError(f"{self.dir} is one model, not an ensemble; --member is for runs with members > 1")
        if index == "best":
            scores = [m.get("best") for m in self.metrics().get("members", [])]
            if len(scores) != count or None in scores:
                raise UserError(f"{self.dir / METRICS_FILE} lacks the members' validation scores; name a member "
                                f"0..{count - 1}")
            index = int(np.argmin(scores) if self.config["monitor"].endswith("loss") else np.argmax(scores))
        if not isinstance(index, int) or not 0 <= index < count:
            raise UserError(f"--member {index}: this ensemble has members 0..{count - 1} (or 'best')")
        member = copy.copy(self)
        member.config = {**self.config, "members": 1, "seed": config_lib.member_seed(self.config, index)}
        member.member_index, member.ensemble_size = index, count
        model = load_model(self.dir / "members" / str(index) / "checkpoints" / "best.keras")
        self.app.check_model(model, member)
        member.__dict__["model"] = self.app.for_inference(model, member)  # the cached_property's slot
        return member

    def load_data(self):
        from pipelines.splits import default_data_root

        # where the data was at training time; a run moved to another machine finds it where this one keeps it
        data_root = self.info.get("data_root")
        if data_root is None or not Path(data_root).is_dir():
            data_root = default_data_root() or data_root
        splits = self.app.load_data(self.info["data"], data_root, self.config, self.info["options"])
        return splits.capped(self.config["max_examples"], self.config["seed"])

    def evaluate(self, split: str = "test", **options) -> dict:
        """The app's metrics on `split` ("validation": what every choice is made on; "test": read once
        per frozen configuration, bench/RESULTS.md), stored in metrics.json under the split's name."""
        splits = self.load_data()
        if split == "validation":  # every app's evaluate reads splits.test
            splits = dataclasses.replace(splits, test=splits.validation)
        metrics = self.app.evaluate(self, splits, **options)
        per_example = metrics.pop("per_example", None)
        path = self.dir / PER_EXAMPLE_FILE.format(split=split)
        if per_example is not None:
            write_json(path, {"examples": fingerprint(splits.test), "metrics": per_example})
        else:  # never another evaluation's parts under this one's name
            path.unlink(missing_ok=True)
        self.update_metrics(**{split: metrics})
        return metrics

    def per_example(self, split: str) -> dict:
        """What the last `evaluate(split)` gave per example ({} if nothing): bench's bootstrap reads it."""
        path = self.dir / PER_EXAMPLE_FILE.format(split=split)
        return json.loads(path.read_text()) if path.exists() else {}

    def parity_examples(self) -> dict:
        """What save_parity_examples stored (text as object arrays of str, as the sources give it);
        for a run from before it, the test split read again."""
        path = self.dir / PARITY_FILE
        if not path.exists():
            return {k: v[:PARITY_EXAMPLES] for k, v in self.load_data().test.items()}
        try:
            with np.load(path, allow_pickle=False) as stored:
                return dict(_stored_column(stored, k) for k in stored)
        except (OSError, ValueError) as e:
            raise UserError(f"{path} is unreadable ({e}); the run folder is damaged") from None

    def metrics(self) -> dict:
        """What metrics.json holds; a damaged file counts as empty, since the run rewrites it whole."""
        try:
            metrics = read_json(self.dir / METRICS_FILE, default={})
        except UserError:
            return {}
        return metrics if isinstance(metrics, dict) else {}

    def update_metrics(self, **values):
        write_json(self.dir / METRICS_FILE, {**self.metrics(), **values})


def load_model(path: Path) -> keras.Model:
    if not path.exists():
        raise UserError(f"checkpoint {path} is missing; train (or --resume) this run first")
    try:
        return keras.models.load_model(path)
    except Exception as e:  # Keras raises many types for a damaged zip/h5 file
        raise UserError(f"checkpoint {path} is unreadable ({type(e).__name__}); retrain or restore it") from None
