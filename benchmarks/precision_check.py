"""Does mixed bfloat16 train as float32 does? Q1's quick profile in both precisions, a few seeds each.

    make precision-check                         # the default backend, seeds 0 1 2
    KERAS_BACKEND=torch make precision-check

`precision: auto` may pick mixed bfloat16 on a CPU only if it trains the same
(issue: CPU speed against PyTorch at its best): this runs the Q1 notebook
(ResNet-20, Adam) on the `quick` profile of `params/q1_scratch.yaml` (a
class-balanced subset of the real CIFAR-10, a few epochs) through the script
runner (`python -m resnet_keras.sweep.script`), so it trains exactly the
notebook's run, once per precision and seed, each in a fresh process,
alternating the precisions, and compares
the test accuracies. It passes (exit 0) when the mean of mixed bfloat16's is
within twice the seed-to-seed standard deviation of float32's from float32's
mean; otherwise it exits 1. Each run's figures and the verdict go to
outputs/bench/precision.json. It needs the real data (`make data`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # the package of this checkout
PRECISIONS = ("float32", "mixed_bfloat16")


def q1_quick():
    """The Q1 run of the quick profile, as the sweep plans it (`question/run` key, parameters)."""
    from resnet_keras.sweep.params import plan

    run = next(r for r in plan(os.path.join(ROOT, "params"), "quick", ROOT) if r.question == "q1")
    return run.key, run.parameters


def _train(key, precision, seed, data_dir):
    """Run `key` of the quick profile in a fresh process (the script runner): its figures, or {"error": last line}."""
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "resnet_keras.sweep.script", key, "--profile", "quick", "--out-dir", out,
                   "-p", f"precision={precision}", "-p", f"seed={seed}"]
        if data_dir:
            command += ["-p", f"data_dir={data_dir}"]
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                              env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg"})
        if proc.returncode:
            return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
        with open(os.path.join(out, "results.json")) as f:
            results = json.load(f)
    return {"test_accuracy": results["test_accuracy"], "best_val_accuracy": results["best_val_accuracy"],
            "epoch_s": results["epoch_time_s"], "precision_used": results["precision"]}


def verdict(runs):
    """{precision: mean and std of test accuracy}, and whether mixed bfloat16's mean is within 2 std of float32's."""
    stats = {}
    for precision in PRECISIONS:
        acc = [r["test_accuracy"] for r in runs if r["precision"] == precision and r.get("test_accuracy") is not None]
        if len(acc) < 2:
            return stats, None
        stats[precision] = {"mean": statistics.mean(acc), "std": statistics.stdev(acc), "runs": len(acc)}
    f32, bf16 = stats["float32"], stats["mixed_bfloat16"]
    return stats, abs(bf16["mean"] - f32["mean"]) <= 2 * f32["std"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds per precision (default 0 1 2)")
    ap.add_argument("--data-dir", default="", help="CIFAR in the official python layout (default: as the notebooks "
                    "find it: $RESNET_KERAS_DATA, else Keras' cache)")
    args = ap.parse_args()
    if len(args.seeds) < 2:
        print(f"precision-check: seeds={args.seeds} gives no spread; use two or more", file=sys.stderr)
        return 2
    import keras

    from resnet_keras.data import load_dataset
    from resnet_keras.devices import cpu_flags, cpu_model
    from resnet_keras.errors import ConfigError

    key, parameters = q1_quick()
    try:  # the data first: missing, it is one line, before any training
        load_dataset(parameters["dataset"], args.data_dir or None, per_class=1, test_per_class=1)
    except ConfigError as e:
        print(f"precision-check: {e}", file=sys.stderr)
        return 2

    backend = keras.backend.backend()
    print(f"precision-check: {backend}, {cpu_model()}, flags {' '.join(cpu_flags()) or 'none'}; "
          f"{key} on the quick profile: {parameters}", flush=True)
    runs = []
    for i, seed in enumerate(args.seeds):
        for precision in (PRECISIONS if i % 2 == 0 else PRECISIONS[::-1]):  # alternate which goes first
            start = time.time()
            run = {"precision": precision, "seed": seed, **_train(key, precision, seed, args.data_dir),
                   "wall_s": round(time.time() - start, 1)}
            if "error" in run:
                print(f"  {precision} seed {seed}: failed: {run['error']}", flush=True)
            else:
                print(f"  {precision} seed {seed}: test accuracy {run['test_accuracy']:.4f}, best validation "
                      f"{run['best_val_accuracy']:.4f}, {run['epoch_s']:.1f} s/epoch", flush=True)
            runs.append(run)
    stats, same = verdict(runs)
    for precision, s in stats.items():
        print(f"{precision}: test accuracy {100 * s['mean']:.2f} +- {100 * s['std']:.2f}% over {s['runs']} seeds")
    from resnet_keras.files import write_json

    write_json(os.path.join(ROOT, "outputs", "bench", "precision.json"),
               {"backend": backend, "cpu_model": cpu_model(), "cpu_flags": cpu_flags(), "run": key,
                "parameters": parameters, "runs": runs, "stats": stats, "trains_the_same": same})
    if same is None:
        print("precision-check: too few runs finished to compare")
        return 1
    print("precision-check: mixed bfloat16 trains " + ("as float32 does (its mean within 2 std of float32's)" if same
                                                       else "differently from float32 (its mean over 2 std away)"))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
