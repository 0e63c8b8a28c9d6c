"""Transfer learning: a frozen ImageNet ResNet-50 (`keras.applications`) with a small classifier head."""

import keras
from keras import layers

from resnet_keras.errors import check_int, check_number
from resnet_keras.files import check_hdf5
from resnet_keras.layers import CaffePreprocess


def check_weights(weights):
    """Accept "imagenet", None or the path of an intact HDF5 weights file."""
    if weights is None or weights == "imagenet":
        return weights
    return check_hdf5("weights", weights, "'imagenet', None or the path of an intact .h5 weights file")


def build_transfer_model(num_classes, weights="imagenet", input_shape=(32, 32, 3), resize=None, head_units=256,
                         dropout=0.0):
    """ResNet-50 base (`include_top=False`, frozen) with a small classifier head.

    pixels -> [Resizing(resize)] -> ImageNet preprocessing -> ResNet-50 ->
    global average pooling -> Dense(head_units, relu) -> [Dropout] -> logits -> softmax.

    Args:
        num_classes: classifier width.
        weights: "imagenet" (downloaded by Keras once, then cached), None
            (random init) or the path of a local ResNet-50 no-top weights file.
        input_shape: raw pixel shape.
        resize: square side to resize to before the base (e.g. 224), or None.
        head_units: width of the hidden dense layer.
    Returns:
        an uncompiled model; the base is the layer named "resnet50" and runs
        in inference mode (frozen batch-norm statistics) even when unfrozen.
    """
    check_int("num_classes", num_classes, minimum=2)
    weights = check_weights(weights)
    if resize is not None:
        check_int("resize", resize, minimum=32)
    check_int("head_units", head_units)
    side = resize or input_shape[0]
    base = keras.applications.ResNet50(include_top=False, weights=weights, input_shape=(side, side, 3))
    base.trainable = False
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = layers.Resizing(side, side, name="resize")(inputs) if resize else inputs
    x = base(CaffePreprocess(name="imagenet_preprocess")(x), training=False)
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dense(head_units, activation="relu", name="head_dense")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    x = layers.Dense(num_classes, dtype="float32", name="logits")(x)
    outputs = layers.Activation("softmax", dtype="float32", name="predictions")(x)
    return keras.Model(inputs, outputs, name="resnet50_transfer")


def unfreeze_top(model, fraction=0.25):
    """Make the top `fraction` of the ResNet-50 base's layers trainable, for fine-tuning.

    Batch-norm layers stay frozen (their statistics were fit on ImageNet and a
    small CIFAR batch would disturb them). Recompile the model afterwards.

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
    base = model.get_layer("resnet50")
    base.trainable = True
    cut = int(round(len(base.layers) * (1 - fraction)))
    opened = 0
    for i, layer in enumerate(base.layers):
        layer.trainable = i >= cut and not isinstance(layer, layers.BatchNormalization)
        opened += layer.trainable
    return opened
