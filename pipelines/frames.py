"""Frame sequences with a label for every frame (many-to-many, one output per step): the lecture's
video classified frame by frame.

`--data` resolves, in this order:
  1. a folder of CSV files in UR Fall Detection's layout (`../shared/data/ur_fall_features`:
     rows `sequence, frame, label, feature...`, no header, each sequence one block of rows in
     frame order; labels -1 not lying, 0 falling, 1 lying);
  2. a bare name under the data root (`ur_fall_features`);
  3. a TFDS video dataset with a clip label (`ucf101`): every clip becomes `clip_frames` frames
     taken evenly over it, each resized to `frame_size` x `frame_size` RGB, the clip's label at
     every frame (UCF101 has no frame-level labels).

Each split holds fixed-width columns, padded with zeros past each sequence's length:
  frames    float32 [N, T, F] (per-frame features) or uint8 [N, T, H, W, 3] (video frames)
  labels    int32 [N, T]
  length    int32 [N]
  sequence  str [N]: the recording it came from (fall-01, adl-12) or the clip's index
  is_fall   bool [N]: the recording is a staged fall (UR Fall's fall-* files)

Also here: a run's `FrameStatistics` (kind, frame shape, labels, the training split's feature mean
and standard deviation: fitted once, stored as frame_statistics.json, read back checked), and the
reading of the files a user labels (`read_sequence_files`: CSV rows or .npy arrays).

Splits are by sequence, never by frame (neighbouring frames are near copies, so a frame split
would leak the test set into training): for UR Fall, `split_seed` picks a seeded 80/20
train/test split of the 70 recordings, stratified by fall/activity, and 15% of the training
recordings (stratified the same way) validate. UCF101 has its own train/test lists.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from foundation.errors import UserError
from foundation.lazy import tensorflow as tf
from pipelines import tfds_source
from pipelines.splits import Splits, local_path, not_found, select

UR_FALL_LABELS = {-1: 0, 0: 1, 1: 2}  # the file's label -> class id
UR_FALL_LABEL_NAMES = ["not_lying", "falling", "lying"]
UR_FALL_FEATURES = ["HeightWidthRatio", "MajorMinorRatio", "BoundingBoxOccupancy", "MaxStdXZ", "HHmaxRatio", "H",
                    "D", "P40"]
LEADING_COLUMNS = 3  # sequence, frame, label
TEST_FRACTION, VALIDATION_FRACTION = 0.2, 0.15


def load(spec: str, data_root, split_seed: int, clip_frames: int, frame_size: int, tfds_data_dir=None) -> Splits:
    path = local_path(spec, data_root)
    if path.is_dir():
        return _csv_folder(path, split_seed)
    if tfds_source.exists(spec):
        return _tfds(spec, split_seed, clip_frames, frame_size, tfds_data_dir)
    raise not_found("frame dataset", spec, "a folder of UR Fall-style CSV files", data_root)


def read_csv_sequences(path: Path) -> list:
    """One UR Fall-style CSV -> [(sequence name, features float32 [T, F], labels int32 [T])]."""
    sequences, rows = [], {}
    with open(path, newline="", encoding="utf-8") as f:
        for number, row in enumerate(csv.reader(f), start=1):
            if not row:
                continue
            try:
                label = UR_FALL_LABELS[int(row[2])]
                features = [float(v) for v in row[LEADING_COLUMNS:]]
            except (IndexError, KeyError, ValueError):
                raise UserError(f"{path} line {number}: expected 'sequence, frame, label (-1, 0 or 1), features...', "
                                f"got {','.join(row)[:80]!r}") from None
            if row[0] not in rows:
                rows[row[0]] = ([], [])
                sequences.append(row[0])
            rows[row[0]][0].append(features)
            rows[row[0]][1].append(label)
    out = []
    for name in sequences:
        features, labels = rows[name]
        if len({len(f) for f in features}) != 1:
            raise UserError(f"{path}: the rows of sequence {name!r} have different numbers of features")
        out.append((name, np.array(features, np.float32), np.array(labels, np.int32)))
    return out


def padded_columns(sequences: list) -> dict:
    """[(name, frames [T, ...], labels [T], is_fall)] -> the split columns described above."""
    width = max(len(frames) for _, frames, _, _ in sequences)
    first = sequences[0][1]
    frames = np.zeros((len(sequences), width, *first.shape[1:]), first.dtype)
    labels = np.zeros((len(sequences), width), np.int32)
    for i, (_, f, y, _) in enumerate(sequences):
        frames[i, :len(f)], labels[i, :len(y)] = f, y
    return {"frames": frames, "labels": labels, "length": np.array([len(f) for _, f, _, _ in sequences], np.int32),
            "sequence": np.array([name for name, *_ in sequences], dtype=object),
            "is_fall": np.array([fall for *_, fall in sequences], bool)}


def _stratified(n: int, is_fall: np.ndarray, fraction: float, seed: int) -> tuple:
    from sklearn.model_selection import train_test_split

    keep, held = train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=is_fall)
    return np.sort(keep), np.sort(held)


def _csv_folder(folder: Path, split_seed: int) -> Splits:
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise UserError(f"{folder} holds no .csv files (UR Fall layout: sequence, frame, label, features...)")
    sequences = []
    for path in files:
        sequences += [(name, f, y, name.startswith("fall")) for name, f, y in read_csv_sequences(path)]
    if len({f.shape[1] for _, f, _, _ in sequences}) != 1:
        raise UserError(f"the CSV files in {folder} have different numbers of features")
    everything = padded_columns(sequences)
    n = len(sequences)
    rest, test = _stratified(n, everything["is_fall"], TEST_FRACTION, split_seed)
    train, validation = _stratified(len(rest), everything["is_fall"][rest], VALIDATION_FRACTION, split_seed + 1)
    train, validation = rest[train], rest[validation]
    where = f"{folder} ({n} sequences), split by sequence, split_seed {split_seed}"
    origin = {"train": f"{where}: {len(train)}", "validation": f"{where}: {len(validation)}",
              "test": f"{where}: {len(test)}"}
    return Splits(folder.name, select(everything, train), select(everything, validation), select(everything, test),
                  list(UR_FALL_LABEL_NAMES), origin)


def clip_to_frames(video, clip_frames: int, frame_size: int) -> np.ndarray:
    """A clip [T, H, W, 3] -> at most `clip_frames` frames taken evenly over it, each area-resized to
    frame_size x frame_size, uint8."""
    video = np.asarray(video)
    if len(video) == 0:
        return np.zeros((0, frame_size, frame_size, 3), np.uint8)
    picked = video[np.unique(np.linspace(0, len(video) - 1, min(clip_frames, len(video))).round().astype(int))]
    resized = tf.image.resize(tf.cast(picked, tf.float32), [frame_size, frame_size], method="area")
    return np.clip(np.round(resized.numpy()), 0, 255).astype(np.uint8)


def _tfds(name: str, seed: int, clip_frames: int, frame_size: int, data_dir) -> Splits:
    def each(example):  # shrink every clip as it is read: UCF101's full videos do not fit in memory
        return {"video": clip_to_frames(example["video"], clip_frames, frame_size), "label": example["label"]}

    def convert(columns):
        clips = list(columns["video"])
        return padded_columns([(str(i), clip, np.full(len(clip), label, np.int32), False)
                               for i, (clip, label) in enumerate(zip(clips, columns["label"], strict=True))])

    return tfds_source.load(name, seed, convert, data_dir, note=f", {clip_frames} frames of {frame_size}x{frame_size} "
                            "per clip", each=each)


# --- a run's frame statistics: fitted on the training split, stored in the run, read back --------
STATISTICS = "frame_statistics.json"


@dataclass
class FrameStatistics:
    kind: str  # "features" or "video"
    frame_shape: tuple  # (F,) or (H, W, 3)
    label_names: list
    mean: list | None = None  # per feature, over the training split's real frames
    std: list | None = None

    @classmethod
    def fit(cls, splits, config=None) -> FrameStatistics:
        """From the training split's real frames (padding left out)."""
        frames, length, label_names = splits.train["frames"], splits.train["length"], list(splits.label_names)
        kind, shape = ("video" if frames.ndim == 5 else "features"), tuple(frames.shape[2:])
        if kind == "video":
            return cls(kind, shape, label_names)
        real = np.concatenate([frames[i, :n] for i, n in enumerate(length)]).astype(np.float64)
        return cls(kind, shape, label_names, real.mean(0).tolist(), real.std(0).tolist())

    def files(self) -> dict:
        stored = {"kind": self.kind, "frame_shape": list(self.frame_shape), "label_names": self.label_names}
        if self.kind == "features":
            stored.update(mean=self.mean, std=self.std)
        return {STATISTICS: json.dumps(stored, indent=2) + "\n"}

    @classmethod
    def load(cls, folder, config=None) -> FrameStatistics:
        """Checked whole: an edited file must be blamed here, not on the CSV or the recording that
        a later step would fail on."""
        path = Path(folder) / STATISTICS
        try:
            s = json.loads(Path(path).read_text())
            found = cls(s["kind"], tuple(s["frame_shape"]), s["label_names"], s.get("mean"), s.get("std"))
        except FileNotFoundError:
            raise UserError(f"{path} is missing; the run folder is damaged") from None
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{path} is unreadable; the run folder is damaged") from None
        size = int(np.prod(found.frame_shape)) if found.frame_shape else 0
        problem = (
            "kind is neither features nor video" if found.kind not in ("features", "video") else
            "frame_shape is not a list of positive integers"
            if not found.frame_shape or not all(isinstance(d, int) and d > 0 for d in found.frame_shape) else
            "label_names is not a list of two or more names"
            if not isinstance(found.label_names, list) or len(found.label_names) < 2
            or not all(isinstance(n, str) and n for n in found.label_names) else
            f"mean and std are not {size} finite numbers each (std > 0)"
            if found.kind == "features" and not _finite_statistics(found.mean, found.std, size) else None)
        if problem:
            raise UserError(f"{path}: {problem}; the run folder is damaged (restore the file or retrain)")
        return found

    def card(self) -> dict:
        """What a model card says of the frames a client feeds."""
        out = {"kind": self.kind, "frame_shape": list(self.frame_shape)}
        if self.kind == "features":
            names = UR_FALL_FEATURES if len(self.mean) == len(UR_FALL_FEATURES) else None
            out.update(feature_names=names, mean=self.mean, std=self.std)
        return out


def _finite_statistics(mean, std, size: int) -> bool:
    try:
        mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    except (TypeError, ValueError):
        return False
    return mean.shape == std.shape == (size,) and np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()


# --- sequences a user gives (predict, query) ------------------------------------------------------
def read_sequence_files(paths: list, frame_shape, max_frames: int) -> tuple:
    """Files -> (names, [frames float32 [T, ...]]). A CSV file holds one frame per row: F numbers,
    or UR Fall's layout (sequence, frame, label, F features: one sequence per name); a .npy file
    holds one sequence [T, *frame_shape]. Malformed files fail with one line naming them."""
    names, sequences = [], []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            raise UserError(f"{item}: a folder; give CSV files (one frame per row) or .npy arrays [frames, ...]")
        if not path.is_file():
            raise UserError(f"{item}: no such file; give CSV files (one frame per row) or .npy arrays [frames, ...]")
        if path.suffix == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise UserError(f"{item}: not a readable .npy array ({e})") from None
            if tuple(array.shape[1:]) != tuple(frame_shape) or not np.issubdtype(array.dtype, np.number):
                raise UserError(f"{item}: expected an array of shape [frames, {', '.join(map(str, frame_shape))}], "
                                f"got {list(array.shape)} ({array.dtype})")
            named = [(str(item), array.astype(np.float32))]
        else:
            named = _frame_rows(path, frame_shape)
        for name, frames in named:
            if not len(frames):
                raise UserError(f"{item}: holds no frames")
            if len(frames) > max_frames:
                raise UserError(f"{item}: {len(frames):,} frames; at most {max_frames:,} are labelled per sequence")
            if not np.isfinite(frames).all():
                raise UserError(f"{item}: holds NaN or infinite values; give finite numbers")
            names.append(name)
            sequences.append(frames)
    return names, sequences


def _frame_rows(path: Path, frame_shape) -> list:
    if len(frame_shape) != 1:
        raise UserError(f"{path}: this run labels video frames; give .npy arrays [frames, "
                        f"{', '.join(map(str, frame_shape))}]")
    features = frame_shape[0]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file") from None
    rows = [line.split(",") for line in lines if line.strip()]
    if rows and len(rows[0]) == features + LEADING_COLUMNS:
        return [(f"{path}:{name}", frames) for name, frames, _ in read_csv_sequences(path)]
    values = []
    for number, row in enumerate(rows, start=1):
        if len(row) != features:
            raise UserError(f"{path} line {number}: expected {features} features per row (or UR Fall's "
                            f"{features + LEADING_COLUMNS} columns), got {len(row)}")
        try:
            values.append([float(v) for v in row])
        except ValueError:
            raise UserError(f"{path} line {number}: not a number in {','.join(row)[:80]!r}") from None
    return [(str(path), np.array(values, np.float32).reshape(-1, features))]


def pad(sequences: list, frame_shape) -> tuple:
    """[frames [T_i, ...]] -> (float32 [N, max T, ...], lengths int32 [N])."""
    width = max((len(s) for s in sequences), default=0)
    frames = np.zeros((len(sequences), width, *frame_shape), np.float32)
    for i, s in enumerate(sequences):
        frames[i, :len(s)] = s
    return frames, np.array([len(s) for s in sequences], np.int32)


def unpadded(columns: dict, key: str) -> np.ndarray:
    """A split's `frames` or `labels` without the padding past each sequence's length, every
    sequence's one after another: the frames (or their labels) one at a time."""
    return np.concatenate([columns[key][i, :n] for i, n in enumerate(columns["length"])])


def batches(columns: dict, batch_size: int, lookahead: int, window: int = 0, windows_per_sequence: int = 1,
            class_weights=None, shuffle_seed=None) -> tf.data.Dataset:
    """Padded columns (frames, length, labels) -> batches of ({"frames", "mask"}, labels[, weights]),
    each padded to its longest sequence. With a seed (training): shuffled each epoch, cut into
    `windows_per_sequence` random windows of `window` frames (0: whole sequences), and weighted by
    `class_weights` (one per label). A `lookahead` of d frames delays every target by d steps
    (`delayed`); the first d steps then weigh 0."""
    frames, length, labels = columns["frames"].astype(np.float32), columns["length"], columns["labels"]
    ds = tf.data.Dataset.from_tensor_slices((frames, length, labels))
    if shuffle_seed is not None:
        ds = ds.shuffle(len(length), seed=shuffle_seed, reshuffle_each_iteration=True)
        if window:
            ds = ds.repeat(windows_per_sequence).map(random_window(window, shuffle_seed))
    ds = ds.map(delayed(lookahead))
    # Padded to each batch's longest sequence, not the split's: that padding is not computed.
    ds = ds.padded_batch(batch_size).map(
        lambda f, n, y, w: ({"frames": f, "mask": tf.sequence_mask(n, tf.shape(f)[1])}, y, w))
    weighted = shuffle_seed is not None and bool(class_weights)  # class weights: training only
    if weighted:
        weights = tf.constant(class_weights)
        ds = ds.map(lambda x, y, w: (x, y, w * tf.gather(weights, y)))
    if not lookahead and not weighted:
        ds = ds.map(lambda x, y, w: (x, y))  # the mask alone leaves padding out of the loss
    return ds.prefetch(tf.data.AUTOTUNE)


def random_window(window: int, seed: int):
    """(frames, length, labels) -> a random `window` frames of them (the whole sequence if shorter)."""
    generator = tf.random.Generator.from_seed(seed)

    def crop(frames, length, labels):
        start = generator.uniform([], 0, tf.maximum(length - window, 0) + 1, dtype=tf.int32)
        return frames[start: start + window], tf.minimum(length - start, window), labels[start: start + window]

    return crop


def delayed(lookahead: int):
    """(frames, length, labels) -> (frames, steps, targets, weights) cut to their steps: with a
    lookahead of d frames, d frames of NaN (read as "no frame": 0 once normalised) follow the
    sequence, and the target at step t is frame t - d's label (the first d steps weigh 0)."""

    def delay(frames, length, labels):
        tail = tf.fill(tf.concat([[lookahead], tf.shape(frames)[1:]], 0), float("nan"))
        return (tf.concat([frames[:length], tail], 0), length + lookahead,
                tf.concat([tf.zeros([lookahead], labels.dtype), labels[:length]], 0),
                tf.concat([tf.zeros([lookahead]), tf.ones([length])], 0))

    return delay
