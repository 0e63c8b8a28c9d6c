"""What keeps a long run safe: resuming after a kill (`RunCheckpoint`) and failing on divergence (`StopOnNaN`)."""

import glob
import json
import math
import os
import shutil
import time

import numpy as np
from keras import callbacks, ops

from resnet_keras.files import atomic_path, executed_modules, save_h5, write_json, write_text
from resnet_keras.layers import ResidentImages


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class StopOnNaN(callbacks.Callback):
    """Raise `TrainingDiverged` at the first batch whose loss is not finite.

    Unlike `keras.callbacks.TerminateOnNaN`, which ends training quietly and
    would let a diverged run pass for a finished one, this fails the run.
    It is dispatched asynchronously (`async_safe`): Keras runs the check on a
    helper thread, so the step loop never waits for a loss to reach the host
    (on a GPU, a wait per step stalls the device), and the error surfaces by
    the end of the epoch, before the epoch is committed.
    """

    async_safe = True

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise TrainingDiverged(f"loss became {float(loss)} at epoch {self.epoch + 1}, batch {batch + 1}; "
                                   f"lower the learning rate or check the data")


class RunCheckpoint(callbacks.BackupAndRestore):
    """`BackupAndRestore` with an atomic commit, the epoch history and the best model.

    After each epoch, in this order: the best model (`best.h5`, when the
    monitored metric improved), the weights and optimizer state (a new `.npz`
    file in `backup_dir`: every variable's values, by position, written with
    NumPy; Keras' `save_weights`, which walks the model object by object, took
    5-7x as long as the whole commit does now: docs/performance.md), the
    history CSV, and last `state.json`, whose atomic rename commits the epoch.
    A kill at any point resumes from the last committed epoch, and the history
    is rewritten from the committed state, so no epoch appears twice. (Keras'
    own `BackupAndRestore` writes weights and metadata in place, one after the
    other, and keeps neither history nor best value.)

    With `tensorboard_dir`, each committed epoch also goes to TensorBoard event
    files there, as Keras' `TensorBoard` callback lays them out (`train/` and
    `validation/`, tags `epoch_loss`, `epoch_accuracy`, ...; step = epoch),
    written by tensorboardX, which needs no TensorFlow in the process. A
    (re)start replaces them with the committed history, in a file that also
    tells a live TensorBoard to drop what it read before (`purge_step`): after
    a resume no step repeats and none is missing.
    """

    async_safe = True  # no per-batch work (BackupAndRestore's batch hook is idle when saving per epoch)

    def __init__(self, backup_dir, history_path, best_path=None, monitor="val_accuracy", epochs=None, log=False,
                 export=None, tensorboard_dir=None):
        super().__init__(backup_dir, delete_checkpoint=False)
        self.history_path, self.best_path, self.monitor = history_path, best_path, monitor
        self.tensorboard_dir, self._writers = tensorboard_dir, {}
        self.export = export  # the model saved as best.h5 (default: the model being fit)
        self.epochs, self.log = epochs, log
        self.state_path = os.path.join(backup_dir, "state.json")
        self.rows, self.best, self.modules = [], None, []

    def saved_epoch(self):
        """Number of epochs committed so far (0 when starting fresh)."""
        return self._read_state().get("epoch", 0)

    def _read_state(self):
        if not os.path.exists(self.state_path):
            return {}
        with open(self.state_path) as f:
            return json.load(f)

    def _load_model(self):
        state = self._read_state()
        if state:
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            path = os.path.join(self.backup_dir, state["weights"])
            if path.endswith(".npz"):
                _restore(self._variables(), path)
            else:  # a checkpoint of an earlier version: Keras' weights file
                self.model.load_weights(path)
            self.model._initial_epoch = state["epoch"]
            self.rows, self.best = state["history"], state["best"]
            self.modules = state.get("modules", [])
        self._write_history()
        if self.tensorboard_dir:
            self._open_tensorboard()

    def _open_tensorboard(self):
        """Fresh event files holding the committed epochs (what an earlier attempt wrote is superseded)."""
        from tensorboardX import SummaryWriter

        shutil.rmtree(self.tensorboard_dir, ignore_errors=True)
        self._writers = {part: SummaryWriter(os.path.join(self.tensorboard_dir, part), purge_step=1)
                         for part in ("train", "validation")}
        for row in self.rows:
            self._log_epoch(row)

    def _log_epoch(self, row):
        step = row["epoch"]
        for key, value in row.items():
            if key == "epoch":
                continue
            part, name = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
            name = {"lr": "learning_rate"}.get(name, name)
            self._writers[part].add_scalar(f"epoch_{name}", value, step)
        for writer in self._writers.values():
            writer.flush()

    def on_train_end(self, logs=None):
        super().on_train_end(logs)
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()},
               "lr": float(ops.convert_to_numpy(self.model.optimizer.learning_rate)),
               "time_s": round(time.perf_counter() - self._t0, 3)}
        self.rows.append(row)
        if self.log:  # one line per epoch, in logs and notebooks alike
            metrics = "  ".join(f"{k} {row[k]:.4f}" for k in _columns([row]) if k not in ("epoch", "lr", "time_s"))
            print(f"epoch {epoch + 1}/{self.epochs}  {metrics}  lr {row['lr']:.3g}  {row['time_s']:.1f}s", flush=True)
        value = row.get(self.monitor)
        if value is not None and (self.best is None or value > self.best):
            self.best = value
            if self.best_path:
                save_h5(self.export or self.model, self.best_path)
        self._current_epoch = epoch + 1
        self._save_model()

    def _variables(self):
        """What a commit holds: the model's variables (batch-norm statistics too) and the optimizer's state.

        Not a data set held on the device (`layers.ResidentImages`): data, not state.
        """
        data = {id(v) for layer in self.model.layers if isinstance(layer, ResidentImages) for v in layer.weights}
        return ([v for v in self.model.weights if id(v) not in data]
                + list(self.model.optimizer.variables if self.model.optimizer else []))

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        weights = f"epoch-{self._current_epoch:04d}.npz"
        with atomic_path(os.path.join(self.backup_dir, weights)) as tmp:
            np.savez(tmp, **{_key(i): ops.convert_to_numpy(v) for i, v in enumerate(self._variables())})
        self._write_history()
        # The package modules this run has executed so far, its earlier attempts' too: a later attempt resumes
        # only while their code is unchanged (`sweep.resume_blocker`).
        self.modules = sorted(set(self.modules) | set(executed_modules()))
        write_json(self.state_path, {"epoch": self._current_epoch, "weights": weights, "history": self.rows,
                                     "best": self.best, "modules": self.modules})
        if self._writers:  # after the commit: TensorBoard shows committed epochs only
            self._log_epoch(self.rows[-1])
        for old in glob.glob(os.path.join(self.backup_dir, "epoch-*")):
            if os.path.basename(old) != weights:
                os.remove(old)

    def _write_history(self):
        write_text(self.history_path, history_frame(self.rows).to_csv(index=False))


def _key(index):
    return f"v{index:05d}"  # by position, as Keras matches saved weights by structure (names vary by process)


def _restore(variables, path):
    """Assign `path`'s values (`RunCheckpoint._save_model`) to `variables`, which must be the ones it holds."""
    with np.load(path) as saved:
        values = [saved[_key(i)] for i in range(len(saved.files))]
    if [v.shape for v in values] != [tuple(v.shape) for v in variables]:
        raise ValueError(f"{path} holds other variables than this model and optimizer ({len(values)} against "
                         f"{len(variables)}, or other shapes); delete {os.path.dirname(path)!r} to start over")
    for value, variable in zip(values, variables):
        variable.assign(value)


def history_frame(rows):
    """The epoch rows as a DataFrame, in the columns' usual order."""
    import pandas as pd

    return pd.DataFrame(rows, columns=_columns(rows))


def _columns(rows):
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time_s"]
    cols = [c for c in cols if c == "epoch" or any(c in row for row in rows)]
    for row in rows:
        cols += [k for k in row if k not in cols]
    return cols
