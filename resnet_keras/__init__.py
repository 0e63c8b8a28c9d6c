"""Residual networks on CIFAR-10/100 with Keras 3: models, data, training, sweeps."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of reports

from resnet_keras.data import CifarBatches, CifarData, DataNotFoundError, augment_batch, load_dataset  # noqa: E402
from resnet_keras.errors import ConfigError  # noqa: E402
from resnet_keras.models import (  # noqa: E402
    bottleneck_block,
    build_imagenet_resnet,
    build_resnet,
    build_transfer_model,
    count_params,
    count_weight_layers,
    preact_block,
    residual_block,
    resnet18,
    resnet34,
    resnet50,
    unfreeze_top,
)
from resnet_keras.training import (  # noqa: E402
    LRSchedule,
    StopOnNaN,
    TrainingDiverged,
    evaluate,
    load_h5,
    make_optimizer,
    save_h5,
    set_seed,
    train,
)

__version__ = "0.1.0"
