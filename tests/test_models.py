import keras
import numpy as np
import pytest
from conftest import requires_channels_first, with_trained_statistics

import resnet_keras as rk
from resnet_keras.errors import ConfigError

pytestmark = pytest.mark.backend

# He et al. 2015, table 6: parameters of the CIFAR-10 ResNets with option-A shortcuts.
PAPER_TABLE = {3: 0.27, 5: 0.46, 7: 0.66, 9: 0.85, 18: 1.7}


def paper_rounding(params):
    millions = params / 1e6
    return round(millions, 1) if millions >= 1 else round(millions, 2)


@pytest.mark.parametrize("n", sorted(PAPER_TABLE))
def test_cifar_resnet_matches_paper_parameter_count_and_depth(n):
    model = rk.build_resnet(6 * n + 2, shortcut="zero_pad")
    assert paper_rounding(rk.count_params(model)) == PAPER_TABLE[n]
    assert rk.count_weight_layers(model) == 6 * n + 2
    assert model.name == f"resnet{6 * n + 2}"


def test_resnet20_exact_counts_match_reference_implementation():
    # akamaster/pytorch_resnet_cifar10 reports 269,722 (ResNet-20) and 1,727,962 (ResNet-110).
    assert rk.count_params(rk.build_resnet(20, shortcut="zero_pad")) == 269_722
    assert rk.count_params(rk.build_resnet(110, shortcut="zero_pad")) == 1_727_962


def test_projection_shortcuts_add_two_1x1_convolutions():
    model = rk.build_resnet(20, shortcut="projection")
    assert rk.count_weight_layers(model) == 22
    assert model.get_layer("stage2_block1_0_conv").kernel.shape == (1, 1, 16, 32)


def test_plain_network_has_no_additions_and_same_weight_layers():
    plain = rk.build_resnet(20, shortcut="zero_pad", plain=True)
    assert not any(isinstance(layer, keras.layers.Add) for layer in plain.layers)
    assert rk.count_weight_layers(plain) == 20
    assert plain.name == "plain20"


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("shortcut", ["projection", "zero_pad"])
def test_models_map_pixels_to_probabilities(version, shortcut):
    model = rk.build_resnet(8, num_classes=7, version=version, shortcut=shortcut, width=2, dropout=0.2)
    out = model.predict(np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32"), verbose=0)
    assert out.shape == (4, 7)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("family,depth,name,params", [
    ("resnet", 110, "resnet110", 1_727_962),
    ("plain", 56, "plain56", 853_018),
    # 654,768 convolution weights, 1,584 batch-norm channels (scale and shift), 650 in the classifier.
    ("preact", 44, "preact_resnet44", 658_586),
    ("imagenet", 18, "resnet18", 11_173_962),
])
def test_study_networks_by_family_and_depth(family, depth, name, params):
    model = rk.build_model(family, depth, shortcut="zero_pad")
    assert model.name == name
    assert rk.count_params(model) == params
    if family != "imagenet":
        assert rk.count_weight_layers(model) == depth


def test_wide_preact_resnet44_has_the_studys_2_6m_parameters():
    model = rk.build_model("preact", 44, 100, width=2, shortcut="projection")
    assert round(rk.count_params(model) / 1e6, 2) == 2.65


def test_zero_pad_shortcut_subsamples_and_pads_channels():
    x = np.arange(2 * 4 * 4 * 3, dtype="float32").reshape(2, 4, 4, 3)
    y = keras.ops.convert_to_numpy(rk.layers.ZeroPadShortcut(8, 2)(x))
    assert y.shape == (2, 2, 2, 8)
    np.testing.assert_array_equal(y[..., 2:5], x[:, ::2, ::2, :])
    assert not y[..., :2].any() and not y[..., 5:].any()
    first = keras.ops.convert_to_numpy(rk.layers.ZeroPadShortcut(8, 2, "channels_first")(x.transpose(0, 3, 1, 2)))
    np.testing.assert_array_equal(first, y.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_blocks_give_documented_shapes(data_format):
    opts = rk.blocks.LayerOptions(data_format=data_format)
    shape = (lambda h, w, c: (c, h, w)) if data_format == "channels_first" else (lambda h, w, c: (h, w, c))
    x = keras.Input(shape(16, 16, 32))
    assert rk.residual_block(x, 64, downsample=True, opts=opts).shape == (None, *shape(8, 8, 64))
    assert rk.preact_block(x, 32, opts=opts, name="p").shape == (None, *shape(16, 16, 32))
    assert rk.bottleneck_block(x, 16, downsample=True, opts=opts, name="b").shape == (None, *shape(8, 8, 64))


def test_networks_run_channels_first_on_pytorch_and_channels_last_elsewhere():
    model = rk.build_resnet(8)
    expected = "channels_first" if keras.backend.backend() == "torch" else "channels_last"
    assert {layer.data_format for layer in model.layers if isinstance(layer, keras.layers.Conv2D)} == {expected}
    assert model.input_shape == (None, 32, 32, 3)  # pixels in the same layout on every backend


@requires_channels_first
@pytest.mark.parametrize("family,shortcut", [("resnet", "zero_pad"), ("preact", "projection")])
def test_both_layouts_compute_the_same_network(family, shortcut, tmp_path):
    """Channels first (the PyTorch backend's) and channels last, with the same weights: the same
    probabilities, the same SGD step and batch-norm statistics, and the weights one saves load into the other
    (a model trained on PyTorch serves on TensorFlow); so the reference-equivalence tests, run in the native
    layout, cover both."""
    rk.set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (16, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, 16).astype("int32")
    models = [rk.build_model(family, 8, shortcut=shortcut, weight_decay=1e-4, data_format=f)
              for f in ("channels_last", "channels_first")]
    models[1].set_weights(models[0].get_weights())
    before = models[0].get_weights()
    for model in models:
        trainer = rk.training.compile_for_training(model, "sgd", 0.1)
        trainer.train_on_batch(x, y)
    last, first = models
    for variable, a, b, w in zip(last.weights, last.get_weights(), first.get_weights(), before):
        if variable.trainable:
            # One SGD step: the two updates agree as vectors. Single elements may not: the gradients sum in
            # float32 in another order, with cancellation through batch norm, and a ReLU input at zero can flip.
            # (Over 16 random initialisations the worst tensor was 1.4% apart; with this seed, 0.005%.)
            assert np.linalg.norm((b - w) - (a - w)) <= 1e-3 * np.linalg.norm(a - w), variable.path
        else:  # batch-norm statistics: sums of the forward pass only
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=variable.path)
    np.testing.assert_allclose(last.predict(x, verbose=0), first.predict(x, verbose=0), rtol=1e-4, atol=1e-6)
    first.save_weights(tmp_path / "first.weights.h5")
    other = rk.build_model(family, 8, shortcut=shortcut, weight_decay=1e-4, data_format="channels_last")
    other.load_weights(tmp_path / "first.weights.h5")
    np.testing.assert_allclose(other.predict(x, verbose=0), first.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


@requires_channels_first
def test_both_layouts_fold_for_inference():
    model = rk.build_resnet(8, data_format="channels_first")
    folded = rk.inference_model(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("depth,params", [(18, 11_173_962), (34, 21_282_122)])
def test_imagenet_style_resnets_match_torchvision_cifar_counts(depth, params):
    # kuangliu/pytorch-cifar's ResNet18/34 (CIFAR stem, 10 classes) have these counts.
    assert rk.count_params(rk.build_imagenet_resnet(depth)) == params


def test_resnet50_cifar_stem_uses_bottlenecks():
    model = rk.build_imagenet_resnet(50, num_classes=100)
    assert model.get_layer("stage4_block3_3_conv").kernel.shape == (1, 1, 512, 2048)
    assert model.output_shape == (None, 100)


def test_weight_decay_adds_l2_losses():
    model = rk.build_resnet(8, weight_decay=1e-4, decay_scope="kernels")
    model(np.zeros((1, 32, 32, 3), "float32"))
    assert len(model.losses) == rk.count_weight_layers(model)


def test_weight_decay_covers_every_parameter_by_default_like_pytorch_sgd():
    """PyTorch's SGD(weight_decay=wd) and the paper's Torch code decay BN scale/shift and biases too."""
    model = rk.build_resnet(8, weight_decay=1e-4)
    model(np.zeros((1, 32, 32, 3), "float32"))
    assert len(model.losses) == len(model.trainable_weights)
    expected = sum(1e-4 / 2 * float(np.sum(np.square(keras.ops.convert_to_numpy(w))))
                   for w in model.trainable_weights)
    assert float(sum(keras.ops.convert_to_numpy(loss) for loss in model.losses)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("data_format", ["channels_last", pytest.param("channels_first",
                                                                        marks=requires_channels_first)])
def test_strided_convolutions_are_centred_on_the_pixels_the_shortcut_samples(data_format):
    """A stride-2 3x3 convolution with a centre-only kernel must equal option A's x[::2, ::2]."""
    shape = (1, 8, 8) if data_format == "channels_first" else (8, 8, 1)  # one channel: the same pixels
    inputs = keras.Input(shape)
    model = keras.Model(inputs, rk.blocks.LayerOptions(data_format=data_format).conv(inputs, 1, 3, 2, "c"))
    kernel = np.zeros((3, 3, 1, 1), np.float32)
    kernel[1, 1] = 1.0
    model.get_layer("c").set_weights([kernel])
    x = np.random.default_rng(0).normal(size=(2, 8, 8)).astype(np.float32)
    y = keras.ops.convert_to_numpy(model(x.reshape(2, *shape)))
    np.testing.assert_allclose(y.reshape(2, 4, 4), x[:, ::2, ::2], atol=1e-6)


def test_transfer_model_freezes_base_and_trains_head_only():
    model = rk.build_transfer_model(10, weights=None)
    head = 2048 * 256 + 256 + 256 * 10 + 10
    assert rk.count_params(model) == head
    opened = rk.unfreeze_top(model, 0.1)
    assert opened > 0 and rk.count_params(model) > head
    base = rk.transfer.base_of(model)
    assert base.name == "resnet50"
    assert not any(layer.trainable for layer in base.layers if isinstance(layer, keras.layers.BatchNormalization))


def test_transfer_model_resizes_input():
    model = rk.build_transfer_model(5, weights=None, resize=64)
    assert model.get_layer("resize").output.shape == (None, 64, 64, 3)
    assert model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0).shape == (2, 5)


def test_transfer_model_loads_local_weights_file(tmp_path):
    donor = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = str(tmp_path / "resnet50_notop.weights.h5")
    donor.save_weights(path)
    model = rk.build_transfer_model(10, weights=path)
    np.testing.assert_array_equal(model.get_layer("resnet50").get_layer("conv1_conv").kernel.numpy(),
                                  donor.get_layer("conv1_conv").kernel.numpy())


def test_a_network_of_this_suite_is_a_transfer_base_computing_its_features(tiny_data, tmp_path, restore_precision):
    """Q3 without internet: a suite network trained on one data set (here in mixed bfloat16, as on CPUs with
    bfloat16 instructions) is the frozen base for the other, rebuilt in this process's precision, up to its
    pooling; cached features, fine-tuning of its top layers and saving work as with ResNet-50."""
    rk.set_precision("mixed_bfloat16")
    source = with_trained_statistics(rk.build_resnet(8, 100))
    rk.save_h5(source, str(tmp_path / "source.h5"))
    rk.set_precision("float32")
    model = rk.build_transfer_model(10, weights=str(tmp_path / "source.h5"), head_units=32)
    base = rk.transfer.base_of(model)
    assert base.compute_dtype == "float32" and not base.trainable
    assert rk.count_params(model) == 64 * 32 + 32 + 32 * 10 + 10  # the head only
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    pooled = keras.Model(source.inputs, source.get_layer("avg_pool").output).predict(x, verbose=0)
    features = keras.Model(model.inputs, model.get_layer("avg_pool").output).predict(x, verbose=0)
    np.testing.assert_allclose(features, pooled, rtol=0.05, atol=0.05)  # the source computed in bfloat16
    data = rk.load_dataset("cifar10", tiny_data, validation_split=0.2)
    head, cached = rk.cache_features(model, data)
    assert cached.x_train.shape == (len(data.y_train), 64)
    assert rk.unfreeze_top(model, 0.34) > 0 and rk.count_params(model) > 64 * 32 + 32 + 32 * 10 + 10
    rk.save_h5(model, str(tmp_path / "transfer.h5"))
    np.testing.assert_allclose(rk.load_h5(str(tmp_path / "transfer.h5")).predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("call,bad", [
    (lambda: rk.build_resnet(0), "depth=0"),
    (lambda: rk.build_resnet(-2), "depth=-2"),
    (lambda: rk.build_resnet(2.5), "depth=2.5"),
    (lambda: rk.build_resnet(21), "depth=21 is not accepted for a CIFAR network; use 6n+2"),
    (lambda: rk.build_resnet(True), "depth=True"),
    (lambda: rk.build_resnet(20, shortcut="option_b"), "shortcut='option_b'"),
    (lambda: rk.build_resnet(20, version="v3"), "version='v3'"),
    (lambda: rk.build_imagenet_resnet(101), "depth=101"),
    (lambda: rk.build_model("resnet", 21), "depth=21"),
    (lambda: rk.build_model("wide", 20), "family='wide'"),
    (lambda: rk.build_transfer_model(10, weights="/no/such/file.h5"), "weights='/no/such/file.h5'"),
])
def test_bad_model_arguments_name_the_value_and_accepted_ones(call, bad):
    with pytest.raises(ConfigError) as err:
        call()
    message = str(err.value)
    assert bad in message and ("use" in message) and "\n" not in message


def test_non_hdf5_weights_file_is_rejected_before_building(tmp_path):
    path = tmp_path / "weights.h5"
    path.write_text("not hdf5")
    with pytest.raises(ConfigError, match="is not an HDF5 file"):
        rk.build_transfer_model(10, weights=str(path))


def test_truncated_weights_file_is_rejected_before_building(tmp_path):
    donor = keras.applications.ResNet50(include_top=False, weights=None, input_shape=(32, 32, 3))
    path = tmp_path / "resnet50_notop.weights.h5"
    donor.save_weights(str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(ConfigError, match="is truncated or corrupt"):
        rk.build_transfer_model(10, weights=str(path))


@pytest.mark.parametrize("axis", [-1, 1])
@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_batch_norm_computes_what_keras_batch_normalization_computes(dtype, axis):
    """`layers.BatchNorm` (PyTorch's fused kernel on the torch backend) against `keras.layers.BatchNormalization`
    with the same weights: training-mode outputs, the moving statistics after two updates, the inference output.
    (Its gradients: the SGD steps of `tests/test_torch_equivalence.py`, against PyTorch's, on every backend.)"""
    from resnet_keras.layers import BatchNorm

    rng = np.random.default_rng(0)
    x = (3 + 2 * rng.standard_normal((8, 5, 5, 6))).astype("float32")
    x = x if axis == -1 else x.transpose(0, 3, 1, 2)
    weights = [1 + rng.random(6), rng.standard_normal(6), rng.standard_normal(6), 1 + rng.random(6)]
    ours, theirs = (cls(axis=axis, momentum=0.9, epsilon=1e-5, dtype=dtype)
                    for cls in (BatchNorm, keras.layers.BatchNormalization))
    results = []
    for layer in (ours, theirs):
        layer.build(x.shape)
        layer.set_weights([w.astype("float32") for w in weights])
        model = keras.Sequential([keras.Input(x.shape[1:]), layer])
        y1 = keras.ops.convert_to_numpy(keras.ops.cast(layer(x, training=True), "float32"))
        y2 = keras.ops.convert_to_numpy(keras.ops.cast(layer(2 * x, training=True), "float32"))
        results.append((y1, y2, *[w.copy() for w in layer.get_weights()],
                        keras.ops.convert_to_numpy(keras.ops.cast(model(x, training=False), "float32"))))
    tol = 1e-5 if dtype == "float32" else 2e-2
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="memory formats are PyTorch's: the torch backend only")
@pytest.mark.parametrize("dtype", ["float32", "mixed_bfloat16"])
def test_batch_norm_hands_on_channels_last_memory_in_its_compute_dtype_on_the_torch_backend(dtype):
    """The torch backend's CPU convolutions run fastest on channels-last memory: `layers.BatchNorm` leaves its output
    there (from either memory format in), in the layer's compute dtype, with no float32 round trip."""
    import torch

    from resnet_keras.layers import BatchNorm

    layer = BatchNorm(axis=1, dtype=dtype)
    for x in (torch.randn(2, 4, 5, 5), torch.randn(2, 5, 5, 4).permute(0, 3, 1, 2)):
        for training in (True, False):
            y = layer(x, training=training)
            assert y.is_contiguous(memory_format=torch.channels_last) and not y.is_contiguous()
            assert y.dtype == getattr(torch, layer.compute_dtype)
