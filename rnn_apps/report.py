"""`rnn-apps report RUN [--out report.html]`: one self-contained HTML page about a run.

The page holds what the run folder records (data, config, the training and validation loss of
every epoch as an SVG chart, the test metrics once `evaluate` has run) and what the app adds
(`App.report_sections`: caption shows its test images, inlined as data: URIs, beside the generated
and the human captions). Nothing is fetched from elsewhere: the file can be mailed or archived.
"""

import base64
import html
import json
import shutil
import subprocess
from pathlib import Path

from foundation.files import write_text
from foundation.html import STYLE
from pipelines import images

WIDTH, HEIGHT, MARGIN = 640, 280, 48
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
SERIES = (("loss", "#1f77b4", "training loss"), ("val_loss", "#d62728", "validation loss"))


def write(run, out: Path, limit: int = 100) -> Path:
    """Write the page for `run` to `out` (atomically); `limit` caps the examples an app shows."""
    metrics = run.metrics()
    body = [f"<h1>{html.escape(run.app.name)}: {html.escape(str(run.dir))}</h1>",
            f"<p>{html.escape(run.app.topology)}, {html.escape(run.app.task)}; data {html.escape(run.info['data'])}"
            f"{_splits(run.info.get('splits'))}</p>"]
    for title, section in run.app.report_sections(run, limit):
        body.append(f"<h2>{html.escape(title)}</h2>{section}")
    body.append("<h2>Loss by epoch</h2>" + loss_chart(metrics.get("history", []), metrics.get("best_epoch")))
    if "test" in metrics:
        body.append("<h2>Test metrics (from <code>rnn-apps evaluate</code>)</h2>" + table(_flat(metrics["test"])))
    else:
        command = f"rnn-apps evaluate {run.dir}"
        body.append(f"<h2>Test metrics</h2><p>Not evaluated yet: run <code>{html.escape(command)}</code>, "
                    "then report again.</p>")
    body.append("<h2>Config</h2>" + table(run.config))
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(run.app.name)} report'
            f"</title><style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, page)
    return out


def _splits(splits) -> str:
    if not isinstance(splits, dict):
        return ""
    return " (" + ", ".join(f"{name} {count:,}" for name, count in splits.items()) + ")"


def _flat(values: dict, prefix: str = "") -> dict:
    """Nested metrics -> one level of "a / b" keys; lists of examples are left out."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key} / "))
        elif not isinstance(value, list):
            out[f"{prefix}{key}"] = value
    return out


def table(values: dict) -> str:
    rows = []
    for key, value in values.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        shown = f"{value:.4g}" if isinstance(value, float) else json.dumps(value) if not isinstance(value, str) \
            else value
        cell = '<td class="number">' if number else "<td>"
        rows.append(f"<tr><th>{html.escape(str(key))}</th>{cell}{html.escape(shown)}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def captioned_images(items) -> str:
    """[(name, encoded image, generated text, [human texts])] -> the images inlined as data: URIs,
    each beside its generated text and the human ones (the report's .captions style)."""
    cards = []
    for name, data, generated, humans in items:
        listed = "".join(f"<li>{html.escape(h)}</li>" for h in humans)
        cards.append(f'<figure class="caption"><img src="data:{images.mime_type(data)};base64,'
                     f'{base64.b64encode(data).decode("ascii")}" alt="{html.escape(str(name))}">'
                     f'<figcaption><p class="generated">{html.escape(generated)}</p>'
                     f'<p class="name">{html.escape(str(name))}</p><ul class="human">{listed}</ul>'
                     f'</figcaption></figure>')
    return '<div class="captions">' + "".join(cards) + "</div>"


def loss_chart(history: list, best_epoch=None) -> str:
    """Training and validation loss by epoch as an inline SVG line chart."""
    epochs = [h["epoch"] for h in history if isinstance(h, dict) and "epoch" in h]
    values = [h[key] for h in history for key, _, _ in SERIES if isinstance(h.get(key), (int, float))]
    if not epochs or not values:
        return "<p>No epochs recorded.</p>"
    low, high = min(values), max(values)
    high = high if high > low else low + 1.0
    first, last = min(epochs), max(epochs)
    span = last - first or 1

    def x(epoch):
        return MARGIN + (epoch - first) / span * (WIDTH - 2 * MARGIN)

    def y(value):
        return HEIGHT - MARGIN + (low - value) / (high - low) * (HEIGHT - 2 * MARGIN)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
             f'aria-label="loss by epoch">',
             f'<line x1="{MARGIN}" y1="{HEIGHT - MARGIN}" x2="{WIDTH - MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#999"/>',
             f'<line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{HEIGHT - MARGIN}" stroke="#999"/>']
    for value in (low, (low + high) / 2, high):
        parts.append(f'<text x="{MARGIN - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.3g}</text>')
    for epoch in sorted({first, last, *(e for e in epochs if span <= 10)}):
        parts.append(f'<text x="{x(epoch):.1f}" y="{HEIGHT - MARGIN + 16}" text-anchor="middle">{epoch}</text>')
    parts.append(f'<text x="{WIDTH / 2}" y="{HEIGHT - 8}" text-anchor="middle">epoch</text>')
    for row, (key, colour, label) in enumerate(SERIES):
        points = [(h["epoch"], h[key]) for h in history if isinstance(h.get(key), (int, float))]
        if points:
            path = " ".join(f"{x(e):.1f},{y(v):.1f}" for e, v in points)
            parts.append(f'<polyline class="{key}" fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
            parts.append(f'<text x="{WIDTH - MARGIN - 110}" y="{MARGIN + 14 * row}" fill="{colour}" '
                         f'style="fill:{colour}">{label}</text>')
    if best_epoch in epochs:
        parts.append(f'<line x1="{x(best_epoch):.1f}" y1="{MARGIN}" x2="{x(best_epoch):.1f}" y2="{HEIGHT - MARGIN}" '
                     f'stroke="#2ca02c" stroke-dasharray="4 3"/><text x="{x(best_epoch) + 4:.1f}" y="{MARGIN - 6}">'
                     f"best epoch {best_epoch}</text>")
    return "".join(parts) + "</svg>"


def screenshot(page: Path, png: Path, width: int, height: int):
    """Render `page` in headless Chromium to `png` (width x height pixels): the finished browser
    process, or None where no Chromium is installed (`apt install chromium`)."""
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    if browser is None:
        return None
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--window-size={width},{height}", f"--screenshot={png}", Path(page).resolve().as_uri()],
                          capture_output=True, text=True, timeout=120)
