"""frames — many-to-many, one output per step: every frame of a video labelled as it comes (the
lecture's frame-level video classification), here a person's posture for fall detection.

Topology: frames [batch, time, F] (per-frame features; or [batch, time, H, W, 3] video frames)
and mask [batch, time] -> a per-frame encoder applied to every frame (features: normalised with
the training split's mean and standard deviation, stored in the run, clipped to +-10 and NaN to
0; video frames: a small convolutional network) -> beside it, its change since the previous
frame (`frame_differences`) -> `depth` SimpleRNN layers -> per-frame softmax; the loss and metrics
are masked on padding. Two variants: causal (`bidirectional=false`, the default: what a device
watching a camera can compute, one frame at a time; it labels each frame `lookahead` = 10 frames
(0.33 s) late, having seen those frames too; `--set lookahead=0` labels it at once, from the frames
so far alone) and bidirectional (`--set bidirectional=true`: the whole clip is known, offline).

Data: UR Fall Detection's per-frame depth features `../shared/data/ur_fall_features` (70
recordings; labels not_lying / falling / lying; `--set split_seed=N` picks one of the seeded
80/20 splits by recording), TFDS `ucf101` online (video frames, the clip's label at every frame).
See pipelines/frames.py.

Exports: SavedModel `serving_default(frames: float32[batch, time, F] (uint8[batch, time, H, W, 3]
for video), lengths: int32[batch])` -> labels (string, "" past a sequence's length), label_ids
(int32, -1 past it), probability, probabilities (float32, 0 past it), lengths. TFLite
`frames.tflite`: a causal run's `step(frame: float32[1, F], state_0 ..: float32[1, units])` ->
probabilities, label_id, state_0 ... (one frame at a time, from zero states: export/step_loop.py
`label_stream` is the reference loop); a bidirectional run's `serving_default(frames: float32[1,
max_frames, F], length: int32[1])` -> probabilities [1, max_frames, classes]. Model card beside it.

    rnn-apps train frames --data ur_fall_features --data-root ../shared/data --out runs/frames
    rnn-apps evaluate runs/frames        # frame accuracy, per-class recall, falls detected and how late
    rnn-apps predict runs/frames sequence.csv [--json]   # rows of F features, or UR Fall's layout
    rnn-apps export runs/frames --out exports
    rnn-apps query exports --name frames sequence.csv
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from pipelines import frames as frame_data
from rnn_apps import config as config_lib
from rnn_apps import metrics
from rnn_apps.families.label_frames import LabelFrames
from rnn_apps.layers import FiniteClip, PerFrame, StepDifference, simple_rnn_stack

FEATURE_LIMIT = 10.0  # normalised features are clipped to this many standard deviations
EVENT_TOLERANCE = 15  # frames (0.5 s at 30 frames/s) a detection may come before or after a fall
FALLING = "falling"


class Frames(LabelFrames):
    name = "frames"
    topology = "many-to-many (per step)"
    task = "frame-level classification (fall detection)"
    default_data = ("ur_fall_features", "ucf101")
    preprocessor = frame_data.FrameStatistics
    monitors = ("val_loss", "val_accuracy")
    config = {
        **config_lib.COMMON,
        # Chosen by short trials on splits 0-2 (bench/RESULTS.md lists them): 128 units, rate 1e-3,
        # whole sequences, frame differences, no class weights scored best on frame accuracy.
        "units": 128,
        "depth": 2,
        "bidirectional": False,  # causal: what a streaming device computes; the default export
        "dropout": 0.1,
        "batch_size": 8,  # whole sequences: UR Fall's training split holds 47 of them
        "learning_rate": 1e-3,
        "epochs": 300,
        "patience": 40,
        "split_seed": 0,  # which seeded 80/20 split by recording (`python -m bench run frames` runs 0..4)
        "max_frames": 400,  # a bidirectional run's TFLite input length (UR Fall's longest is 369)
        "clip_frames": 16,  # video datasets: frames taken evenly over each clip
        "frame_size": 32,  # video datasets: frames resized to this many pixels square
        "conv_filters": 16,  # video datasets: the first convolution's filters (the second has twice as many)
        # Gradients through hundreds of steps explode now and then without it: training accuracy
        # collapsed within an epoch (bench/RESULTS.md, "frames").
        "clipnorm": 1.0,
        "frame_differences": True,
        # Frames a causal model waits before labelling one: frame t's label comes out at step
        # t + lookahead, a fixed latency (30 frames/s: 10 frames = 0.33 s); 0 = strictly causal. A
        # bidirectional model sees the whole clip and ignores it. The strictly causal model misses
        # the first frames of each fall (bench/RESULTS.md, "frames": the figures with and without).
        "lookahead": 10,
        # Training examples: `windows_per_sequence` random windows of `window` frames from every
        # sequence per epoch (0 = whole sequences).
        "window": 0,
        "windows_per_sequence": 8,
        "feature_noise": 0.0,  # std of Gaussian noise added to the normalised features in training
        "class_weights": [],  # training loss weight per class, in label order ([] = all 1)
        "jit_compile": False,
    }
    feature_limit = FEATURE_LIMIT
    config_checks = {
        **LabelFrames.config_checks,
        "split_seed": config_lib.NON_NEGATIVE, "clip_frames": config_lib.POSITIVE, "frame_size": config_lib.at_least(4),
        "feature_noise": config_lib.NON_NEGATIVE_NUMBER, "conv_filters": config_lib.POSITIVE,
    }
    presets = {
        "tiny": {"epochs": 2, "units": 8, "depth": 1, "batch_size": 4, "max_examples": 8, "max_frames": 32,
                 "clip_frames": 6, "frame_size": 8, "conv_filters": 4, "patience": 3},
    }

    # --- data ---------------------------------------------------------------------------
    def load_data(self, data, data_root, config, options):
        return frame_data.load(data, data_root, config["split_seed"], config["clip_frames"], config["frame_size"],
                               options.get("tfds_data_dir"))

    # --- model --------------------------------------------------------------------------
    def build_model(self, config, preprocessing, unroll_length=None):
        if unroll_length:
            config = {**config, "dropout": 0.0}
        frames = keras.Input((unroll_length, *preprocessing.frame_shape), name="frames")
        mask = keras.Input((unroll_length,), dtype="bool", name="mask")
        x = PerFrame(frame_encoder(config, preprocessing), name="per_frame")(frames)
        if config["frame_differences"]:
            x = layers.Concatenate(name="with_differences")([x, StepDifference(name="differences")(x)])
        if config["feature_noise"] and not unroll_length:
            x = layers.GaussianNoise(config["feature_noise"], name="feature_noise")(x)  # training only
        x = simple_rnn_stack(x, config, unroll=unroll_length is not None, mask=mask)
        probabilities = layers.Dense(len(preprocessing.label_names), activation="softmax", name="probabilities")(x)
        return keras.Model({"frames": frames, "mask": mask}, probabilities, name=self.name)

    # --- evaluation ---------------------------------------------------------------------
    def more_scores(self, run, test, truth, predicted):
        """Falls detected (a falling label within EVENT_TOLERANCE frames of a fall) and how late."""
        names = run.preprocessing.label_names
        if FALLING not in names:
            return {}
        return {"events": metrics.fall_events(truth, predicted, names.index(FALLING), list(test["sequence"]),
                                              test["is_fall"], EVENT_TOLERANCE)}


def frame_encoder(config, preprocessing) -> keras.Model:
    """One frame -> its vector for the RNN: normalised features, or a small CNN over pixels."""
    shape = tuple(preprocessing.frame_shape)
    if preprocessing.kind == "features":
        std = np.maximum(np.asarray(preprocessing.std), 1e-6)
        return keras.Sequential([keras.Input(shape), layers.Normalization(mean=preprocessing.mean, variance=std ** 2),
                                 FiniteClip(FEATURE_LIMIT)], name="frame_encoder")
    filters = config["conv_filters"]
    return keras.Sequential([
        keras.Input(shape), layers.Rescaling(1 / 255), FiniteClip(1.0),
        layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu"),
        layers.Conv2D(2 * filters, 3, strides=2, padding="same", activation="relu"),
        layers.GlobalAveragePooling2D()], name="frame_encoder")


APP = Frames()
