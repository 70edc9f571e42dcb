"""Training for every app: the same loop, checkpoints, early stopping and --resume.

`rnn-apps train APP --data DATA --out RUN_DIR` calls `train()`; the app supplies data,
preprocessing, the model and its loss through the `rnn_apps.app.App` contract.
"""

import os
import sys
import time
import warnings
from pathlib import Path

import click
import keras

from pipelines.splits import first_available
from rnn_apps import config as config_lib
from rnn_apps.errors import UserError
from rnn_apps.run import CONFIG_FILE, RUN_FILE, STATE_FILE, Run, load_model, read_json, write_json


class RunCheckpoint(keras.callbacks.Callback):
    """Each epoch: save last.keras (with optimizer state), best.keras when the monitored validation
    metric improves, and state.json; stop after `patience` epochs without improvement. Unlike
    Keras's EarlyStopping, its state lives on disk, so `--resume` continues the same decision."""

    def __init__(self, run_dir: Path, monitor: str, patience: int, state: dict):
        super().__init__()
        self.run_dir, self.monitor, self.patience, self.state = run_dir, monitor, patience, state
        self.sign = 1.0 if monitor.endswith("loss") else -1.0  # losses fall, accuracies rise

    def _save(self, name: str):
        path = self.run_dir / "checkpoints" / name
        tmp = path.with_name("tmp-" + name)
        self.model.save(tmp)
        os.replace(tmp, path)

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


def train(app, config: dict, data: str | None, data_root, out_dir, options: dict, resume: bool = False,
          echo=click.echo) -> Run:
    out = Path(out_dir)
    if config["monitor"] not in app.monitors:
        raise UserError(f"config monitor: {config['monitor']!r} is not one of {', '.join(app.monitors)}")
    state = {"epochs_done": 0, "monitor": config["monitor"], "best": None, "best_epoch": 0, "wait": 0,
             "history": []}
    if resume:
        run = Run(out)
        if run.info["app"] != app.name:
            raise UserError(f"{out} is a run of app {run.info['app']!r}, not {app.name!r}")
        config = {**run.config, "epochs": config["epochs"]}  # only the epoch budget may change
        info = run.info
        state = read_json(out / STATE_FILE, default=state)
        if state["epochs_done"] == 0:
            raise UserError(f"{out} has no finished epoch to resume from; start it again without --resume")
    else:
        if (out / RUN_FILE).exists():
            raise UserError(f"{out} already holds a run; continue it with --resume or choose another --out")
        data = data or first_available(app.default_data, data_root)
        info = {"app": app.name, "data": data, "data_root": str(data_root) if data_root else None,
                "options": options}
    keras.utils.set_random_seed(config["seed"])
    splits = app.load_data(info["data"], info["data_root"], config, info["options"])
    splits = splits.capped(config["max_examples"], config["seed"])
    echo(splits.describe())
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    if resume:
        preprocessing = app.load_preprocessing(out, config)
        model = load_model(out / "checkpoints" / "last.keras")
        echo(f"resuming {out} after epoch {state['epochs_done']} (best epoch {state['best_epoch']})")
    else:
        info["label_names"] = list(splits.label_names)
        info["splits"] = {s: splits.size(s) for s in ("train", "validation", "test")}
        write_json(out / RUN_FILE, info)
        config_lib.save(config, out / CONFIG_FILE)
        preprocessing = app.fit_preprocessing(splits, config, out)
        model = app.build_model(config, preprocessing)
        app.compile(model, config)
    train_ds = app.dataset(splits.train, preprocessing, config, shuffle_seed=config["seed"])
    val_ds = app.dataset(splits.validation, preprocessing, config)
    callbacks = [
        RunCheckpoint(out, config["monitor"], config["patience"], state),
        keras.callbacks.TensorBoard(log_dir=str(out / "logs")),
    ]
    # Keras warns that a tf.data input ignores shuffle=True and that an epoch of unknown length
    # "ran out of data"; both are expected here (the pipeline shuffles, epochs end with the data).
    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    warnings.filterwarnings("ignore", message=".*ran out of data.*")
    start = time.time()
    if state["epochs_done"] < config["epochs"] and state["wait"] < config["patience"]:
        model.fit(train_ds, validation_data=val_ds, epochs=config["epochs"], initial_epoch=state["epochs_done"],
                  callbacks=callbacks, verbose=1 if sys.stdout.isatty() else 2)  # no progress bars in logs
    run = Run(out)
    run.update_metrics(history=state["history"], best_epoch=state["best_epoch"],
                       monitor=config["monitor"], best=state["best"], train_seconds=round(time.time() - start, 1),
                       examples={s: splits.size(s) for s in ("train", "validation", "test")})
    echo(f"best epoch {state['best_epoch']} ({config['monitor']} {state['best']:.4f}); run saved in {out}")
    return run
