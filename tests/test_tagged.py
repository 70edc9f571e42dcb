"""Tagged sentences (the tagger's data): UD English-EWT as UD defines CoNLL-U, hand-made CoNLL-U
edge cases, and TFDS conll2003 through the same path with fixtures whose tokens and tags align."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from foundation.errors import UserError
from pipelines import tagged

UPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X"]


def test_ud_english_ewt_reads_every_word_of_every_sentence(data_root):
    splits = tagged.load("ud_english_ewt", data_root, "upos")
    assert [splits.size(s) for s in ("train", "validation", "test")] == [12_544, 2_001, 2_077]
    words = {s: sum(len(t.split("\t")) for t in splits[s]["tokens"]) for s in ("train", "validation", "test")}
    assert words == {"train": 204_577, "validation": 25_147, "test": 25_094}  # SOURCE.md's integer-ID lines
    assert splits.label_names == UPOS
    for split in ("train", "test"):
        for tokens, tags in zip(splits[split]["tokens"], splits[split]["tags"], strict=True):
            assert len(tokens.split("\t")) == len(tags.split("\t"))
    assert splits.validation["tokens"][0] == "\t".join("From the AP comes this story :".split())
    assert splits.validation["tags"][0] == "ADP\tDET\tPROPN\tVERB\tDET\tNOUN\tPUNCT"
    assert "part00" in splits.origin["train"] and "part03" in splits.origin["train"]


def test_conllu_leaves_out_multiword_ranges_and_empty_nodes(tmp_path):
    file = tmp_path / "x-ud-train.conllu"
    rows = [("1-2", "don't", "_"), ("1", "do", "AUX"), ("2", "n't", "PART"), ("3", "go", "VERB"),
            ("3.1", "went", "VERB")]
    lines = ["# text = don't go"] + ["\t".join([i, form, "_", tag, "_", "_", "_", "_", "_", "_"])
                                     for i, form, tag in rows]
    file.write_text("\n".join(lines) + "\n\n" + "\n".join(lines))  # the second sentence has no blank line after it
    sentences, tags = tagged.read_conllu([file])
    assert sentences == [["do", "n't", "go"]] * 2 and tags == [["AUX", "PART", "VERB"]] * 2
    file.write_text("1\tonly\tthree\n")
    with pytest.raises(UserError, match="x-ud-train.conllu:1: expected 10 tab-separated CoNLL-U columns, got 3"):
        tagged.read_conllu([file])
    with pytest.raises(UserError, match="tag_column: expected one of upos, xpos"):
        tagged.read_conllu([file], "ner")
    file.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="has no \\*-ud-dev.conllu file"):
        tagged.load(str(tmp_path), None, "upos")


def test_split_tokens_gives_back_the_words():
    ragged = tagged.split_tokens(["The\told\tman", "boats\t."])
    assert ragged.to_list() == [[b"The", b"old", b"man"], [b"boats", b"."]]


def test_tfds_conll2003_goes_through_the_same_path_with_aligned_fixtures(monkeypatch):
    from pipelines import tfds_source

    monkeypatch.setattr(tfds_source, "_reachable", lambda url: True)  # mock_data stands in for the download
    sentences = [["EU", "rejects", "German", "call"], ["Peter", "Blackburn"], ["BRUSSELS", "1996-08-22"]]

    def as_dataset(self, *args, **kwargs):
        # mock_data's random examples give tokens and tags of different lengths; these align.
        examples = [{"tokens": words, "pos": [i % 47 for i in range(len(words))],
                     "ner": [0] * len(words), "chunks": [0] * len(words)} for words in sentences]
        return tf.data.Dataset.from_generator(lambda: iter(examples), output_signature={
            "tokens": tf.TensorSpec([None], tf.string), "pos": tf.TensorSpec([None], tf.int64),
            "ner": tf.TensorSpec([None], tf.int64), "chunks": tf.TensorSpec([None], tf.int64)})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        splits = tagged.load("conll2003", None, "pos")
        assert [splits.size(s) for s in ("train", "validation", "test")] == [3, 3, 3]
        assert splits.train["tokens"][1] == "Peter\tBlackburn"
        names = splits.label_names
        assert len(names) == 47 and splits.train["tags"][1] == f"{names[0]}\t{names[1]}"
        ner = tagged.load("conll2003", None, "ner")
        assert len(ner.label_names) == 9 and ner.origin["test"] == "tfds conll2003 'test', ner tags"
        with pytest.raises(UserError, match="tag_column 'upos' does not fit TFDS 'conll2003'"):
            tagged.load("conll2003", None, "upos")
    assert np.asarray(splits.test["tokens"]).dtype == object


def test_most_frequent_label_baseline():
    from rnn_apps.metrics import most_frequent_labels

    train_pieces = [["the", "dog", "runs"], ["the", "runs", "dog"], ["a", "dog"]]
    train_labels = [["DET", "NOUN", "VERB"], ["DET", "NOUN", "NOUN"], ["DET", "NOUN"]]
    # dog: NOUN 3 times; runs: VERB once, NOUN once (the first seen wins); unseen "cat": NOUN (the most frequent)
    assert most_frequent_labels(train_pieces, train_labels, [["the", "runs", "cat"]]) == [["DET", "VERB", "NOUN"]]
