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
from resnet_keras.cpu import CPU_FLAGS, cpu_flags, cpu_model, vector_unit  # noqa: F401 (CPU_FLAGS: public here too)
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
    "auto" picks "mixed_float16" when the backend sees a GPU; on a CPU with
    bfloat16 instructions (AVX512-BF16 or AMX) "mixed_bfloat16" on the
    TensorFlow and PyTorch backends, where it trains faster and as well
    (docs/performance.md); else "float32" (`catalog.resolve_precision`).
    Call it before building the model; a resumed run reloads the policy it
    was saved with.

    Args:
        precision: "auto", "float32", "mixed_float16" or "mixed_bfloat16".
    Returns:
        the policy set, e.g. "float32" for "auto" on a CPU without bfloat16 instructions.
    Raises:
        ConfigError: another value.
    """
    precision = resolve_precision(precision, has_gpu(), keras.backend.backend(), cpu_flags())  # checks it first
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
    return f"{cpu_model()}, {os.cpu_count()} cores, {vector_unit()}"
