"""Planning and running sweeps: params files and plans (`params`), the machine and inputs checked before a run
(`preflight`), Dask clusters (`cluster`), one run as a plain script (`script`), and the sweep itself (`runner`).

    python -m resnet_keras.sweep --profile quick [--dry-run]

The runner's public names (`run_sweep`, `execute_run`, `main`, ...) are importable from here; they load on first
use, so `resnet_keras.sweep.params` checks a params file without the runner or anything it imports.
"""

import importlib

SUBMODULES = ("cluster", "params", "preflight", "runner", "script")


def __getattr__(name):
    if name in SUBMODULES:
        return importlib.import_module(f"resnet_keras.sweep.{name}")
    runner = importlib.import_module("resnet_keras.sweep.runner")
    try:
        return getattr(runner, name)
    except AttributeError:
        raise AttributeError(f"module 'resnet_keras.sweep' has no attribute {name!r}") from None
