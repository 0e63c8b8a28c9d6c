import os
import pickle
import socket

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
