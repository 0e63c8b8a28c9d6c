"""Residual networks on CIFAR-10/100 with Keras 3: models, data, training, sweeps.

Names are imported on first use, so `resnet_keras.sweep.params` and the sweep start
without loading TensorFlow; `import resnet_keras as rk; rk.build_resnet(20)`
works as usual.
"""

import importlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of reports

__version__ = "0.1.0"

_EXPORTS = {
    "data": ["CifarBatches", "CifarData", "DataNotFoundError", "augment_batch", "load_dataset"],
    "checkpoint": ["RunCheckpoint", "StopOnNaN", "TrainingDiverged"],
    "devices": ["device_count", "has_gpu", "set_devices", "set_precision"],
    "errors": ["ConfigError"],
    "inference": ["inference_model", "measure_inference", "predict"],
    "blocks": ["bottleneck_block", "preact_block", "residual_block"],
    "models": ["build_imagenet_resnet", "build_model", "build_resnet", "count_params", "count_weight_layers"],
    "transfer": ["build_transfer_model", "train_transfer", "unfreeze_top"],
    "files": ["load_h5", "save_h5"],
    "optimizers": ["LRSchedule", "make_optimizer"],
    "training": ["cache_features", "evaluate", "evaluate_best", "set_seed", "train"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
# The tooling's modules, in subpackages since 2026-12-06: `from resnet_keras import params` keeps working.
_MOVED = {"params": "sweep.params", "preflight": "sweep.preflight", "cluster": "sweep.cluster",
          "script": "sweep.script", "index": "summary.index", "reference": "summary.reference",
          "app": "share.app", "publish": "share.publish"}
__all__ = sorted(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        return getattr(importlib.import_module(f"resnet_keras.{_WHERE[name]}"), name)
    try:
        return importlib.import_module(f"resnet_keras.{_MOVED.get(name, name)}")
    except ModuleNotFoundError:
        raise AttributeError(f"module 'resnet_keras' has no attribute {name!r}") from None


def __dir__():
    return __all__
