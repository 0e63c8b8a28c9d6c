import os
import pickle
import socket

import keras
import numpy as np
import pytest

import resnet_keras as rk
from resnet_keras.data import DataNotFoundError
from resnet_keras.errors import ConfigError

pytestmark = pytest.mark.backend


def test_reads_official_cifar10_layout(tiny_data):
    d = rk.load_dataset("cifar10", tiny_data)
    assert d.x_train.shape == (60, 32, 32, 3) and d.x_train.dtype == np.uint8
    assert d.x_test.shape == (30, 32, 32, 3) and d.y_test.dtype == np.int32
    assert d.class_names[0] == "airplane" and d.num_classes == 10
    assert len(d.y_val) == 0


def test_reads_cifar100_fine_and_coarse_labels(tiny_data):
    fine = rk.load_dataset("cifar100", tiny_data)
    coarse = rk.load_dataset("cifar100", tiny_data, label_mode="coarse")
    assert fine.num_classes == 100 and coarse.num_classes == 20
    np.testing.assert_array_equal(coarse.y_train, fine.y_train // 5)


def test_data_dir_comes_from_environment(tiny_data, monkeypatch):
    monkeypatch.setenv("RESNET_KERAS_DATA", tiny_data)
    assert len(rk.load_dataset("cifar10").y_train) == 60


def test_subset_takes_first_k_per_class_and_split_is_balanced(tiny_data):
    d = rk.load_dataset("cifar10", tiny_data, per_class=4, test_per_class=1, validation_split=0.25)
    assert np.bincount(d.y_train).tolist() == [3] * 10
    assert np.bincount(d.y_val).tolist() == [1] * 10
    assert np.bincount(d.y_test).tolist() == [1] * 10
    full = rk.load_dataset("cifar10", tiny_data)
    first = [full.x_train[full.y_train == c][:4] for c in range(10)]
    np.testing.assert_array_equal(d.x_val[d.y_val == 2][0], first[2][3])


def test_loading_is_deterministic(tiny_data):
    a = rk.load_dataset("cifar10", tiny_data, validation_split=0.5)
    b = rk.load_dataset("cifar10", tiny_data, validation_split=0.5)
    np.testing.assert_array_equal(a.x_val, b.x_val)


def test_missing_data_offline_fails_at_once_saying_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("RESNET_KERAS_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", offline)
    with pytest.raises(DataNotFoundError, match="RESNET_KERAS_DATA") as err:
        rk.load_dataset("cifar10")
    assert "cifar10" in str(err.value)


def test_folder_without_layout_is_named(tmp_path):
    with pytest.raises(DataNotFoundError, match="has no cifar-10-batches-py/"):
        rk.load_dataset("cifar10", str(tmp_path))


def test_missing_batch_file_is_named(tiny_data, tmp_path):
    import shutil
    shutil.copytree(os.path.join(tiny_data, "cifar-10-batches-py"), tmp_path / "cifar-10-batches-py")
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")
    with pytest.raises(DataNotFoundError, match="data_batch_3.*is missing"):
        rk.load_dataset("cifar10", str(tmp_path))


@pytest.mark.parametrize("content", [b"\x80\x04garbage", pickle.dumps({b"data": np.zeros((3, 10))}), b""])
def test_corrupt_batch_file_is_named(tiny_data, tmp_path, content):
    import shutil
    shutil.copytree(os.path.join(tiny_data, "cifar-10-batches-py"), tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(content)
    with pytest.raises(ConfigError, match="test_batch.*corrupt"):
        rk.load_dataset("cifar10", str(tmp_path))


@pytest.mark.parametrize("kwargs,bad", [
    ({"name": "mnist"}, "data set='mnist'"),
    ({"name": "cifar100", "label_mode": "medium"}, "label_mode='medium'"),
    ({"per_class": 0}, "per_class=0"),
    ({"validation_split": 1.5}, "validation_split=1.5"),
])
def test_bad_data_arguments_name_value_and_accepted(tiny_data, kwargs, bad):
    with pytest.raises(ConfigError) as err:
        rk.load_dataset(data_dir=tiny_data, **kwargs)
    assert bad in str(err.value) and "use" in str(err.value)


def test_augmentation_is_a_padded_crop_with_optional_flip():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 256, size=(64, 32, 32, 3)).astype(np.uint8)
    out = rk.augment_batch(x, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == np.uint8
    flipped = 0
    for src, dst in zip(x, out):
        padded = np.pad(src, ((4, 4), (4, 4), (0, 0)))
        windows = [padded[i:i + 32, j:j + 32] for i in range(9) for j in range(9)]
        plain = any(np.array_equal(dst, w) for w in windows)
        mirrored = any(np.array_equal(dst, w[:, ::-1]) for w in windows)
        assert plain or mirrored
        flipped += mirrored and not plain
    assert 16 < flipped < 48  # about half


def _applied_crops(images):
    """(oy, ox, flip) of augmented coordinate images (channel 0: row + 1, channel 1: column + 1; 0 is padding)."""
    images = np.asarray(images, np.int64)
    centre, right = images[:, 16, 16], images[:, 16, 17]
    flip = (right[:, 1] < centre[:, 1]).astype(int)  # columns run backwards in a mirrored window
    # The window at (oy, ox) of the 4-padded image puts source row oy + 12 at row 16; column 16 reads source
    # column ox + 12, or ox + 11 when mirrored (the window's column 15 from its left edge).
    return np.stack([centre[:, 0] - 13, centre[:, 1] - 13 + flip, flip], axis=1)


@pytest.mark.parametrize("pipeline", ["host", "device"])
def test_augmentation_draws_offsets_and_flips_uniformly_and_independently_per_image(pipeline):
    """What `draw_crops` documents, as the pipeline applies it: offsets uniform in 0..8 on each axis, flips with
    probability 1/2, all independent of each other and of the image's place in its batch."""
    from resnet_keras.layers import CropFlip

    n, batch = 16_200, 270
    rows, cols = np.meshgrid(np.arange(1, 33), np.arange(1, 33), indexing="ij")
    x = np.broadcast_to(np.stack([rows, cols, rows], axis=-1).astype(np.uint8), (n, 32, 32, 3))
    batches = rk.CifarBatches(x, np.zeros(n, np.int32), batch, shuffle=True, augment=True, seed=5, pipeline=pipeline)
    applied = []
    for i in range(len(batches)):
        inputs, _ = batches[i]
        if pipeline == "device":
            inputs = keras.ops.convert_to_numpy(CropFlip()(inputs["pixels"], inputs["crops"]))
        applied.append(_applied_crops(inputs))
    applied = np.concatenate(applied)
    assert applied[:, :2].min() == 0 and applied[:, :2].max() == 8
    # Every (oy, ox, flip) of the 162 is about equally frequent: Pearson's chi-square against uniform, 161 degrees
    # of freedom, below its 0.1% critical value (221). One offset per batch (60 batches) would give about 16,000.
    counts = np.bincount(applied[:, 0] * 18 + applied[:, 1] * 2 + applied[:, 2], minlength=162)
    expected = n / 162
    assert ((counts - expected) ** 2 / expected).sum() < 221, counts
    assert abs(applied[:, 2].mean() - 0.5) < 0.02
    # Within a batch, neighbours are independent: the same offset pair as the next image about 1 time in 81.
    same = (applied[1:, :2] == applied[:-1, :2]).all(axis=1).mean()
    assert 0.5 / 81 < same < 2 / 81


def test_batches_cover_every_image_once_per_epoch_and_reshuffle():
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * np.ones((1, 32, 32, 3), np.uint8)
    y = np.arange(10, dtype=np.int32)
    b = rk.CifarBatches(x, y, 4, shuffle=True, seed=3)
    assert len(b) == 3
    first = np.concatenate([b[i][1] for i in range(len(b))])
    assert sorted(first.tolist()) == list(range(10))
    b.on_epoch_end()
    second = np.concatenate([b[i][1] for i in range(len(b))])
    assert sorted(second.tolist()) == list(range(10)) and first.tolist() != second.tolist()
    again = rk.CifarBatches(x, y, 4, shuffle=True, seed=3, epoch=1)
    assert np.concatenate([again[i][1] for i in range(3)]).tolist() == second.tolist()


@pytest.mark.parametrize("pipeline,augment,shards,drop", [("host", True, 1, True), ("device", True, 1, True),
                                                          ("resident", True, 1, True), ("host", False, 4, False),
                                                          ("device", False, 2, False), ("resident", False, 2, False)])
def test_tf_dataset_gives_the_same_batches_every_epoch_and_after_a_resume(pipeline, augment, shards, drop):
    """TensorFlow's native input path (`tf_dataset`, what `train` fits there) against `__getitem__`, batch by batch:
    three epochs from the start, then the last two from a fresh pipeline at epoch 1 (a resumed run), with and
    without augmentation, with full batches only or a last partial batch cut to the device count."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf_dataset is the TensorFlow backend's input path")
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (70, 32, 32, 3), dtype=np.uint8), np.arange(70, dtype=np.int32)

    def batches(epoch=0):
        return rk.CifarBatches(x, y, 16, shuffle=True, augment=augment, seed=7, epoch=epoch, pipeline=pipeline,
                               shards=shards, drop_remainder=drop, first=100)

    def expected(first, last):
        ref, out = batches(first), []
        for _ in range(first, last):
            out += [ref[i] for i in range(len(ref))]
            ref.on_epoch_end()
        return out

    for first in (0, 1):
        got = list(batches(first).tf_dataset(3).as_numpy_iterator())
        want = expected(first, 3)
        assert len(got) == len(want) == (3 - first) * len(batches())
        for k, ((gx, gy), (wx, wy)) in enumerate(zip(got, want)):
            if pipeline != "host":
                images = "pixels" if pipeline == "device" else "index"
                assert gx[images].dtype == (np.uint8 if pipeline == "device" else np.int32)
                np.testing.assert_array_equal(gx["crops"], wx["crops"], err_msg=f"from epoch {first}, batch {k}")
                gx, wx = gx[images], wx[images]
            assert gx.dtype == wx.dtype
            np.testing.assert_array_equal(gx, wx, err_msg=f"from epoch {first}, batch {k}")
            np.testing.assert_array_equal(gy, wy)


def test_fit_on_tf_dataset_sees_each_epochs_batches_and_validates_without_running_out(recwarn):
    """Through `fit` as `train` calls it: epoch e trains on epoch e's batches (not epoch 0's again), and validation
    passes end without Keras' "ran out of data" warning (the pipeline states its size)."""
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf_dataset is the TensorFlow backend's input path")
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 64).astype(np.int32)
    data = rk.CifarBatches(x, y, 16, shuffle=True, augment=True, drop_remainder=True)
    expected = []
    for epoch in range(3):
        data.set_epoch(epoch)
        expected += [float(data[i][0].sum()) for i in range(len(data))]
    data.set_epoch(0)

    class Summing(keras.Model):  # its "training step" reports the sum of the batch it was given
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)

        def call(self, x):
            return self.dense(tf.reshape(x, (-1, 32 * 32 * 3)))

        def train_step(self, batch):
            return {"sum": tf.reduce_sum(tf.cast(batch[0], tf.float64))}

    seen = []
    model = Summing()
    model.compile(optimizer="sgd", loss="mse")
    batches, steps = rk.training.fit_inputs(data, 3)
    model.fit(batches, epochs=3, steps_per_epoch=steps, verbose=0, shuffle=False,
              validation_data=rk.training.fit_inputs(rk.CifarBatches(x, y.astype(np.float32), 16))[0],
              callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=lambda i, logs: seen.append(logs["sum"]))])
    np.testing.assert_allclose(seen, expected)
    assert not [w for w in recwarn if "ran out of data" in str(w.message)]
