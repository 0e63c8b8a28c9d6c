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
