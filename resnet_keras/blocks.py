"""Residual blocks in the Keras functional API, and the layer settings they share.

Blocks are plain functions `block(x, filters, downsample, shortcut, plain,
opts, name) -> tensor`; builders (`models.py`) stack them and name every layer
after its place (`stage2_block1_conv1`), as `keras.applications` does, so
summaries and weight files read cleanly.

Defaults follow the ResNet paper (He et al., 2015) and its common PyTorch
reproductions rather than Keras' own: He-normal convolutions (untruncated, as
`torch.nn.init.kaiming_normal_`), batch norm after every convolution with
momentum 0.9 and epsilon 1e-5 (`layers.BatchNorm`: Keras' batch norm, run by
PyTorch's fused kernel on the torch backend). Keras' batch-norm defaults
(momentum 0.99, epsilon 1e-3) make the moving statistics lag far behind the
weights in short runs, which shows as validation accuracy swinging from epoch to epoch
(measured: docs/reproduction.md, "Learning parity with PyTorch").

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
"""

import keras
from keras import layers

from resnet_keras.catalog import DECAY_SCOPES, SHORTCUTS
from resnet_keras.errors import check_choice, check_number
from resnet_keras.layers import BatchNorm, ZeroPadShortcut

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
DATA_FORMATS = ("channels_last", "channels_first")


def native_data_format():
    """The activation layout each backend's CPU kernels run fastest: channels first on PyTorch.

    Keras' PyTorch backend runs every channels-last convolution as two copies
    of its input (to NCHW, then to PyTorch's channels-last memory format) and
    a permuted output; with channels first the activations go straight to the
    kernel. TensorFlow's CPU convolutions want channels last, and XLA (JAX)
    picks its own layout. Weights have the same shapes in both layouts, and
    models take `(batch, h, w, 3)` pixels either way.
    """
    return "channels_first" if keras.backend.backend() == "torch" else "channels_last"


class LayerOptions:
    """Layer settings shared by every block of one network.

    `data_format`: the activations' layout, "channels_last" `(batch, h, w, c)`
    or "channels_first" `(batch, c, h, w)`; None picks `native_data_format()`.
    """

    def __init__(self, weight_decay=0.0, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, decay_scope="all",
                 data_format=None):
        check_number("weight_decay", weight_decay)
        check_choice("decay_scope", decay_scope, DECAY_SCOPES)
        self.data_format = data_format or native_data_format()
        check_choice("data_format", self.data_format, DATA_FORMATS)
        self.channel_axis = 1 if self.data_format == "channels_first" else -1
        # Coupled L2, as the paper and PyTorch's `SGD(weight_decay=wd)`: the
        # gradient of wd/2 * |w|^2 is wd * w.
        self.regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
        self.other_regularizer = self.regularizer if decay_scope == "all" else None  # BN scale/shift, biases
        self.bn_momentum = bn_momentum
        self.bn_epsilon = bn_epsilon

    def conv(self, x, filters, kernel, strides, name):
        padding = "same"
        if strides > 1 and kernel > 1:  # centre the window on the pixels the shortcut samples (module docstring)
            x = layers.ZeroPadding2D(kernel // 2, data_format=self.data_format, name=name + "_pad")(x)
            padding = "valid"
        return layers.Conv2D(
            filters, kernel, strides=strides, padding=padding, data_format=self.data_format, use_bias=False,
            kernel_initializer=keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal"),
            kernel_regularizer=self.regularizer, name=name,
        )(x)

    def bn(self, x, name):
        return BatchNorm(axis=self.channel_axis, momentum=self.bn_momentum, epsilon=self.bn_epsilon,
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
    if strides == 1 and x.shape[opts.channel_axis] == filters:
        return x
    if shortcut == "zero_pad":
        return ZeroPadShortcut(filters, strides, data_format=opts.data_format, name=name + "_pad")(x)
    if preactivated is not None:
        return opts.conv(preactivated, filters, 1, strides, name + "_conv")
    return opts.conv_bn(x, filters, 1, strides, name)


def residual_block(x, filters, downsample=False, shortcut="projection", plain=False, opts=None, name="block"):
    """Basic block (v1): 3x3 conv, BN, ReLU, 3x3 conv, BN, add shortcut, ReLU.

    Args:
        x: input tensor `(batch, h, w, c)` (`(batch, c, h, w)` if `opts` is channels first).
        filters: output channels.
        downsample: stride 2 in the first convolution (and the shortcut).
        shortcut: "projection" (1x1 conv + BN when the shape changes) or
            "zero_pad" (the paper's parameter-free option A).
        plain: drop the shortcut altogether (the paper's plain baseline).
        opts: shared layer settings; defaults when None.
        name: prefix of the layer names.
    Returns:
        tensor `(batch, h/s, w/s, filters)`, in the layout of `x`.
    """
    check_choice("shortcut", shortcut, SHORTCUTS)
    opts = opts or LayerOptions()
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
    opts = opts or LayerOptions()
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
    opts = opts or LayerOptions()
    strides = 2 if downsample else 1
    out = filters * expansion
    y = layers.ReLU(name=name + "_relu1")(opts.conv_bn(x, filters, 1, 1, name + "_1"))
    y = layers.ReLU(name=name + "_relu2")(opts.conv_bn(y, filters, 3, strides, name + "_2"))
    y = opts.conv_bn(y, out, 1, 1, name + "_3")
    if not plain:
        y = layers.Add(name=name + "_add")([_shortcut(x, out, strides, shortcut, opts, name + "_0"), y])
    return layers.ReLU(name=name + "_out")(y)
