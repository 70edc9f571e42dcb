"""Run configuration: plain dicts of defaults declared by each app, a few named presets, overrides.

Unknown keys are rejected and every value is cast to the type of its default, so a typo fails
before training starts. The resolved config is written to RUN_DIR/config.json.
"""

import json
from pathlib import Path

from rnn_apps.errors import UserError

# Keys every app understands; an app's own CONFIG adds to (or overrides) these.
COMMON = {
    "epochs": 10,
    "batch_size": 64,
    "max_examples": 0,  # 0 = all; otherwise caps every split (smoke runs, tests)
    "seed": 0,
    "learning_rate": 1e-3,
    "monitor": "val_loss",  # validation metric that picks best.keras and drives early stopping
    "patience": 3,  # epochs without improvement of `monitor` before training stops
    "jit_compile": True,  # XLA; ~1.6x faster SimpleRNN steps on CPU
    "units": 128,
    "depth": 1,
    "bidirectional": False,
    "dropout": 0.0,
    "weight_decay": 0.0,  # AdamW's decoupled weight decay
    "label_smoothing": 0.0,
    "members": 1,  # >1: a deep ensemble of that many models (seeds seed, seed+1, ...), probabilities averaged
}


def _cast(key: str, value, default):
    if isinstance(value, str) and not isinstance(default, str):
        text = value.strip().lower()
        if isinstance(default, bool):
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise UserError(f"config {key}: expected true/false, got {value!r}")
        try:
            return type(default)(json.loads(text)) if default is not None else json.loads(text)
        except (ValueError, TypeError):
            raise UserError(f"config {key}: expected {type(default).__name__}, got {value!r}") from None
    if isinstance(default, bool) and not isinstance(value, bool):
        raise UserError(f"config {key}: expected true/false, got {value!r}")
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if default is not None and not isinstance(value, type(default)):
        raise UserError(f"config {key}: expected {type(default).__name__}, got {value!r}")
    return value


def resolve(defaults: dict, presets: dict, preset: str | None = None, overrides: dict | None = None):
    """defaults <- presets[preset] <- overrides, with unknown keys and bad types rejected."""
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
    return config


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


def load(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} is missing; is {path.parent} a run folder written by `rnn-apps train`?") from None
    except ValueError as e:
        raise UserError(f"{path} is not valid JSON ({e}); the run folder is damaged") from None
