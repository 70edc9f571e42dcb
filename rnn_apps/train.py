"""Training for every app: the same loop, checkpoints, early stopping and --resume.

`rnn-apps train APP --data DATA --out RUN_DIR` calls `train()`; the app supplies data,
preprocessing, the model and its loss through the `rnn_apps.app.App` contract.

With `members=K` (K > 1) the run is a deep ensemble: K models of the same config trained one
after another from seeds seed * K, seed * K + 1, ... (`config.member_seed`), each with its own
checkpoints and early stopping in RUN_DIR/members/I/, then joined into one Keras model that
averages their probabilities (RUN_DIR/checkpoints/best.keras), which evaluate, predict and export
use like any other model.

With `--strategy` (rnn_apps/distribute.py) the same loop runs under tf.distribute; with several
workers only the chief writes RUN_DIR, the others run the same code in a scratch folder of their own.
"""

import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import click
import keras

from foundation import progress
from foundation.errors import UserError
from foundation.files import write_json
from pipelines.splits import first_available
from rnn_apps import config as config_lib
from rnn_apps import distribute
from rnn_apps.app import ensemble
from rnn_apps.run import (
    CONFIG_FILE,
    RUN_FILE,
    STATE_FILE,
    Run,
    load_model,
    read_json,
    save_parity_examples,
)


class RunCheckpoint(keras.callbacks.Callback):
    """Each epoch: save last.keras (with optimizer state), best.keras when the monitored validation
    metric improves, and state.json; stop after `patience` epochs without improvement. Unlike
    Keras's EarlyStopping, its state lives on disk, so `--resume` continues the same decision."""

    def __init__(self, run_dir: Path, monitor: str, patience: int, state: dict):
        super().__init__()
        self.run_dir, self.monitor, self.patience, self.state = run_dir, monitor, patience, state
        self.sign = 1.0 if monitor.endswith("loss") else -1.0  # losses fall, accuracies rise

    def _save(self, name: str):
        save_model(self.model, self.run_dir / "checkpoints" / name)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        value = float(logs[self.monitor])
        if self.state["best"] is None or self.sign * value < self.sign * self.state["best"]:
            self.state.update(best=value, best_epoch=epoch + 1, wait=0)
            self._save("best.keras")
        else:
            self.state["wait"] += 1
        self._save("last.keras")
        self.state["epochs_done"] = epoch + 1
        self.state.setdefault("history", []).append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        write_json(self.run_dir / STATE_FILE, self.state)
        if self.state["wait"] >= self.patience:
            self.model.stop_training = True


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `seconds` of fitting are spent (from each epoch's start to its last
    batch, all models of the run together: validation, checkpoints and other callbacks do not
    count), after the current batch; Keras then validates and ends the epoch, so RunCheckpoint
    saves it like any other."""

    def __init__(self, seconds: float):
        super().__init__()
        self.left, self.epoch_start, self.last_batch_end = seconds, None, None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = self.last_batch_end = time.time()

    def on_train_batch_end(self, batch, logs=None):
        self.last_batch_end = time.time()
        if self.last_batch_end - self.epoch_start > self.left:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        self.left -= self.last_batch_end - self.epoch_start


class StepBudget(keras.callbacks.Callback):
    """Stops a model's training once its optimizer has taken `steps` steps (each member of an
    ensemble its own; counted by the optimizer, so a resumed run counts the steps before it): the same
    point on every machine, where max_train_minutes stops a slower CPU earlier. Keras then validates
    and ends the epoch, so RunCheckpoint saves it like any other."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if int(self.model.optimizer.iterations) >= self.steps:
            self.model.stop_training = True


def save_model(model: keras.Model, path: Path):
    """Write via a temporary file and rename: a crash never leaves half a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name("tmp-" + path.name)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk or a Ctrl-C mid-write: no half file left behind
        raise


def new_state(monitor: str) -> dict:
    return {"epochs_done": 0, "monitor": monitor, "best": None, "best_epoch": 0, "wait": 0, "history": []}


def member_dirs(out: Path, config: dict) -> list:
    """Where each model of the run keeps checkpoints, state and logs: RUN_DIR itself for one model."""
    if config["members"] == 1:
        return [out]
    return [out / "members" / str(i) for i in range(config["members"])]


def train(app, config: dict, data: str | None, data_root, out_dir, options: dict, resume: bool = False,
          resume_epochs: int | None = None, echo=click.echo, callbacks=(), strategy: str = "none") -> Run | None:
    """Train a new run in out_dir from `config`, or with `resume` continue the run there with its
    own config, optionally with a new epoch budget `resume_epochs`. `callbacks` are Keras
    callbacks added to every model's fit (benchmarks use them to measure along the way).
    `strategy` is one of distribute.STRATEGIES; a worker other than the chief returns None.

    A new run that fails before any model finished an epoch is removed again (what this call added
    to out_dir), so a plain retry is never refused; a run killed before that point (no chance to
    clean up) is restarted from its stored config by `--resume`."""
    out = Path(out_dir)
    # Before any other TensorFlow work: a multi-worker strategy configures collectives at startup.
    distribution = distribute.make(strategy)
    if resume:
        run = Run(out)
        if run.info["app"] != app.name:
            raise UserError(f"{out} is a run of app {run.info['app']!r}, not {app.name!r}")
        config = {**run.config, "epochs": resume_epochs or run.config["epochs"]}  # only the budget may change
        info = run.info
    else:
        if (out / RUN_FILE).exists():
            raise UserError(f"{out} already holds a run; continue it with --resume (which also restarts a run "
                            "killed before its first epoch ended) or choose another --out")
        data = data or first_available(app.default_data, data_root)
        # absolute: `evaluate` and `export` run from other working directories
        info = {"app": app.name, "data": data, "data_root": str(Path(data_root).resolve()) if data_root else None,
                "options": options}
    if distribute.workers(distribution) > 1 and config["max_train_minutes"]:
        raise UserError("max_train_minutes cannot stop a multi-worker run (each worker's clock would stop it at "
                        "another step); train it with --set max_train_minutes=0 and an epoch budget")
    if not distribute.is_chief(distribution):
        return _train_in_scratch(app, config, info, out, resume, echo, callbacks, distribution)
    existing = set(out.iterdir()) if out.is_dir() else None
    try:
        return _train(app, config, info, out, resume, echo, callbacks, distribution)
    except BaseException:
        if not resume and not _any_epoch_done(out, config):
            _remove_added(out, existing)
        raise


def _train_in_scratch(app, config, info, out: Path, resume: bool, echo, callbacks, distribution) -> None:
    """A worker other than the chief: the same training in step with the chief, writing into a
    scratch folder (from a copy of the chief's run when resuming) that is removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="rnn-apps-worker-"))
    try:
        if resume:
            shutil.copytree(out, scratch, dirs_exist_ok=True)
        _train(app, config, info, scratch, resume, echo, callbacks, distribution)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    echo(f"worker done; the chief writes the run in {out}")
    return None


def _any_epoch_done(out: Path, config: dict) -> bool:
    return any((d / STATE_FILE).exists() for d in member_dirs(out, config))


def _remove_added(out: Path, existing):
    """Undo a failed start: remove out_dir if this call made it, else what this call added to it."""
    if existing is None:
        shutil.rmtree(out, ignore_errors=True)
        return
    for path in set(out.iterdir()) - existing if out.is_dir() else ():
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def _train(app, config: dict, info: dict, out: Path, resume: bool, echo, callbacks, distribution=None) -> Run:
    keras.utils.set_random_seed(config["seed"])
    with progress.step(f"reading {info['data']}", echo):
        splits = app.load_data(info["data"], info.get("data_root"), config, info["options"])
        splits = splits.capped(config["max_examples"], config["seed"])
    echo(splits.describe())
    out.mkdir(parents=True, exist_ok=True)
    if resume:
        preprocessing = app.load_preprocessing(out, config)
        if not _any_epoch_done(out, config):
            echo(f"{out} has no finished epoch yet: starting its training from the stored config")
    else:
        with progress.step("fitting the preprocessing (vocabularies, statistics) on the training split", echo):
            preprocessing = app.fit_preprocessing(splits, config, out)
        info["label_names"] = list(splits.label_names)
        info["splits"] = {s: splits.size(s) for s in ("train", "validation", "test")}
        save_parity_examples(out, splits.test)
        config_lib.save(config, out / CONFIG_FILE)
        write_json(out / RUN_FILE, info)  # last: the file that makes out_dir a run
    val_ds = app.dataset(splits.validation, preprocessing, config)
    # Keras warns that a tf.data input ignores shuffle=True and that an epoch of unknown length
    # "ran out of data"; both are expected here (the pipeline shuffles, epochs end with the data).
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    warnings.filterwarnings("ignore", message=".*ran out of data.*")
    start = time.time()
    if config["max_train_minutes"]:
        callbacks = [*callbacks, TimeBudget(60 * config["max_train_minutes"])]
    if config["max_train_steps"]:
        callbacks = [*callbacks, StepBudget(config["max_train_steps"])]
    states = []
    for i, member_dir in enumerate(member_dirs(out, config)):
        seed = config_lib.member_seed(config, i) if config["members"] > 1 else config["seed"]
        if config["members"] > 1:
            echo(f"member {i + 1} of {config['members']} (seed {seed}) in {member_dir}")
        states.append(_fit(app, {**config, "seed": seed}, splits, preprocessing, val_ds, member_dir,
                           echo, callbacks, distribution))
    metrics = {"monitor": config["monitor"], "train_seconds": round(time.time() - start, 1),
               "examples": {s: splits.size(s) for s in ("train", "validation", "test")}}
    if config["members"] == 1:
        metrics.update(history=states[0]["history"], best_epoch=states[0]["best_epoch"], best=states[0]["best"])
    else:
        model = ensemble([load_model(d / "checkpoints" / "best.keras") for d in member_dirs(out, config)], app.name)
        save_model(model, out / "checkpoints" / "best.keras")  # uncompiled: it is never trained as a whole
        # One pass over the validation data: XLA would spend longer compiling it (18 s for five
        # SST-2 members) than it saves.
        app.compile(model, {**config, "jit_compile": False})
        validation = model.evaluate(val_ds, verbose=0, return_dict=True)
        metrics.update(validation={k: float(v) for k, v in validation.items()},
                       members=[{k: s[k] for k in ("best", "best_epoch", "history")} for s in states])
        echo(f"ensemble of {config['members']}: " + ", ".join(f"val_{k} {v:.4f}" for k, v in validation.items()))
    run = Run(out)
    run.update_metrics(**metrics)
    echo(f"run saved in {out}")
    return run


def _fit(app, config: dict, splits, preprocessing, val_ds, run_dir: Path, echo, callbacks=(),
         distribution=None) -> dict:
    """Train one model in run_dir (or continue it from last.keras); returns its early-stopping state."""
    state = read_json(run_dir / STATE_FILE, default=new_state(config["monitor"]))
    keras.utils.set_random_seed(config["seed"])
    # XLA does not compile the all-reduce of several workers on CPU (see rnn_apps/distribute.py).
    xla = config["jit_compile"] and distribute.workers(distribution) == 1
    with distribute.scope(distribution):
        if state["epochs_done"]:
            model = load_model(run_dir / "checkpoints" / "last.keras")
            model.jit_compile = xla
            echo(f"resuming {run_dir} after epoch {state['epochs_done']} (best epoch {state['best_epoch']})")
        else:
            model = app.build_model(config, preprocessing)
            app.compile(model, {**config, "jit_compile": xla})
    if state["epochs_done"] < config["epochs"] and state["wait"] < config["patience"]:
        train_ds = app.dataset(splits.train, preprocessing, config, shuffle_seed=config["seed"])
        callbacks = [RunCheckpoint(run_dir, config["monitor"], config["patience"], state),
                     keras.callbacks.TensorBoard(log_dir=str(run_dir / "logs")), *callbacks]
        distribute.fit_in_scope(model, distribution, train_ds, validation_data=val_ds, epochs=config["epochs"],
                                initial_epoch=state["epochs_done"], callbacks=callbacks,
                                verbose=1 if sys.stdout.isatty() else 2)  # no progress bars in logs
    best = load_model(run_dir / "checkpoints" / "best.keras")
    if app.after_training(best, config, preprocessing):
        save_model(best, run_dir / "checkpoints" / "best.keras")
    echo(f"best epoch {state['best_epoch']} ({config['monitor']} {state['best']:.4f})")
    return state
