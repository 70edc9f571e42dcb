"""Sources for text classification (many-to-one): text -> label, as raw `Splits`.

`--data` resolves, in this order:
  1. a CSV/TSV file, or a folder holding `train.csv|tsv` (+ `dev|validation`, `test`): generic
     tables whose text and label columns are chosen by name;
  2. a folder laid out as in `../shared/data`: SST-2 (`train.tsv`, `dev.tsv`, `test.tsv`) or
     rt-polarity (`*.pos` / `*.neg` pair in cp1252);
  3. a bare name (`sst2`) looked up under the data root (`--data-root`, `$RNN_APPS_DATA_ROOT`);
  4. a TFDS name (`imdb_reviews`), downloaded when online.
Anything else is a one-line error naming what was tried.
"""

import csv
from pathlib import Path

import numpy as np

from foundation.errors import UserError
from pipelines import tfds_source
from pipelines.splits import Splits, carve, local_path

BINARY_SENTIMENT = ["negative", "positive"]
VALIDATION_FRACTION = 0.1
TABLE_SUFFIXES = (".csv", ".tsv")


def load(spec: str, data_root: Path | None, seed: int, text_column="text", label_column="label",
         tfds_data_dir: str | None = None) -> Splits:
    path = local_path(spec, data_root)
    if path.is_file():
        return _table_file(path, seed, text_column, label_column)
    if path.is_dir():
        return _folder(path, seed, text_column, label_column)
    if tfds_source.exists(spec):
        return _tfds(spec, seed, tfds_data_dir)
    root = f"data root {data_root}" if data_root else "no data root (set --data-root or RNN_APPS_DATA_ROOT)"
    raise UserError(f"no dataset {spec!r}: not a file or folder, not under the {root}, and not a TFDS name")


def _folder(path: Path, seed, text_column, label_column) -> Splits:
    if (path / "train.tsv").exists() and (path / "dev.tsv").exists() and _header(path / "train.tsv")[0] == "label":
        return _sst2(path)
    if list(path.glob("*.pos")) and list(path.glob("*.neg")):
        return _rt_polarity(path, seed)
    tables = {s: _find_table(path, names) for s, names in
              {"train": ("train",), "validation": ("dev", "validation", "valid"), "test": ("test",)}.items()}
    if tables["train"] is None:
        raise UserError(f"{path} holds no dataset this app reads: expected SST-2 TSVs, an rt-polarity "
                        f".pos/.neg pair, or train.csv/train.tsv with '{text_column}' and '{label_column}' columns")
    read = {s: _read_table(p, text_column, label_column) for s, p in tables.items() if p is not None}
    return _table_splits(path.name, read, {s: str(p) for s, p in tables.items() if p}, seed)


def _find_table(folder: Path, names):
    for name in names:
        for suffix in TABLE_SUFFIXES:
            if (folder / f"{name}{suffix}").exists():
                return folder / f"{name}{suffix}"
    return None


def _header(path: Path) -> list:
    with open(path, encoding="utf-8", newline="") as f:
        return f.readline().rstrip("\r\n").split("\t")


def _sst2(path: Path) -> Splits:
    """SST-2: phrase-level train.tsv (CRLF), sentence-level labelled dev.tsv and test.tsv."""
    columns = {}
    for split, name in (("train", "train.tsv"), ("validation", "dev.tsv"), ("test", "test.tsv")):
        with open(path / name, encoding="utf-8", newline="") as f:
            rows = [line.rstrip("\r\n").split("\t", 1) for line in f][1:]
        columns[split] = {"text": np.array([r[1] for r in rows], dtype=object),
                          "label": np.array([int(r[0]) for r in rows], dtype=np.int64)}
    origin = {"train": f"{path}/train.tsv", "validation": f"{path}/dev.tsv", "test": f"{path}/test.tsv"}
    return Splits("sst2", label_names=BINARY_SENTIMENT, origin=origin, **columns)


def _rt_polarity(path: Path, seed: int) -> Splits:
    """rt-polarity has no split: a seeded 80/10/10 train/validation/test split of both files."""
    texts, labels = [], []
    for label, suffix in ((0, "neg"), (1, "pos")):
        (file,) = sorted(path.glob(f"*.{suffix}"))[:1]
        # cp1252, split on \n only: str.splitlines() would also split on the 0x85 byte's NEL.
        lines = file.read_bytes().decode("cp1252").split("\n")
        lines = [line.strip() for line in lines if line.strip()]
        texts += lines
        labels += [label] * len(lines)
    everything = {"text": np.array(texts, dtype=object), "label": np.array(labels, dtype=np.int64)}
    rest, test = carve(everything, 0.1, seed)
    train, validation = carve(rest, 1 / 9, seed + 1)
    where = f"{path}/*.pos,*.neg (cp1252), seeded split {seed}"
    origin = {"train": f"{where} 80%", "validation": f"{where} 10%", "test": f"{where} 10%"}
    return Splits(path.name, train, validation, test, BINARY_SENTIMENT, origin)


def _read_table(path: Path, text_column: str, label_column: str) -> dict:
    delimiter = "\t" if path.suffix == ".tsv" else ","
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter=delimiter))
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 ({e.reason} at byte {e.start})") from None
    if not rows:
        raise UserError(f"{path} has no data rows")
    for column in (text_column, label_column):
        if column not in rows[0]:
            raise UserError(f"{path} has no column {column!r}; its columns are: {', '.join(rows[0])} "
                            "(choose with --text-column / --label-column)")
    return {"text": np.array([r[text_column] or "" for r in rows], dtype=object),
            "label": np.array([(r[label_column] or "").strip() for r in rows], dtype=object)}


def _table_splits(name: str, read: dict, origin: dict, seed: int) -> Splits:
    """Map string labels to ids (numeric order when all are integers) and carve missing splits."""
    values = sorted({v for cols in read.values() for v in cols["label"]},
                    key=lambda v: (0, int(v), "") if v.lstrip("-").isdigit() else (1, 0, v))
    ids = {v: i for i, v in enumerate(values)}
    for cols in read.values():
        cols["label"] = np.array([ids[v] for v in cols["label"]], dtype=np.int64)
    if "test" not in read:
        read["train"], read["test"] = carve(read["train"], 0.1, seed)
        origin["test"] = f"{origin['train']} (seeded 10% carved from train)"
    if "validation" not in read:
        read["train"], read["validation"] = carve(read["train"], VALIDATION_FRACTION, seed + 1)
        origin["validation"] = f"{origin['train']} (seeded 10% carved from train)"
    return Splits(name, read["train"], read["validation"], read["test"], values, origin)


def _table_file(path: Path, seed, text_column, label_column) -> Splits:
    if path.suffix not in TABLE_SUFFIXES:
        raise UserError(f"{path}: expected a .csv or .tsv file with a header row")
    read = {"train": _read_table(path, text_column, label_column)}
    return _table_splits(path.stem, read, {"train": str(path)}, seed)


def _tfds(name: str, seed: int, data_dir: str | None) -> Splits:
    """TFDS text datasets with `text` and `label` features (imdb_reviews, ...)."""

    def convert(cols):
        return {"text": np.array([t.decode("utf-8", "replace") for t in cols["text"]], dtype=object),
                "label": cols["label"].astype(np.int64)}

    return tfds_source.load(name, seed, convert, data_dir)
