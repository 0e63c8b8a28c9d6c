"""Small parameter-free layers that the builders need and Keras does not ship.

Both are registered as serializable, so a saved `.h5` reloads (in safe mode)
wherever `resnet_keras` is importable.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="resnet_keras")
class ZeroPadShortcut(keras.layers.Layer):
    """The paper's option-A shortcut: subsample by `strides`, zero-pad channels.

    Input `(batch, h, w, c)`, output `(batch, ceil(h/s), ceil(w/s), filters)`.
    Extra channels are split evenly before and after the existing ones, as in
    the reference CIFAR implementations. No weights.
    """

    def __init__(self, filters, strides=2, **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.strides = int(strides)

    def call(self, x):
        s = self.strides
        if s > 1:
            x = x[:, ::s, ::s, :]
        extra = self.filters - x.shape[-1]
        if extra > 0:
            x = ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])
        return x

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        s = self.strides
        ceil = lambda d: None if d is None else -(-d // s)  # noqa: E731
        return (b, ceil(h), ceil(w), self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


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
