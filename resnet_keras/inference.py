"""Trained models made fast for inference, and how fast they run.

`inference_model` returns a copy of a trained network that predicts the same
thing with less work. Every batch norm that directly follows a convolution is
folded into that convolution's kernel and bias: in inference mode batch norm
is a fixed per-channel affine map, so it costs nothing once merged, while left
alone it is one more pass over every activation (eager PyTorch pays it too).
It also lets TensorFlow's oneDNN fuse convolution, bias, shortcut add and ReLU
into one kernel. Measured by `make bench` on this project's 2-core CPU:
ResNet-20 predict went from 1,283 to 1,890 images/s (docs/performance.md).

`precision="bfloat16"` also runs the convolutions in bfloat16 (accumulating in
float32), which CPUs with AVX512-BF16 or AMX and recent GPUs execute at about
twice the float32 rate; input normalisation, pooling and the classifier stay in
float32. Predictions then differ from float32 in the third significant digit
of the probabilities, so it is opt-in. On CPUs without bfloat16 instructions it
is slower, not faster.

Both work on any backend (nothing here calls TensorFlow directly).
"""

import time

import keras
import numpy as np

from resnet_keras.catalog import INFERENCE_PRECISIONS
from resnet_keras.errors import ConfigError, check_choice, check_int

# Layers whose work is worth doing in bfloat16; everything else (preprocessing,
# pooling, the classifier) stays float32, as Keras' mixed-precision guide advises.
_BF16_LAYERS = (keras.layers.Conv2D, keras.layers.BatchNormalization, keras.layers.Activation,
                keras.layers.ReLU, keras.layers.Add, keras.layers.MaxPooling2D, keras.layers.ZeroPadding2D)


def inference_model(model, precision="float32"):
    """A copy of functional `model` for inference: batch norm folded, optionally bfloat16.

    Args:
        model: a functional Keras model (nested functional models, such as
            the ResNet-50 base of the transfer model, are folded too).
        precision: "float32" (same predictions up to float rounding) or
            "bfloat16" (convolutions in bfloat16; see the module docstring).
    Returns:
        a new, uncompiled model with the same inputs and outputs; `model` is
        left untouched. It is meant for predicting, not for training or saving.
    """
    check_choice("precision", precision, INFERENCE_PRECISIONS)
    if not _is_functional(model):
        raise ConfigError(f"inference_model needs a functional Keras model; got {type(model).__name__}")
    folds = _foldable(model)
    dropped = {bn.name for bn in folds.values()}
    outputs = {id(t) for t in model.outputs}  # the softmax stays float32

    def clone(layer):
        if _is_functional(layer):
            return inference_model(layer, precision)
        config = layer.get_config()
        if layer.name in folds:
            config.update(use_bias=True, kernel_regularizer=None, bias_regularizer=None)
        if precision == "bfloat16" and isinstance(layer, _BF16_LAYERS) and id(layer.output) not in outputs:
            config["dtype"] = "mixed_bfloat16"
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        return args[0] if layer.name in dropped else layer(*args, **kwargs)

    new = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in model.layers:
        if layer.name in dropped or _is_functional(layer) or not layer.weights:
            continue
        target = new.get_layer(layer.name)
        if layer.name in folds:
            target.set_weights(_folded(layer, folds[layer.name]))
        else:
            target.set_weights(layer.get_weights())
    return new


def _is_functional(model):
    return isinstance(model, keras.Model) and hasattr(model, "_run_through_graph")


def _foldable(model):
    """{conv layer name: the batch norm it feeds}, for each conv whose only consumer is that batch norm."""
    consumers = {}
    for layer in model.layers:
        for node in layer._inbound_nodes:
            for parent in node.parent_nodes:
                consumers.setdefault(id(parent.operation), []).append(layer)
    folds = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        parents = layer._inbound_nodes[0].parent_nodes
        conv = parents[0].operation if len(parents) == 1 else None
        if (type(conv) is keras.layers.Conv2D and conv.activation is keras.activations.linear
                and len(conv._inbound_nodes) == 1 and consumers.get(id(conv)) == [layer]
                and not any(t is conv.output for t in model.outputs)
                and layer.axis in ((1,) if conv.data_format == "channels_first" else (-1, 3))):
            folds[conv.name] = layer
    return folds


def _folded(conv, bn):
    """Kernel and bias of `conv` followed by `bn` in inference mode, as one convolution."""
    scale = 1.0 / np.sqrt(keras.ops.convert_to_numpy(bn.moving_variance) + bn.epsilon)
    if bn.scale:
        scale = scale * keras.ops.convert_to_numpy(bn.gamma)
    bias = keras.ops.convert_to_numpy(conv.bias) if conv.use_bias else 0.0
    bias = (bias - keras.ops.convert_to_numpy(bn.moving_mean)) * scale
    if bn.center:
        bias = bias + keras.ops.convert_to_numpy(bn.beta)
    kernel = keras.ops.convert_to_numpy(conv.kernel) * scale  # kernel (h, w, in, out): scale per output channel
    return [kernel.astype(np.float32), bias.astype(np.float32)]


def predict(model, x, batch_size=500):
    """Outputs of `model` on inputs `x`, computed `batch_size` at a time.

    The same numbers as `model.predict`, through `predict_on_batch` on slices
    of `x`: no tf.data pipeline. On this project's 2-core CPU, the prefetching
    that `model.predict` sets up left each convolution to one thread in about
    half of the processes, halving throughput (ResNet-56: 385 against 600-750
    images/s); this loop ran at the fast rate every time (docs/performance.md).

    Args:
        model: any Keras model.
        x: its inputs, converted to float32 (n, ...).
        batch_size: inputs per call.
    Returns:
        the outputs as one NumPy array (n, ...), class probabilities for the
        package's models.
    Raises:
        ConfigError: `batch_size` is not an integer >= 1, or `x` is empty.
    """
    check_int("batch_size", batch_size)
    x = np.asarray(x, np.float32)
    if not len(x):
        raise ConfigError("predict needs at least one input; x is empty")
    return np.concatenate([keras.ops.convert_to_numpy(model.predict_on_batch(x[i:i + batch_size]))
                           for i in range(0, len(x), batch_size)])


def measure_inference(model, x, batch_size=500, latency_calls=30):
    """Inference speed of `model` on inputs `x`, after a warm-up call each.

    Pass `inference_model(model)` to measure the deployable (folded) network.

    Args:
        model: any Keras model.
        x: the inputs to measure on (n, ...), n >= 1.
        batch_size: inputs per call for the throughput.
        latency_calls: calls on one image for the latency (0: none).
    Returns:
        {"latency_ms": the median time of `predict_on_batch` on one image over
        `latency_calls` calls (None when 0), "throughput_img_s": images per
        second of `predict(model, x, batch_size)` over all of `x`}.
    Raises:
        ConfigError: a bad count, or no inputs.
    """
    check_int("batch_size", batch_size)
    check_int("latency_calls", latency_calls, minimum=0)
    if not len(x):
        raise ConfigError("measure_inference needs at least one input; x is empty")
    x = x.astype(np.float32)
    latency = None
    if latency_calls:
        model.predict_on_batch(x[:1])
        times = []
        for _ in range(latency_calls):
            start = time.perf_counter()
            model.predict_on_batch(x[:1])
            times.append(time.perf_counter() - start)
        latency = round(1000 * float(np.median(times)), 3)
    predict(model, x[:batch_size], batch_size)
    start = time.perf_counter()
    predict(model, x, batch_size)
    return {"latency_ms": latency, "throughput_img_s": round(len(x) / (time.perf_counter() - start), 1)}
