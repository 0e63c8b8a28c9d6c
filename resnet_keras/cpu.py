"""The CPU this process runs on: its model and the vector-unit flags that decide its speed.

Read from /proc/cpuinfo, without Keras: the sweep's checks use them before
any backend starts (`sweep.preflight.fingerprint`), and "auto" precision
depends on them (`catalog.resolve_precision`).
"""


# The vector-unit flags that decide CPU figures (3x between hosts with and without AVX-512), as `lscpu` lists them.
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), or "unknown"."""
    return _cpuinfo("model name") or "unknown"


def cpu_flags():
    """Which of `CPU_FLAGS` the CPU has."""
    flags = (_cpuinfo("flags") or "").split()
    return [flag for flag in CPU_FLAGS if flag in flags]


def vector_unit():
    """The CPU's widest vector unit, in words: "AVX-512", "AVX2" or "no AVX2"."""
    flags = cpu_flags()
    return "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"


def _cpuinfo(key):
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith(key)), None)
    except OSError:
        return None
