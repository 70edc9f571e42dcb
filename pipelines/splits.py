"""`Splits`: the raw train/validation/test examples of one dataset, and where each came from.

Examples are kept as column dicts of numpy arrays (`{"text": [...], "label": [...]}`): the public
datasets here are small, and seeded carving, capping and counting are then exact and cheap.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from foundation.errors import UserError
from foundation.lazy import tensorflow as tf

SPLIT_NAMES = ("train", "validation", "test")


@dataclass
class Splits:
    dataset: str  # e.g. "sst2", "imdb_reviews"
    train: dict
    validation: dict
    test: dict
    label_names: list
    origin: dict = field(default_factory=dict)  # split -> where its examples came from
    one_text: bool = False  # each split is one long text (a language model's): described in characters

    def __getitem__(self, split: str) -> dict:
        if split not in SPLIT_NAMES:
            raise KeyError(split)
        return getattr(self, split)

    def size(self, split: str) -> int:
        return count(self[split])

    def tf_dataset(self, split: str) -> tf.data.Dataset:
        return tf.data.Dataset.from_tensor_slices(self[split])

    def describe(self) -> str:
        """The data resolution, printed before training: which dataset, which split, from where."""
        labels = f" (labels: {', '.join(self.label_names)})" if self.label_names else ""
        lines = [f"data: {self.dataset}{labels}"]
        for split in SPLIT_NAMES:
            size = f"{len(self[split]['text'][0]):>9,} characters" if self.one_text else \
                f"{self.size(split):>7,} examples"
            lines.append(f"  {split:<10} {size}  from {self.origin.get(split, '?')}")
        return "\n".join(lines)

    def capped(self, max_examples: int, seed: int) -> Splits:
        """At most `max_examples` per split, a seeded random subset (0 = no cap)."""
        if not max_examples:
            return self
        capped = {s: take(shuffle(self[s], seed), max_examples) for s in SPLIT_NAMES}
        origin = {s: f"{self.origin.get(s, '?')} [first {max_examples} after seeded shuffle]" for s in SPLIT_NAMES}
        return dataclasses.replace(self, origin=origin, **capped)

    def first_characters(self, n: int) -> Splits:
        """Every text of every split cut to its first `n` characters (0 = whole): a text dataset of
        one long text per split, made small for tests and smoke runs."""
        if not n:
            return self
        cut = {s: {k: np.array([t[:n] for t in v], dtype=object) for k, v in self[s].items()} for s in SPLIT_NAMES}
        origin = {s: f"{self.origin.get(s, '?')} [first {n:,} characters]" for s in SPLIT_NAMES}
        return dataclasses.replace(self, origin=origin, **cut)


def count(columns: dict) -> int:
    return len(next(iter(columns.values())))


def take(columns: dict, n: int) -> dict:
    return {k: v[:n] for k, v in columns.items()}


def select(columns: dict, index) -> dict:
    return {k: v[index] for k, v in columns.items()}


def shuffle(columns: dict, seed: int) -> dict:
    return select(columns, np.random.default_rng(seed).permutation(count(columns)))


def carve(columns: dict, fraction: float, seed: int) -> tuple[dict, dict]:
    """Split off a seeded random `fraction` (e.g. a validation set carved from train)."""
    order = np.random.default_rng(seed).permutation(count(columns))
    n_carved = max(1, int(round(fraction * len(order))))
    return select(columns, np.sort(order[n_carved:])), select(columns, np.sort(order[:n_carved]))


ENV_DATA_ROOT = "RNN_APPS_DATA_ROOT"


def default_data_root() -> Path | None:
    """Where local datasets are looked up when no --data-root is given: $RNN_APPS_DATA_ROOT, else the
    project's public data at ../shared/data, beside the working directory or beside this checkout;
    else None (names are then TFDS names)."""
    if os.environ.get(ENV_DATA_ROOT):
        return Path(os.environ[ENV_DATA_ROOT])
    checkout = Path(__file__).resolve().parents[1]
    for candidate in (Path.cwd().parent / "shared" / "data", checkout.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def not_found(kind: str, spec: str, looked_for: str, data_root, tfds_names: str = "") -> UserError:
    """The one-line error for a --data that is neither a local dataset nor a TFDS name."""
    tfds = f"not a TFDS name{f' ({tfds_names})' if tfds_names else ''}"
    if data_root:
        return UserError(f"no {kind} {spec!r}: not {looked_for}, not under the data root {data_root}, and {tfds}")
    return UserError(f"no {kind} {spec!r}: not {looked_for}, {tfds}, and no data root is set "
                     f"(--data-root or {ENV_DATA_ROOT})")


def local_path(spec: str, data_root) -> Path:
    """`--data` as a local path: itself if it exists, else the same name under the data root if
    that exists, else itself (the caller then tries TFDS)."""
    path = Path(spec).expanduser()
    if not path.exists() and data_root is not None and (Path(data_root) / spec).exists():
        return Path(data_root) / spec
    return path


def first_available(candidates, data_root) -> str:
    """The first default that exists locally (as a path or under the data root), else the last
    one, which is a TFDS name for connected machines."""
    for name in candidates:
        if Path(name).exists() or (data_root is not None and (Path(data_root) / name).exists()):
            return name
    return candidates[-1]
