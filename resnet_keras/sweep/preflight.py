"""What a sweep settles before its first run: the machine, the inputs, the time it will take.

The sweep process never imports Keras: a GPU context there would hold memory
that its runs need. `probe` asks one child process instead, once per sweep:
which backend Keras uses and whether it sees a GPU (so that a run's hash can
record the precision "auto" resolves to), whether every data set and weights
file the runs need is on this machine or can be downloaded (downloading it
then, once, rather than in several runs at a time), and, when asked, how fast
a ResNet-20 trains here. A run whose inputs are missing is blocked
(`blocked_runs`), with the one-line fix; the others go ahead. `estimate`
turns that speed into the time a list of runs will take.

    python -m resnet_keras.sweep.preflight '{"data": [["cifar10", null, "fine"]], "measure": true}'
"""

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time

from resnet_keras.cpu import cpu_flags, cpu_model
from resnet_keras.errors import ConfigError
from resnet_keras.files import write_json

# Runs that share a GPU: JAX must not take 75% of its memory per process, nor
# TensorFlow all of it. Set in every sweep worker unless the user set them.
GPU_SHARING = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
# JAX's persistent compilation cache, in the outputs folder: the runs of a sweep share architectures and batch
# shapes, so a run compiles its steps once and every later run of the same network (and a resumed or repeated
# run) loads them. Measured on the 2-core CPU: seven JAX training tests took 70 s with an empty cache, 88 s without.
COMPILE_CACHE = ".jax-cache"

RESNET50_NOTOP = "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"  # keras.applications' file name
WEIGHTS_HOST = "storage.googleapis.com"
MEASURE_BATCH = 128
MIN_CALIBRATION_S = 120  # shorter finished runs are mostly start-up: they would not tell the training speed


def worker_environment(outputs):
    """The environment variables a sweep worker sets before its runs, unless the user set them."""
    return {**GPU_SHARING, "JAX_COMPILATION_CACHE_DIR": os.path.join(os.path.abspath(outputs), COMPILE_CACHE)}


def data_key(s, root):
    data_dir = s.get("data_dir")
    if data_dir is not None:
        data_dir = os.path.abspath(os.path.join(root, data_dir))  # the child runs in `root`, too
    return s.get("dataset", "cifar10"), data_dir, s.get("label_mode", "fine")


def probe(runs, root=".", measure=False, timeout=900):
    """Ask a child process about this machine and the inputs of `runs`.

    Returns {"backend", "gpu", "cpu_flags", "classes": {data key: per-class train counts},
    "missing": {data key, or "imagenet": why it is missing and the fix}} and,
    with `measure`, "img_per_s" (ResNet-20 training at batch 128) and
    "startup_s" (import, build and first compiled step). Raises ConfigError
    when the check itself fails, or when no run has all its inputs.
    """
    all_settings = [r.settings for r in runs]
    request = {"data": sorted({data_key(s, root) for s in all_settings}, key=str),
               "imagenet": any(s.get("weights") == "imagenet" for s in all_settings), "measure": measure}
    env = {**GPU_SHARING, **os.environ}
    try:
        proc = subprocess.run([sys.executable, "-m", "resnet_keras.sweep.preflight", json.dumps(request)], env=env,
                              cwd=root, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"the check of this machine took over {timeout} s; see whether `{sys.executable} -c "
                          f"'import keras'` hangs") from None
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"the check of this machine failed ({last}); try `make venv` again")
    answer = json.loads(lines[-1])
    answer["classes"] = {tuple(json.loads(k)): v for k, v in answer["classes"].items()}
    answer["missing"] = {k if k == "imagenet" else tuple(json.loads(k)): v for k, v in answer["missing"].items()}
    blocked = blocked_runs(runs, answer, root)
    if runs and len(blocked) == len(runs):
        raise ConfigError(blocked[runs[0].key])
    return answer


def blocked_runs(runs, machine, root="."):
    """{run key: why it cannot start here, and the fix} for each of `runs` whose data or weights are missing
    (`probe`'s "missing"; none when `machine` is a remembered answer, which holds no inputs)."""
    missing = machine.get("missing", {})
    blocked = {}
    for run in runs:
        why = missing.get(data_key(run.settings, root))
        weights = run.settings.get("weights")
        if not why and weights == "imagenet":
            why = missing.get("imagenet")
        elif not why and weights not in (None, "none") and not os.path.isfile(os.path.join(root, weights)):
            why = (f"weights={weights!r} is not on this machine; put that file there (a committed run's model is "
                   f"in results/: check out the repository whole) or set another weights in its params file")
        if why:
            blocked[run.key] = why
    return blocked


# Packages whose versions decide what the probe would answer (which backend, whether it sees a GPU).
BACKEND_PACKAGES = ("keras", "tensorflow", "jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda12-pjrt", "torch")
MACHINE_FILE = ".machine.json"  # in the outputs folder
SPEED = ("img_per_s", "startup_s")  # what `probe(measure=True)` adds
REMEMBERED = ("backend", "gpu", "cpu_flags", *SPEED)  # what `remember` keeps of the answer


def _keras_home():
    """Keras' folder for its config and downloads: $KERAS_HOME, else ~/.keras."""
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def fingerprint():
    """What decides the probe's answer (backend, GPU, CPU flags, speed), read in milliseconds without importing
    Keras."""
    home = _keras_home()
    try:
        with open(os.path.join(home, "keras.json")) as f:
            config = f.read()
    except OSError:
        config = None
    versions = {}
    for name in BACKEND_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {"python": sys.executable, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND"), "keras.json": config,
            "packages": versions, "gpus": nvidia_gpus(), "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
            "cpu": [cpu_model(), cpu_flags()]}


def remembered(outputs):
    """The backend, GPU and speed answer of the last probe into `outputs`, if the fingerprint still matches.

    With it, a sweep that has nothing to run decides so without starting Keras,
    and one that has runs to do need not measure the speed again.
    """
    try:
        with open(os.path.join(outputs, MACHINE_FILE)) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("fingerprint") != fingerprint():
        return None
    return {k: saved[k] for k in REMEMBERED if k in saved}


def remember(outputs, machine):
    """Record `probe`'s backend, GPU and speed answer with the fingerprint it holds for (after Keras wrote its
    config)."""
    write_json(os.path.join(outputs, MACHINE_FILE),
               {**{k: machine[k] for k in REMEMBERED if k in machine}, "fingerprint": fingerprint()})


def nvidia_gpus():
    """Memory in MiB of each NVIDIA GPU that nvidia-smi lists (honouring CUDA_VISIBLE_DEVICES); [] if none."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index,memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = {}
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
            gpus[parts[0]] = int(parts[1])
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and all(v.strip().isdigit() for v in visible.split(",") if v.strip()):
        return [gpus[v.strip()] for v in visible.split(",") if v.strip() in gpus]
    return list(gpus.values())


def auto_jobs(gpu_memory_mib, backend_sees_gpu, cpus=None):
    """Runs at a time for `--jobs auto`.

    Without a GPU the backend spreads one run over every core, so 1. On GPUs:
    up to 4 per GPU, one per 8 GiB of its memory (a CIFAR ResNet-110 at batch
    128 in mixed precision needs under 4 GiB), and at most one per CPU core,
    which feeds its run.
    """
    cpus = cpus or os.cpu_count() or 1
    if not backend_sees_gpu or not gpu_memory_mib:
        return 1
    per_gpu = [max(1, min(4, mib // 8192)) for mib in gpu_memory_mib]
    return max(1, min(sum(per_gpu), cpus))


def _relative_cost(s):
    """Training cost of one image relative to a ResNet-20's (floating-point operations, roughly)."""
    if "weights" in s:  # the transfer notebook: a frozen ResNet-50 at `resize` (forward only), a small head
        return 0.7 * ((s.get("resize") or 32) / 32) ** 2
    if s.get("family") == "imagenet":  # CIFAR stem, 32x32: 0.56, 1.16, 1.30 GFLOPs against 0.041
        return {18: 13.6, 34: 28.0, 50: 32.0}.get(s.get("depth"), 32.0)
    return s.get("depth", 20) / 20 * s.get("width", 1) ** 2


def work(s, class_counts):
    """A run's training work in ResNet-20 image-steps (epochs x train images x relative cost)."""
    per_class = s.get("per_class")
    images = sum(min(c, per_class) if per_class else c for c in class_counts)
    train = images * (1 - (s.get("validation_split") or 0.0))
    rel = _relative_cost(s)
    if s.get("cache_features"):  # the base runs once per image; the head's epochs cost next to nothing
        total = images * rel
    else:
        total = s.get("epochs", 1) * train * rel
    if s.get("fine_tune_epochs"):
        total += s["fine_tune_epochs"] * train * rel * 3 * s.get("fine_tune_fraction", 1.0)
    return total


def estimate(runs, machine, root=".", finished=(), resumed=None):
    """Seconds that `runs` will take one at a time on this machine.

    `finished`: (run, elapsed seconds, epochs an earlier attempt did) of
    runs completed here on the same backend and precision (the sweep passes
    those of `MIN_CALIBRATION_S` or more); when there are any, their times
    calibrate the speed, else the speed `machine` measured
    (`probe(measure=True)`). `resumed`: {run key: epochs already done} of
    half-done runs that resume; only their other epochs are counted.
    """
    def run_work(run, done=0):
        s = {**run.settings, "epochs": max(run.settings.get("epochs", 1) - done, 0)} if done else run.settings
        return work(s, machine["classes"][data_key(run.settings, root)])

    # Per run: the kernel's start, imports, data, compilation, evaluation and report (about twice the
    # probe's own start-up, which has all but the kernel, the data and the report).
    overhead = 2 * machine.get("startup_s", 10.0)
    if finished:
        spent = sum(max(elapsed - overhead, 1.0) for _, elapsed, _ in finished)
        speed = sum(run_work(run, before) for run, _, before in finished) / spent
    else:
        speed = machine["img_per_s"]
    return sum(overhead + run_work(r, (resumed or {}).get(r.key, 0)) / speed for r in runs)


def fmt_duration(seconds):
    seconds = int(seconds)
    if seconds >= 86400:
        return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _child(request):
    """The probe itself (in the child process): one JSON line on stdout."""
    start = time.perf_counter()
    import keras
    import numpy as np

    from resnet_keras import data, devices

    answer = {"backend": keras.backend.backend(), "gpu": devices.has_gpu(), "cpu_flags": devices.cpu_flags(),
              "classes": {}, "missing": {}}
    for name, data_dir, label_mode in request["data"]:
        key = json.dumps([name, data_dir, label_mode])
        try:
            loaded = data.load_dataset(name, data_dir, label_mode)  # downloads once, here, if it can
            answer["classes"][key] = np.bincount(loaded.y_train).tolist()
        except ConfigError as e:
            answer["missing"][key] = str(e)
    home = _keras_home()
    if request["imagenet"] and not os.path.isfile(os.path.join(home, "models", RESNET50_NOTOP)):
        if data.reachable(WEIGHTS_HOST):
            keras.applications.ResNet50(include_top=False, weights="imagenet", input_shape=(32, 32, 3))
        else:
            answer["missing"]["imagenet"] = (f"weights='imagenet' needs {RESNET50_NOTOP} in {home}/models/ and "
                                             f"{WEIGHTS_HOST} cannot be reached; copy the file there, or set "
                                             f"weights: none")
    if request["measure"]:
        answer.update(_measure(start))
    print(json.dumps(answer), flush=True)


def _measure(start, steps=4):
    """ResNet-20 training speed as the notebooks train it (precision and pipeline "auto")."""
    import numpy as np

    import resnet_keras as rk

    rk.set_precision("auto")
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(2 * MEASURE_BATCH, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, size=2 * MEASURE_BATCH).astype(np.int32)
    pipeline = rk.training.resolve_pipeline("auto", x)
    trainer = rk.training.compile_for_training(rk.build_resnet(20), "sgd", 0.1, pipeline=pipeline)
    batches = rk.CifarBatches(x, y, MEASURE_BATCH, augment=True, pipeline=pipeline)
    for i in range(2):  # compiles
        trainer.train_on_batch(*batches[i])
    startup = time.perf_counter() - start
    t = time.perf_counter()
    for i in range(steps):
        trainer.train_on_batch(*batches[i % 2])
    return {"img_per_s": steps * MEASURE_BATCH / (time.perf_counter() - t), "startup_s": startup}


if __name__ == "__main__":
    _child(json.loads(sys.argv[1]))
