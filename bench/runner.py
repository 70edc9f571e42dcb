"""The benchmark runner: every headline figure under one protocol (bench/RESULTS.md, top).

    python -m bench list                              # the benchmarks (bench/protocol.py) and their results
    python -m bench run digits [--seeds 5] [--set key=value ...] [--keep]
    python -m bench report                            # regenerate the tables of bench/RESULTS.md and README.md
    python -m bench compare frames frames_bidirectional [--split test]   # a difference over seeds, or none shown

`run` trains the app's default configuration once per seed on its local data (../shared/data, or
$RNN_APPS_DATA_ROOT), evaluates each seed on validation and on test, and writes
bench/results/<name>.json: commit, date, CPU and how the SimpleRNN kernel was built, the command, the
resolved configuration, and per seed the training time and the validation and test metrics, named
as `rnn-apps evaluate` names them. Runs are kept under bench/.runs/<name>/seed<N>; with --keep a
finished seed is evaluated again rather than retrained.
"""

import argparse
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

from bench import common, protocol

RUNS = common.REPO / "bench" / ".runs"
BEGIN, END = "<!-- bench report: begin (python -m bench report) -->", "<!-- bench report: end -->"
# two-sided 95% Student t quantiles by degrees of freedom, for an interval over seeds
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=common.REPO, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=common.REPO,
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def summary(values: list) -> dict:
    """Mean, sample standard deviation and a 95% t interval over seeds (None values left out)."""
    values = [v for v in values if v is not None]
    if not values:
        return {}
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    half = T95.get(len(values) - 1, 1.96) * std / math.sqrt(len(values)) if len(values) > 1 else None
    return {"mean": mean, "std": std, "n": len(values), "interval95": [mean - half, mean + half] if half else None}


BOOTSTRAP_SAMPLES = 2000


def bootstrap(per_seed: list, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0):
    """A 95% percentile interval for a metric of summed per-example parts (a ratio sum(correct) /
    sum(count), or corpus BLEU from sentence statistics) averaged over seeds, drawing each seed's
    test examples with replacement: it says how much the headline owes to this test set. Seeds that
    read the same examples (the same `examples` fingerprint) get the same draw (paired); seeds whose
    split differs (digits, frames) are drawn apart. `per_seed`: [{"correct": [...], "count": [...],
    "examples": str} or {"bleu_stats": [[...], ...], "tokenize": str, "examples": str}, ...]; None
    where a seed recorded none."""
    if not per_seed or any(p is None for p in per_seed):
        return None
    rng = np.random.default_rng(seed)
    paired = len({p["examples"] for p in per_seed}) == 1
    shared = rng.integers(0, _examples(per_seed[0]), size=(samples, _examples(per_seed[0])))
    values = []
    for p in per_seed:
        n = _examples(p)
        draws = shared if paired else rng.integers(0, n, size=(samples, n))
        values.append(_resampled(p, draws))
    low, high = np.percentile(np.mean(values, axis=0), [2.5, 97.5])
    return [float(low), float(high)]


def paired_bootstrap(first: list, second: list, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0):
    """A 95% percentile interval for (metric A - metric B) averaged over seeds, both computed on the
    same draws of the test examples (a paired bootstrap: a model against a baseline scored on the
    same sentences, recordings or windows, in the same order). Seeds that read the same examples
    share their draws too; seeds whose split differs (frames) are drawn apart, as in `bootstrap`.
    None unless every seed has parts of both over the same examples (fingerprint and count)."""
    pairs = list(zip(first, second, strict=True))
    if not pairs or any(a is None or b is None or a["examples"] != b["examples"] or _examples(a) != _examples(b)
                        for a, b in pairs):
        return None
    rng = np.random.default_rng(seed)
    shared = len({a["examples"] for a, _ in pairs}) == 1
    draws = [rng.integers(0, _examples(a), size=(samples, _examples(a))) for a, _ in pairs[:1 if shared else None]]
    differences = np.mean([_resampled(a, draws[0 if shared else i]) - _resampled(b, draws[0 if shared else i])
                           for i, (a, b) in enumerate(pairs)], axis=0)
    low, high = np.percentile(differences, [2.5, 97.5])
    return [float(low), float(high)]


def _examples(parts: dict) -> int:
    return len(parts["bleu_stats"] if "bleu_stats" in parts else parts["count"])


def _resampled(parts: dict, draws: np.ndarray) -> np.ndarray:
    """The metric on each draw of examples [samples, n]: a ratio of sums, or corpus BLEU from the
    drawn sentences' summed statistics (`bleu_stats`, sacrebleu's, with its `tokenize`)."""
    if "bleu_stats" in parts:
        from foundation import internals

        summed = np.asarray(parts["bleu_stats"], float)[draws].sum(1)
        return np.array([internals.bleu_from_statistics(row, parts["tokenize"]) for row in summed])
    correct, count = np.asarray(parts["correct"], float)[draws].sum(1), np.asarray(parts["count"], float)[draws].sum(1)
    return correct / np.maximum(count, 1)


def run(name: str, seeds: int, assignments: list, keep: bool) -> dict:
    from rnn_apps import registry
    from rnn_apps.config import parse_assignments
    from rnn_apps.run import Run
    from rnn_apps.train import train

    benchmark = protocol.BENCHMARKS[name]
    app = registry.get(benchmark["app"])
    overrides = {**benchmark.get("overrides", {}), **parse_assignments(assignments)}
    evaluations = benchmark.get("evaluations", {"": {}})
    records, config, parts = [], None, []
    for seed in range(seeds):
        seeded = {**overrides, **{key: seed for key in benchmark.get("seed_keys", ["seed"])}}
        config = app.resolve_config(benchmark.get("preset"), seeded)
        out = RUNS / name / f"seed{seed}"
        timing = out / "bench_train_seconds.json"
        if not (keep and timing.exists()):
            shutil.rmtree(out, ignore_errors=True)
            start = time.time()
            train(app, config, benchmark["data"], common.DATA_ROOT, out, {}, echo=lambda *_: None)
            timing.write_text(json.dumps({"train_seconds": round(time.time() - start, 1)}) + "\n")
        trained = Run(out)
        record = {"seed": seed, **json.loads(timing.read_text()), **training_curve(trained.metrics())}
        seed_parts = {}  # evaluation -> {metric path: per-example parts, "examples": fingerprint}
        for split in ("validation", "test"):
            outputs = {}
            for evaluation, options in evaluations.items():
                outputs[evaluation] = trained.evaluate(split, **options)
                found = trained.per_example(split) if split == "test" else {}
                seed_parts[evaluation] = {path: {**counts, "examples": found.get("examples")}
                                          for path, counts in found.get("metrics", {}).items()}
            record[split] = protocol.metrics(benchmark, outputs)
            if split == "test" and seed == 0:  # what the model writes, for the app's page
                record["samples"] = samples(next(iter(outputs.values())))
        parts.append(seed_parts)
        records.append(record)
        print(json.dumps(record), flush=True)
    result = {"app": benchmark["app"], "benchmark": name, "data": benchmark["data"], "commit": commit(),
              "preset": benchmark.get("preset"), "overrides": overrides,
              "config": {k: v for k, v in config.items() if k not in benchmark.get("seed_keys", ["seed"])},
              "target": benchmark.get("target"), "seeds": records,
              "summary": {metric: {split: summary([r[split][metric] for r in records])
                                   for split in ("validation", "test")} for metric in benchmark["metrics"]}}
    for metric, (evaluation, path) in benchmark["metrics"].items():
        interval = bootstrap([p.get(evaluation, {}).get(path) for p in parts])
        result["summary"][metric]["test"]["bootstrap95"] = interval
    result["comparisons"] = {}
    for a, b in benchmark.get("comparisons", []):
        result["comparisons"][f"{a} - {b}"] = {split: summary([difference(r[split], a, b) for r in records])
                                               for split in ("validation", "test")}
        paired = paired_bootstrap(*([p.get(benchmark["metrics"][m][0], {}).get(benchmark["metrics"][m][1])
                                     for p in parts] for m in (a, b)))
        result["comparisons"][f"{a} - {b}"]["test"]["paired_bootstrap95"] = paired
    common.write(name, result)
    return result


def training_curve(metrics: dict) -> dict:
    """A run's loss by epoch and its best epoch (an ensemble's: its first member's), for the app
    pages' pictures (scripts/app_pages.py)."""
    first = (metrics.get("members") or [metrics])[0]
    history = [{k: v for k, v in row.items() if k in ("epoch", "loss", "val_loss")} for row in first.get("history", [])]
    return {"history": history, "best_epoch": first.get("best_epoch")}


def samples(output: dict, count: int = 5) -> list:
    """The first few outputs an evaluation shows (captions, translations, a written text), if any."""
    found = output.get("samples") or ([output["sample"]] if isinstance(output.get("sample"), dict) else [])
    return found[:count]


def difference(metrics: dict, a: str, b: str):
    return None if metrics.get(a) is None or metrics.get(b) is None else metrics[a] - metrics[b]


def compare(first: str, second: str, split: str = "validation") -> list:
    """Lines saying, for each metric two benchmarks share, the difference of their means over seeds with a
    95% Welch interval, and whether that interval excludes 0 (the only way a variant is said to differ)."""
    results = {name: protocol_result(name) for name in (first, second)}
    missing = [name for name, result in results.items() if result is None]
    if missing:
        raise SystemExit(f"bench compare: no result under the protocol for {', '.join(missing)}")
    lines = []
    for metric in [m for m in results[first]["summary"] if m in results[second]["summary"]]:
        a, b = ([r[split][metric] for r in results[name]["seeds"] if r[split][metric] is not None]
                for name in (first, second))
        if len(a) < 2 or len(b) < 2:
            continue
        delta = statistics.fmean(a) - statistics.fmean(b)
        va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
        freedom = max(1, round((va + vb) ** 2 / ((va ** 2 / (len(a) - 1)) + (vb ** 2 / (len(b) - 1)) or 1)))
        half = T95.get(freedom, 1.96) * math.sqrt(va + vb)
        verdict = "differ" if abs(delta) > half else "no difference shown"
        lines.append(f"{metric} ({split}): {first} - {second} = {delta:+.4f}, 95% interval "
                     f"[{delta - half:+.4f}, {delta + half:+.4f}]: {verdict}")
    return lines


def _shown(metric: str, stats: dict) -> str:
    if not stats:
        return "—"
    scale = 100 if re.search("accuracy|recall", metric) else 1  # fractions shown as percentages
    return f"{scale * stats['mean']:.2f} ± {scale * stats['std']:.2f}"


def verdict(result: dict) -> str:
    """Whether the test means meet the benchmark's target ("met", "missed"), and, where every metric
    of the target has a bootstrap interval, whether its whole interval does ("met with confidence")."""
    target = result.get("target")
    if not target:
        return ""
    tests = {metric: stats["test"] for metric, stats in result["summary"].items() if stats.get("test")}

    def holds(values: dict):
        try:
            return bool(eval(target, {"__builtins__": {}}, values))  # noqa: S307 (protocol.py's own strings)
        except Exception:  # a target in words ("cider above the nearest neighbour's")
            return None

    on_mean = holds({m: t["mean"] for m, t in tests.items()})
    if on_mean is None:
        return "see RESULTS.md"
    ends = [{m: (t["bootstrap95"][i] if t.get("bootstrap95") else None) for m, t in tests.items()} for i in (0, 1)]
    sure = all(v is not None for end in ends for m, v in end.items() if m in target) and \
        holds(ends[0]) and holds(ends[1])
    return ("met with confidence" if sure else "met on the mean") if on_mean else "missed"


def _interval(metric: str, stats: dict) -> str:
    """The test set's bootstrap interval of the mean over seeds; "—" where the seeds read different
    test examples (frames) or the metric is not a ratio over examples (BLEU, CIDEr, nats)."""
    interval = stats.get("bootstrap95") if stats else None
    if not interval:
        return "—"
    scale = 100 if re.search("accuracy|recall", metric) else 1
    return f"{scale * interval[0]:.2f}–{scale * interval[1]:.2f}"


def protocol_result(name: str) -> dict | None:
    """bench/results/<name>.json where it holds a result under the protocol (older files do not)."""
    path = common.RESULTS / f"{name}.json"
    result = json.loads(path.read_text()) if path.exists() else {}
    return result if isinstance(result.get("seeds"), list) else None


def table(headlines: bool = False) -> str:
    """The markdown table of every benchmark's protocol result (or that it has none yet); with
    `headlines`, only the benchmarks that carry a target: each app's headline, what the README shows."""
    rows = ["| benchmark | metric | validation (mean ± sd) | test (mean ± sd) | test 95% bootstrap | seeds | "
            "training a seed | target | on test | commit, date, CPU |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, benchmark in protocol.BENCHMARKS.items():
        if headlines and not benchmark.get("target"):
            continue
        result = protocol_result(name)
        if result is None:
            rows.append(f"| `{name}` | {', '.join(benchmark['metrics'])} | not measured under the protocol yet "
                        "| | | | | "
                        f"{benchmark.get('target', '')} | | `python -m bench run {name}` |")
            continue
        result = {**result, "target": benchmark.get("target")}  # the protocol's, where a result was renamed
        minutes = statistics.fmean(r["train_seconds"] for r in result["seeds"]) / 60
        where = f"{result['commit']}, {result['date']}, {result.get('cpu', {}).get('model', '?')}"
        for i, metric in enumerate(result["summary"]):  # what it measured (the protocol may ask more since)
            stats = result["summary"][metric]
            first = i == 0
            rows.append(f"| {'`' + name + '`' if first else ''} | {metric} | {_shown(metric, stats['validation'])} | "
                        f"{_shown(metric, stats['test'])} | {_interval(metric, stats['test'])} | "
                        f"{len(result['seeds']) if first else ''} | "
                        f"{f'{minutes:.1f} min' if first else ''} | {result.get('target') or '' if first else ''} | "
                        f"{verdict(result) if first else ''} | {where if first else ''} |")
    return "\n".join(rows)


def report() -> list:
    """Writes the table between the markers of bench/RESULTS.md and README.md; returns the files changed."""
    changed = []
    for path, headlines in ((common.REPO / "bench" / "RESULTS.md", False), (common.REPO / "README.md", True)):
        generated, text = f"{BEGIN}\n{table(headlines)}\n{END}", path.read_text()
        if BEGIN not in text or END not in text:
            sys.exit(f"bench report: {path} has no report markers ({BEGIN})")
        new = re.sub(re.escape(BEGIN) + ".*?" + re.escape(END), lambda _, block=generated: block, text, flags=re.S)
        if new != text:
            path.write_text(new)
            changed.append(str(path.relative_to(common.REPO)))
    return changed


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="the benchmarks and whether each has a result under the protocol")
    to_run = commands.add_parser("run", help="train and evaluate one benchmark over several seeds")
    to_run.add_argument("name", choices=sorted(protocol.BENCHMARKS))
    to_run.add_argument("--seeds", type=int, help="seeds 0..N-1 (default: the benchmark's own count)")
    to_run.add_argument("--set", dest="assignments", nargs="*", default=[], metavar="KEY=VALUE")
    to_run.add_argument("--keep", action="store_true", help="evaluate finished seeds again instead of retraining")
    commands.add_parser("report", help="regenerate the results tables of bench/RESULTS.md and README.md, and "
                                       "the app pages of docs/apps/")
    to_compare = commands.add_parser("compare", help="two benchmarks (variants) metric by metric, over seeds")
    to_compare.add_argument("first", choices=sorted(protocol.BENCHMARKS))
    to_compare.add_argument("second", choices=sorted(protocol.BENCHMARKS))
    to_compare.add_argument("--split", choices=["validation", "test"], default="validation",
                            help="validation to choose between variants; test to report a frozen choice")
    args = parser.parse_args(argv)
    if args.command == "list":
        for name, benchmark in protocol.BENCHMARKS.items():
            result = protocol_result(name)
            print(f"{name:<24} {benchmark['app']:<10} {benchmark['data']:<20} seeds {benchmark['seeds']}  "
                  + (f"measured {result['date']} at {result['commit']}" if result else "no result yet"))
    elif args.command == "compare":
        print("\n".join(compare(args.first, args.second, args.split)) or "no shared metric with 2 seeds each")
    elif args.command == "run":
        run(args.name, args.seeds or protocol.BENCHMARKS[args.name]["seeds"], args.assignments, args.keep)
    else:
        print("\n".join(report()) or "tables already up to date")
        # the app pages show the same figures (docs/apps/<app>.md, scripts/app_pages.py)
        pages = subprocess.run([sys.executable, str(common.REPO / "scripts" / "app_pages.py")], check=False)
        if pages.returncode:
            sys.exit("bench report: scripts/app_pages.py failed")
