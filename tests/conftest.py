"""Shared fixtures and helpers: tiny CIFAR data sets in the official python layout, a copy of the project, a
Dask cluster on localhost, headless Chromium."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import contextlib  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """A folder holding tiny CIFAR-10 and CIFAR-100 in the official layout."""
    from resnet_keras.data import write_tiny_cifar

    return write_tiny_cifar(str(tmp_path_factory.mktemp("cifar")))


def real_data_dir():
    """The real CIFAR folder ($RESNET_KERAS_DATA or ./data), or None."""
    for d in (os.environ.get("RESNET_KERAS_DATA"), os.path.join(REPO, "data")):
        if d and os.path.isfile(os.path.join(d, "cifar-10-batches-py", "data_batch_1")):
            return d
    return None


requires_real_data = pytest.mark.skipif(
    real_data_dir() is None,
    reason="real CIFAR-10 not found: set RESNET_KERAS_DATA or run `make data` (needs ../shared/data)")


requires_chromium = pytest.mark.skipif(
    not (shutil.which("chromium") and shutil.which("chromedriver")),
    reason="Debian's chromium and chromium-driver are not installed (.ci/run installs them)")


def _backend_runs_channels_first():
    """Whether this backend can train a channels-first convolution on this machine. TensorFlow's CPU kernels
    take NCHW only through oneDNN, which TensorFlow turns on by default only on CPUs with AVX-512 VNNI, bfloat16
    or AMX units: on an AVX2-only CPU its backward pass fails ("Conv2DCustomBackpropFilterOp only supports
    NHWC")."""
    import keras
    import numpy as np

    if keras.backend.backend() != "tensorflow":
        return True
    x = keras.Input((3, 8, 8))
    model = keras.Model(x, keras.layers.Conv2D(2, 3, data_format="channels_first")(x))
    model.compile(optimizer="sgd", loss="mse")
    try:
        model.train_on_batch(np.zeros((1, 3, 8, 8), "float32"), np.zeros((1, 2, 6, 6), "float32"))
    except Exception:  # TensorFlow's InvalidArgumentError or UnimplementedError
        return False
    return True


requires_channels_first = pytest.mark.skipif(
    not _backend_runs_channels_first(),
    reason="TensorFlow runs channels-first convolutions only through oneDNN, which it enables by default only on "
           "CPUs with AVX-512 VNNI, bfloat16 or AMX (this CPU has none)")


def chromium(log_requests=False):
    """A headless Chromium driven by Selenium, isolated from the network; with `log_requests`, every request it
    makes is in `driver.get_log("performance")` (see `requested_urls`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    if log_requests:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def requested_urls(driver):
    """The URLs a `chromium(log_requests=True)` requested since the last call, data: URLs left out."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if not url.startswith("data:"):
                urls.append(url)
    return urls


def tensorboard_scalars(folder):
    """{(part, tag): [(step, value), ...]} of every TensorBoard event file in `folder`'s parts (train/,
    validation/), file after file: what a reader that ignores purge marks would show."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    scalars = {}
    for path in sorted(glob.glob(os.path.join(str(folder), "*", "events.out.tfevents.*"))):
        part = os.path.basename(os.path.dirname(path))
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:
                scalars.setdefault((part, value.tag), []).append((event.step, float(make_ndarray(value.tensor))))
    return scalars


def copy_project(root, package=False):
    """Copy what `make sweep` needs (notebooks, params, Makefile, requirements) into `root`; return `root`.

    With `package`, the `resnet_keras` package too: processes started in `root` (the sweep, its kernels) import
    that copy, which a test may edit.
    """
    for folder in ("notebooks", "params") + (("resnet_keras",) if package else ()):
        shutil.copytree(os.path.join(REPO, folder), root / folder, ignore=shutil.ignore_patterns("*.ipynb",
                                                                                                 "__pycache__"))
    for name in ("Makefile", "requirements.txt", "requirements-cpu.txt", "requirements-gpu.txt", "pyproject.toml"):
        shutil.copy2(os.path.join(REPO, name), root / name)
    return root


@contextlib.contextmanager
def dask_cluster(root, nthreads=1, resources=None):
    """A real Dask scheduler and two worker processes on localhost, started in `root`; yields (address, client)."""
    import socket

    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = os.path.join(os.path.dirname(sys.executable), "dask")
    extra = ["--resources", resources] if resources else []
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    procs += [subprocess.Popen([dask, "worker", address, "--nthreads", str(nthreads), "--no-nanny", "--no-dashboard",
                                "--name", f"w{i}", *extra], cwd=root, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL) for i in (1, 2)]
    try:
        client = Client(address, timeout=60)
        client.wait_for_workers(2, timeout=120)
        yield address, client
        client.close()
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def with_trained_statistics(model, seed=0):
    """Give every batch norm non-trivial statistics and affine weights, as training would."""
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, c))
            layer.moving_variance.assign(rng.uniform(0.2, 3.0, c))
            layer.gamma.assign(rng.uniform(0.5, 1.5, c))
            layer.beta.assign(rng.normal(0, 0.3, c))
    return model


@pytest.fixture
def restore_precision():
    """Put the float32 policy back after a test that sets another precision."""
    yield
    import keras

    keras.config.set_dtype_policy("float32")
