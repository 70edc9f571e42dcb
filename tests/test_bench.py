"""The benchmark runner (`python -m bench`): seeds trained and evaluated on validation and test, the
result file's fields, and the tables it generates between the report markers."""

import json
import subprocess
import sys

import numpy as np
import pytest

from bench import common, protocol, runner
from tests.conftest import REPO
from tests.test_cli import invoke


def test_metrics_are_read_by_their_path_and_missing_ones_are_none():
    output = {"greedy": {"bleu": 31.5, "test": {"per_class": {"falling": {"recall": 0.8}}}}, "beam": {"bleu": 33.0}}
    assert protocol.read(output["greedy"], "test.per_class.falling.recall") == 0.8
    assert protocol.read(output["greedy"], "last_10pct.nats_per_char") is None
    benchmark = {"metrics": {"bleu_greedy": ("greedy", "bleu"), "bleu_beam": ("beam", "bleu")}}
    assert protocol.metrics(benchmark, output) == {"bleu_greedy": 31.5, "bleu_beam": 33.0}


def test_every_benchmark_names_a_registered_app_and_its_local_data():
    from rnn_apps import registry

    for name, benchmark in protocol.BENCHMARKS.items():
        assert benchmark["app"] in registry.names(), name
        assert (common.DATA_ROOT / benchmark["data"]).exists() or benchmark["data"] == "digits", name
        assert benchmark["seeds"] >= 3 and benchmark["metrics"], name


def test_summary_over_seeds():
    stats = runner.summary([0.9, 0.92, None, 0.94])
    assert stats["n"] == 3 and stats["mean"] == pytest.approx(0.92) and stats["std"] == pytest.approx(0.02)
    assert stats["interval95"] == pytest.approx([0.92 - 4.303 * 0.02 / 3 ** 0.5, 0.92 + 4.303 * 0.02 / 3 ** 0.5])
    assert runner.summary([None]) == {}


def test_bootstrap_interval_over_test_examples():
    """A ratio over examples, averaged over seeds: the interval holds the observed mean, narrows with
    more examples, pairs seeds that read the same examples and draws the others apart."""
    rng = np.random.default_rng(1)
    small = [{"correct": rng.integers(0, 2, 100).tolist(), "count": [1] * 100, "examples": "a"} for _ in range(3)]
    large = [{"correct": rng.integers(0, 2, 2000).tolist(), "count": [1] * 2000, "examples": "a"} for _ in range(3)]
    for parts in (small, large):
        low, high = runner.bootstrap(parts)
        mean = np.mean([np.mean(p["correct"]) for p in parts])
        assert low < mean < high
    assert runner.bootstrap(large)[1] - runner.bootstrap(large)[0] < (runner.bootstrap(small)[1]
                                                                         - runner.bootstrap(small)[0]) / 3
    # the same examples under every seed: one draw, so identical seeds give the single seed's interval
    same = [small[0], dict(small[0]), dict(small[0])]
    assert runner.bootstrap(same) == pytest.approx(runner.bootstrap(small[:1]))
    apart = [{**p, "examples": str(i)} for i, p in enumerate(same)]  # other splits: drawn apart, narrower
    assert np.diff(runner.bootstrap(apart))[0] < np.diff(runner.bootstrap(same))[0]
    # sequences of several tokens: sum(correct) / sum(count), not a mean of ratios
    tokens = [{"correct": [9, 0], "count": [10, 1], "examples": "t"}]
    assert runner.bootstrap(tokens)[1] <= 1.0 and runner.bootstrap(tokens)[0] >= 0.0
    assert runner.bootstrap([None]) is None and runner.bootstrap([]) is None


def test_bootstrap_of_corpus_bleu_resamples_sentences():
    """Corpus BLEU is no mean over sentences: its interval comes from the drawn sentences' summed
    statistics, and holds the corpus score the evaluation printed."""
    import sacrebleu

    from foundation import internals

    rng = np.random.default_rng(2)
    words = "the a cat dog sat ran on under mat house red blue".split()
    references = [" ".join(rng.choice(words, 8)) for _ in range(200)]
    hypotheses = [" ".join(w if rng.random() < 0.7 else "x" for w in r.split()) for r in references]
    corpus = sacrebleu.corpus_bleu(hypotheses, [references]).score
    parts = [{"bleu_stats": internals.bleu_statistics(hypotheses, references, "13a"), "tokenize": "13a",
              "examples": "t"}]
    low, high = runner.bootstrap(parts, samples=300)
    assert low < corpus < high and high - low < 20


@pytest.mark.slow
def test_a_run_writes_seeds_with_validation_and_test_and_the_report_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(sys, "argv", ["python -m bench", "run", "digits", "--seeds", "2", "--set", "epochs=1"])
    result = runner.run("digits", 2, ["epochs=1", "units=16"], keep=False)
    written = json.loads((tmp_path / "results" / "digits.json").read_text())
    assert written["app"] == "digits" and written["data"] == "digits" and written["commit"] != "unknown"
    assert written["cpu"]["model"] and written["command"].startswith("python ") and written["date"]
    assert written["config"]["epochs"] == 1 and written["config"]["units"] == 16 and "seed" not in written["config"]
    assert [s["seed"] for s in written["seeds"]] == [0, 1]
    for seed in written["seeds"]:
        for split in ("validation", "test"):
            assert 0.0 < seed[split]["accuracy"] <= 1.0
        assert seed["train_seconds"] > 0
        # the training curve the app page draws: one epoch (epochs=1), its losses, the best epoch
        assert [row["epoch"] for row in seed["history"]] == [1] and seed["best_epoch"] == 1
        assert set(seed["history"][0]) == {"epoch", "loss", "val_loss"} and seed["history"][0]["loss"] > 0
    assert written["seeds"][0]["samples"] == []  # digits' evaluate shows no outputs
    # different seeds split and initialise differently; validation is not the test split
    assert written["seeds"][0]["test"] != written["seeds"][1]["test"]
    assert written["seeds"][0]["validation"] != written["seeds"][0]["test"]
    test_mean = written["summary"]["accuracy"]["test"]["mean"]
    assert test_mean == pytest.approx(sum(s["test"]["accuracy"] for s in written["seeds"]) / 2)
    assert result["summary"] == written["summary"]
    # a bootstrap interval over the test digits (each seed splits anew: drawn apart) around the mean
    low, high = written["summary"]["accuracy"]["test"]["bootstrap95"]
    assert low < test_mean < high and high - low < 0.2
    counted = json.loads((tmp_path / "runs" / "digits" / "seed0" / "per_example_test.json").read_text())
    assert np.mean(counted["metrics"]["accuracy"]["correct"]) == pytest.approx(written["seeds"][0]["test"]["accuracy"])
    # metrics.json of each seed keeps both splits, as `rnn-apps evaluate --split` stores them
    stored = json.loads((tmp_path / "runs" / "digits" / "seed0" / "metrics.json").read_text())
    assert stored["validation"]["accuracy"] == written["seeds"][0]["validation"]["accuracy"]

    # the report: the digits row with its figures, the others not measured yet, between the markers
    pages = {}
    for page in ("bench/RESULTS.md", "README.md"):
        copy = tmp_path / page
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text((REPO / page).read_text())
        pages[page] = copy
    monkeypatch.setattr(common, "REPO", tmp_path)
    assert sorted(runner.report()) == ["README.md", "bench/RESULTS.md"]
    shown = f"{100 * test_mean:.2f} ± "
    for copy in pages.values():
        text = copy.read_text()
        block = text[text.index(runner.BEGIN):text.index(runner.END)]
        assert "| `digits` | accuracy |" in block and shown in block and "| `translate` |" in block
        assert f"| {100 * low:.2f}–{100 * high:.2f} |" in block
        assert "not measured under the protocol yet" in block
    assert runner.report() == []  # regenerating changes nothing


@pytest.mark.slow
def test_evaluate_on_the_validation_split(tiny_run):
    run = tiny_run("digits")
    result = invoke("evaluate", run.dir, "--split", "validation", "--json")
    assert result.exit_code == 0, result.output
    validation = json.loads(result.stdout)
    stored = json.loads((run.dir / "metrics.json").read_text())
    assert stored["validation"] == validation
    assert validation["examples"] == run.load_data().size("validation")
    bad = invoke("evaluate", run.dir, "--split", "train")
    assert bad.exit_code == 2 and "'train' is not one of 'test', 'validation'" in bad.output


def test_python_m_bench_lists_every_benchmark():
    done = subprocess.run([sys.executable, "-m", "bench", "list"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(protocol.BENCHMARKS)


def test_compare_says_differ_only_where_the_interval_excludes_zero(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)

    def write(name, accuracies, recalls):
        seeds = [{"seed": i, "validation": {"frame_accuracy": a, "falling_recall": r}, "test": {}}
                 for i, (a, r) in enumerate(zip(accuracies, recalls, strict=True))]
        summaries = {m: {} for m in ("frame_accuracy", "falling_recall")}
        (tmp_path / f"{name}.json").write_text(json.dumps({"seeds": seeds, "summary": summaries}))

    write("frames", [0.93, 0.94, 0.935], [0.80, 0.70, 0.75])
    write("frames_bidirectional", [0.90, 0.905, 0.91], [0.74, 0.80, 0.72])
    lines = runner.compare("frames", "frames_bidirectional")
    assert lines[0].startswith("frame_accuracy (validation): frames - frames_bidirectional = +0.0300")
    assert lines[0].endswith(": differ")
    assert lines[1].startswith("falling_recall (validation)") and lines[1].endswith("no difference shown")
    with pytest.raises(SystemExit, match="no result under the protocol for digits"):
        runner.compare("frames", "digits")


def test_the_verdict_reads_the_target_on_the_test_means_and_intervals():
    def result(target, mean, interval=None, metric="accuracy"):
        return {"target": target, "summary": {metric: {"test": {"mean": mean, "bootstrap95": interval}}}}

    assert runner.verdict(result("accuracy >= 0.98", 0.988, [0.983, 0.992])) == "met with confidence"
    assert runner.verdict(result("accuracy >= 0.98", 0.988, [0.975, 0.995])) == "met on the mean"
    assert runner.verdict(result("accuracy >= 0.98", 0.988)) == "met on the mean"  # no interval: no confidence
    assert runner.verdict(result("accuracy >= 0.98", 0.97, [0.96, 0.985])) == "missed"
    assert runner.verdict(result("nats_per_char <= 1.45", 1.44, None, "nats_per_char")) == "met on the mean"
    assert runner.verdict(result("cider above the nearest neighbour's", 1.0)) == "see RESULTS.md"
    assert runner.verdict({"target": None, "summary": {}}) == ""


def test_samples_are_what_an_evaluation_shows():
    captions = [{"image": str(i), "caption": "a cat"} for i in range(7)]
    assert runner.samples({"samples": captions}) == captions[:5]
    assert runner.samples({"sample": {"prime": "ROMEO:", "text": "..."}}) == [{"prime": "ROMEO:", "text": "..."}]
    assert runner.samples({"accuracy": 0.9}) == []
    ensemble = {"members": [{"history": [{"epoch": 1, "loss": 0.5, "val_loss": 0.6, "accuracy": 0.8}],
                             "best_epoch": 1}, {"history": [], "best_epoch": 2}]}
    assert runner.training_curve(ensemble) == {"history": [{"epoch": 1, "loss": 0.5, "val_loss": 0.6}],
                                               "best_epoch": 1}


def test_paired_bootstrap_draws_the_same_examples_for_both_metrics():
    rng = np.random.default_rng(1)
    model = rng.integers(0, 2, 500)
    better = {"correct": model.tolist(), "count": [1] * 500, "examples": "x"}
    # the baseline: right where the model is, and wrong on 40 more examples: +8 points, every draw
    worse = model.copy()
    worse[np.flatnonzero(model)[:40]] = 0
    baseline = {"correct": worse.tolist(), "count": [1] * 500, "examples": "x"}
    low, high = runner.paired_bootstrap([better, better], [baseline, baseline], samples=300)
    assert 0.04 < low <= 0.08 <= high < 0.12
    # seeds on different splits (frames) are each paired with their own baseline, drawn apart
    other = {**better, "examples": "z"}
    assert runner.paired_bootstrap([better, other], [baseline, {**baseline, "examples": "z"}], samples=300)[0] > 0.04
    assert runner.paired_bootstrap([better], [{**baseline, "examples": "y"}]) is None
    assert runner.paired_bootstrap([better], [None]) is None
