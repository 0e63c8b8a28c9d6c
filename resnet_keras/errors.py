"""One kind of error for bad input, with one-line messages for people."""


class ConfigError(ValueError):
    """A bad value from the user: the message names it and what is accepted."""


def check_choice(what, value, choices):
    """Return `value` if it is one of `choices`, else raise ConfigError."""
    if value not in choices:
        accepted = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{what}={value!r} is not accepted; use one of {accepted}")
    return value


def check_int(what, value, minimum=1):
    """Return `value` if it is an int (not a bool) >= minimum, else raise ConfigError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{what}={value!r} is not accepted; use an integer >= {minimum}")
    return value


def check_number(what, value, minimum=0.0, maximum=None, inclusive=True):
    """Return `value` as float if it is a real number in range, else raise ConfigError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if ok:
        ok = value >= minimum if inclusive else value > minimum
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = f"{'>=' if inclusive else '>'} {minimum}" + (f" and <= {maximum}" if maximum is not None else "")
        raise ConfigError(f"{what}={value!r} is not accepted; use a number {bound}")
    return float(value)


FAMILIES = ("resnet", "plain", "preact", "imagenet")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")  # `training.set_precision`
PIPELINES = ("host", "device")  # where augmentation runs (`data.CifarBatches`); `train` adds "auto"
IMAGENET_DEPTHS = (18, 34, 50)


def resolve_precision(precision, gpu):
    """The dtype policy `precision` stands for on a machine with (`gpu`) or without a GPU.

    Here, beside the list of precisions, because both the training code and
    the sweep's run hash (which must not import Keras) need this one rule.
    """
    if precision == "auto":
        return "mixed_float16" if gpu else "float32"
    return precision


def check_depth(family, depth):
    """Return `depth` if a network of `family` can have it, else raise ConfigError.

    CIFAR families ("resnet", "plain", "preact") have 6n+2 weight layers
    (20, 32, 44, 56, 110, ...); "imagenet" is ResNet-18, -34 or -50.
    """
    check_choice("family", family, FAMILIES)
    if family == "imagenet":
        return check_choice("depth", depth, IMAGENET_DEPTHS)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ConfigError(f"depth={depth!r} is not accepted for family {family!r}; use 6n+2 with n >= 1 "
                          f"(8, 14, 20, 32, 44, 56, 110, ...)")
    return depth
