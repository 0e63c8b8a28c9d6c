"""Small layers that the builders and training need and Keras does not ship.

The builders' layers are registered as serializable, so a saved `.h5` reloads
(in safe mode) wherever `resnet_keras` is importable. `ResidentImages`, which
holds a training set, is never saved.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="resnet_keras")
class ZeroPadShortcut(keras.layers.Layer):
    """The paper's option-A shortcut: subsample by `strides`, zero-pad channels.

    Input `(batch, h, w, c)` (`(batch, c, h, w)` with `data_format=
    "channels_first"`), output `(batch, ceil(h/s), ceil(w/s), filters)` in the
    same layout. Extra channels are split evenly before and after the existing
    ones, as in the reference CIFAR implementations. No weights.
    """

    def __init__(self, filters, strides=2, data_format="channels_last", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)
        self.data_format = data_format

    def call(self, x):
        s = self.strides
        first = self.data_format == "channels_first"
        if s > 1:
            x = x[:, :, ::s, ::s] if first else x[:, ::s, ::s, :]
        extra = self.filters - x.shape[1 if first else -1]
        if extra > 0:
            channels = [extra // 2, extra - extra // 2]
            x = ops.pad(x, [[0, 0], channels, [0, 0], [0, 0]] if first else [[0, 0], [0, 0], [0, 0], channels])
        return x

    def compute_output_shape(self, input_shape):
        s = self.strides
        ceil = lambda d: None if d is None else -(-d // s)  # noqa: E731
        if self.data_format == "channels_first":
            b, _, h, w = input_shape
            return (b, self.filters, ceil(h), ceil(w))
        b, h, w, _ = input_shape
        return (b, ceil(h), ceil(w), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides,
                "data_format": self.data_format}


@keras.saving.register_keras_serializable(package="resnet_keras")
class CaffePreprocess(keras.layers.Layer):
    """`keras.applications.resnet50.preprocess_input` as a layer.

    RGB pixels in [0, 255] become BGR with the ImageNet mean removed, which is
    what the ImageNet weights of ResNet-50 expect. Being a layer (not a Lambda)
    it is saved with the model and reloads in safe mode.
    """

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        return ops.flip(x, axis=-1) - ops.convert_to_tensor(self.MEAN_BGR, dtype=self.compute_dtype)


@keras.saving.register_keras_serializable(package="resnet_keras")
class CropFlip(keras.layers.Layer):
    """CIFAR augmentation inside the compiled step: per-image crop and flip.

    Call on `(pixels, crops)`: pixels `(b, h, w, c)` (uint8 or float) and
    crops `(b, 3)` int32 rows `(oy, ox, flip)` from `data.draw_crops`. Output
    float32 `(b, h, w, c)`: the `h x w` window at `(oy, ox)` of the image
    zero-padded by `pad`, mirrored left-right where `flip` is 1; exactly what
    `data.crop_flip` computes on the host. Selection is two batched products
    with one-hot matrices, which every backend compiles to matrix units and
    which are exact on pixel values (about 1% of a ResNet-20 step's work).
    No weights.
    """

    def __init__(self, pad=4, **kwargs):
        super().__init__(**kwargs)
        self.pad = int(pad)

    def call(self, pixels, crops):
        x = ops.cast(pixels, "float32")
        _, h, w, _ = x.shape
        crops = ops.cast(crops, "int32")
        oy, ox, flip = crops[:, 0] - self.pad, crops[:, 1] - self.pad, crops[:, 2]
        # rows[b, i, r] = 1 where output row i reads source row r (none: zero padding).
        rows = ops.equal(ops.arange(h)[None, None, :], ops.arange(h)[None, :, None] + oy[:, None, None])
        k = ops.arange(w)[None, :]
        src = ox[:, None] + ops.where(flip[:, None] > 0, w - 1 - k, k)  # (b, w): source column of output k
        cols = ops.equal(ops.arange(w)[None, :, None], src[:, None, :])  # cols[b, s, k]
        x = ops.einsum("bir,brwc->biwc", ops.cast(rows, "float32"), x)
        return ops.einsum("biwc,bwk->bikc", x, ops.cast(cols, "float32"))

    def compute_output_shape(self, pixels_shape, crops_shape=None):
        return tuple(pixels_shape)

    def get_config(self):
        return {**super().get_config(), "pad": self.pad}


class ResidentImages(keras.layers.Layer):
    """A set of images kept on the device: call on int32 indices `(b,)` for those images, `(b, h, w, c)`.

    The "resident" pipeline (`training.training_model`) copies the training
    images to the device once, as a non-trainable variable, and each step
    gathers its batch there: a step then takes from the host only indices,
    crops and labels, 20 bytes an image against 3,072 of uint8 pixels. Its
    variable is data, not state: checkpoints leave it out (`RunCheckpoint`).
    """

    def __init__(self, images, **kwargs):
        super().__init__(**kwargs)
        self.images = self.add_weight(shape=images.shape, dtype=str(images.dtype), trainable=False, name="images",
                                      initializer=lambda shape, dtype: images)

    def call(self, index):
        return ops.take(self.images, ops.cast(index, "int32"), axis=0)

    def compute_output_shape(self, index_shape):
        return tuple(index_shape) + tuple(self.images.shape[1:])


@keras.saving.register_keras_serializable(package="resnet_keras")
class BatchNorm(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization`, computed by PyTorch's fused kernel on the PyTorch backend.

    Keras' PyTorch backend computes batch norm as a chain of separate tensor
    operations (moments, subtract, multiply, add), each a pass over the
    activations forward and again backward; PyTorch's own kernel
    (`torch.native_batch_norm`, what `torch.nn.BatchNorm2d` runs) is one pass
    each way, and also returns the batch statistics that the moving averages
    need. Measured on a 2-core AVX-512 CPU: ResNet-20 training 89 -> 101
    images/s on the torch backend (docs/performance.md). The arithmetic is
    Keras': the batch is normalised by its own mean and biased variance, and
    the moving statistics are updated with the biased variance (`tests/test_models.py` compares it with
    `BatchNormalization` on every backend). It also hands the next convolution
    its activations in PyTorch's channels-last memory format, its fastest on
    CPUs, and skips mixed precision's casts around itself, as PyTorch's
    autocast does (docs/performance.md). Other backends, and what the fused
    kernel does not cover (masks, renormalisation, axes other than the last of
    a 4-D input), use `BatchNormalization` itself.
    """

    def call(self, inputs, training=None, mask=None):
        channels_first = self.axis == 1
        if (keras.backend.backend() != "torch" or mask is not None or self.renorm or len(inputs.shape) != 4
                or self.axis not in (-1, 1, 3)):
            return super().call(inputs, training, mask)
        import torch

        # In the input's precision (the kernel takes bfloat16 or float16 activations with float32 weights, and
        # computes the statistics in float32), and in channels-last memory: NCHW indexing over NHWC memory, the
        # layout PyTorch's CPU convolutions run fastest, which they and the activations keep from here on.
        x = inputs if channels_first else inputs.permute(0, 3, 1, 2)
        x = x.contiguous(memory_format=torch.channels_last)
        gamma = ops.cast(self.gamma, "float32") if self.scale else None
        beta = ops.cast(self.beta, "float32") if self.center else None
        if training and self.trainable:
            # The kernel returns the batch's mean and 1/sqrt(variance + epsilon), the biased variance's.
            y, mean, inv_std = torch.native_batch_norm(x, gamma, beta, None, None, True, 0.0, self.epsilon)
            variance = inv_std.detach().pow(-2) - self.epsilon
            self.moving_mean.assign(self.moving_mean * self.momentum + mean.detach() * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            y = torch.nn.functional.batch_norm(x, ops.cast(self.moving_mean, "float32"),
                                               ops.cast(self.moving_variance, "float32"), gamma, beta,
                                               training=False, eps=self.epsilon)
        return ops.cast(y if channels_first else y.permute(0, 2, 3, 1), self.compute_dtype)
