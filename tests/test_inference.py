import keras
import numpy as np
import pytest
from conftest import requires_channels_first, with_trained_statistics

import resnet_keras as rk
from resnet_keras.errors import ConfigError

pytestmark = pytest.mark.backend


def pixels(n, side=32, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, 3)).astype(np.float32)


def batch_norms(model):
    return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in model._flatten_layers())


@pytest.mark.parametrize("family,depth,kwargs,left", [
    ("resnet", 8, {"shortcut": "projection"}, 0),
    ("resnet", 8, {"shortcut": "zero_pad"}, 0),
    ("plain", 8, {}, 0),
    ("preact", 8, {}, 4),  # each block's first BN and the final one follow an add, not a conv
    ("imagenet", 18, {}, 0),
])
def test_folded_model_predicts_what_the_trained_model_predicts(family, depth, kwargs, left):
    model = with_trained_statistics(rk.build_model(family, depth, num_classes=10, **kwargs))
    x = pixels(8)
    fast = rk.inference_model(model)
    assert batch_norms(fast) == left < batch_norms(model)
    np.testing.assert_allclose(fast.predict(x, verbose=0), model.predict(x, verbose=0), atol=2e-5)
    assert fast.count_params() < model.count_params()  # the moving statistics are gone


def layouts(model):
    """The data formats of `model`'s layers, those of nested models included."""
    return {layer.data_format for layer in model._flatten_layers() if hasattr(layer, "data_format")}


@pytest.mark.parametrize("family,depth,kwargs", [
    ("resnet", 8, {"shortcut": "zero_pad"}),
    ("preact", 8, {"shortcut": "projection"}),
    ("plain", 8, {}),
    ("imagenet", 18, {}),
])
def test_a_model_saved_channels_first_loads_in_the_backends_layout_and_predicts_the_same(family, depth, kwargs,
                                                                                         tmp_path):
    """A model trained on PyTorch (channels first) serves on TensorFlow and JAX in their layout, channels last,
    which TensorFlow without oneDNN needs; on PyTorch it comes back as saved. What it should predict is computed
    by the same network built channels last with the same weights (kernels have the same shapes in both
    layouts), so the test runs where TensorFlow cannot run channels first."""
    saved = with_trained_statistics(rk.build_model(family, depth, data_format="channels_first", **kwargs))
    rk.save_h5(saved, str(tmp_path / "model.h5"))
    loaded = rk.load_h5(str(tmp_path / "model.h5"))
    native = rk.blocks.native_data_format()
    assert layouts(loaded) == {native}
    assert any(layer.name == "to_channels_first" for layer in loaded.layers) == (native == "channels_first")
    reference = rk.build_model(family, depth, data_format="channels_last", **kwargs)
    for layer in saved.layers:
        if layer.weights:
            reference.get_layer(layer.name).set_weights(layer.get_weights())
    x = pixels(4)
    np.testing.assert_allclose(loaded.predict_on_batch(x), reference.predict_on_batch(x), rtol=1e-4, atol=1e-6)
    assert rk.count_params(loaded) == rk.count_params(saved)  # trainable (option A is saved as frozen 1x1 kernels)


@requires_channels_first
def test_channels_last_converts_nested_models_and_leaves_a_channels_last_model_as_it_is():
    inner = with_trained_statistics(rk.build_resnet(8, data_format="channels_first"))
    x = keras.Input((32, 32, 3))
    outer = keras.Model(x, inner(x))
    last = rk.models.channels_last(outer)
    assert layouts(outer) == {"channels_first"} and layouts(last) == {"channels_last"}
    np.testing.assert_allclose(last.predict_on_batch(pixels(4)), outer.predict_on_batch(pixels(4)), rtol=1e-4,
                               atol=1e-6)
    assert rk.models.channels_last(last) is last


def test_transfer_model_folds_its_nested_base():
    model = with_trained_statistics(rk.build_transfer_model(10, weights=None))
    fast = rk.inference_model(model)
    assert batch_norms(model) == 53 and batch_norms(fast) == 0
    x = pixels(4)
    np.testing.assert_allclose(fast.predict(x, verbose=0), model.predict(x, verbose=0), atol=2e-5)


def test_bfloat16_inference_agrees_with_float32():
    model = with_trained_statistics(rk.build_resnet(8))
    fast = rk.inference_model(model, precision="bfloat16")
    convs = [layer for layer in fast.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(layer.compute_dtype == "bfloat16" for layer in convs)
    assert fast.get_layer("predictions").compute_dtype == "float32"
    x = pixels(32)
    got, want = fast.predict(x, verbose=0), model.predict(x, verbose=0)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, atol=0.05)
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.9


def test_folding_leaves_the_original_model_untouched():
    model = with_trained_statistics(rk.build_resnet(8))
    before = [w.copy() for w in model.get_weights()]
    rk.inference_model(model)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_inference_model_refuses_bad_arguments():
    with pytest.raises(ConfigError, match="precision='float16' is not accepted; use one of 'float32', 'bfloat16'"):
        rk.inference_model(rk.build_resnet(8), precision="float16")

    class Subclassed(keras.Model):
        def call(self, x):
            return x
    with pytest.raises(ConfigError, match="functional Keras model; got Subclassed"):
        rk.inference_model(Subclassed())


def test_inference_speed_is_measured_on_the_given_inputs():
    model = rk.build_resnet(8)
    x = pixels(40).astype(np.uint8)
    speed = rk.measure_inference(model, x, batch_size=16, latency_calls=3)
    assert speed["latency_ms"] > 0 and speed["throughput_img_s"] > 0
    assert rk.measure_inference(model, x, batch_size=16, latency_calls=0)["latency_ms"] is None
    with pytest.raises(ConfigError, match="x is empty"):
        rk.measure_inference(model, x[:0])


def test_predict_in_batches_matches_keras_predict():
    model = with_trained_statistics(rk.build_resnet(8))
    x = pixels(37).astype(np.uint8)  # 37 = 2 batches of 16 and a partial one of 5
    out = rk.predict(model, x, batch_size=16)
    assert out.shape == (37, 10) and out.dtype == np.float32
    np.testing.assert_allclose(out, model.predict(x.astype(np.float32), batch_size=16, verbose=0), atol=1e-5)
    with pytest.raises(ConfigError, match="batch_size"):
        rk.predict(model, x, batch_size=0)
    with pytest.raises(ConfigError, match="x is empty"):
        rk.predict(model, x[:0])
