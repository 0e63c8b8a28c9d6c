"""Shared fixtures: tiny CIFAR data sets in the official python layout."""

import os
import pickle

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dump(path, obj):
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _images(rng, labels, num_classes):
    # Class-dependent colour so that a network can tell classes apart quickly.
    base = (np.asarray(labels)[:, None] * (255 // num_classes)).astype(np.int32)
    noise = rng.integers(0, 40, size=(len(labels), 3072))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_cifar10(root, per_class=6, test_per_class=3, seed=0):
    """Official CIFAR-10 layout (bytes keys, 5 train batches) with tiny contents."""
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    labels = np.tile(np.arange(10), per_class)
    for i, part in enumerate(np.array_split(labels, 5), start=1):
        _dump(os.path.join(folder, f"data_batch_{i}"), {b"data": _images(rng, part, 10), b"labels": part.tolist()})
    test = np.tile(np.arange(10), test_per_class)
    _dump(os.path.join(folder, "test_batch"), {b"data": _images(rng, test, 10), b"labels": test.tolist()})
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    _dump(os.path.join(folder, "batches.meta"), {b"label_names": names})
    return root


def write_cifar100(root, per_class=2, seed=0):
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, "cifar-100-python")
    os.makedirs(folder, exist_ok=True)
    for split, k in (("train", per_class), ("test", 1)):
        fine = np.tile(np.arange(100), k)
        _dump(os.path.join(folder, split), {b"data": _images(rng, fine, 100), b"fine_labels": fine.tolist(),
                                            b"coarse_labels": (fine // 5).tolist()})
    _dump(os.path.join(folder, "meta"), {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                                         b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]})
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A folder holding tiny CIFAR-10 and CIFAR-100 in the official layout."""
    root = str(tmp_path_factory.mktemp("cifar"))
    write_cifar10(root)
    write_cifar100(root)
    return root


def real_data_dir():
    """The real CIFAR folder ($RESNET_KERAS_DATA or ./data), or None."""
    for d in (os.environ.get("RESNET_KERAS_DATA"), os.path.join(REPO, "data")):
        if d and os.path.isfile(os.path.join(d, "cifar-10-batches-py", "data_batch_1")):
            return d
    return None


requires_real_data = pytest.mark.skipif(
    real_data_dir() is None,
    reason="real CIFAR-10 not found: set RESNET_KERAS_DATA or run `make data` (needs ../shared/data)")
