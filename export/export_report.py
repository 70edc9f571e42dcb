"""`rnn-apps report-export EXPORT_ROOT`: what each published phone model costs and how good it is.

For the newest version of every model in the manifest, each `.tflite` (one per quantization mode)
is timed here, at batch 1, per signature (a decoder's `decode_step` is one output token), with
LiteRT's default XNNPACK delegate and without it, on 1 and 2 threads; beside that stand its size
and the app's quality on its test split as the export measured it (`--quantize`), with the
difference from the float model and whether it stays within the app's bound. Inputs are zeros of
each signature's shape: a SimpleRNN's cost does not depend on the values it reads.

Writes one self-contained HTML page (a table and bar charts per model) and the same numbers as JSON
beside it (`<out>.json`).
"""

import html
import statistics
import time
from pathlib import Path

import numpy as np

from export import tflite
from export.exporter import read_manifest
from foundation.files import write_json, write_text
from foundation.html import STYLE

SETTINGS = [(1, True), (2, True), (1, False), (2, False)]  # (threads, XNNPACK)
WARMUP = 5


def latency_ms(path, threads: int, xnnpack: bool, repeats: int) -> dict:
    """{signature: median ms of one batch-1 call} (or {signature: "error: ..."} where LiteRT fails)."""
    interpreter = tflite.interpreter(path, num_threads=threads, xnnpack=xnnpack)
    out = {}
    for name in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(name)
        inputs = {k: np.zeros([1, *[max(int(d), 1) for d in v["shape_signature"][1:]]], v["dtype"])
                  for k, v in runner.get_input_details().items()}
        try:
            for _ in range(WARMUP):
                runner(**inputs)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                runner(**inputs)
                times.append((time.perf_counter() - start) * 1000)
            out[name] = round(statistics.median(times), 4)
        except (RuntimeError, ValueError) as e:
            out[name] = f"error: {str(e)[:120]}"
    return out


def setting_name(threads: int, xnnpack: bool) -> str:
    return f"{threads} thread{'s' if threads > 1 else ''}, {'XNNPACK' if xnnpack else 'no XNNPACK'}"


def measure(root: Path, repeats: int, echo=print) -> list:
    """-> one dict per model (its newest version): app, version, quality bound and a row per file."""
    manifest = read_manifest(root, missing_ok=False)
    newest = {}
    for entry in manifest["exports"]:
        if entry["model_name"] not in newest or entry["version"] > newest[entry["model_name"]]["version"]:
            newest[entry["model_name"]] = entry
    models = []
    for name, entry in sorted(newest.items()):
        measured = {row["file"]: {**section, "row": row} for section in entry.get("quantization", {}).values()
                    for row in section["modes"]}
        rows = []
        for artefact in [a for a in entry["artefacts"] if a["kind"] == "tflite"]:
            path = root / artefact["path"]
            if not path.exists():
                echo(f"  {path} is listed but missing: skipped")
                continue
            echo(f"  timing {artefact['path']} ...")
            quality = measured.get(path.name)
            row = {"file": path.name, "mode": artefact.get("quantization", "none"),
                   "default": artefact.get("default", True), "bytes": path.stat().st_size,
                   "latency_ms": {setting_name(threads, xnnpack): latency_ms(path, threads, xnnpack, repeats)
                                  for threads, xnnpack in SETTINGS}}
            if quality:
                metric = quality["metric"]
                row.update(metric=metric, quality=quality["row"][metric], difference=quality["row"]["difference"],
                           within_bound=quality["row"]["within_bound"])
            rows.append(row)
        unavailable = [row for section in entry.get("quantization", {}).values() for row in section["modes"]
                       if not row["available"]]
        bound = next(iter(entry.get("quantization", {}).values()), None)
        models.append({"model_name": name, "app": entry["app"], "version": entry["version"],
                       "ensemble_member": entry.get("ensemble_member"), "rows": rows, "unavailable": unavailable,
                       "bound": None if bound is None else {k: bound[k] for k in ("metric", "higher_is_better",
                                                                                    "bound", "test_examples")}})
    return models


def write(export_root, out, repeats: int = 50, echo=print) -> Path:
    root, out = Path(export_root), Path(out)
    echo(f"measuring the phone models in {root} ...")
    models = measure(root, repeats, echo)
    body = [f"<h1>Phone models in {html.escape(str(root))}</h1>",
            "<p>Batch-1 latency per call of each signature (median of "
            f"{repeats}, after {WARMUP} untimed; inputs are zeros), measured on this machine by "
            "<code>rnn-apps report-export</code>; quality on the app's test split as the export measured it "
            "(<code>rnn-apps export --quantize</code>). Flagged rows lose more than the stated bound and are "
            "never the default file.</p>"]
    for model in models:
        body.append(_section(model))
    style = f"{STYLE} body {{ max-width: 1500px; }} tr.flagged td {{ color: #b00; }}"
    page = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>phone models</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, page)
    write_json(out.with_suffix(".json"), {"export_root": str(root.resolve()), "repeats": repeats, "models": models})
    return out


def _section(model: dict) -> str:
    title = f"{model['model_name']} (app {model['app']}, version {model['version']}"
    if model["ensemble_member"] is not None:
        title += f", ensemble member {model['ensemble_member']}"
    parts = [f"<h2>{html.escape(title + ')')}</h2>"]
    bound = model["bound"]
    if bound:
        direction = "higher" if bound["higher_is_better"] else "lower"
        parts.append(f"<p>Quality: {html.escape(bound['metric'])} ({direction} is better) on "
                     f"{bound['test_examples']} test example(s); bound: a loss of at most {bound['bound']}.</p>")
    else:
        parts.append("<p>Quality not measured: export with <code>--quantize</code> to measure it per mode.</p>")
    settings = [s for s in model["rows"][0]["latency_ms"]] if model["rows"] else []
    signatures = sorted({sig for row in model["rows"] for sig in next(iter(row["latency_ms"].values()))})
    head = "".join(f"<th>{html.escape(sig)}<br>{html.escape(s)} (ms)</th>" for sig in signatures for s in settings)
    lines = [f"<table><tr><th>mode</th><th>file</th><th>MB</th><th>quality</th><th>difference</th>"
             f"<th>default</th>{head}</tr>"]
    for row in model["rows"]:
        flagged = row.get("within_bound") is False
        quality = f"{row['quality']:.4f}" if "quality" in row else "–"
        difference = f"{row['difference']:+.4f}" + (" (beyond the bound)" if flagged else "") \
            if "difference" in row else "–"
        cells = "".join(_number(row["latency_ms"][s][sig]) for sig in signatures for s in settings)
        css = " class=flagged" if flagged else ""
        lines.append(f"<tr{css}><td>{html.escape(row['mode'])}</td>"
                     f"<td>{html.escape(row['file'])}</td>{_number(row['bytes'] / 1e6)}<td class=number>{quality}</td>"
                     f"<td class=number>{difference}</td><td>{'yes' if row['default'] else ''}</td>{cells}</tr>")
    for row in model["unavailable"]:
        lines.append(f"<tr class=flagged><td>{html.escape(row['mode'])}</td><td colspan=5>not available: "
                     f"{html.escape(row.get('why', ''))}</td></tr>")
    parts.append("\n".join(lines) + "</table>")
    if model["rows"]:
        parts.append(bar_chart("size (MB)", [(r["mode"], r["bytes"] / 1e6) for r in model["rows"]]))
        for sig in signatures:
            key = settings[0]
            values = [(r["mode"], r["latency_ms"][key][sig]) for r in model["rows"]
                      if isinstance(r["latency_ms"][key][sig], float)]
            parts.append(bar_chart(f"{sig}: ms per call ({key})", values))
        if bound:
            parts.append(bar_chart(f"{bound['metric']} on the test split",
                                   [(r["mode"], r["quality"]) for r in model["rows"] if "quality" in r]))
    return "\n".join(parts)


def _number(value) -> str:
    shown = f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))
    return f"<td class=number>{shown}</td>"


def bar_chart(title: str, values: list, width: int = 420, bar: int = 18) -> str:
    """[(label, number)] -> an inline SVG of horizontal bars, each labelled with its value."""
    if not values:
        return ""
    top = max(max(v for _, v in values), 1e-12)
    height = 22 + bar * len(values) + 4
    rows = [f'<text x="0" y="14">{html.escape(title)}</text>']
    for i, (label, value) in enumerate(values):
        y = 22 + i * bar
        length = max(1.0, (width - 170) * value / top)
        rows.append(f'<text x="0" y="{y + 13}">{html.escape(label)}</text>'
                    f'<rect x="70" y="{y + 2}" width="{length:.1f}" height="{bar - 5}" fill="#1f77b4"/>'
                    f'<text x="{74 + length:.1f}" y="{y + 13}">{value:.4g}</text>')
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{"".join(rows)}</svg>'
