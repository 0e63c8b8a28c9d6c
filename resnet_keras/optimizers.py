"""Optimizers by name and the learning-rate schedules of the recipes (constant, step, cosine, warm-up)."""

import math

import keras
from keras import ops

from resnet_keras.catalog import OPTIMIZERS, SCHEDULES
from resnet_keras.errors import check_choice, check_int, check_number


def make_optimizer(name, learning_rate=1e-3, momentum=0.9, nesterov=False):
    """Optimizer by name: "sgd" (with momentum, optionally Nesterov), "adam" or "rmsprop".

    `learning_rate` is a float or a schedule. Weight decay is coupled L2 on the
    model's kernels (the builders' `weight_decay`), as in the paper.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        check_number("learning_rate", learning_rate, inclusive=False)
    if name == "sgd":
        check_number("momentum", momentum, maximum=1.0)
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=bool(nesterov))
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, epsilon=1e-8)  # the Adam paper's and PyTorch's epsilon
    return keras.optimizers.RMSprop(learning_rate)


@keras.saving.register_keras_serializable(package="resnet_keras")
class LRSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Constant, step (x `gamma` at each milestone) or cosine decay, with linear warm-up.

    Steps are optimizer iterations; `milestones` are fractions of `total_steps`
    (the paper's CIFAR schedule divides by 10 at 32k and 48k of 64k: 0.5, 0.75).
    """

    def __init__(self, kind, base_lr, total_steps, warmup_steps=0, milestones=(0.5, 0.75), gamma=0.1):
        self.kind = check_choice("schedule", kind, SCHEDULES)
        self.base_lr = check_number("learning_rate", base_lr, inclusive=False)
        self.total_steps = check_int("total_steps", total_steps)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
        self.milestones = [check_number("milestone", m, maximum=1.0) for m in milestones]
        self.gamma = check_number("gamma", gamma, maximum=1.0, inclusive=False)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = ops.convert_to_tensor(self.base_lr, "float32")
        if self.kind == "step":
            for m in self.milestones:
                lr = lr * ops.where(step >= m * self.total_steps, self.gamma, 1.0)
        elif self.kind == "cosine":
            progress = ops.minimum(step / self.total_steps, 1.0)
            lr = 0.5 * lr * (1.0 + ops.cos(math.pi * progress))
        if self.warmup_steps:
            lr = ops.where(step < self.warmup_steps, self.base_lr * (step + 1) / self.warmup_steps, lr)
        return lr

    def get_config(self):
        return {"kind": self.kind, "base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "milestones": list(self.milestones), "gamma": self.gamma}
