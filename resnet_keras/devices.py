"""Which devices one run trains on (one, or several with data parallelism), and in what precision.

`set_devices(2)`, called before the model is built, has Keras replicate every
variable on two local accelerators and split each batch between them
(`keras.distribution.DataParallel`). The compiled step keeps the semantics of
one device: batch norm's statistics, the loss and the gradient are those of
the whole (global) batch, so the recipe (batch size, learning rate, schedule)
stays that of a one-device run, and so do the weights after each step, up to
float rounding (`tests/test_devices.py`: ResNet-20 on two virtual CPU devices).

Keras' distribution API trains on the JAX backend; on the others, more than
one device is refused with a one-line error rather than silently using one.
It lists devices on JAX and TensorFlow only; `local_devices` answers on every
backend, PyTorch included.
"""

import os
import shutil
import subprocess

import keras

from resnet_keras.catalog import check_devices, resolve_precision
from resnet_keras.errors import ConfigError


def set_devices(devices=1):
    """Train the models built from now on across `devices` local accelerators; return how many.

    Args:
        devices: an integer >= 1, or "all" (every local GPU; on a machine
            without one, every CPU device the backend lists, usually one).
    Returns:
        the number of devices each batch is split over.
    """
    check_devices(devices)
    available = local_devices()
    count = len(available) if devices == "all" else devices
    if count == 1:
        keras.distribution.set_distribution(None)
        return 1
    backend = keras.backend.backend()
    if backend != "jax":
        raise ConfigError(f"devices={devices!r} needs the JAX backend (Keras' distribution API), not {backend}; "
                          f"set KERAS_BACKEND=jax or use devices=1")
    if count > len(available):
        raise ConfigError(f"devices={devices!r} is not accepted; this machine has {len(available)} "
                          f"({', '.join(available)}): use at most {len(available)}, or 'all'")
    keras.distribution.set_distribution(keras.distribution.DataParallel(devices=available[:count]))
    return count


def device_count():
    """How many devices each batch is split over now (1 without a distribution)."""
    distribution = keras.distribution.distribution()
    return 1 if distribution is None else int(distribution.device_mesh.devices.size)


def set_precision(precision="auto"):
    """Set the dtype policy of every model built from now on; return the policy set.

    "mixed_float16" computes in float16 with float32 weights (NVIDIA tensor
    cores; `compile` adds dynamic loss scaling), "mixed_bfloat16" in bfloat16
    (TPUs, recent GPUs and CPUs). The classifiers stay float32 either way.
    "auto" picks "mixed_float16" when the backend sees a GPU and "float32"
    otherwise: on this project's CPU, bfloat16 trained ResNet-20 only about
    1.1x faster (docs/performance.md), too little to give up float32's
    like-for-like comparison with the paper and PyTorch; ask for it by name.
    Call it before building the model; a resumed run reloads the policy it
    was saved with.

    Args:
        precision: "auto", "float32", "mixed_float16" or "mixed_bfloat16".
    Returns:
        the policy set, e.g. "float32" for "auto" without a GPU.
    Raises:
        ConfigError: another value.
    """
    precision = resolve_precision(precision, has_gpu())  # checks `precision` first
    keras.config.set_dtype_policy(precision)
    return precision


def local_devices():
    """The backend's devices as "gpu:0"-style names: its GPUs when it sees any, else its CPU devices."""
    if keras.backend.backend() == "torch":  # Keras' distribution API has no PyTorch implementation
        import torch

        return [f"gpu:{i}" for i in range(torch.cuda.device_count())] or ["cpu:0"]
    return keras.distribution.list_devices()


def has_gpu():
    """True when the Keras backend sees a GPU."""
    return any(d.lower().startswith("gpu") for d in local_devices())


# The vector-unit flags that decide CPU figures (3x between hosts with and without AVX-512), as `lscpu` lists them.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), or "unknown"."""
    return _cpuinfo("model name") or "unknown"


def cpu_flags():
    """Which of `CPU_FLAGS` the CPU has."""
    flags = (_cpuinfo("flags") or "").split()
    return [flag for flag in CPU_FLAGS if flag in flags]


def describe():
    """What this process computes on, in words, for a run's record: the GPU model(s) when the backend sees a
    GPU ("NVIDIA H100 80GB HBM3", "2 x ..."), else the CPU model, its cores and its widest vector unit."""
    if has_gpu():
        names = []
        if shutil.which("nvidia-smi"):
            try:
                names = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                                       capture_output=True, text=True, timeout=30).stdout.split("\n")
            except (OSError, subprocess.SubprocessError):
                pass
        names = [n.strip() for n in names if n.strip()] or ["GPU"]
        return names[0] if len(names) == 1 else f"{len(names)} x {names[0]}"
    flags = cpu_flags()
    unit = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"{cpu_model()}, {os.cpu_count()} cores, {unit}"


def _cpuinfo(key):
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), None)
    except OSError:
        return None
