"""tf.data input pipelines shared by all apps: cache, seeded shuffle, length buckets, prefetch.

Sequences are bucketed by length and padded (with 0, which the models mask) only to their bucket's
boundary, so a short sentence is not padded to the longest one, and XLA sees a handful of shapes.
"""

from __future__ import annotations

from foundation.lazy import tensorflow as tf

SHUFFLE_BUFFER = 100_000


def bucket_boundaries(max_length: int, first: int = 8, growth: float = 2.0) -> list:
    """Upper bounds (exclusive) of the length buckets: by default 9, 17, 33, ... so buckets pad to
    8, 16, 32, ... and max_length. A smaller `growth` wastes less on padding (each bucket's longest
    is at most `growth` times its shortest) for more shapes to compile; edges grow by >= 2."""
    bounds, edge = [], first
    while edge < max_length:
        bounds.append(edge + 1)
        edge = max(edge + 2, round(edge * growth))
    return bounds + [max_length + 1]


def sequence_batches(ds: tf.data.Dataset, batch_size: int, max_length: int, shuffle_seed=None):
    """(token ids [len], target) pairs -> batches padded per length bucket.

    Seeded = training: shuffled, and each bucket's last partial batch is dropped (a few dozen
    examples, different ones each epoch). Partial batches have a new size every epoch, and
    each new shape costs an XLA compilation: measured, they doubled the first epochs' time.
    """
    ds = ds.map(lambda x, y: (x[:max_length], y), num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
    bounds = bucket_boundaries(max_length)
    ds = ds.bucket_by_sequence_length(
        lambda x, y: tf.shape(x)[0], bounds, [batch_size] * (len(bounds) + 1), pad_to_bucket_boundary=True,
        drop_remainder=shuffle_seed is not None,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def fixed_batches(ds: tf.data.Dataset, batch_size: int, shuffle_seed=None):
    """Fixed-size examples -> cached, optionally shuffled, prefetched batches."""
    ds = ds.cache()
    if shuffle_seed is not None:
        ds = ds.shuffle(SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
