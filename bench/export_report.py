"""Quantized phone models of every app: size, batch-1 latency (with and without XNNPACK, 1 and 2
threads) and each app's own test quality per mode, through `rnn-apps export --quantize all` and
`rnn-apps report-export`; and the phone-sized sentiment model (one ensemble member, quantized)
beside the full five-member ensemble.

    python bench/export_report.py [--runs DIR] [--minutes 6]
    python bench/export_report.py --report-only     # time the exports already in bench/.exports again

Each app's default config is trained on its default data (sentiment in full; the others within a
budget of --minutes each, `max_train_minutes`: their quality is that of a model trained that long,
which is what the comparison between modes needs), kept in --runs so a rerun only measures.
Writes bench/results/export_report.json (+ .html, and a PNG of the page where Chromium is
installed).
"""

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import common

from rnn_apps import registry

FULL = ("digits", "sentiment", "frames")  # trained to their own stopping point (minutes at most here)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default=str(common.REPO / "bench" / ".runs"), help="Trained runs (kept).")
    parser.add_argument("--minutes", type=float, default=6.0, help="Training budget of each other app.")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--apps", default=",".join(registry.names()))
    parser.add_argument("--report-only", action="store_true", help="Keep bench/.exports; only measure.")
    args = parser.parse_args()

    from click.testing import CliRunner

    from rnn_apps.cli import main as cli

    def rnn_apps(*argv):
        result = CliRunner().invoke(cli, [str(a) for a in argv])
        print(result.output, end="", flush=True)
        if result.exit_code != 0:
            raise SystemExit(f"rnn-apps {' '.join(map(str, argv))} failed ({result.exit_code})")

    root = Path(common.RESULTS.parent / ".exports")
    previous = common.RESULTS / "export_report.json"
    timings = json.loads(previous.read_text())["timings"] if args.report_only and previous.exists() else {}
    if not args.report_only:
        shutil.rmtree(root, ignore_errors=True)
    for name in [] if args.report_only else args.apps.split(","):
        out = Path(args.runs) / name
        overrides = {} if name in FULL else {"max_train_minutes": args.minutes}
        print(f"== {name}: training {'to its stopping point' if name in FULL else f'{args.minutes} min'}",
              flush=True)
        seconds = common.train_once(registry.get(name), common.local_data(name), overrides, out)
        timings[name] = {"train_seconds": round(seconds, 1)}
        start = time.time()
        rnn_apps("export", out, "--out", root, "--quantize", "all")
        timings[name]["export_seconds"] = round(time.time() - start, 1)
        if name == "sentiment":
            start = time.time()
            rnn_apps("export", out, "--out", root, "--name", "sentiment_phone", "--member", "best",
                     "--quantize", "all")
            timings["sentiment_phone"] = {"export_seconds": round(time.time() - start, 1)}
    page = common.RESULTS / "export_report.html"
    rnn_apps("report-export", root, "--out", page, "--repeats", args.repeats)
    report = json.loads(page.with_suffix(".json").read_text())
    try:
        from rnn_apps import report as report_lib

        report_lib.screenshot(page, common.RESULTS / "export_report.png", width=1400, height=4000)
    except Exception as e:  # noqa: BLE001 - a missing browser only costs the picture
        print(f"no screenshot: {e}", file=sys.stderr)
    summary = {}
    for model in report["models"]:
        rows = {r["mode"]: r for r in model["rows"]}
        summary[model["model_name"]] = {
            mode: {"MB": round(r["bytes"] / 1e6, 3), "quality": r.get("quality"), "difference": r.get("difference"),
                   "within_bound": r.get("within_bound"), "default": r["default"],
                   "ms_1_thread_xnnpack": r["latency_ms"]["1 thread, XNNPACK"]}
            for mode, r in rows.items()}
        for row in model["unavailable"]:
            summary[model["model_name"]][row["mode"]] = {"not available": row["why"]}
    common.write("export_report", {"timings": timings, "summary": summary, "report": report})


if __name__ == "__main__":
    main()
