"""Residual networks in the Keras functional API.

Blocks are plain functions `block(x, filters, ...) -> tensor`; builders stack
them and name every layer after its place (`stage2_block1_conv1`), as
`keras.applications` does, so summaries and weight files read cleanly.

Defaults follow the ResNet paper (He et al., 2015) and its common PyTorch
reproductions rather than Keras' own: He-normal convolutions (untruncated, as
`torch.nn.init.kaiming_normal_`), batch norm after every convolution with
momentum 0.9 and epsilon 1e-5, and PyTorch's default initialisation of the
classifier (uniform in +-1/sqrt(fan_in) for weights and bias; Keras' Glorot
uniform starts with logits about twice as large). Keras' batch-norm defaults
(momentum 0.99, epsilon 1e-3) make the moving statistics lag far behind the
weights in short runs, which shows as validation accuracy swinging from epoch
to epoch (measured: see README, "Learning parity with PyTorch").

Strided 3x3 convolutions pad one pixel on every side (`ZeroPadding2D(1)` and
`padding="valid"`, PyTorch's `padding=1`), so the window is centred on the even
pixels that the shortcuts (option A's `x[::2, ::2]`, the strided 1x1
projection) sample. Keras' `padding="same"` pads only bottom/right at stride 2,
which shifts the branch one pixel against its shortcut: with the same weights,
pooled features then differ from the reference networks' by 14%.

Weight decay is coupled L2 (the gradient of wd/2 |w|^2 is wd w, as in the
paper's Torch code and PyTorch's `SGD(weight_decay=wd)`) on every parameter by
default, batch-norm scale and shift and the classifier bias included, as those
do; `decay_scope="kernels"` restricts it to convolution and dense kernels.

Every model takes raw RGB pixels in [0, 255] and normalises them itself, so a
saved `.h5` needs no preprocessing code to be used. Models end in a layer of
logits (`"logits"`) followed by a softmax (`"predictions"`): they output
probabilities, and training computes the loss from the logits
(`training.training_model`), which is stable on every backend.
"""

import keras
from keras import layers

from resnet_keras.catalog import DECAY_SCOPES, IMAGENET_BLOCKS, SHORTCUTS, VERSIONS, check_depth, cifar_blocks
from resnet_keras.errors import check_choice, check_int, check_number
from resnet_keras.files import check_hdf5
from resnet_keras.layers import CaffePreprocess, ZeroPadShortcut


# Per-channel statistics of the CIFAR-10 train set on 0..255 (mean, std).
CIFAR10_MEAN = (125.31, 122.95, 113.87)
CIFAR10_STD = (62.99, 62.09, 66.70)

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


class _Opts:
    """Layer settings shared by every block of one network."""

    def __init__(self, weight_decay=0.0, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, decay_scope="all"):
        check_number("weight_decay", weight_decay)
        check_choice("decay_scope", decay_scope, DECAY_SCOPES)
        # Coupled L2, as the paper and PyTorch's `SGD(weight_decay=wd)`: the
        # gradient of wd/2 * |w|^2 is wd * w.
        self.regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
        self.other_regularizer = self.regularizer if decay_scope == "all" else None  # BN scale/shift, biases
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon

    def conv(self, x, filters, kernel, strides, name):
        padding = "same"
        if strides > 1 and kernel > 1:  # centre the window on the pixels the shortcut samples (module docstring)
            x = layers.ZeroPadding2D(kernel // 2, name=name + "_pad")(x)
            padding = "valid"
        return layers.Conv2D(
            filters, kernel, strides=strides, padding=padding, use_bias=False,
            kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal"),
            kernel_regularizer=self.regularizer, name=name,
        )(x)

    def bn(self, x, name):
        return layers.BatchNormalization(momentum=self.bn_momentum, epsilon=self.bn_epsilon,
                                         gamma_regularizer=self.other_regularizer,
                                         beta_regularizer=self.other_regularizer, name=name)(x)

    def conv_bn(self, x, filters, kernel, strides, name):
        return self.bn(self.conv(x, filters, kernel, strides, name + "_conv"), name + "_bn")


def _shortcut(x, filters, strides, shortcut, opts, name, preactivated=None):
    """Identity when shapes match; otherwise a projection or the option-A shortcut of `x`.

    In pre-activation blocks the projection is a bare 1x1 convolution of the
    block's `preactivated` input, as in He et al.'s (2016) reference code; in
    post-activation blocks it is a 1x1 convolution of `x` and batch norm.
    """
    if strides == 1 and x.shape[-1] == filters:
        return x
    if shortcut == "zero_pad":
        return ZeroPadShortcut(filters, strides, name=name + "_pad")(x)
    if preactivated is not None:
        return opts.conv(preactivated, filters, 1, strides, name + "_conv")
    return opts.conv_bn(x, filters, 1, strides, name)


def residual_block(x, filters, downsample=False, shortcut="projection", plain=False, opts=None, name="block"):
    """Basic block (v1): 3x3 conv, BN, ReLU, 3x3 conv, BN, add shortcut, ReLU.

    Args:
        x: input tensor `(batch, h, w, c)`.
        filters: output channels.
        downsample: stride 2 in the first convolution (and the shortcut).
        shortcut: "projection" (1x1 conv + BN when the shape changes) or
            "zero_pad" (the paper's parameter-free option A).
        plain: drop the shortcut altogether (the paper's plain baseline).
        opts: shared layer settings; defaults when None.
        name: prefix of the layer names.
    Returns:
        tensor `(batch, h/s, w/s, filters)`.
    """
    check_choice("shortcut", shortcut, SHORTCUTS)
    opts = opts or _Opts()
    strides = 2 if downsample else 1
    y = layers.ReLU(name=name + "_relu1")(opts.conv_bn(x, filters, 3, strides, name + "_1"))
    y = opts.conv_bn(y, filters, 3, 1, name + "_2")
    if not plain:
        y = layers.Add(name=name + "_add")([_shortcut(x, filters, strides, shortcut, opts, name + "_0"), y])
    return layers.ReLU(name=name + "_out")(y)


def preact_block(x, filters, downsample=False, shortcut="projection", plain=False, opts=None, name="block"):
    """Pre-activation block (v2, He et al. 2016): BN, ReLU, conv, BN, ReLU, conv, add.

    A projection shortcut is a 1x1 convolution of the pre-activated input, as
    in the paper's reference code; identity and option-A shortcuts read `x`.
    Same arguments and shapes as `residual_block`.
    """
    check_choice("shortcut", shortcut, SHORTCUTS)
    opts = opts or _Opts()
    strides = 2 if downsample else 1
    pre = layers.ReLU(name=name + "_preact_relu")(opts.bn(x, name + "_preact_bn"))
    y = opts.conv(pre, filters, 3, strides, name + "_1_conv")
    y = layers.ReLU(name=name + "_1_relu")(opts.bn(y, name + "_1_bn"))
    y = opts.conv(y, filters, 3, 1, name + "_2_conv")
    if plain:
        return y
    skip = _shortcut(x, filters, strides, shortcut, opts, name + "_0", preactivated=pre)
    return layers.Add(name=name + "_add")([skip, y])


def bottleneck_block(x, filters, downsample=False, shortcut="projection", plain=False, opts=None, name="block",
                     expansion=4):
    """Bottleneck block (v1.5): 1x1 conv, 3x3 conv (strided), 1x1 conv to `expansion * filters`.

    Same arguments as `residual_block`; the output has `expansion * filters` channels.
    """
    check_choice("shortcut", shortcut, SHORTCUTS)
    opts = opts or _Opts()
    strides = 2 if downsample else 1
    out = filters * expansion
    y = layers.ReLU(name=name + "_relu1")(opts.conv_bn(x, filters, 1, 1, name + "_1"))
    y = layers.ReLU(name=name + "_relu2")(opts.conv_bn(y, filters, 3, strides, name + "_2"))
    y = opts.conv_bn(y, out, 1, 1, name + "_3")
    if not plain:
        y = layers.Add(name=name + "_add")([_shortcut(x, out, strides, shortcut, opts, name + "_0"), y])
    return layers.ReLU(name=name + "_out")(y)


def _input(input_shape, mean, std):
    inputs = keras.Input(shape=input_shape, name="pixels")
    variance = [s * s for s in std]
    x = layers.Normalization(mean=list(mean), variance=variance, name="normalize")(inputs)
    return inputs, x


def _head(x, num_classes, dropout, opts, name_prefix=""):
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
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
                 bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, decay_scope="all", name=None):
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
    Returns:
        an uncompiled `keras.Model` from pixels `(batch, h, w, 3)` to class
        probabilities `(batch, num_classes)`.
    """
    n = cifar_blocks(depth)
    check_int("num_classes", num_classes, minimum=2)
    check_choice("version", version, VERSIONS)
    check_choice("shortcut", shortcut, SHORTCUTS)
    check_int("width", width)
    check_number("dropout", dropout, maximum=0.99)
    opts = _Opts(weight_decay, bn_momentum, bn_epsilon, decay_scope)
    inputs, x = _input(input_shape, mean, std)
    if version == "v1":
        x = layers.ReLU(name="stem_relu")(opts.conv_bn(x, 16 * width, 3, 1, "stem"))
        x = _stack(x, [(16 * width, n, 1), (32 * width, n, 2), (64 * width, n, 2)], residual_block, shortcut,
                   plain, opts)
    else:
        x = opts.conv(x, 16 * width, 3, 1, "stem_conv")
        x = _stack(x, [(16 * width, n, 1), (32 * width, n, 2), (64 * width, n, 2)], preact_block, shortcut,
                   plain, opts)
        x = layers.ReLU(name="post_relu")(opts.bn(x, "post_bn"))
    kind = "plain" if plain else ("preact_resnet" if version == "v2" else "resnet")
    outputs = _head(x, num_classes, dropout, opts)
    return keras.Model(inputs, outputs, name=name or f"{kind}{depth}")


def build_imagenet_resnet(depth=18, num_classes=10, input_shape=(32, 32, 3), dropout=0.0, weight_decay=0.0,
                          mean=CIFAR10_MEAN, std=CIFAR10_STD, decay_scope="all", name=None):
    """ImageNet-style ResNet-18/34/50 with a CIFAR stem (3x3 conv, no max-pool).

    Stages of 64, 128, 256, 512 filters (strides 1, 2, 2, 2), basic blocks for
    18/34 and bottleneck blocks for 50, projection shortcuts: the layout of
    torchvision's models with the stem used for 32x32 inputs.
    Returns an uncompiled `keras.Model` from pixels to class probabilities.
    """
    check_depth("imagenet", depth)
    check_int("num_classes", num_classes, minimum=2)
    kind, blocks = IMAGENET_BLOCKS[depth]
    block = residual_block if kind == "basic" else bottleneck_block
    opts = _Opts(weight_decay, decay_scope=decay_scope)
    inputs, x = _input(input_shape, mean, std)
    x = layers.ReLU(name="stem_relu")(opts.conv_bn(x, 64, 3, 1, "stem"))
    stages = [(f, b, 1 if i == 0 else 2) for i, (f, b) in enumerate(zip((64, 128, 256, 512), blocks))]
    x = _stack(x, stages, block, "projection", False, opts)
    return keras.Model(inputs, _head(x, num_classes, dropout, opts), name=name or f"resnet{depth}")


def build_model(family, depth, num_classes=10, width=1, shortcut="projection", **kwargs):
    """Any network of the study by family and depth, e.g. ("resnet", 110) or ("imagenet", 50).

    Families: "resnet" (CIFAR, post-activation), "plain" (the same without
    shortcuts), "preact" (CIFAR, pre-activation), all of depth 6n+2; and
    "imagenet" (ResNet-18/34/50 with a CIFAR stem; `width` and `shortcut` do
    not apply). Other keyword arguments go to the builder (dropout,
    weight_decay, mean, std, ...). Returns an uncompiled model.
    """
    check_depth(family, depth)
    if family == "imagenet":
        return build_imagenet_resnet(depth, num_classes, **kwargs)
    return build_resnet(depth, num_classes, version="v2" if family == "preact" else "v1",
                        shortcut=shortcut, width=width, plain=family == "plain", **kwargs)


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
    Returns the number of base layers made trainable.
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


def count_params(model):
    """Trainable parameters of `model` (what the paper's table counts)."""
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))


def count_weight_layers(model):
    """Convolution and dense layers on the model, the paper's "layers"."""
    return sum(isinstance(layer, (layers.Conv2D, layers.Dense)) for layer in model.layers)
