"""Network builders: the CIFAR ResNets (6n+2), ImageNet-style ResNet-18/34/50, and `build_model` by family.

Builders stack the blocks of `blocks.py` into stages. The classifier starts
as PyTorch's `nn.Linear` does (uniform in +-1/sqrt(fan_in) for weights and
bias; Keras' Glorot uniform starts with logits about twice as large).

Every model takes raw RGB pixels `(batch, h, w, 3)` in [0, 255] and normalises
them itself, so a saved `.h5` needs no preprocessing code to be used. On the
PyTorch backend the network then runs channels first, PyTorch's own layout
(`blocks.native_data_format`); the weights are the same in either layout, and
`channels_last` turns such a model into one that runs channels last.
Models end in a layer of logits (`"logits"`) followed by a softmax
(`"predictions"`): they output probabilities, and training computes the loss
from the logits (`training.training_model`), which is stable on every backend. The transfer
model (a frozen ResNet-50 with a head) is in `transfer.py`.
"""

import keras
from keras import layers

from resnet_keras.blocks import BN_EPSILON, BN_MOMENTUM, LayerOptions, bottleneck_block, preact_block, residual_block
from resnet_keras.catalog import IMAGENET_BLOCKS, SHORTCUTS, VERSIONS, check_depth, cifar_blocks
from resnet_keras.errors import ConfigError, check_choice, check_int, check_number

# Per-channel statistics of the CIFAR-10 train set on 0..255 (mean, std).
CIFAR10_MEAN = (125.31, 122.95, 113.87)
CIFAR10_STD = (62.99, 62.09, 66.70)


def _input(input_shape, mean, std, opts):
    inputs = keras.Input(shape=input_shape, name="pixels")
    variance = [s * s for s in std]
    x = layers.Normalization(mean=list(mean), variance=variance, name="normalize")(inputs)
    if opts.data_format == "channels_first":
        x = layers.Permute((3, 1, 2), name="to_channels_first")(x)
    return inputs, x


def _head(x, num_classes, dropout, opts):
    x = layers.GlobalAveragePooling2D(data_format=opts.data_format, name="avg_pool")(x)
    if dropout:
        x = layers.Dropout(dropout, name="dropout")(x)
    bound = 1.0 / x.shape[-1] ** 0.5  # PyTorch's nn.Linear default
    x = layers.Dense(num_classes, kernel_regularizer=opts.regularizer, bias_regularizer=opts.other_regularizer,
                     kernel_initializer=keras.initializers.RandomUniform(-bound, bound),
                     bias_initializer=keras.initializers.RandomUniform(-bound, bound),
                     dtype="float32", name="logits")(x)
    return layers.Activation("softmax", dtype="float32", name="predictions")(x)


def _stack(x, stages, block, shortcut, plain, opts):
    """Run `stages` = [(filters, blocks, first_stride), ...] of `block`."""
    for s, (filters, blocks, stride) in enumerate(stages, start=1):
        for b in range(1, blocks + 1):
            x = block(x, filters, downsample=(b == 1 and stride == 2), shortcut=shortcut, plain=plain,
                      opts=opts, name=f"stage{s}_block{b}")
    return x


def build_resnet(depth=20, num_classes=10, version="v1", shortcut="projection", width=1, plain=False,
                 input_shape=(32, 32, 3), dropout=0.0, weight_decay=0.0, mean=CIFAR10_MEAN, std=CIFAR10_STD,
                 bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, decay_scope="all", data_format=None, name=None):
    """CIFAR ResNet with `depth` = 6n+2 weight layers (He et al. 2015, section 4.2).

    A 3x3 stem with 16*width filters, three stages of n blocks with 16, 32, 64
    (times `width`) filters and strides 1, 2, 2, global average pooling and a
    softmax classifier: 6n+1 convolutions on the main path and one dense layer.

    Args:
        depth: weight layers, 6n+2 for n blocks per stage (20, 32, 44, 56, 110, ...).
        num_classes: classifier width.
        version: "v1" (post-activation) or "v2" (pre-activation).
        shortcut: "projection" or "zero_pad" (option A, as in the paper's CIFAR table).
        width: filter multiplier (integer >= 1).
        plain: no shortcuts (the paper's plain baseline of the same depth).
        input_shape: `(h, w, 3)` of the raw pixels.
        dropout: rate before the classifier (0 for none).
        weight_decay: coupled L2 (paper: 1e-4), on every parameter or, with
            `decay_scope="kernels"`, on conv and dense kernels only.
        mean, std: per-channel pixel statistics on 0..255 used to normalise.
        data_format: the layout of the activations inside the network,
            "channels_last" or "channels_first"; None: the backend's fastest
            (`blocks.native_data_format`: channels first on PyTorch). The
            weights and the input pixels are the same either way.
    Returns:
        an uncompiled `keras.Model` from pixels `(batch, h, w, 3)` to class
        probabilities `(batch, num_classes)`, named by `resnet_name`.
    Raises:
        ConfigError: a depth that is not 6n+2, or another bad argument.
    """
    n = cifar_blocks(depth)
    check_int("num_classes", num_classes, minimum=2)
    check_choice("version", version, VERSIONS)
    check_choice("shortcut", shortcut, SHORTCUTS)
    check_int("width", width)
    check_number("dropout", dropout, maximum=0.99)
    opts = LayerOptions(weight_decay, bn_momentum, bn_epsilon, decay_scope, data_format)
    inputs, x = _input(input_shape, mean, std, opts)
    if version == "v1":
        x = layers.ReLU(name="stem_relu")(opts.conv_bn(x, 16 * width, 3, 1, "stem"))
        x = _stack(x, [(16 * width, n, 1), (32 * width, n, 2), (64 * width, n, 2)], residual_block, shortcut,
                   plain, opts)
    else:
        x = opts.conv(x, 16 * width, 3, 1, "stem_conv")
        x = _stack(x, [(16 * width, n, 1), (32 * width, n, 2), (64 * width, n, 2)], preact_block, shortcut,
                   plain, opts)
        x = layers.ReLU(name="post_relu")(opts.bn(x, "post_bn"))
    outputs = _head(x, num_classes, dropout, opts)
    return keras.Model(inputs, outputs, name=name or resnet_name(depth, version, plain))


def resnet_name(depth, version="v1", plain=False):
    """The name `build_resnet` gives its model: "resnet20", "preact_resnet44", "plain20"."""
    return f"{'plain' if plain else 'preact_resnet' if version == 'v2' else 'resnet'}{depth}"


def build_imagenet_resnet(depth=18, num_classes=10, input_shape=(32, 32, 3), dropout=0.0, weight_decay=0.0,
                          mean=CIFAR10_MEAN, std=CIFAR10_STD, decay_scope="all", data_format=None, name=None):
    """ImageNet-style ResNet-18/34/50 with a CIFAR stem (3x3 conv, no max-pool).

    Stages of 64, 128, 256, 512 filters (strides 1, 2, 2, 2), basic blocks for
    18/34 and bottleneck blocks for 50, projection shortcuts: the layout of
    torchvision's models with the stem used for 32x32 inputs.

    Args:
        depth: 18, 34 or 50.
        num_classes, input_shape, dropout, weight_decay, mean, std,
            decay_scope, data_format: as for `build_resnet`.
        name: the model's name (default "resnet<depth>").
    Returns:
        an uncompiled `keras.Model` from pixels to class probabilities.
    Raises:
        ConfigError: another depth, or another bad argument.
    """
    check_depth("imagenet", depth)
    check_int("num_classes", num_classes, minimum=2)
    kind, blocks = IMAGENET_BLOCKS[depth]
    block = residual_block if kind == "basic" else bottleneck_block
    opts = LayerOptions(weight_decay, decay_scope=decay_scope, data_format=data_format)
    inputs, x = _input(input_shape, mean, std, opts)
    x = layers.ReLU(name="stem_relu")(opts.conv_bn(x, 64, 3, 1, "stem"))
    stages = [(f, b, 1 if i == 0 else 2) for i, (f, b) in enumerate(zip((64, 128, 256, 512), blocks))]
    x = _stack(x, stages, block, "projection", False, opts)
    return keras.Model(inputs, _head(x, num_classes, dropout, opts), name=name or f"resnet{depth}")


def build_model(family, depth, num_classes=10, width=1, shortcut="projection", **kwargs):
    """Any network of the study by family and depth, e.g. ("resnet", 110) or ("imagenet", 50).

    Args:
        family: "resnet" (CIFAR, post-activation), "plain" (the same without
            shortcuts), "preact" (CIFAR, pre-activation), all of depth 6n+2;
            or "imagenet" (ResNet-18/34/50 with a CIFAR stem; `width` and
            `shortcut` do not apply).
        depth: weight layers.
        num_classes, width, shortcut: as for `build_resnet`.
        **kwargs: the builder's other arguments (dropout, weight_decay, mean,
            std, ...).
    Returns:
        an uncompiled `keras.Model` from pixels to class probabilities.
    Raises:
        ConfigError: a family or depth the catalog does not have.
    """
    check_depth(family, depth)
    if family == "imagenet":
        return build_imagenet_resnet(depth, num_classes, **kwargs)
    return build_resnet(depth, num_classes, version="v2" if family == "preact" else "v1",
                        shortcut=shortcut, width=width, plain=family == "plain", **kwargs)


def count_params(model):
    """Trainable parameters of `model`, an int: what the paper's table counts (ResNet-20: 0.27M)."""
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))


def count_weight_layers(model):
    """Convolution and dense layers of `model`, an int: the paper's "layers" (ResNet-20: 20 with option A)."""
    return sum(isinstance(layer, (layers.Conv2D, layers.Dense)) for layer in model.layers)


def channels_last(model):
    """`model` computing channels last, with the same weights: a copy, or `model` itself where it already does.

    A model built on the PyTorch backend runs channels first. TensorFlow cannot
    run such convolutions on CPUs without oneDNN (ARM: "Conv2D op currently
    only supports the NHWC tensor format on the CPU"), and runs them slower
    where it can: a ResNet-44 trained on PyTorch took 22 s on CIFAR-10's test
    set as saved against 14 s channels last (TensorFlow, 2-core AMD EPYC).
    The copy drops the `to_channels_first` permutation, gives every layer that
    has a `data_format` the channels-last one and moves batch norm's axis last;
    kernels have the same shapes in both layouts. Nested functional models
    (the transfer model's base) are converted too.

    Args:
        model: a functional Keras model, such as a builder's here.
    Returns:
        a functional `keras.Model` with the same inputs, outputs and weights
        that computes the same function (up to float rounding), uncompiled.
    """
    if not any(getattr(layer, "data_format", None) == "channels_first" for layer in _layers(model)):
        return model

    def clone(layer):
        if isinstance(layer, keras.Model):
            return channels_last(layer)
        config = layer.get_config()
        if config.get("data_format") == "channels_first":
            config["data_format"] = "channels_last"
        if isinstance(layer, layers.BatchNormalization) and config["axis"] in (1, [1]):
            config["axis"] = -1
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        permute = isinstance(layer, layers.Permute) and tuple(layer.dims) == (3, 1, 2)
        return args[0] if permute else layer(*args, **kwargs)

    new = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in model.layers:
        if layer.weights and not isinstance(layer, keras.Model):
            new.get_layer(layer.name).set_weights(layer.get_weights())
    return new


def plain_keras_model(model):
    """A copy of functional `model` built of Keras' own layers only, computing the same function.

    What `files.save_h5` writes, so that `keras.models.load_model` reads a
    saved model without this package, and what a published model holds.

    The package's layers become Keras ones: `BatchNorm` a `BatchNormalization`
    (its subclass, the same arithmetic), the option-A `ZeroPadShortcut` a frozen
    1x1 convolution of stride s whose kernel places input channel i at output
    channel i + pad (exact: products with 1 and sums with 0), `CaffePreprocess`
    a frozen 1x1 convolution that reverses the channels and subtracts the mean.
    Nested functional models (the transfer model's ResNet-50) are converted too.
    """
    import numpy as np

    from resnet_keras import layers as package_layers

    weights = {}  # new layer name -> its weights

    def clone(layer):
        if isinstance(layer, keras.Model):
            return plain_keras_model(layer)
        config = layer.get_config()
        if isinstance(layer, package_layers.BatchNorm):
            return keras.layers.BatchNormalization.from_config(config)
        if isinstance(layer, package_layers.ZeroPadShortcut):
            first = layer.data_format == "channels_first"
            cin = layer.input.shape[1 if first else -1]
            kernel = np.zeros((1, 1, cin, layer.filters), np.float32)
            pad = (layer.filters - cin) // 2
            kernel[0, 0, np.arange(cin), pad + np.arange(cin)] = 1.0
            weights[layer.name] = [kernel]
            return keras.layers.Conv2D(layer.filters, 1, strides=layer.strides, use_bias=False,
                                       data_format=layer.data_format, trainable=False, name=layer.name)
        if isinstance(layer, package_layers.CaffePreprocess):
            kernel = np.eye(3, dtype=np.float32)[:, ::-1].reshape(1, 1, 3, 3)  # output c reads input 2 - c
            weights[layer.name] = [kernel, -np.array(package_layers.CaffePreprocess.MEAN_BGR, np.float32)]
            return keras.layers.Conv2D(3, 1, data_format="channels_last", trainable=False, name=layer.name)
        if not type(layer).__module__.startswith("keras."):
            raise ConfigError(f"layer {layer.name!r} ({type(layer).__name__}) has no Keras equivalent to save "
                              f"with; plain_keras_model knows BatchNorm, ZeroPadShortcut and CaffePreprocess")
        return layer.__class__.from_config(config)

    new = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if isinstance(layer, keras.Model) or not (layer.weights or layer.name in weights):
            continue  # nested models were converted with their weights by the recursive call
        target = new.get_layer(layer.name)
        target.set_weights(weights.get(layer.name, layer.get_weights()))
        target.trainable = layer.trainable and layer.name not in weights
    return new


def _layers(model):
    """Every layer of `model`, those of its nested models included."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
