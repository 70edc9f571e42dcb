"""Datasets from TensorFlow Datasets (online): `imdb_reviews`, `mnist`, ... as raw `Splits` columns.

The download is where offline machines fail: TFDS retries with back-off for a long time. So
before downloading we check that the dataset's host answers at all, and turn every failure into
a one-line `UserError` that says how to use the local copy instead.
"""

import socket
from urllib.parse import urlparse

import numpy as np

from foundation.errors import UserError
from pipelines.splits import Splits, carve

PROBE_TIMEOUT_S = 5.0
VALIDATION_FRACTION = 0.1


def exists(name: str) -> bool:
    import tensorflow_datasets as tfds

    return name.split(":")[0].split("/")[0] in tfds.list_builders()  # "name[/config][:version]"


def _reachable(url: str) -> bool:
    host = urlparse(url).hostname
    if not host:
        return True  # nothing to probe; let TFDS try
    try:
        socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_S).close()
        return True
    except OSError:
        return False


def _column(values: list) -> np.ndarray:
    """One feature's values over a split: an array, or an object array of them where their shapes
    differ (sequence features: tokens, tags)."""
    try:
        return np.asarray(values)
    except ValueError:
        column = np.empty(len(values), dtype=object)
        for i, value in enumerate(values):
            column[i] = value
        return column


def load(name: str, seed: int, convert, data_dir: str | None = None, note: str = "", splits=("train", "test"),
         label_names=None, each=None) -> Splits:
    """A TFDS dataset's `splits` -> Splits; without a `validation` split, validation is a seeded 10%
    of train. Label names come from the `label` feature unless given.

    `convert(columns) -> columns` turns TFDS features into the app's columns (decode text, resize
    images); `each(example) -> example`, if given, is applied to every example as it is read (to
    shrink what would not fit in memory whole: videos); `note` says what they did, for the printed
    data resolution. Downloads and prepares the
    dataset first if `data_dir` (or ~/tensorflow_datasets) lacks it.
    """
    import tensorflow_datasets as tfds

    hint = (
        "or use a local copy (--data NAME with --data-root, e.g. ../shared/data; see `rnn-apps list`), "
        "or pass --tfds-data-dir with a prepared copy"
    )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # TFDS raises several types for unknown names and versions
        raise UserError(f"TFDS dataset {name!r} could not be opened: {str(e).splitlines()[0]}") from None
    if not builder.is_prepared():
        homepage = builder.info.homepage or ""
        if not _reachable(homepage):
            raise UserError(
                f"TFDS dataset {name!r} is not in {builder.data_dir_root} and its host "
                f"({urlparse(homepage).hostname}) cannot be reached to download it; connect to the network, {hint}"
            )
        try:
            builder.download_and_prepare()
        except Exception as e:
            raise UserError(f"TFDS download of {name!r} failed: {str(e).splitlines()[0]}; {hint}") from None
    read = {}
    for split in splits:
        columns: dict[str, list] = {}
        for example in tfds.as_numpy(builder.as_dataset(split=split)):
            example = each(example) if each else example
            for key, value in example.items():
                columns.setdefault(key, []).append(value)
        read[split] = convert({k: _column(v) for k, v in columns.items()})
    if "validation" in read:
        train, validation = read["train"], read["validation"]
        origin = {split: f"tfds {name} '{split}'{note}" for split in ("train", "validation", "test")}
    else:
        train, validation = carve(read["train"], VALIDATION_FRACTION, seed)
        origin = {"train": f"tfds {name} 'train' (90%, seeded){note}",
                  "validation": f"tfds {name} 'train' (10%, seeded){note}",
                  "test": f"tfds {name} 'test'{note}"}
    if label_names is None:
        label_names = list(builder.info.features["label"].names)
    return Splits(name, train, validation, read["test"], label_names, origin)
