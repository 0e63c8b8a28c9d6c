"""What can be chosen: every list of allowed values, and the depth rules, in one place.

The builders, the data loader, training and the params files' validation
(`params.SCHEMA`) all read these, so a new choice is added here once. This
module imports no Keras: the sweep validates a whole profile with it before
any backend starts. (The comparisons a params file may ask for are
`sweep.params.COMPARISONS`, drawn by `summary.comparisons`.)
"""

from resnet_keras.errors import ConfigError, check_choice

DATASETS = ("cifar10", "cifar100")
LABEL_MODES = ("fine", "coarse")  # CIFAR-100's 100 classes or 20 superclasses

FAMILIES = ("resnet", "plain", "preact", "imagenet")  # `models.build_model`; all but "imagenet" have depth 6n+2
VERSIONS = ("v1", "v2")  # post- or pre-activation blocks
SHORTCUTS = ("projection", "zero_pad")  # 1x1 convolution, or the paper's option A
DECAY_SCOPES = ("all", "kernels")  # what weight decay applies to
# ImageNet-style networks by depth: block kind and blocks per stage (torchvision's layouts).
IMAGENET_BLOCKS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3))}

OPTIMIZERS = ("sgd", "adam", "rmsprop")
SCHEDULES = ("constant", "step", "cosine")
WARMUPS = ("linear", "constant")  # ramp up to the learning rate, or hold a tenth of it (the paper's ResNet-110)
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")  # training dtype policies
# "auto" on a CPU with these instructions, on these backends, is mixed bfloat16: there it trains ResNet-20 faster
# than float32 and reaches the same accuracy (`make bench`, `make precision-check`; docs/performance.md). Without
# them bfloat16 is emulated, about 4x slower than float32; JAX's CPU path is not measured.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
BF16_CPU_BACKENDS = ("tensorflow", "torch")
INFERENCE_PRECISIONS = ("float32", "bfloat16")  # `inference.inference_model`
PIPELINES = ("host", "device", "resident")  # where batches are made and augmented (`data.CifarBatches`)
PIPELINE_CHOICES = ("auto",) + PIPELINES  # `training.resolve_pipeline` turns "auto" into one of `PIPELINES`


def cifar_blocks(depth, family=None):
    """Residual blocks per stage of a CIFAR network with `depth` weight layers: depth = 6n + 2.

    Each of the three stages holds n blocks of two 3x3 convolutions; the stem
    convolution and the classifier make the other two layers. `family` only
    names the network in the error message.
    """
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        network = f"family {family!r}" if family else "a CIFAR network"
        raise ConfigError(f"depth={depth!r} is not accepted for {network}; use 6n+2 with n >= 1 "
                          f"(8, 14, 20, 32, 44, 56, 110, ...)")
    return (depth - 2) // 6


def check_depth(family, depth):
    """Return `depth` if a network of `family` can have it, else raise ConfigError.

    CIFAR families ("resnet", "plain", "preact") have 6n+2 weight layers
    (20, 32, 44, 56, 110, ...); "imagenet" is ResNet-18, -34 or -50.
    """
    check_choice("family", family, FAMILIES)
    if family == "imagenet":
        return check_choice("depth", depth, tuple(IMAGENET_BLOCKS))
    cifar_blocks(depth, family)
    return depth


def check_devices(devices, what="devices"):
    """Return `devices` if it is a device count (an integer >= 1) or "all", else raise ConfigError."""
    if devices != "all" and (isinstance(devices, bool) or not isinstance(devices, int) or devices < 1):
        raise ConfigError(f"{what}={devices!r} is not accepted; use an integer >= 1 or 'all'")
    return devices


def resolve_precision(precision, gpu, backend=None, cpu_flags=()):
    """The dtype policy `precision` stands for on a machine with (`gpu`) or without a GPU.

    "auto" is "mixed_float16" on a GPU; on a CPU, "mixed_bfloat16" where the
    CPU has bfloat16 instructions (`cpu_flags` holds one of `BF16_CPU_FLAGS`)
    and the Keras `backend` is one of `BF16_CPU_BACKENDS`, else "float32".
    One rule for the training code and for the sweep's run hash (which must
    not import Keras).
    """
    check_choice("precision", precision, PRECISIONS)
    if precision != "auto":
        return precision
    if gpu:
        return "mixed_float16"
    bf16 = backend in BF16_CPU_BACKENDS and set(BF16_CPU_FLAGS) & set(cpu_flags or ())
    return "mixed_bfloat16" if bf16 else "float32"
