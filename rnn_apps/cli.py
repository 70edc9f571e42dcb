"""`rnn-apps`: list, train, evaluate, predict and export every registered app.

    rnn-apps list
    rnn-apps train sentiment --data sst2 --data-root ../shared/data --out runs/sentiment
    rnn-apps evaluate runs/sentiment
    rnn-apps predict runs/translate "¿Dónde está la biblioteca?" --beam 4
    rnn-apps predict runs/sentiment "a gorgeous , witty movie ." --json
    rnn-apps generate runs/charlm --prime "ROMEO:" --length 300 --temperature 0.8 --seed 1
    rnn-apps report runs/caption --out report.html
    rnn-apps export runs/sentiment --out exports
    rnn-apps export runs/sentiment --out exports --name sentiment_phone --member best --quantize all
    rnn-apps report-export exports
    rnn-apps query exports --name sentiment "a gorgeous , witty movie ."

Bad input (unknown app, missing files, unreachable data, damaged runs) ends with a one-line
`Error: ...` on stderr and exit status 2, never a traceback; an export that fails for another
reason (conversion, parity) says why, with the cause, and exits with status 1.
"""

import errno
import io
import json
import logging
import os
import sys

import click

from export import QUANTIZE_MODES
from foundation.errors import ExportError, UserError
from rnn_apps import config as config_lib
from rnn_apps import distribute, registry


class CliError(click.ClickException):
    exit_code = 2


class InternalError(click.ClickException):
    exit_code = 1


class Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as e:
            raise CliError(str(e)) from None
        except ExportError as e:
            raise InternalError(str(e)) from None
        except Exception as e:
            if not disk_full(e):
                raise
            # the writers clean up after themselves (staging folders, tmp- checkpoints): say what to do
            where = getattr(e, "filename", None) or "writing"
            raise CliError(f"no space left on the device ({where}); free some space and run the command again: "
                           "nothing half-written was kept") from None


def disk_full(error: BaseException) -> bool:
    """ENOSPC as Python raises it (OSError 28) or as TensorFlow's file writers do (ResourceExhaustedError)."""
    for e in (error, error.__cause__, error.__context__):
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        if e is not None and type(e).__name__ == "ResourceExhaustedError" and "No space left" in str(e):
            return True
    return False


def quiet_native_logs():
    """Hide what TensorFlow, XLA, oneDNN and LiteRT log from C++ straight to file descriptor 2
    (absl's InitializeLog notice, cuda probes, "Created TensorFlow Lite XNNPACK delegate"):
    TF_CPP_MIN_LOG_LEVEL does not reach all of them. Python's sys.stderr moves to a copy of the
    descriptor, so our own messages and errors still show; fd 2 itself goes to /dev/null."""
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    try:
        if sys.stderr.fileno() != 2:
            return
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return  # not the process's stderr (click's CliRunner, pytest's capture): nothing to move
    sys.stderr.flush()
    encoding = sys.stderr.encoding
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1, encoding=encoding, errors="backslashreplace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


def text_arguments(arguments) -> list:
    """Command-line inputs as text. Python keeps bytes that are not UTF-8 as lone surrogates, which
    no encoder takes; like stdin lines, they become U+FFFD."""
    out = []
    for argument in arguments:
        try:
            raw = argument.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            raw = argument.encode("utf-8", "replace")
        out.append(raw.decode("utf-8", "replace"))
    return out


@click.group(cls=Group)
@click.option("--verbose", is_flag=True, help="Show TensorFlow's and LiteRT's own log lines (hidden by default).")
@click.version_option(package_name="rnn_apps")
def main(verbose):
    """SimpleRNN apps for every RNN topology: train on public data, export to TF Serving and TFLite."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # rnn_apps/__init__.py sets 3 otherwise
    else:
        quiet_native_logs()


@main.command("list")
def list_apps():
    """Show the apps with their topology, task and default data."""
    apps = [registry.describe(name) for name in registry.names()]  # without importing TensorFlow
    width = max([len("topology")] + [len(app["topology"]) for app in apps])
    task_width = max([len("task")] + [len(app["task"]) for app in apps])
    click.echo(f"{'app':<12} {'topology':<{width}} {'task':<{task_width}} default data")
    for app in apps:
        click.echo(f"{app['name']:<12} {app['topology']:<{width}} {app['task']:<{task_width}} "
                   f"{' | '.join(app['default_data'])}")


@main.command()
@click.argument("app_name", metavar="APP")
@click.option("--data", help="TFDS name, dataset folder, CSV/TSV file, or a name under --data-root.")
@click.option("--data-root", envvar="RNN_APPS_DATA_ROOT", type=click.Path(file_okay=False),
              help="Folder of local datasets, so --data NAME resolves to DATA_ROOT/NAME. [env: RNN_APPS_DATA_ROOT; "
                   "default: ../shared/data beside the working directory or the checkout, where it exists]")
@click.option("--tfds-data-dir", help="TFDS data_dir (prepared or download target).")
@click.option("--text-column", default="text", show_default=True, help="CSV/TSV text column.")
@click.option("--label-column", default="label", show_default=True, help="CSV/TSV label column.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="RUN_DIR to write.")
@click.option("--resume", is_flag=True, help="Continue RUN_DIR from its last checkpoint, optimizer state included.")
@click.option("--preset", help="Named config preset of the app (e.g. tiny).")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--max-examples", type=int, help="Cap every split (seeded subset); 0 = all.")
@click.option("--seed", type=int)
@click.option("--learning-rate", type=float)
@click.option("--units", type=int, help="SimpleRNN units per layer (and direction).")
@click.option("--depth", type=int, help="Stacked SimpleRNN layers.")
@click.option("--bidirectional/--no-bidirectional", default=None)
@click.option("--dropout", type=float, help="Dropout on the SimpleRNN inputs.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Any other config key.")
@click.option("--strategy", type=click.Choice(distribute.STRATEGIES), default="none", show_default=True,
              help="tf.distribute: mirrored = every local GPU; multi-worker = the cluster in TF_CONFIG (every worker "
                   "runs this command with the same --out on shared storage; worker 0 writes the run).")
def train(app_name, data, data_root, tfds_data_dir, text_column, label_column, out_dir, resume, preset,
          assignments, strategy, **options):
    """Train APP and write a run folder (config, vocabulary, checkpoints, logs, metrics)."""
    registry.describe(app_name)  # an unknown app is refused before TensorFlow is imported (seconds)
    from pipelines.splits import default_data_root
    from rnn_apps import train as train_lib

    data_root = data_root or default_data_root()

    app = registry.get(app_name)
    overrides = {**config_lib.parse_assignments(assignments), **{k: v for k, v in options.items() if v is not None}}
    config = app.resolve_config(preset, overrides)
    data_options = {"text_column": text_column, "label_column": label_column, "tfds_data_dir": tfds_data_dir}
    train_lib.train(app, config, data, data_root, out_dir, data_options, resume=resume, resume_epochs=options["epochs"],
                    strategy=strategy)


# Beam search keeps width x vocabulary scores a step: past a few dozen it finds no better output and
# its memory grows without bound (issue 30: width 10^7 passed 5.8 GB).
MAX_BEAM = 64


def decoding_options(app, beam) -> dict:
    """--beam N for apps that decode with beam search (greedy without it); a one-line error for others."""
    if beam is None:
        return {}
    if not app.beam_search:
        raise UserError(f"--beam is for apps that decode with beam search (translate); {app.name} does not")
    if not 1 <= beam <= MAX_BEAM:
        raise UserError(f"--beam: expected a width from 1 to {MAX_BEAM}, got {beam}")
    return {"beam": beam}


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--beam", type=int, help="Beam search of this width (apps that write sequences; default greedy).")
@click.option("--split", type=click.Choice(["test", "validation"]), default="test", show_default=True,
              help="Choose settings on validation; read test once per frozen configuration.")
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object (per-class tables, samples).")
def evaluate(run_dir, beam, split, as_json):
    """Print the metrics of RUN_DIR on a split and store them in its metrics.json."""
    from rnn_apps.run import Run

    run = Run(run_dir)
    metrics = run.evaluate(split, **decoding_options(run.app, beam))
    click.echo(json.dumps(metrics) if as_json else metrics_table(metrics))


def metrics_table(metrics: dict) -> str:
    """The scalar metrics, one `name  value` line each (nested ones by dotted name); the rest (per-class
    tables, samples) are counted, and shown by --json."""
    rows, left_out = [], []

    def walk(prefix, value):
        scalars = isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values())
        rows_of_a_table = isinstance(value, dict) and all(isinstance(v, dict) for v in value.values())
        if (scalars or rows_of_a_table) and len(value) > 8:
            left_out.append(prefix)  # a table of its own (per tag, the most frequent errors)
        elif isinstance(value, dict):
            for key, inner in value.items():
                walk(f"{prefix}.{key}" if prefix else key, inner)
        elif isinstance(value, list):
            left_out.append(prefix)
        else:
            rows.append((prefix, f"{value:.4f}" if isinstance(value, float) else str(value)))

    walk("", metrics)
    width = max(len(name) for name, _ in rows) if rows else 0
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    if left_out:
        lines.append(f"(with --json also: {', '.join(left_out)})")
    return "\n".join(lines)


@main.command()
@click.argument("run_dir", type=click.Path())
@click.argument("inputs", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--beam", type=int, help="Beam search of this width (apps that write sequences; default greedy).")
def predict(run_dir, inputs, as_json, beam):
    """Predict for INPUTS (text, or files, by app), or for each stdin line when none are given."""
    from rnn_apps.run import Run

    run = Run(run_dir)
    options = decoding_options(run.app, beam)
    for chunk in in_chunks(text_arguments(inputs) if inputs else stdin_lines(), PREDICT_CHUNK):
        for row in run.app.predict(run, chunk, **options):
            click.echo(json.dumps(row, ensure_ascii=False) if as_json else run.app.format_prediction(row))


# Inputs predicted (and printed) at a time: memory stays flat however many lines stdin brings
# (10,000 lines took charlm's predict to 7.5 GB when all were read first).
PREDICT_CHUNK = 256


def stdin_lines():
    """stdin's lines as they come, bytes decoded leniently: invalid UTF-8 becomes U+FFFD, as in the serving graph."""
    for line in sys.stdin.buffer:
        yield line.decode("utf-8", "replace").rstrip("\r\n")


def in_chunks(items, size: int):
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--prime", default="", help="Text to continue (default: empty, read as the start of a line).")
@click.option("--length", type=int, default=300, show_default=True, help="Characters to write.")
@click.option("--temperature", type=float, default=1.0, show_default=True,
              help="Sampling temperature; 0 = always the most likely character.")
@click.option("--top-k", type=int, default=0, show_default=True, help="Sample among the k likeliest only; 0 = all.")
@click.option("--seed", type=int, default=0, show_default=True, help="The same seed writes the same text.")
def generate(run_dir, prime, length, temperature, top_k, seed):
    """Write text after --prime with a language model RUN_DIR, printed as it is written."""
    from rnn_apps.run import Run

    run = Run(run_dir)
    prime = text_arguments([prime])[0]
    pieces = run.app.stream(run, prime, length, temperature, top_k, seed)  # checks the options first
    click.echo(prime, nl=False)
    for piece in pieces:
        click.echo(piece, nl=False)  # click flushes each write: the text appears as it is chosen
    click.echo()


@main.command()
@click.argument("run_dir", type=click.Path())
@click.option("--out", "out_path", type=click.Path(), help="HTML file [default: RUN_DIR/report.html].")
@click.option("--limit", type=click.IntRange(min=0), default=100, show_default=True,
              help="At most this many test examples on the page.")
def report(run_dir, out_path, limit):
    """Write one self-contained HTML page about RUN_DIR: examples, loss curves, metrics."""
    from pathlib import Path

    from rnn_apps import report as report_lib
    from rnn_apps.run import Run

    run = Run(run_dir)
    out = Path(out_path) if out_path else run.dir / "report.html"
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; name the HTML file to write")
    click.echo(f"report written to {report_lib.write(run, out, limit)}")


@main.command("export")
@click.argument("run_dir", type=click.Path())
@click.option("--out", "export_root", required=True, type=click.Path(file_okay=False), help="EXPORT_ROOT.")
@click.option("--name", "model_name", help="Model name in EXPORT_ROOT (default: the app name).")
@click.option("--quantize", multiple=True, type=click.Choice([*QUANTIZE_MODES, "all"]),
              help="Also write the .tflite in this mode (repeat the option, or 'all'), each measured on the "
                   "test split; the model card names the smallest file within the app's quality bound.")
@click.option("--member", help="Export one member of an ensemble run: its index, or 'best' (on validation).")
@click.option("--label", help="A TF Serving version label for the new version (stable, canary): models.config "
              "serves it under that name.")
def export_cmd(run_dir, export_root, model_name, quantize, member, label):
    """Write a new version of RUN_DIR as SavedModel + TFLite, parity-checked, listed in manifest.json."""
    modes = QUANTIZE_MODES if "all" in quantize else tuple(m for m in QUANTIZE_MODES if m in quantize)
    if member is not None and member != "best" and not member.isdigit():
        raise UserError(f"--member {member!r}: expected a member's index (0, 1, ...) or 'best'")
    from export import exporter
    from rnn_apps.run import Run

    run = Run(run_dir)
    if member is not None:
        run = run.member(member if member == "best" else int(member))
    exporter.export_run(run, export_root, model_name, echo=click.echo, quantize=modes, label=label)


@main.command()
@click.argument("export_root", type=click.Path(file_okay=False))
@click.argument("label")
@click.option("--name", "model_name", required=True, help="Model name in EXPORT_ROOT.")
@click.option("--version", "version", type=int, required=True, help="The version the label points to.")
def label(export_root, label, model_name, version):
    """Point a TF Serving version LABEL (stable, canary) of a model at one of its versions, e.g. to
    promote the canary: models.config serves every labelled version and names it."""
    from export import exporter

    labels = exporter.set_label(export_root, model_name, version, label)
    click.echo(f"{model_name}: " + ", ".join(f"{k} -> version {v}" for k, v in sorted(labels.items())))


@main.command()
@click.argument("export_root", type=click.Path(file_okay=False))
def repair(export_root):
    """Finish or remove versions an export killed mid-publish left pending in EXPORT_ROOT, and move
    version folders the manifest does not list to EXPORT_ROOT/.orphans/ (out of TF Serving's sight)."""
    from export import exporter

    said = exporter.repair(export_root)
    for line in said:
        click.echo(line)
    click.echo(f"{export_root}: every version on disk is listed in the manifest and complete"
               + ("" if said else " (nothing to repair)"))


@main.command("report-export")
@click.argument("export_root", type=click.Path())
@click.option("--out", "out_path", type=click.Path(), help="HTML file [default: EXPORT_ROOT/export_report.html].")
@click.option("--repeats", type=click.IntRange(min=1), default=50, show_default=True,
              help="Timed calls per signature and setting (after 5 untimed).")
def report_export(export_root, out_path, repeats):
    """Measure every published .tflite (size; batch-1 latency with and without XNNPACK, 1 and 2
    threads) and write one HTML page: a table and a chart per model, quality per quantization mode."""
    from pathlib import Path

    from export import export_report

    out = Path(out_path) if out_path else Path(export_root) / "export_report.html"
    click.echo(f"report written to {export_report.write(export_root, out, repeats, echo=click.echo)}")


@main.command()
@click.argument("export_root", type=click.Path())
@click.argument("inputs", nargs=-1)
@click.option("--name", "model_name", help="Model name in EXPORT_ROOT (exports are named after their app unless "
              "`export --name` said otherwise); may be left out where EXPORT_ROOT holds one model.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def query(export_root, inputs, model_name, as_json):
    """Predict through the exported SavedModel and TFLite model only, side by side."""
    from rnn_apps import query as query_lib

    app = registry.get(query_lib.latest(export_root, model_name)["app"])
    for row in query_lib.query(export_root, model_name, text_arguments(inputs)):
        click.echo(json.dumps(row, ensure_ascii=False) if as_json else app.format_query(row))


@main.command()
@click.argument("export_roots", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder to write the page into.")
def demo(export_roots, out_dir):
    """Write a static web page that runs the exported .tflite files in the browser (LiteRT.js):
    sentiment, digits (draw one), translate (step by step), the character model and the tagger. Serve the folder
    with `python -m http.server -d OUT` and open http://127.0.0.1:8000/."""
    from export import demo as demo_lib

    apps = demo_lib.write(list(export_roots), out_dir)
    click.echo(f"page written to {out_dir}/index.html ({', '.join(apps)}); serve it with "
               f"`python -m http.server -d {out_dir}` and open http://127.0.0.1:8000/")


if __name__ == "__main__":
    main()
