"""Optimizers, learning-rate schedules, callbacks and the training loop.

`train()` is what notebooks call: it compiles, fits with the augmented
pipeline, logs one CSV row per epoch, keeps the best model, and resumes
from the last completed epoch after an interruption.

Training computes the loss from logits (`training_model`), never from the
softmax's probabilities: Keras' JAX and PyTorch backends compute a loss on
probabilities as `log(clip(p, 1e-7, 1 - 1e-7))`, which gives no gradient at
all for an image the network gets confidently wrong (measured: a ResNet-8
whose classifier is scaled x300 stayed stuck on JAX while it recovered on
TensorFlow, which finds the logits behind a softmax by itself).
"""

import glob
import json
import math
import os
import time

import keras
import numpy as np
from keras import ops

from resnet_keras import products
from resnet_keras.catalog import OPTIMIZERS, PIPELINE_CHOICES, PIPELINES, PRECISIONS, SCHEDULES, resolve_precision
from resnet_keras.data import CifarBatches
from resnet_keras.devices import device_count
from resnet_keras.errors import ConfigError, check_choice, check_int, check_number
from resnet_keras.files import atomic_path, check_hdf5, write_json, write_text
from resnet_keras.inference import predict


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def set_seed(seed):
    """Seed Python, NumPy and the backend (weights init, dropout)."""
    check_int("seed", seed, minimum=0)
    keras.utils.set_random_seed(seed)


def set_precision(precision="auto"):
    """Set the dtype policy of every model built from now on; return the policy set.

    "mixed_float16" computes in float16 with float32 weights (NVIDIA tensor
    cores; `compile` adds dynamic loss scaling), "mixed_bfloat16" in bfloat16
    (TPUs, recent GPUs and CPUs). The classifiers stay float32 either way.
    "auto" picks "mixed_float16" when the backend sees a GPU and "float32"
    otherwise: on this project's CPU, bfloat16 trained ResNet-20 only about
    1.1x faster (README, "Performance"), too little to give up float32's
    like-for-like comparison with the paper and PyTorch; ask for it by name.
    Call it before building the model; a resumed run reloads the policy it
    was saved with.
    """
    check_choice("precision", precision, PRECISIONS)
    precision = resolve_precision(precision, has_gpu())
    keras.config.set_dtype_policy(precision)
    return precision


def has_gpu():
    """True when the Keras backend sees a GPU."""
    return any(d.lower().startswith("gpu") for d in keras.distribution.list_devices())


def resolve_pipeline(pipeline="auto", x=None):
    """The input pipeline to train with: "host" or "device" (see `data.CifarBatches`).

    "auto" picks "device" (augmentation inside the compiled step) when the
    backend sees a GPU and the inputs `x` are images, else "host": on this
    project's CPU, NumPy augmentation costs under 1% of a step and runs
    alongside it (README, "Performance"), while a GPU waits for it.
    """
    check_choice("pipeline", pipeline, PIPELINE_CHOICES)
    if pipeline == "auto":
        pipeline = "device" if has_gpu() and (x is None or x.ndim == 4) else "host"
    return pipeline


def training_model(model, pipeline="host"):
    """The model that training fits: `model` up to its logits, sharing its weights.

    `model` must end in a softmax layer (the builders' "predictions"), whose
    input is taken as the logits. With `pipeline="device"` the training model
    takes `{"pixels": uint8, "crops": int32}` batches and crops and flips them
    in the compiled step (`layers.CropFlip`) before `model`'s own layers.
    """
    from resnet_keras.layers import CropFlip

    layer, node_index, _ = model.outputs[0]._keras_history
    if not (isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.softmax):
        raise ConfigError(f"model {model.name!r} ends in {type(layer).__name__} {layer.name!r}, not a softmax "
                          f"layer; build it with resnet_keras, whose models end in logits and softmax")
    logits = keras.Model(model.inputs, layer._inbound_nodes[node_index].input_tensors[0], name=f"{model.name}_logits")
    if check_choice("pipeline", pipeline, PIPELINES) == "host":
        return logits
    pixels = keras.Input(model.inputs[0].shape[1:], dtype="uint8", name="pixels")
    crops = keras.Input((3,), dtype="int32", name="crops")
    images = CropFlip(dtype="float32", name="crop_flip")(pixels, crops)
    return keras.Model({"pixels": pixels, "crops": crops}, logits(images), name=f"{model.name}_device_augment")


def compile_for_training(model, optimizer="adam", learning_rate=1e-3, momentum=0.9, nesterov=False,
                         pipeline="host"):
    """`training_model(model, pipeline)`, compiled with the loss on logits and accuracy.

    Under a "mixed_float16" policy Keras wraps the optimizer in dynamic loss
    scaling. Returns the compiled training model.
    """
    trainer = training_model(model, pipeline)
    trainer.compile(optimizer=make_optimizer(optimizer, learning_rate, momentum, nesterov),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return trainer


def make_optimizer(name, learning_rate=1e-3, momentum=0.9, nesterov=False):
    """Optimizer by name: "sgd" (with momentum, optionally Nesterov), "adam" or "rmsprop".

    `learning_rate` is a float or a schedule. Weight decay is coupled L2 on the
    model's kernels (the builders' `weight_decay`), as in the paper.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        check_number("learning_rate", learning_rate, inclusive=False)
    if name == "sgd":
        check_number("momentum", momentum, maximum=1.0)
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=bool(nesterov))
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, epsilon=1e-8)  # the Adam paper's and PyTorch's epsilon
    return keras.optimizers.RMSprop(learning_rate)


@keras.saving.register_keras_serializable(package="resnet_keras")
class LRSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Constant, step (x `gamma` at each milestone) or cosine decay, with linear warm-up.

    Steps are optimizer iterations; `milestones` are fractions of `total_steps`
    (the paper's CIFAR schedule divides by 10 at 32k and 48k of 64k: 0.5, 0.75).
    """

    def __init__(self, kind, base_lr, total_steps, warmup_steps=0, milestones=(0.5, 0.75), gamma=0.1):
        self.kind = check_choice("schedule", kind, SCHEDULES)
        self.base_lr = check_number("learning_rate", base_lr, inclusive=False)
        self.total_steps = check_int("total_steps", total_steps)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
        self.milestones = [check_number("milestone", m, maximum=1.0) for m in milestones]
        self.gamma = check_number("gamma", gamma, maximum=1.0, inclusive=False)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = ops.convert_to_tensor(self.base_lr, "float32")
        if self.kind == "step":
            for m in self.milestones:
                lr = lr * ops.where(step >= m * self.total_steps, self.gamma, 1.0)
        elif self.kind == "cosine":
            progress = ops.minimum(step / self.total_steps, 1.0)
            lr = 0.5 * lr * (1.0 + ops.cos(math.pi * progress))
        if self.warmup_steps:
            lr = ops.where(step < self.warmup_steps, self.base_lr * (step + 1) / self.warmup_steps, lr)
        return lr

    def get_config(self):
        return {"kind": self.kind, "base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "milestones": list(self.milestones), "gamma": self.gamma}


class StopOnNaN(keras.callbacks.Callback):
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


class RunCheckpoint(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` with an atomic commit, the epoch history and the best model.

    After each epoch, in this order: the best model (`best.h5`, when the
    monitored metric improved), the weights and optimizer state (a new file in
    `backup_dir`), the history CSV, and last `state.json`, whose atomic rename
    commits the epoch. A kill at any point resumes from the last committed
    epoch, and the history is rewritten from the committed state, so no epoch
    appears twice. (Keras' own `BackupAndRestore` writes weights and metadata
    in place, one after the other, and keeps neither history nor best value.)
    """

    async_safe = True  # no per-batch work (BackupAndRestore's batch hook is idle when saving per epoch)

    def __init__(self, backup_dir, history_path, best_path=None, monitor="val_accuracy", epochs=None, log=False,
                 export=None):
        super().__init__(backup_dir, delete_checkpoint=False)
        self.history_path, self.best_path, self.monitor = history_path, best_path, monitor
        self.export = export  # the model saved as best.h5 (default: the model being fit)
        self.epochs, self.log = epochs, log
        self.state_path = os.path.join(backup_dir, "state.json")
        self.rows, self.best = [], None

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
            self.model.load_weights(os.path.join(self.backup_dir, state["weights"]))
            self.model._initial_epoch = state["epoch"]
            self.rows, self.best = state["history"], state["best"]
        self._write_history()

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

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        weights = f"epoch-{self._current_epoch:04d}.weights.h5"
        with atomic_path(os.path.join(self.backup_dir, weights)) as tmp:
            self.model.save_weights(tmp)
        self._write_history()
        write_json(self.state_path, {"epoch": self._current_epoch, "weights": weights, "history": self.rows,
                                     "best": self.best})
        for old in glob.glob(os.path.join(self.backup_dir, "epoch-*.weights.h5")):
            if os.path.basename(old) != weights:
                os.remove(old)

    def _write_history(self):
        import pandas as pd

        write_text(self.history_path, pd.DataFrame(self.rows, columns=_columns(self.rows)).to_csv(index=False))


def _columns(rows):
    cols = ["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "time_s"]
    cols = [c for c in cols if c == "epoch" or any(c in row for row in rows)]
    for row in rows:
        cols += [k for k in row if k not in cols]
    return cols


def save_h5(model, path):
    """Save the whole model as HDF5 (`.h5`), atomically."""
    if not os.fspath(path).endswith(".h5"):
        raise ConfigError(f"model path {os.fspath(path)!r} is not accepted; it must end in .h5")
    import logging

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # the design asks for .h5: Keras' "legacy format" warning is noise here
    try:
        with atomic_path(path) as tmp:
            model.save(tmp)
    finally:
        absl.setLevel(level)


def load_h5(path, compile=False):
    """Load a `.h5` model in Keras' safe mode (no deserialised Python code)."""
    check_hdf5("model", path, "the path of an intact .h5 model file")
    return keras.models.load_model(path, compile=compile, safe_mode=True)


def train(model, data, out_dir, *, epochs, batch_size=128, optimizer="adam", learning_rate=1e-3, momentum=0.9,
          nesterov=False, schedule="constant", warmup_epochs=0, milestones=(0.5, 0.75), augment=True, seed=0,
          monitor="val_accuracy", verbose=2, save_best=True, pipeline="auto"):
    """Compile and fit `model` on `data` (a `CifarData`), resuming if interrupted.

    The loss is computed from the logits (`training_model`); `model` keeps
    its softmax output. `pipeline` chooses where augmentation runs (on the
    host, on the device, or "auto": see `resolve_pipeline`); all give the same
    batches. After `set_devices(k)`, each batch of `batch_size` is split over
    k devices. Writes into `out_dir`: `history.csv` (one row per epoch: loss,
    accuracy, val_loss, val_accuracy, lr, time_s), `best.h5` (best `monitor`,
    if `save_best`) and `.resume/` (the state to continue from). Verbose 2
    prints one line per epoch (ours, with the epoch number and learning rate),
    1 is Keras' progress bar, 0 is silent. Raises `TrainingDiverged` on a non-finite loss.
    Returns the full history (all epochs, resumed ones included) as a DataFrame.
    """
    import pandas as pd

    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    check_int("warmup_epochs", warmup_epochs, minimum=0)
    if len(data.y_train) == 0:
        raise ConfigError("the training set is empty; check per_class and validation_split")
    if augment and data.x_train.ndim != 4:
        raise ConfigError(f"augment=True needs images (n, h, w, c), not arrays of shape {data.x_train.shape}; "
                          f"use augment=False on cached features")
    pipeline = resolve_pipeline(pipeline, data.x_train)
    shards = device_count()  # `devices.set_devices`: each batch is split over this many devices
    batches = CifarBatches(data.x_train, data.y_train, batch_size, shuffle=True, augment=augment, seed=seed,
                           pipeline=pipeline, shards=shards)
    total = epochs * len(batches)
    lr = learning_rate if schedule == "constant" and not warmup_epochs else LRSchedule(
        schedule, learning_rate, total, warmup_epochs * len(batches), milestones)
    trainer = compile_for_training(model, optimizer, lr, momentum, nesterov, pipeline)
    has_val = len(data.y_val) > 0
    ckpt = RunCheckpoint(os.path.join(out_dir, products.RESUME), os.path.join(out_dir, products.HISTORY),
                         os.path.join(out_dir, products.BEST_MODEL) if save_best else None,
                         monitor if has_val else monitor.removeprefix("val_"), epochs, log=verbose == 2, export=model)
    batches.set_epoch(ckpt.saved_epoch())
    val = CifarBatches(data.x_val, data.y_val, 500 // shards * shards, pipeline=pipeline,
                       shards=shards) if has_val else None
    trainer.fit(batches, epochs=epochs, validation_data=val, callbacks=[ckpt, StopOnNaN()],
                verbose=1 if verbose == 1 else 0)
    return pd.DataFrame(ckpt.rows, columns=_columns(ckpt.rows))


def cache_features(model, data, batch_size=256):
    """Run the frozen base of a transfer model once per image; train the head on the result.

    With the base frozen, every epoch would compute the same ResNet-50 features
    again; computing them once makes an epoch of head training cost only the
    head. Augmentation is impossible in this mode (features of augmented images
    would differ every epoch).

    Args:
        model: from `build_transfer_model` (layers "avg_pool" and the head after it).
        data: a CifarData of images.
    Returns:
        (head, features): `head` maps pooled features `(n, 2048)` to class
        probabilities and shares its layers, so its trained weights, with
        `model`; `features` is a CifarData whose x arrays are float32 features.
    """
    import dataclasses

    pool = model.get_layer("avg_pool")
    extractor = keras.Model(model.inputs, pool.output)
    dim = pool.output.shape[-1]

    def extract(x):
        if not len(x):
            return np.zeros((0, dim), np.float32)
        return predict(extractor, x, batch_size)

    inputs = keras.Input((dim,), name="features")
    x = inputs
    for layer in model.layers[model.layers.index(pool) + 1:]:
        x = layer(x)
    head = keras.Model(inputs, x, name=f"{model.name}_head")
    return head, dataclasses.replace(data, x_train=extract(data.x_train), x_val=extract(data.x_val),
                                     x_test=extract(data.x_test))


def evaluate(model, x, y, batch_size=500):
    """Test loss, accuracy and predicted classes of `model` on inputs `x` (images or features)."""
    probs = predict(model, x, batch_size)
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], eps, 1.0))))
    pred = probs.argmax(axis=1)
    return {"loss": loss, "accuracy": float(np.mean(pred == y)), "predictions": pred}
