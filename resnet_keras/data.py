"""CIFAR-10/100 loading, splits and the augmented input pipeline.

Images are uint8 `(n, 32, 32, 3)` RGB, labels int32 `(n,)`. Models normalise
pixels themselves (see `models.py`), so the pipeline only augments.

Where the data comes from, first match wins:
1. `data_dir=` argument, or the `RESNET_KERAS_DATA` environment variable: a
   folder holding the official "python version" layout
   (`cifar-10-batches-py/`, `cifar-100-python/`);
2. Keras' own download cache (`~/.keras/datasets`), downloading once if the
   internet can be reached.
"""

import dataclasses
import os
import pickle
import socket

import keras
import numpy as np

from resnet_keras.catalog import DATASETS, LABEL_MODES, PIPELINES
from resnet_keras.errors import ConfigError, check_choice, check_int, check_number

DATA_ENV = "RESNET_KERAS_DATA"

_LAYOUT = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta"),
}
_ORIGIN = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
}


class DataNotFoundError(ConfigError):
    """The data set is neither on disk nor downloadable."""


@dataclasses.dataclass(frozen=True)
class CifarData:
    """A loaded data set: uint8 images `(n, 32, 32, 3)` and int32 labels `(n,)`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list

    @property
    def num_classes(self):
        return len(self.class_names)

    def describe(self):
        """One line: the size of each split and the number of classes."""
        return (f"{len(self.y_train)} train, {len(self.y_val)} validation, {len(self.y_test)} test images, "
                f"{self.num_classes} classes")

    def channel_stats(self):
        """Per-channel mean and std of the train images on 0..255."""
        x = self.x_train.reshape(-1, 3).astype(np.float64)
        return tuple(x.mean(0).round(3)), tuple(x.std(0).round(3))


def load_dataset(name="cifar10", data_dir=None, label_mode="fine", validation_split=0.0, per_class=None,
                 test_per_class=None):
    """Load CIFAR-10 or CIFAR-100.

    Args:
        name: "cifar10" or "cifar100".
        data_dir: folder with the official python layout; default
            `$RESNET_KERAS_DATA`, else Keras' download cache.
        label_mode: "fine" (100 classes) or "coarse" (20 superclasses); CIFAR-100 only.
        validation_split: fraction of each class of the (subset) train set held
            out as validation, taken from the end of each class: deterministic.
        per_class: keep only the first `per_class` train images of each class.
        test_per_class: likewise for the test set.
    Returns:
        a `CifarData`: uint8 images (n, 32, 32, 3) and int32 labels of the
        train, validation and test sets, and the class names.
    Raises:
        ConfigError: a bad argument; the data is not in `data_dir` (or not
            downloadable here), or a file of it is missing or corrupt. The
            message names the folder or file and what to do.
    """
    check_choice("data set", name, DATASETS)
    check_choice("label_mode", label_mode, LABEL_MODES)
    check_number("validation_split", validation_split, maximum=0.9)
    for what, k in (("per_class", per_class), ("test_per_class", test_per_class)):
        if k is not None:
            check_int(what, k)
    folder = _find_folder(name, data_dir)
    x_train, y_train, x_test, y_test, names = _read_layout(name, folder, label_mode)
    if per_class:
        x_train, y_train = _first_per_class(x_train, y_train, per_class)
    if test_per_class:
        x_test, y_test = _first_per_class(x_test, y_test, test_per_class)
    val = _validation_mask(y_train, validation_split)
    return CifarData(x_train[~val], y_train[~val], x_train[val], y_train[val], x_test, y_test, names)


def _find_folder(name, data_dir):
    layout_dir = _LAYOUT[name][0]
    source = "data_dir" if data_dir is not None else DATA_ENV
    data_dir = data_dir if data_dir is not None else os.environ.get(DATA_ENV) or None
    if data_dir is not None:
        folder = os.path.join(os.fspath(data_dir), layout_dir)
        if not os.path.isdir(folder):
            raise DataNotFoundError(f"{source}={os.fspath(data_dir)!r} has no {layout_dir}/ folder; "
                                    f"point it at a folder holding the official CIFAR python layout")
        return folder
    cache = os.path.join(os.path.expanduser("~"), ".keras", "datasets", f"{layout_dir}-target", layout_dir)
    if os.path.isdir(cache):
        return cache
    host = "www.cs.toronto.edu"
    if not reachable(host):
        raise DataNotFoundError(f"{name} is not on this machine and {host} cannot be reached; set {DATA_ENV} "
                                f"to a folder holding {layout_dir}/ (the official python layout)") from None
    path = keras.utils.get_file(fname=f"{layout_dir}-target", origin=_ORIGIN[name], extract=True)
    return os.path.join(path, layout_dir)


def reachable(host):
    """True when `host` answers on port 443 within 5 s (downloads can be tried)."""
    try:
        socket.create_connection((host, 443), timeout=5).close()
        return True
    except OSError:
        return False


def _unpickle(folder, file):
    path = os.path.join(folder, file)
    try:
        with open(path, "rb") as f:
            d = pickle.load(f, encoding="bytes")
        # The official files have bytes keys; files re-pickled in Python 3 may have str keys.
        return {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    except FileNotFoundError:
        raise DataNotFoundError(f"data file {path!r} is missing; the folder must hold the official CIFAR "
                                f"python layout") from None
    except Exception as e:  # a truncated or foreign file fails in many ways
        raise ConfigError(f"data file {path!r} is corrupt ({type(e).__name__}); re-extract the official "
                          f"CIFAR archive there") from None


def _read_batches(folder, files, label_key):
    xs, ys = [], []
    for file in files:
        d = _unpickle(folder, file)
        x, y = d.get("data"), d.get(label_key)
        if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[1] != 3072 or y is None or len(y) != len(x):
            raise ConfigError(f"data file {os.path.join(folder, file)!r} is corrupt (expected 'data' of shape "
                              f"(n, 3072) and {len(x) if hasattr(x, '__len__') else 'n'} labels)")
        xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(np.asarray(y, dtype=np.int32))
    return np.ascontiguousarray(np.concatenate(xs), dtype=np.uint8), np.concatenate(ys)


def _read_layout(name, folder, label_mode):
    _, train_files, test_files, meta_file = _LAYOUT[name]
    if name == "cifar10":
        label_key, names_key = "labels", "label_names"
    else:
        label_key, names_key = f"{label_mode}_labels", f"{label_mode}_label_names"
    x_train, y_train = _read_batches(folder, train_files, label_key)
    x_test, y_test = _read_batches(folder, test_files, label_key)
    meta = _unpickle(folder, meta_file)
    if names_key not in meta:
        raise ConfigError(f"data file {os.path.join(folder, meta_file)!r} is corrupt (no {names_key})")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    if y_train.max(initial=0) >= len(names) or y_test.max(initial=0) >= len(names):
        raise ConfigError(f"data folder {folder!r} has labels beyond its {len(names)} class names")
    return x_train, y_train, x_test, y_test, names


def _first_per_class(x, y, k):
    keep = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        keep[np.flatnonzero(y == c)[:k]] = True
    return x[keep], y[keep]


def _validation_mask(y, fraction):
    mask = np.zeros(len(y), dtype=bool)
    if fraction:
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            mask[idx[len(idx) - int(round(len(idx) * fraction)):]] = True
    return mask


def draw_crops(rng, b, pad=4):
    """Random augmentation of `b` images: int32 rows `(oy, ox, flip)`, shape `(b, 3)`.

    Crop offsets are uniform in 0..2*pad (in the zero-padded image), flips
    have probability 1/2, independently per image. Rows `(pad, pad, 0)` leave
    an image unchanged (`identity_crops`).
    """
    oy = rng.integers(0, 2 * pad + 1, size=b)
    ox = rng.integers(0, 2 * pad + 1, size=b)
    flip = rng.random(b) < 0.5
    return np.stack([oy, ox, flip], axis=1).astype(np.int32)


def identity_crops(b, pad=4):
    """Crop rows that leave `b` images unchanged."""
    return np.tile(np.array([[pad, pad, 0]], np.int32), (b, 1))


def crop_flip(x, crops, pad=4):
    """Apply `draw_crops` rows to a batch `(b, h, w, c)` on the host (NumPy, any dtype).

    Zero-pad by `pad` pixels, take the window at `(oy, ox)`, mirror it where
    `flip` is 1: one gather per batch. `layers.CropFlip` is the same in-graph.
    """
    b, h, w, _ = x.shape
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    rows = (crops[:, 0, None] + np.arange(h))[:, :, None]
    cols = crops[:, 1, None] + np.arange(w)
    cols = np.where(crops[:, 2, None] > 0, cols[:, ::-1], cols)[:, None, :]
    return padded[np.arange(b)[:, None, None], rows, cols]


def tf_crop_flip(x, crops, pad=4):
    """`crop_flip` in TensorFlow ops (for `CifarBatches.tf_dataset`): the same gather, the same result."""
    import tensorflow as tf

    _, h, w, _ = x.shape
    padded = tf.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    rows = crops[:, 0, None] + tf.range(h)
    cols = crops[:, 1, None] + tf.range(w)
    cols = tf.where(crops[:, 2, None] > 0, tf.reverse(cols, [1]), cols)
    return tf.gather(tf.gather(padded, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)


def augment_batch(x, rng, pad=4):
    """Standard CIFAR augmentation of a uint8 batch `(b, h, w, c)`: random pad-4 crop, flip."""
    return crop_flip(x, draw_crops(rng, len(x), pad), pad)


class CifarBatches(keras.utils.PyDataset):
    """Batches for `model.fit`, backend-agnostic, from one of two pipelines.

    - `pipeline="host"`: (float32 pixels, int32 labels), augmented here in
      NumPy (`augment_batch`); what a CPU trains fastest on.
    - `pipeline="device"`: ({"pixels": uint8, "crops": int32 (b, 3)}, labels):
      the raw images (a quarter of the bytes) and the random crop of each;
      `layers.CropFlip` applies them inside the compiled training step
      (`training.training_model`), so a GPU is not left waiting for NumPy.
    - `pipeline="resident"`: ({"index": int32 (b,), "crops": int32 (b, 3)},
      labels): only where the images are in a set the training model holds
      on the device (`layers.ResidentImages`), which gathers them in the step;
      `first` is the position of `x[0]` in that set.

    Both draw the order and the crops from generators seeded by
    `(seed, epoch)` and `(seed, epoch, batch)`, so the model sees the same
    images on either pipeline, and an epoch's batches are the same whether or
    not the run was resumed. With `drop_remainder` (what `train` uses), an
    epoch is only full batches, so the compiled step sees one shape and is
    traced (TensorFlow) or compiled (JAX) once rather than twice; up to
    `batch_size - 1` images, different ones each shuffled epoch, sit out an
    epoch (a set smaller than one batch is one partial batch). Otherwise the
    last partial batch is kept, cut to a multiple of `shards`: a batch split
    over that many devices must split evenly (`devices.set_devices`), so up
    to `shards - 1` images sit out an epoch.
    """

    def __init__(self, x, y, batch_size, shuffle=False, augment=False, seed=0, epoch=0, pipeline="host",
                 shards=1, drop_remainder=False, first=0, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y = x, y
        self.batch_size = check_int("batch_size", batch_size)
        self.shards = check_int("shards", shards)
        if batch_size % shards:
            raise ConfigError(f"batch_size={batch_size} does not split over {shards} devices; "
                              f"use a multiple of {shards}")
        self.pipeline = check_choice("pipeline", pipeline, PIPELINES)
        if pipeline != "host" and x.ndim != 4:
            raise ConfigError(f"pipeline={pipeline!r} needs images (n, h, w, c), not arrays of shape {x.shape}; "
                              f"use pipeline='host'")
        self.shuffle, self.augment, self.seed, self.drop_remainder = shuffle, augment, seed, drop_remainder
        self.first = first
        self.set_epoch(epoch)

    def set_epoch(self, epoch):
        self.epoch, self.order = epoch, self._order(epoch)

    def _order(self, epoch):
        rng = np.random.default_rng([self.seed, epoch])
        return rng.permutation(len(self.y)) if self.shuffle else np.arange(len(self.y))

    def __len__(self):
        used = len(self.y) - len(self.y) % self.shards
        if self.drop_remainder and used >= self.batch_size:
            return used // self.batch_size
        return -(-used // self.batch_size)

    def _batch(self, i, epoch, order):
        """Batch `i` of epoch `epoch` (shuffled as `order`): image indices `(b,)` and int32 crop rows `(b, 3)`."""
        idx = order[i * self.batch_size:(i + 1) * self.batch_size]
        idx = idx[:len(idx) - len(idx) % self.shards]
        if not self.augment:
            return idx, identity_crops(len(idx))
        return idx, draw_crops(np.random.default_rng([self.seed, epoch, i]), len(idx))

    def __getitem__(self, i):
        idx, crops = self._batch(i, self.epoch, self.order)
        if self.pipeline == "resident":
            return {"index": (idx + self.first).astype(np.int32), "crops": crops}, self.y[idx]
        x = self.x[idx]
        if self.pipeline == "device":
            return {"pixels": x, "crops": crops}, self.y[idx]
        if self.augment:
            x = crop_flip(x, crops)
        return x.astype(np.float32), self.y[idx]

    def epoch_plan(self, epoch):
        """Epoch `epoch`'s batches, concatenated: int32 image indices `(m,)` and crop rows `(m, 3)`.

        Cut into consecutive pieces of `batch_size` they are the images and
        crops of that epoch's batches (only the last one can be shorter).
        """
        order = self._order(epoch)
        idx, crops = zip(*(self._batch(i, epoch, order) for i in range(len(self))))
        return np.concatenate(idx).astype(np.int32), np.concatenate(crops)

    def tf_dataset(self, epochs=None):
        """The batches of epochs `self.epoch` up to `epochs` (default: this one) as a native `tf.data` pipeline.

        TensorFlow backend only. Each epoch costs one Python call
        (`epoch_plan`), ahead of time on tf.data's threads; gathering the
        images and the host pipeline's crop and flip run as TensorFlow ops,
        so no batch goes through Python (Keras' `PyDataset` adapter calls
        `__getitem__` once per step, which cost TensorFlow about 45% of its
        training speed on a 2-core AVX2 CPU). The batches are exactly
        `self[i]`'s, epoch after epoch (`tests/test_data.py`). Fit it with
        `steps_per_epoch=len(self)` when it spans several epochs.
        """
        import tensorflow as tf

        x = None if self.pipeline == "resident" else tf.constant(self.x)  # the resident set is the model's
        y = tf.constant(self.y)
        epochs = self.epoch + 1 if epochs is None else epochs

        def one_epoch(epoch):
            idx, crops = tf.numpy_function(lambda e: self.epoch_plan(int(e)), [epoch], (tf.int32, tf.int32),
                                           stateful=False)
            idx.set_shape([None])
            crops.set_shape([None, 3])
            return tf.data.Dataset.from_tensor_slices((idx, crops)).batch(self.batch_size)

        def gather(idx, crops):
            if self.pipeline == "resident":
                return {"index": idx + self.first, "crops": crops}, tf.gather(y, idx)
            pixels, labels = tf.gather(x, idx), tf.gather(y, idx)
            if self.pipeline == "device":
                return {"pixels": pixels, "crops": crops}, labels
            if self.augment:
                pixels = tf_crop_flip(pixels, crops)
            return tf.cast(pixels, tf.float32), labels

        # flat_map hides the size; stated, it lets Keras end each validation pass without a "ran out of data" warning.
        return (tf.data.Dataset.range(self.epoch, epochs).flat_map(one_epoch)
                .apply(tf.data.experimental.assert_cardinality(len(self) * max(epochs - self.epoch, 0)))
                .map(gather, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE))

    def on_epoch_end(self):
        self.set_epoch(self.epoch + 1)


def write_tiny_cifar(root, per_class=6, test_per_class=3, seed=0):
    """Write tiny CIFAR-10 and CIFAR-100 folders in the official layout under `root`.

    For tests and the smoke profile: `per_class` train and `test_per_class`
    test images per class (CIFAR-100: a third of that, at least 1), whose
    colour depends on the class so that a network can learn them. The files
    use bytes keys and 5 CIFAR-10 batches, like the official archives.
    """
    rng = np.random.default_rng(seed)

    def images(labels, k):
        base = (labels[:, None] * (255 // k)).astype(np.int32)
        return np.clip(base + rng.integers(0, 40, size=(len(labels), 3072)), 0, 255).astype(np.uint8)

    def dump(path, obj):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            pickle.dump(obj, f)

    c10 = os.path.join(root, "cifar-10-batches-py")
    labels = np.tile(np.arange(10), per_class)
    for i, part in enumerate(np.array_split(labels, 5), start=1):
        dump(os.path.join(c10, f"data_batch_{i}"), {b"data": images(part, 10), b"labels": part.tolist()})
    test = np.tile(np.arange(10), test_per_class)
    dump(os.path.join(c10, "test_batch"), {b"data": images(test, 10), b"labels": test.tolist()})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    dump(os.path.join(c10, "batches.meta"), {b"label_names": [n.encode() for n in names]})
    c100 = os.path.join(root, "cifar-100-python")
    for split, k in (("train", max(per_class // 3, 1)), ("test", max(test_per_class // 3, 1))):
        fine = np.tile(np.arange(100), k)
        dump(os.path.join(c100, split), {b"data": images(fine, 100), b"fine_labels": fine.tolist(),
                                         b"coarse_labels": (fine // 5).tolist()})
    dump(os.path.join(c100, "meta"), {b"fine_label_names": [f"class{i:02d}".encode() for i in range(100)],
                                      b"coarse_label_names": [f"superclass{i:02d}".encode() for i in range(20)]})
    return root


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "tiny":
        sys.exit("usage: python -m resnet_keras.data tiny DEST   (writes tiny CIFAR folders for smoke runs)")
    print(f"tiny CIFAR data in {write_tiny_cifar(sys.argv[2])}")
