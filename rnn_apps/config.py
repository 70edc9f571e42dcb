"""Run configuration: plain dicts of defaults declared by each app, a few named presets, overrides.

Unknown keys are rejected, every value must have the type of its default (an integer is never
silently truncated: `units=1.5` is an error), and every value must lie in its range (`CHECKS`
here, plus each app's `config_checks`), so a typo or a nonsense value fails with one line before
anything is built. The resolved config is written to RUN_DIR/config.json and checked the same way
when a run is loaded.
"""

import json
import math
from pathlib import Path

from foundation.errors import UserError

# Keys every app understands; an app's own CONFIG adds to (or overrides) these.
COMMON = {
    "epochs": 10,
    "batch_size": 64,
    "max_examples": 0,  # 0 = all; otherwise caps every split (smoke runs, tests)
    "seed": 0,
    "learning_rate": 1e-3,
    # > 0: the learning rate halves every this many training steps (a smooth exponential decay);
    # 0 = constant. Under a time budget a decaying rate gets more out of the last epochs.
    "lr_half_life_steps": 0,
    "monitor": "val_loss",  # validation metric that picks best.keras and drives early stopping
    "patience": 3,  # epochs without improvement of `monitor` before training stops
    # XLA. Off by default: training steps then run the SimpleRNN recurrence as the C++ op of
    # rnn_apps/kernels, which XLA cannot compile, and which made sentiment's training steps faster
    # than XLA did (bench/RESULTS.md, "Performance"). Sentiment and translate
    # keep XLA for what their benchmarks measured with it (their configs say why).
    "jit_compile": False,
    "units": 128,
    "depth": 1,
    "bidirectional": False,
    "dropout": 0.0,
    "weight_decay": 0.0,  # AdamW's decoupled weight decay
    "label_smoothing": 0.0,
    "members": 1,  # >1: a deep ensemble of that many models (seeds from member_seed), probabilities averaged
    # > 0: training stops after this many minutes (all members together), mid-epoch if need be:
    # that epoch is then validated and checkpointed as usual. 0 = only `epochs` and `patience` stop it.
    "max_train_minutes": 0.0,
    # > 0: a model's training stops after this many optimizer steps, mid-epoch if need be: a budget
    # that gives the same model on every machine (the defaults use it or epochs, not minutes).
    "max_train_steps": 0,
}


class Range:
    """What a value must be, in words (for the error message) and as a test."""

    def __init__(self, says: str, test):
        self.says, self.test = says, test

    def __call__(self, value) -> bool:
        try:
            return bool(self.test(value))
        except TypeError:
            return False


def at_least(n: int) -> Range:
    return Range(f"an integer >= {n}", lambda v: v >= n)


def one_of(*values) -> Range:
    return Range(f"one of {', '.join(map(str, values))}", lambda v: v in values)


POSITIVE = at_least(1)
NON_NEGATIVE = at_least(0)
FRACTION = Range("a number >= 0 and < 1", lambda v: 0 <= v < 1)
POSITIVE_NUMBER = Range("a finite number > 0", lambda v: math.isfinite(v) and v > 0)
NON_NEGATIVE_NUMBER = Range("a finite number >= 0", lambda v: math.isfinite(v) and v >= 0)

CHECKS = {
    "epochs": POSITIVE,
    "batch_size": POSITIVE,
    "max_examples": NON_NEGATIVE,
    "seed": NON_NEGATIVE,  # numpy's generators refuse negative seeds
    "learning_rate": POSITIVE_NUMBER,
    "lr_half_life_steps": NON_NEGATIVE,
    "patience": NON_NEGATIVE,
    "units": POSITIVE,
    "depth": POSITIVE,
    "dropout": FRACTION,
    "weight_decay": NON_NEGATIVE_NUMBER,
    "label_smoothing": FRACTION,
    "members": POSITIVE,
    "max_train_minutes": NON_NEGATIVE_NUMBER,
    "max_train_steps": NON_NEGATIVE,
}


def _cast(key: str, value, default):
    """`value` (a string from the command line, or a JSON/Python value) as the type of `default`."""
    expected = type(default).__name__
    if isinstance(value, str) and not isinstance(default, str):
        text = value.strip()
        if isinstance(default, bool):
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise UserError(f"config {key}: expected true/false, got {value!r}")
        try:
            value = json.loads(text)
        except ValueError:
            raise UserError(f"config {key}: expected {expected}, got {value!r}") from None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # 2.0 is 2; 1.5 is refused below, never truncated
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = default is None or isinstance(value, type(default))
    if not ok:
        raise UserError(f"config {key}: expected {'true/false' if isinstance(default, bool) else expected}, "
                        f"got {value!r}")
    return value


def check_ranges(config: dict, checks: dict):
    for key, allowed in checks.items():
        if key in config and not allowed(config[key]):
            raise UserError(f"config {key}: expected {allowed.says}, got {config[key]!r}")


def resolve(defaults: dict, presets: dict, preset: str | None = None, overrides: dict | None = None,
            checks: dict | None = None):
    """defaults <- presets[preset] <- overrides, with unknown keys, bad types and values out of
    range (`checks`: key -> Range) rejected."""
    config = dict(defaults)
    layers = []
    if preset:
        if preset not in presets:
            raise UserError(f"unknown preset {preset!r}; choose one of: {', '.join(sorted(presets))}")
        layers.append(presets[preset])
    layers.append(overrides or {})
    for layer in layers:
        for key, value in layer.items():
            if value is None:
                continue
            if key not in defaults:
                raise UserError(f"unknown config key {key!r}; known keys: {', '.join(sorted(defaults))}")
            config[key] = _cast(key, value, defaults[key])
    check_ranges(config, checks or {})
    return config


# Keys added after runs were first written, with the value that reproduces those runs' behaviour:
# a stored config without one reads it as that value instead of being refused as damaged.
ADDED_KEYS = {"lr_half_life_steps": 0, "tied_output": False, "tokenisation": "ptb"}


def check_stored(stored, defaults: dict, checks: dict, path: Path) -> dict:
    """A run's config.json: exactly the app's keys (less ADDED_KEYS), each of the right type and range."""
    if not isinstance(stored, dict):
        raise UserError(f"{path} holds {type(stored).__name__}, not a config object; the run folder is damaged")
    stored = {**{key: value for key, value in ADDED_KEYS.items() if key in defaults}, **stored}
    missing, unknown = sorted(set(defaults) - set(stored)), sorted(set(stored) - set(defaults))
    if missing or unknown:
        what = "; ".join(part for part in (missing and f"missing keys {', '.join(missing)}",
                                           unknown and f"unknown keys {', '.join(unknown)}") if part)
        raise UserError(f"{path}: {what}; the run folder is damaged or from another version of the app")
    try:
        return resolve(defaults, {}, None, stored, checks)
    except UserError as e:
        raise UserError(f"{path}: {e}; the run folder is damaged") from None


def parse_assignments(pairs) -> dict:
    """`--set key=value` pairs from the command line."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set expects KEY=VALUE, got {pair!r}")
        out[key.strip()] = value
    return out


def save(config: dict, path: Path):
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def load(path: Path):
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing; is {path.parent} a run folder written by `rnn-apps train`?") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({e}); the run folder is damaged") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a file; the run folder is damaged") from None


def member_seed(config: dict, index: int) -> int:
    """The seed of an ensemble's member `index`: seed * members + index, so the members of runs with
    seeds 0, 1, 2 are models 0..K-1, K..2K-1, 2K..3K-1, none shared (with seed + index, two seeds'
    ensembles shared K-1 members and their spread looked smaller than it is). Seed 0 keeps 0..K-1."""
    return config["seed"] * config["members"] + index


def learning_rate(config: dict):
    """The optimizer's learning rate: `learning_rate`, halved every `lr_half_life_steps` steps when set."""
    import keras

    if config["lr_half_life_steps"]:
        return keras.optimizers.schedules.ExponentialDecay(config["learning_rate"], config["lr_half_life_steps"], 0.5)
    return config["learning_rate"]
