"""Scores the apps report beside Keras's own metrics, kept apart from the apps: an app supplies its
data, preprocessing, model and phone client; how its outputs are scored is shared here.

- Translation: sacrebleu's tokenizer for a target language (`bleu_tokenizer`).
- Captions: COCO's BLEU-1..4 and CIDEr-D (pycocoevalcap), on COCO's PTB tokens where Java runs
  (`caption_scores`, `coco_tokens`), and the nearest-neighbour baseline's parts (`consensus`, `nearest`).
- Text classes: a TF-IDF + logistic regression baseline fit on the training texts (`tfidf_baseline`).
- Per-step labels: the most-frequent-label baseline (`most_frequent_labels`), the per-frame one
  (`per_frame_baseline`); runs of equal labels
  (`runs`, `runs_text`); falls (runs of `falling` frames) detected within a tolerance, with their
  delays and false alarms (`fall_events`).
"""

import contextlib
import io
import shutil
import subprocess
import warnings

import numpy as np

from pipelines import captions, translation


def bleu_tokenizer(language: str) -> str:
    """sacrebleu's tokenizer for a target language: characters for Korean (no spaces to trust), 13a else."""
    return "char" if translation.is_character_level(language) else "13a"


def caption_scores(generated: list, references: list) -> dict:
    """Corpus BLEU-1..4 (multiple references, closest reference length) and CIDEr-D, x100, on the
    tokens of `coco_tokens`, which it names."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    if not generated:
        return {}
    texts = {**{("hypothesis", i): [g] for i, g in enumerate(generated)},
             **{("truth", i): list(refs) for i, refs in enumerate(references)}}
    tokens, tokenizer = coco_tokens(texts)
    hypotheses = {i: [tokens["hypothesis", i][0] or "<empty>"] for i in range(len(generated))}
    truth = {i: tokens["truth", i] for i in range(len(references))}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocoevalcap prints its counts
        bleu, _ = Bleu(4).compute_score(truth, hypotheses)
        cider, _ = Cider().compute_score(truth, hypotheses)
    return {**{f"bleu_{n}": round(100 * float(b), 2) for n, b in enumerate(bleu, start=1)},
            "cider": round(100 * float(cider), 2), "images": len(generated), "tokenizer": tokenizer}


def coco_tokens(texts: dict) -> tuple:
    """{key: [caption, ...]} -> ({key: [tokenised caption, ...]}, "ptb" or "standardize"). COCO's
    evaluation tokenises with the PTB tokenizer (Stanford CoreNLP, shipped in pycocoevalcap, run with
    Java), so figures compare with the literature's where Java runs; elsewhere the project's
    standardisation, which splits hyphenated words and drops the apostrophe of 's where PTB keeps
    them (bench/RESULTS.md, caption)."""
    if shutil.which("java"):
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        keys = list(texts)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                tokens = PTBTokenizer().tokenize({n: [{"caption": c} for c in texts[k]] for n, k in enumerate(keys)})
            return {k: tokens[n] for n, k in enumerate(keys)}, "ptb"
        except (OSError, subprocess.SubprocessError, ValueError):
            pass  # a Java that does not run: the fallback below
    return {k: [captions.standardize_text(c) for c in v] for k, v in texts.items()}, "standardize"


def consensus(references: list) -> list:
    """Each image's most typical human caption: the one with the highest CIDEr-D against the
    image's other captions (document frequencies over all images). The nearest-neighbour
    baseline's answer for an image whose neighbour this is."""
    from pycocoevalcap.cider.cider import Cider

    pairs = [(i, j) for i, refs in enumerate(references) for j in range(len(refs)) if len(refs) > 1]
    if not pairs:
        return [refs[0] for refs in references]
    hypotheses = {k: [captions.standardize_text(references[i][j])] for k, (i, j) in enumerate(pairs)}
    truth = {k: [captions.standardize_text(r) for n, r in enumerate(references[i]) if n != j]
             for k, (i, j) in enumerate(pairs)}
    with contextlib.redirect_stdout(io.StringIO()):
        _, scores = Cider().compute_score(truth, hypotheses)
    best = {}
    for (i, j), score in zip(pairs, scores, strict=True):
        if i not in best or score > best[i][0]:
            best[i] = (score, j)
    return [refs[best[i][1]] if i in best else refs[0] for i, refs in enumerate(references)]


def nearest(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """For each query row, the index of the key row with the highest cosine similarity."""
    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return np.argmax(unit(queries) @ unit(keys).T, axis=1) if len(keys) else np.zeros(len(queries), int)


def tfidf_baseline(train_texts, train_labels, texts, labels) -> dict:
    """The classic text-classification baseline on the same split as the model: word uni- and
    bigram TF-IDF (sublinear) and logistic regression (C=4), fit on the training texts. Its
    accuracy and, per text, whether it was right (for a paired comparison with the model)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    classifier = LogisticRegression(max_iter=2000, C=4.0).fit(vectorizer.fit_transform(list(train_texts)),
                                                              np.asarray(train_labels))
    correct = classifier.predict(vectorizer.transform(list(texts))) == np.asarray(labels)
    return {"accuracy": float(correct.mean()) if len(correct) else 0.0, "correct": correct.astype(int).tolist()}


def most_frequent_labels(train_pieces: list, train_labels: list, sequences: list) -> list:
    """The per-step labelling baseline: each piece gets the label it had most often in training
    (ties: the label seen first), an unseen piece the most frequent label overall. Pieces and labels
    are lists of sequences; returns the labels of `sequences`, one list per sequence."""
    from collections import Counter, defaultdict

    counts, overall = defaultdict(Counter), Counter()
    for pieces, labels in zip(train_pieces, train_labels, strict=True):
        for piece, label in zip(pieces, labels, strict=True):
            counts[piece][label] += 1
            overall[label] += 1
    best = {piece: c.most_common(1)[0][0] for piece, c in counts.items()}
    fallback = overall.most_common(1)[0][0] if overall else ""
    return [[best.get(piece, fallback) for piece in pieces] for pieces in sequences]


def per_frame_baseline(train_frames: np.ndarray, train_labels: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """The per-frame baseline, which sees no other frame: a random forest (300 trees, seed 0) on
    each frame's features alone, fit on the training frames [n, features]; a NaN feature reads as
    the training mean (as the model reads it). -> the predicted label ids of `frames` [m]."""
    from sklearn.ensemble import RandomForestClassifier

    with warnings.catch_warnings():  # a feature that is NaN in every training frame: its mean is 0
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nan_to_num(np.nanmean(np.where(np.isinf(train_frames), np.nan, train_frames), axis=0))

    def clean(x):
        return np.where(np.isfinite(x), x, mean)

    forest = RandomForestClassifier(300, random_state=0, n_jobs=-1).fit(clean(train_frames), train_labels)
    return forest.predict(clean(frames)) if len(frames) else np.zeros(0, int)


def runs(labels: list) -> list:
    """Per-frame labels -> [(label, first frame, last frame)] of each run of equal labels."""
    out = []
    for i, label in enumerate(labels):
        if out and out[-1][0] == label:
            out[-1][2] = i
        else:
            out.append([label, i, i])
    return [tuple(r) for r in out]


def runs_text(found: list) -> str:
    """Runs of labels as one line: `not_lying 0-39, falling 40-52` ("none" for no frames)."""
    return ", ".join(f"{label} {start}-{end}" for label, start, end in found) or "none"


def fall_events(truth: list, predicted: list, falling: int, sequences: list, is_fall, tolerance: int) -> dict:
    """Event-level figures. An event is a run of true `falling` frames; it is detected if the model
    says `falling` on some frame from `tolerance` frames before it begins to that many after it
    ends, and its delay is the first such frame minus the event's first frame. A predicted run of
    `falling` near no event is a false alarm. Falls (events in fall recordings) are reported one by
    one; the activities' lying-down transitions are summarised; and `falling` recall by fifth of
    every event (how early inside a fall the model notices it)."""
    falls, activities, alarms = [], [], {"fall_recordings": 0, "activity_recordings": 0}
    by_fifth = np.zeros((2, 5))  # [frames, of them labelled falling] by position inside each event
    for y, p, name, fall in zip(truth, predicted, sequences, is_fall, strict=True):
        windows = []
        for label, start, end in runs(list(y)):
            if label != falling:
                continue
            fifth = np.minimum((np.arange(end - start + 1) * 5) // (end - start + 1), 4)
            np.add.at(by_fifth, (0, fifth), 1)
            np.add.at(by_fifth, (1, fifth), p[start: end + 1] == falling)
            low, high = max(start - tolerance, 0), end + tolerance
            hits = np.flatnonzero(p[low: high + 1] == falling)
            event = {"sequence": str(name), "first_frame": start, "frames": end - start + 1,
                     "detected": bool(len(hits)), "delay_frames": int(low + hits[0] - start) if len(hits) else None}
            (falls if fall else activities).append(event)
            windows.append((low, high))
        for label, start, end in runs(list(p)):
            if label == falling and not any(start <= high and end >= low for low, high in windows):
                alarms["fall_recordings" if fall else "activity_recordings"] += 1
    # How early inside an event the model says `falling`: a causal model misses its first frames.
    recall_by_fifth = [ratio(hit, n) for n, hit in zip(*by_fifth, strict=True)]
    return {"tolerance_frames": tolerance, "falls": summary(falls) | {"each": falls},
            "activity_transitions": summary(activities), "false_alarms": alarms,
            "falling_recall_by_fifth_of_event": recall_by_fifth}


def summary(events: list) -> dict:
    delays = [e["delay_frames"] for e in events if e["detected"]]
    return {"events": len(events), "detected": len(delays), "recall": ratio(len(delays), len(events)),
            "delay_frames": {"median": float(np.median(delays)), "mean": round(float(np.mean(delays)), 2),
                             "max": int(max(delays))} if delays else None}


def ratio(a, b):
    return round(float(a) / float(b), 4) if b else None
