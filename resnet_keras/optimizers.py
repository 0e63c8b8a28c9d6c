"""Optimizers by name and the learning-rate schedules of the recipes (constant, step, cosine, warm-up)."""

import math

import keras
from keras import ops

from resnet_keras.catalog import OPTIMIZERS, SCHEDULES, WARMUPS
from resnet_keras.errors import check_choice, check_int, check_number


def make_optimizer(name, learning_rate=1e-3, momentum=0.9, nesterov=False):
    """Optimizer by name: "sgd" (with momentum, optionally Nesterov), "adam" or "rmsprop".

    SGD keeps its momentum as PyTorch does (`SGD`). Weight decay is the
    builders' `weight_decay`: coupled L2 on every parameter by default, as in
    the paper's code.

    Args:
        name: "sgd", "adam" or "rmsprop".
        learning_rate: a float or a `LearningRateSchedule` (`LRSchedule`).
        momentum, nesterov: SGD's; ignored by the others.
    Returns:
        a Keras optimizer.
    Raises:
        ConfigError: another name or a bad rate.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    if not isinstance(learning_rate, keras.optimizers.schedules.LearningRateSchedule):
        check_number("learning_rate", learning_rate, inclusive=False)
    if name == "sgd":
        check_number("momentum", momentum, maximum=1.0)
        return SGD(learning_rate, momentum=momentum, nesterov=bool(nesterov))
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, epsilon=1e-8)  # the Adam paper's and PyTorch's epsilon
    return keras.optimizers.RMSprop(learning_rate)


@keras.saving.register_keras_serializable(package="resnet_keras")
class SGD(keras.optimizers.SGD):
    """SGD with momentum as PyTorch and the paper's Torch code take it: v <- m v + g, w <- w - lr v.

    Keras' own SGD keeps the velocity in units of the step (v <- m v - lr g, w <- w + v). The two agree
    while the learning rate is constant, but when the step schedule divides it by 10, Keras' velocity
    goes on carrying steps of the old rate for about 1/(1 - m) iterations, and PyTorch's step shrinks
    at once (`test_sgd_follows_pytorch_across_learning_rate_drops`). Nesterov: w <- w - lr (g + m v).
    """

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.momentum == 0:
            self.assign_sub(variable, ops.multiply(gradient, learning_rate))
            return
        momentum = ops.cast(self.momentum, variable.dtype)
        v = self.momentums[self._get_variable_index(variable)]
        self.assign(v, ops.add(ops.multiply(v, momentum), gradient))
        step = ops.add(gradient, ops.multiply(v, momentum)) if self.nesterov else v
        self.assign_sub(variable, ops.multiply(step, learning_rate))


@keras.saving.register_keras_serializable(package="resnet_keras")
class LRSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Constant, step (x `gamma` at each milestone) or cosine decay, after `warmup_steps` of warm-up.

    Steps are optimizer iterations; `milestones` are fractions of `total_steps`
    (the paper's CIFAR schedule divides by 10 at 32k and 48k of 64k: 0.5, 0.75).
    Warm-up is "linear" (up to `base_lr`) or "constant" (`base_lr / 10`: the
    paper trains ResNet-110 at 0.01 for about 400 iterations, then at 0.1).
    """

    def __init__(self, kind, base_lr, total_steps, warmup_steps=0, milestones=(0.5, 0.75), gamma=0.1,
                 warmup="linear"):
        self.kind = check_choice("schedule", kind, SCHEDULES)
        self.base_lr = check_number("learning_rate", base_lr, inclusive=False)
        self.total_steps = check_int("total_steps", total_steps)
        self.warmup_steps = check_int("warmup_steps", warmup_steps, minimum=0)
        self.milestones = [check_number("milestone", m, maximum=1.0) for m in milestones]
        self.gamma = check_number("gamma", gamma, maximum=1.0, inclusive=False)
        self.warmup = check_choice("warmup", warmup, WARMUPS)

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
            ramp = self.base_lr * (step + 1) / self.warmup_steps if self.warmup == "linear" else self.base_lr / 10
            lr = ops.where(step < self.warmup_steps, ramp, lr)
        return lr

    def get_config(self):
        return {"kind": self.kind, "base_lr": self.base_lr, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "milestones": list(self.milestones), "gamma": self.gamma,
                "warmup": self.warmup}
