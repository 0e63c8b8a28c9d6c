"""Transfer learning: a frozen pretrained base with a small classifier head.

The base is an ImageNet ResNet-50 (`keras.applications`), or one of this
suite's own trained networks (a `model.h5` written by `save_h5`, such as a
committed Q2 run's), cut at its global average pooling.
"""

import os

import keras
from keras import layers

from resnet_keras.errors import check_int, check_number
from resnet_keras.files import check_hdf5
from resnet_keras.layers import CaffePreprocess

WEIGHTS_ACCEPTED = ("'imagenet', None, the path of a ResNet-50 no-top weights file, or the path of a model.h5 of "
                    "this suite (its layers up to the global pooling become the base)")


def check_weights(weights):
    """Accept "imagenet", None or the path of an intact HDF5 file (ResNet-50 weights or a model of this suite)."""
    if weights is None or weights == "imagenet":
        return weights
    return check_hdf5("weights", weights, WEIGHTS_ACCEPTED)


def is_model_file(path):
    """Whether `path` (an HDF5 file) holds a whole Keras model, as `save_h5` writes, not only weights."""
    import h5py

    with h5py.File(path, "r") as f:
        return "model_config" in f.attrs


def build_transfer_model(num_classes, weights="imagenet", input_shape=(32, 32, 3), resize=None, head_units=256,
                         dropout=0.0):
    """A frozen pretrained base with a small classifier head.

    pixels -> [Resizing(resize)] -> base -> global average pooling ("avg_pool")
    -> Dense(head_units, relu) -> [Dropout] -> logits -> softmax. The base is
    a ResNet-50 (`include_top=False`) behind ImageNet preprocessing, or, when
    `weights` is a model file of this suite, that network up to its global
    pooling, its own input normalisation included: a network trained on one
    CIFAR data set as the feature extractor for the other.

    Args:
        num_classes: classifier width.
        weights: "imagenet" (downloaded by Keras once, then cached), None
            (random init), the path of a local ResNet-50 no-top weights file,
            or the path of a `model.h5` of this suite (`save_h5`).
        input_shape: raw pixel shape.
        resize: square side to resize to before the base (e.g. 224), or None.
        head_units: width of the hidden dense layer.
    Returns:
        an uncompiled model; the base is its one nested model (`base_of`),
        frozen, and runs in inference mode (frozen batch-norm statistics) even
        when unfrozen.
    """
    check_int("num_classes", num_classes, minimum=2)
    weights = check_weights(weights)
    if resize is not None:
        check_int("resize", resize, minimum=32)
    check_int("head_units", head_units)
    side = resize or input_shape[0]
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = layers.Resizing(side, side, name="resize")(inputs) if resize else inputs
    if weights is not None and weights != "imagenet" and is_model_file(weights):
        base = suite_base(weights)
        name = f"{base.name}_transfer"
    else:
        base = keras.applications.ResNet50(include_top=False, weights=weights, input_shape=(side, side, 3))
        x = CaffePreprocess(name="imagenet_preprocess")(x)
        name = "resnet50_transfer"
    base.trainable = False
    x = base(x, training=False)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(head_units, activation="relu", name="head_dense")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def suite_base(path):
    """The network saved in `path` (a model of this suite) from its input up to its global pooling, exclusive.

    Rebuilt in this process's precision policy with the saved weights: a
    network trained in mixed bfloat16 serves as a float32 base on a CPU
    without bfloat16 instructions, where bfloat16 is emulated and slow.
    Channels last, the layout every backend runs.
    """
    from resnet_keras.files import load_h5
    from resnet_keras.models import channels_last

    saved = channels_last(load_h5(path))
    policy = keras.config.dtype_policy().name

    def clone(layer):
        config = layer.get_config()
        config["dtype"] = policy
        return layer.__class__.from_config(config)

    rebuilt = keras.models.clone_model(saved, clone_function=clone)
    for layer in saved.layers:
        if layer.weights:
            rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    features = rebuilt.get_layer("avg_pool").input
    return keras.Model(rebuilt.inputs, features, name=f"{saved.name}_base")


def describe_weights(weights):
    """What a report says of a transfer model's base: the weights it starts from, in words."""
    from resnet_keras import products
    from resnet_keras.files import read_json_object

    if weights in (None, "none"):
        return "ResNet-50 with random weights: accuracy here says nothing about transfer learning"
    if weights == "imagenet":
        return "ResNet-50 pretrained on ImageNet (keras.applications)"
    if not is_model_file(weights):
        return f"ResNet-50 with the weights of {weights}"
    # A committed run's model: its run.json says what it is and what it was trained on.
    run = read_json_object(os.path.join(os.path.dirname(weights), products.REFERENCE))
    s, r = run.get("settings", {}), run.get("results", {})
    if not (s and r):
        return f"the network saved in {weights}, up to its global pooling"
    from resnet_keras.report import DATASET_NAMES, OPTIMIZER_NAMES, network_name

    return (f"this suite's {network_name(r.get('model', ''))} trained from scratch on "
            f"{DATASET_NAMES.get(s.get('dataset'), s.get('dataset'))} ({OPTIMIZER_NAMES.get(s.get('optimizer'))}, "
            f"{r.get('epochs_trained')} epochs, {100 * r.get('test_accuracy', 0):.2f}% test accuracy there; "
            f"{weights}), up to its global pooling")


def base_of(model):
    """The pretrained base of a transfer model: its nested model."""
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def unfreeze_top(model, fraction=0.25):
    """Make the top `fraction` of the base's layers trainable, for fine-tuning.

    Batch-norm layers stay frozen (their statistics were fit on the base's own
    data and a small batch of the new data would disturb them). Recompile the
    model afterwards.

    Args:
        model: a model from `build_transfer_model`.
        fraction: the share of the base's layers, counted from the top, in
            (0, 1).
    Returns:
        the number of base layers made trainable (an int).
    Raises:
        ConfigError: `fraction` out of range.
    """
    check_number("fraction", fraction, minimum=0.0, maximum=1.0, inclusive=False)
    base = base_of(model)
    base.trainable = True
    cut = int(round(len(base.layers) * (1 - fraction)))
    opened = 0
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)
        opened += layer.trainable
    return opened


def train_transfer(model, data, out_dir, *, epochs, batch_size=128, optimizer="adam", learning_rate=1e-3,
                   momentum=0.9, augment=True, seed=0, cache_features=False, fine_tune_epochs=0,
                   fine_tune_fraction=0.25, fine_tune_learning_rate=1e-5, replay=False):
    """Train a transfer model's head with its base frozen, then optionally fine-tune the base's top; resumable.

    The head trains on the images through the frozen base, or, with
    `cache_features`, on the base's features computed once per image (no
    augmentation then; `training.cache_features`). Fine-tuning unfreezes the
    top `fine_tune_fraction` of the base (`unfreeze_top`) and trains the whole
    model on the images in `out_dir/finetune/`, at `fine_tune_learning_rate`.
    Each stage resumes after an interruption as `train` does.

    Args:
        model: from `build_transfer_model`.
        data: a `CifarData` of images.
        replay: train nothing: `out_dir` holds the finished run (`train(replay=True)`,
            both stages' epochs in its history).
    Returns:
        every epoch's row, the head's and then the fine-tuning's (numbered
        on), as a DataFrame; `attrs["head_epochs"]` is where fine-tuning
        begins, and `attrs["resumed_after"]` counts the epochs of both
        stages that an earlier attempt had committed.
    """
    import pandas as pd

    from resnet_keras import products
    from resnet_keras.training import cache_features as cached
    from resnet_keras.training import train

    if replay:
        history = train(model, data, out_dir, epochs=epochs + fine_tune_epochs, replay=True)
        history.attrs["head_epochs"] = epochs
        if fine_tune_epochs:  # as the run left it: its top unfrozen
            unfreeze_top(model, fine_tune_fraction)
        return history
    trainee, train_data = cached(model, data) if cache_features else (model, data)
    history = train(trainee, train_data, out_dir, epochs=epochs, batch_size=batch_size, optimizer=optimizer,
                    learning_rate=learning_rate, momentum=momentum, augment=augment and not cache_features,
                    seed=seed, save_best=False)
    if not fine_tune_epochs:
        return history
    unfreeze_top(model, fine_tune_fraction)
    tuned = train(model, data, os.path.join(out_dir, products.FINETUNE), epochs=fine_tune_epochs,
                  batch_size=batch_size, optimizer=optimizer, learning_rate=fine_tune_learning_rate,
                  momentum=momentum, augment=augment, seed=seed, save_best=False)
    joined = pd.concat([history, tuned.assign(epoch=tuned["epoch"] + epochs)], ignore_index=True)
    # Where this attempt took over: within fine-tuning when that had committed epochs, else within the head.
    tuned_after = tuned.attrs.get("resumed_after", 0)
    joined.attrs["resumed_after"] = epochs + tuned_after if tuned_after else history.attrs.get("resumed_after", 0)
    joined.attrs["head_epochs"] = epochs
    return joined
