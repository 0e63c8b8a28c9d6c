"""Files: atomic output (a file under its final name is always complete), `.h5` models, source digests.

Keras is imported only by `load_h5`, so the sweep uses this module without it."""

import ast
import contextlib
import functools
import glob
import hashlib
import json
import os
import sys
import tempfile

from resnet_keras.errors import ConfigError

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; on success move it into place.

    The temporary name keeps the final extension (Keras chooses the `.h5`
    format by it). On any error the temporary file is removed and `path` is
    left as it was. The data is flushed to disk before the rename, so a crash
    leaves either the old file or the new one, never a mix.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    os.makedirs(folder or ".", exist_ok=True)
    stem, dot, ext = name.partition(".")  # the whole suffix: ".weights.h5" matters to Keras
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.tmp-", suffix=f"{dot}{ext}", dir=folder or ".")
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are meant to be shared and served
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text):
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def save_predictions(path, predictions):
    """Save predicted classes as a NumPy `.npy` file of unsigned bytes (CIFAR has at most 100 classes), atomically."""
    import numpy as np

    predictions = np.asarray(predictions)
    if predictions.ndim != 1 or (predictions.size and not 0 <= predictions.min() <= predictions.max() < 256):
        raise ConfigError(f"predictions of shape {predictions.shape} are not accepted; expected one class in "
                          f"0-255 per image")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, predictions.astype(np.uint8))


def read_json_object(path):
    """The JSON object in `path`, or {} where the file is missing, unreadable or holds no object."""
    try:
        with open(path) as f:
            found = json.load(f)
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _jsonable(value):
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def check_hdf5(what, path, accepted):
    """Return `path` if it is an intact HDF5 file, else raise a one-line ConfigError.

    `what` names the setting (e.g. "weights"), `accepted` says what would do.
    """
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"{what}={path!r} is not a file; use {accepted}")
    if not h5py.is_hdf5(path):
        raise ConfigError(f"{what}={path!r} is not an HDF5 file; use {accepted}")
    try:  # a truncated file has a valid signature but unreadable object headers
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, obj: obj.shape if isinstance(obj, h5py.Dataset) else None)
    except Exception as e:  # h5py raises OSError, KeyError or RuntimeError depending on the damage
        raise ConfigError(f"{what}={path!r} is truncated or corrupt ({type(e).__name__}); use {accepted}") from None
    return path


def module_path(module):
    """The file of one `resnet_keras` module ("resnet_keras.training"), whether or not it exists."""
    parts = module.split(".")[1:]
    path = os.path.join(PACKAGE_DIR, *parts) if parts else PACKAGE_DIR
    return os.path.join(path, "__init__.py") if os.path.isdir(path) else path + ".py"


@functools.cache
def source_digest(module):
    """Hash of what one `resnet_keras` module ("resnet_keras.training") computes, read once per process.

    It is the module's syntax tree without its docstrings: comments,
    docstrings and formatting leave it unchanged, so editing them reruns
    nothing. Returns None when the module is gone (whatever used it is out of
    date) or does not parse. The sweep's run records and the index's redraw
    check both use it.
    """
    tree = syntax_tree(module)
    return None if tree is None else hashlib.sha256(ast.dump(tree).encode()).hexdigest()[:16]


def syntax_tree(module):
    """One `resnet_keras` module's syntax tree without its docstrings (an `ast.Module`), or None when the module
    is gone or does not parse: what the digests of its code are made from."""
    try:
        with open(module_path(module), "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return None
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]
    return tree


def executed_modules():
    """The `resnet_keras` modules this process has imported, sorted: the code a run executed."""
    return sorted(m for m in sys.modules if m == "resnet_keras" or m.startswith("resnet_keras."))


def package_modules():
    """Every module of the `resnet_keras` package, by name, sorted."""
    names = sorted(os.path.relpath(p, PACKAGE_DIR) for p in glob.glob(os.path.join(PACKAGE_DIR, "**", "*.py"),
                                                                       recursive=True))
    return ["resnet_keras" + ("" if n == "__init__.py" else "." + n[:-3].replace(os.sep, ".").removesuffix(
        ".__init__")) for n in names]


def text_digest(module):
    """Hash of one module's text: what run records held before `source_digest` (see `sweep._current`)."""
    try:
        with open(module_path(module), "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()[:16]
    except OSError:
        return None


def save_h5(model, path):
    """Save the whole model as HDF5 (`.h5`), atomically: `path` holds the old file or the new one, never a mix.

    The file holds Keras' own layers only (`models.plain_keras_model`: this
    package's batch norm as Keras' `BatchNormalization`, option-A shortcuts as
    frozen 1x1 convolutions), so plain `keras.models.load_model` reads it
    without this package, computing the same function.

    Args:
        model: a functional Keras model (a builder's here).
        path: the file, ending in ".h5".
    Raises:
        ConfigError: `path` does not end in ".h5", or the model has a layer
            with no Keras equivalent.
    """
    if not os.fspath(path).endswith(".h5"):
        raise ConfigError(f"model path {os.fspath(path)!r} is not accepted; it must end in .h5")
    import logging

    from resnet_keras.models import plain_keras_model

    model = plain_keras_model(model)

    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # the design asks for .h5: Keras' "legacy format" warning is noise here
    try:
        with atomic_path(path) as tmp:
            model.save(tmp)
    finally:
        absl.setLevel(level)


def load_h5(path, compile=False):
    """Load a `.h5` model in Keras' safe mode (no deserialised Python code), in this backend's layout.

    A model saved channels first (trained on PyTorch) comes back channels last
    on TensorFlow and JAX (`models.channels_last`), where channels-first
    convolutions run slower or, on TensorFlow without oneDNN, not at all. On
    PyTorch a model comes back as saved: channels last runs there too.

    Args:
        path: a model file written by `save_h5`, or by its earlier versions,
            which saved the package's own layers (registered here).
        compile: restore the training configuration too; the model then
            comes back as saved, in its own layout.
    Returns:
        the `keras.Model`.
    Raises:
        ConfigError: `path` is not a file, not HDF5, or truncated.
    """
    import keras

    import resnet_keras.layers  # noqa: F401 (registers the package's layers, which older files name)
    from resnet_keras.blocks import native_data_format
    from resnet_keras.models import channels_last

    check_hdf5("model", path, "the path of an intact .h5 model file")
    model = keras.models.load_model(path, compile=compile, safe_mode=True)
    return channels_last(model) if native_data_format() == "channels_last" and not compile else model
