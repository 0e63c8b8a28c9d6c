"""The training loop: `train()` is what notebooks call.

It compiles, fits with the augmented pipeline, logs one CSV row per epoch,
keeps the best model, and resumes from the last completed epoch after an
interruption (`checkpoint.RunCheckpoint`). Optimizers and schedules are in
`optimizers.py`, the devices and precision a run computes on in `devices.py`.

Training computes the loss from logits (`training_model`), never from the
softmax's probabilities: Keras' JAX and PyTorch backends compute a loss on
probabilities as `log(clip(p, 1e-7, 1 - 1e-7))`, which gives no gradient at
all for an image the network gets confidently wrong (measured: a ResNet-8
whose classifier is scaled x300 stayed stuck on JAX while it recovered on
TensorFlow, which finds the logits behind a softmax by itself).
"""

import os

import keras
import numpy as np

from resnet_keras import products
from resnet_keras.catalog import PIPELINE_CHOICES, PIPELINES, WARMUPS
from resnet_keras.checkpoint import RunCheckpoint, StopOnNaN, history_frame
from resnet_keras.data import CifarBatches
from resnet_keras.devices import device_count, has_gpu
from resnet_keras.errors import ConfigError, check_choice, check_int
from resnet_keras.inference import predict
from resnet_keras.optimizers import LRSchedule, make_optimizer


def set_seed(seed):
    """Seed Python, NumPy and the backend: the weights' initialisation and dropout.

    Args:
        seed: an integer >= 0.
    Raises:
        ConfigError: `seed` is not such an integer.
    """
    check_int("seed", seed, minimum=0)
    keras.utils.set_random_seed(seed)


def resolve_pipeline(pipeline="auto", x=None):
    """The input pipeline to train with: "host" or "device" (see `data.CifarBatches`).

    "auto" picks "device" (augmentation inside the compiled step) when the
    backend sees a GPU and the inputs `x` are images, else "host": on this
    project's CPU, NumPy augmentation costs under 1% of a step and runs
    alongside it (docs/performance.md), while a GPU waits for it.
    """
    check_choice("pipeline", pipeline, PIPELINE_CHOICES)
    if pipeline == "auto":
        pipeline = "device" if has_gpu() and (x is None or x.ndim == 4) else "host"
    return pipeline


class Trainer(keras.Model):
    """The functional model that `fit` trains (`training_model`), whose steps per call run as one on JAX.

    With `steps_per_execution=K`, Keras' JAX trainer calls the compiled step
    K times from Python. This one compiles the K steps into one call, a
    `jax.lax.scan` over the K batches stacked inside it, so the host
    dispatches once per K steps (as TensorFlow's trainer already does; Keras'
    PyTorch trainer runs one step per call). The scan is unrolled: as a loop,
    XLA's CPU backend ran a ResNet-20 step 20x slower; unrolled, a step runs
    as fast as alone, and compiling takes about K times as long as one step
    (docs/performance.md). Under a distribution (`devices.set_devices`),
    Keras' own loop runs.
    """

    def make_train_function(self, force=False):
        k = self.steps_per_execution
        if (keras.backend.backend() != "jax" or k == 1 or self.run_eagerly or not self.jit_compile
                or keras.distribution.distribution() is not None):
            return super().make_train_function(force)
        if self.train_function is not None and not force:
            return self.train_function
        import jax

        def steps(state, batches):
            def step(state, batch):
                logs, state = self.train_step(state, batch)
                return state, logs

            batches = jax.tree.map(lambda *b: jax.numpy.stack(b), *batches)
            state, logs = jax.lax.scan(step, state, batches, unroll=True)
            return jax.tree.map(lambda v: v[-1], logs), state

        compiled = jax.jit(steps, donate_argnums=0)
        self.train_function = lambda state, iterator: compiled(state, [next(iterator) for _ in range(k)])
        return self.train_function


def training_model(model, pipeline="host", images=None):
    """The model that training fits (a `Trainer`): `model` up to its logits, sharing its weights.

    `model` must end in a softmax layer (the builders' "predictions"), whose
    input is taken as the logits. The inputs follow the pipeline
    (`data.CifarBatches`): "host" takes `model`'s; "device" takes
    `{"pixels": uint8, "crops": int32}` batches and crops and flips them in
    the compiled step (`layers.CropFlip`) before `model`'s own layers;
    "resident" takes `{"index": int32, "crops": int32}`, holds `images` (all
    that the indices point to) on the device (`layers.ResidentImages`), and
    gathers each batch from them in the step, then crops and flips it.
    """
    from resnet_keras.layers import CropFlip, ResidentImages

    layer, node_index, _ = model.outputs[0]._keras_history
    if not (isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.softmax):
        raise ConfigError(f"model {model.name!r} ends in {type(layer).__name__} {layer.name!r}, not a softmax "
                          f"layer; build it with resnet_keras, whose models end in logits and softmax")
    logits = layer._inbound_nodes[node_index].input_tensors[0]
    if check_choice("pipeline", pipeline, PIPELINES) == "host":
        return Trainer(model.inputs, logits, name=f"{model.name}_logits")
    logits = keras.Model(model.inputs, logits, name=f"{model.name}_logits")
    crops = keras.Input((3,), dtype="int32", name="crops")
    if pipeline == "device":
        inputs = {"pixels": keras.Input(model.inputs[0].shape[1:], dtype="uint8", name="pixels"), "crops": crops}
        pixels = inputs["pixels"]
    else:
        if images is None or images.ndim != 4:
            raise ConfigError("pipeline='resident' needs the images its batches index, (n, h, w, c); "
                              "use pipeline='host' for arrays of features")
        inputs = {"index": keras.Input((), dtype="int32", name="index"), "crops": crops}
        pixels = ResidentImages(images, name="resident_images")(inputs["index"])
    augmented = CropFlip(dtype="float32", name="crop_flip")(pixels, crops)
    return Trainer(inputs, logits(augmented), name=f"{model.name}_{pipeline}_augment")


def compile_for_training(model, optimizer="adam", learning_rate=1e-3, momentum=0.9, nesterov=False,
                         pipeline="host", steps_per_execution=1, images=None):
    """`training_model(model, pipeline, images)`, compiled with the loss on logits and accuracy.

    Under a "mixed_float16" policy Keras wraps the optimizer in dynamic loss
    scaling. `steps_per_execution` steps run per call of the compiled function
    (Keras' option; see `train`). Returns the compiled training model.
    """
    trainer = training_model(model, pipeline, images)
    trainer.compile(optimizer=make_optimizer(optimizer, learning_rate, momentum, nesterov),
                    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                    metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                    steps_per_execution=steps_per_execution)
    # Every variable exists before the first step: TensorFlow traces a step that creates variables (Keras builds
    # the optimizer's slots there, without a distribution strategy) a second time, as long again as the first.
    trainer.optimizer.build(trainer.trainable_variables)
    return trainer


def train(model, data, out_dir, *, epochs, batch_size=128, optimizer="adam", learning_rate=1e-3, momentum=0.9,
          nesterov=False, schedule="constant", warmup_epochs=0, warmup="linear", milestones=(0.5, 0.75),
          augment=True, seed=0, monitor="val_accuracy", verbose=2, save_best=True, pipeline="auto",
          steps_per_execution=1, replay=False):
    """Compile and fit `model` on `data`, resuming if interrupted.

    The loss is computed from the logits (`training_model`); `model` keeps
    its softmax output. All pipelines give the same batches. After
    `set_devices(k)`, each batch of `batch_size` is split over k devices.

    Writes into `out_dir`: `history.csv` (one row per epoch: loss, accuracy,
    val_loss, val_accuracy, lr, time_s), the same as TensorBoard logs
    (`tensorboard/`), `best.h5` (best `monitor`, if `save_best`) and
    `.resume/` (the state to continue from). A call on a folder with a
    committed epoch continues after it.

    Args:
        model: a model of this package (ending in logits and softmax).
        data: a `CifarData` (`load_dataset`); its validation split, if any,
            is evaluated after every epoch.
        out_dir: the run's folder.
        epochs: epochs in all, those of an interrupted attempt included.
        batch_size: images per step.
        optimizer: "sgd", "adam" or "rmsprop" (`make_optimizer`).
        learning_rate: the initial rate; `schedule` changes it per epoch.
        momentum, nesterov: SGD's (PyTorch's momentum form).
        schedule: "constant", "step" (x0.1 at each of `milestones`, fractions
            of `epochs`) or "cosine".
        warmup_epochs, warmup: epochs of "linear" warm-up, or of a tenth of
            the rate held ("constant", the paper's ResNet-110).
        augment: pad-4 random crop and horizontal flip of the train images.
        seed: the order of the batches and the augmentation.
        monitor: the metric `best.h5` is chosen by.
        verbose: 2 prints one line per epoch (with the epoch number and the
            learning rate), 1 Keras' progress bar, 0 nothing.
        save_best: write `best.h5`.
        pipeline: where batches are made and augmented, one of
            `catalog.PIPELINE_CHOICES`: on the host, on the device, on the
            device from the data set held there ("resident"), or "auto"
            (`resolve_pipeline`).
        steps_per_execution: steps per call of the compiled step (TensorFlow
            and JAX; a divisor of the epoch's steps,
            `check_steps_per_execution`): fewer calls from Python, the same
            training.
        replay: train nothing: `out_dir` holds a finished run of `epochs`
            epochs (its `model.h5` and `history.csv`, as `results/` keeps
            them), whose weights `model` takes and whose history is returned:
            a report redrawn by the same notebook, without training.
    Returns:
        the full history (every epoch, resumed ones included) as a pandas
        DataFrame, the rows of `history.csv`; `attrs["resumed_after"]` is the
        number of epochs an earlier, interrupted attempt had committed (0 when
        one attempt trained them all).
    Raises:
        ConfigError: a bad argument, an empty training set, augmentation of
            features; before anything is trained.
        TrainingDiverged: the loss became NaN or infinite (the epoch is not
            committed).
    """
    check_int("epochs", epochs)
    if replay:
        return _replay(model, out_dir, epochs)
    check_int("batch_size", batch_size)
    check_int("warmup_epochs", warmup_epochs, minimum=0)
    check_choice("warmup", warmup, WARMUPS)
    if len(data.y_train) == 0:
        raise ConfigError("the training set is empty; check per_class and validation_split")
    if augment and data.x_train.ndim != 4:
        raise ConfigError(f"augment=True needs images (n, h, w, c), not arrays of shape {data.x_train.shape}; "
                          f"use augment=False on cached features")
    pipeline = resolve_pipeline(pipeline, data.x_train)
    shards = device_count()  # `devices.set_devices`: each batch is split over this many devices
    batches = CifarBatches(data.x_train, data.y_train, batch_size, shuffle=True, augment=augment, seed=seed,
                           pipeline=pipeline, shards=shards, drop_remainder=True)
    # The resident pipeline holds the validation images after the training ones (`first` below).
    images = np.concatenate([data.x_train, data.x_val]) if pipeline == "resident" else None
    check_steps_per_execution(steps_per_execution, len(batches))
    total = epochs * len(batches)
    lr = learning_rate if schedule == "constant" and not warmup_epochs else LRSchedule(
        schedule, learning_rate, total, warmup_epochs * len(batches), milestones, warmup=warmup)
    trainer = compile_for_training(model, optimizer, lr, momentum, nesterov, pipeline, steps_per_execution, images)
    has_val = len(data.y_val) > 0
    ckpt = RunCheckpoint(os.path.join(out_dir, products.RESUME), os.path.join(out_dir, products.HISTORY),
                         os.path.join(out_dir, products.BEST_MODEL) if save_best else None,
                         monitor if has_val else monitor.removeprefix("val_"), epochs, log=verbose == 2, export=model,
                         tensorboard_dir=os.path.join(out_dir, products.TENSORBOARD))
    resumed_after = ckpt.saved_epoch()
    batches.set_epoch(resumed_after)
    val = CifarBatches(data.x_val, data.y_val, 500 // shards * shards, pipeline=pipeline, shards=shards,
                       first=len(data.x_train)) if has_val else None
    batches, steps = fit_inputs(batches, epochs)
    # shuffle=False: the batches shuffle themselves, seeded per epoch (Keras' default would only warn on tf.data).
    trainer.fit(batches, epochs=epochs, steps_per_epoch=steps, validation_data=fit_inputs(val)[0] if val else None,
                shuffle=False, callbacks=[ckpt, StopOnNaN()], verbose=1 if verbose == 1 else 0)
    history = history_frame(ckpt.rows)
    history.attrs["resumed_after"] = resumed_after
    return history


def _replay(model, out_dir, epochs):
    """`train(replay=True)`: the finished run in `out_dir` put back into `model`, and its history."""
    import pandas as pd

    from resnet_keras.files import load_h5, read_json_object

    model_path, history_path = (os.path.join(out_dir, name) for name in (products.MODEL, products.HISTORY))
    history = pd.read_csv(history_path) if os.path.isfile(history_path) else None
    if history is None or len(history) != epochs or not os.path.isfile(model_path):
        raise ConfigError(f"replay=True needs a finished run of {epochs} epochs in {out_dir!r} ({products.MODEL} and "
                          f"a {products.HISTORY} of {epochs} rows); train it first, or use replay=False")
    saved = load_h5(model_path)
    for layer in model.layers:  # by name: a saved option-A shortcut is a frozen convolution with a kernel
        if layer.weights:
            layer.set_weights(saved.get_layer(layer.name).get_weights())
    # How its epochs ran: the sweep's record of the run, or the committed run's `run.json`.
    record = read_json_object(os.path.join(out_dir, products.RECORD))
    committed = read_json_object(os.path.join(out_dir, products.REFERENCE))
    provenance = committed.get("provenance") or {}
    history.attrs["resumed_after"] = record.get("resumed_after", provenance.get("resumed_after", 0))
    history.attrs["replayed"] = True
    trained = record.get("results") or provenance
    if trained:  # where its epochs were timed
        history.attrs["trained_on"] = ", ".join(str(trained[k]) for k in ("device", "backend", "precision")
                                                if trained.get(k))
    # What the run scored there: other kernels (another CPU's bfloat16) may flip a test image or two.
    history.attrs["recorded_test_accuracy"] = (record.get("results") or committed.get("results") or {}).get(
        "test_accuracy")
    return history


def check_steps_per_execution(k, steps):
    """Accept `k` steps per compiled call for epochs of `steps` steps, or raise a one-line ConfigError.

    The epoch must split into whole calls: on TensorFlow one dataset runs
    through all epochs, and a last short call would take the next epoch's
    first batches, moving epoch ends, validation and checkpoints. Keras' PyTorch
    backend runs one step per call.
    """
    check_int("steps_per_execution", k)
    if k > 1 and keras.backend.backend() == "torch":
        raise ConfigError(f"steps_per_execution={k} is not accepted on the PyTorch backend (Keras runs one step "
                          f"per call there); use 1")
    if steps % k:
        divisors = [str(d) for d in range(1, min(steps, 100) + 1) if steps % d == 0]
        raise ConfigError(f"steps_per_execution={k} is not accepted; use a divisor of the {steps} steps of an "
                          f"epoch: {', '.join(divisors)}")
    return k


def fit_inputs(batches, epochs=None):
    """What `fit` takes for a `CifarBatches`, from its epoch up to `epochs`: `(data, steps_per_epoch)`.

    On TensorFlow, the same batches as a native tf.data pipeline
    (`CifarBatches.tf_dataset`), which spares TensorFlow the `PyDataset`
    adapter's Python call per step; on JAX and PyTorch, `batches` itself.
    """
    if keras.backend.backend() == "tensorflow":
        return batches.tf_dataset(epochs), None if epochs is None else len(batches)
    return batches, None


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


def evaluate_best(out_dir, data, batch_size=500):
    """The run's best-validation model (`best.h5`, which `train` keeps) evaluated on the test set, as `evaluate`.

    The last epoch's model is what a run reports; this one is what early
    stopping on the validation split would have kept, tested once at the end.

    Args:
        out_dir: the run's folder.
        data: the run's `CifarData`.
    Returns:
        `evaluate`'s dict, or None where the run has no validation split
        (its `best.h5` then follows the training accuracy) or no `best.h5`.
    """
    from resnet_keras.files import load_h5

    path = os.path.join(out_dir, products.BEST_MODEL)
    if not len(data.y_val) or not os.path.isfile(path):
        return None
    return evaluate(load_h5(path), data.x_test, data.y_test, batch_size)


def evaluate(model, x, y, batch_size=500):
    """Test loss, accuracy and predicted classes of `model`.

    Args:
        model: a model from inputs to class probabilities.
        x: its inputs, images (n, 32, 32, 3) or features.
        y: the true classes (n,), integers.
        batch_size: images per forward pass.
    Returns:
        {"loss": mean cross-entropy, "accuracy": fraction right,
        "predictions": the predicted class of each input (n,)}.
    """
    probs = predict(model, x, batch_size)
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(y)), y], eps, 1.0))))
    pred = probs.argmax(axis=1)
    return {"loss": loss, "accuracy": float(np.mean(pred == y)), "predictions": pred}
