"""Training and inference throughput of our Keras ResNets against eager PyTorch.

    make bench                      # full: ResNet-20 and -56, 3 alternating repetitions
    make bench BENCH_ARGS=--tiny    # seconds: a smoke test of the benchmark itself
    make bench BENCH_ARGS="--only train --depths 20"  # ResNet-20's training figures only

Every measurement runs in a fresh subprocess (TensorFlow's and PyTorch's
thread pools slow each other down inside one process), the frameworks
alternate, and the table reports medians over repetitions: the machine is
shared and its timings drift (see ../shared/notes). Measured:

- train: images/s of steady-state training (after warm-up steps), batch 128,
  SGD momentum, on random images; ours through `model.fit` on the real
  input pipeline (`CifarBatches` with augmentation), PyTorch an eager loop
  over pre-made tensors (no augmentation: its best case);
- infer: images/s of `rk.predict` (a `predict_on_batch` loop over batches of
  500) against a `torch.no_grad()` eval loop over the same batches, float32;
  ours as built (`infer_raw`) and as deployed, batch norm folded into the
  convolutions by `rk.inference_model` (`infer`, the ratio we quote), folded
  through `model.predict` instead (`infer_keras_predict`: its tf.data
  prefetching halves throughput in some processes), and folded with bfloat16
  convolutions (`infer_bf16`, against the same float32 PyTorch: this CPU has
  AVX512-BF16);
- train_device: ours with the device pipeline (`pipeline="device"`: uint8
  batches, crop and flip inside the compiled step), the check of whether
  `pipeline: auto` is right to keep the host pipeline on a CPU;
- train_bf16: ours in mixed bfloat16 (`rk.set_precision("mixed_bfloat16")`),
  the check of whether bfloat16 pays for training on this CPU;
- input overhead: ours with augmentation against ours on one cached batch,
  paired within each repetition (the median of the per-repetition ratios:
  the two runs are adjacent in time, so drift cancels), and the direct cost
  of producing one augmented batch (`input_ms_per_batch`, single-threaded),
  as a share of a training step (`input_share`): an upper bound on what the
  pipeline can take, since tf.data prefetches batches alongside training;
- Q3 head epoch: one epoch of the transfer head re-running the frozen
  ResNet-50 on every image against the head on cached features.

PyTorch is optional (benchmark only: `.venv/bin/pip install torch==2.13.0`);
without it the comparison columns are skipped. Results go to
outputs/bench/bench.csv and bench.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


# ---------------------------------------------------------------- workers (run in a subprocess each)

def _keras_train(n, batch, steps, warmup, augment, precision="float32", pipeline="host"):
    import numpy as np

    import resnet_keras as rk

    rk.set_seed(0)
    rk.set_precision(precision)
    model = rk.build_resnet(6 * n + 2)  # the reference networks take n, blocks per stage
    trainer = rk.training.compile_for_training(model, "sgd", 0.1, pipeline=pipeline)  # what `rk.train` fits
    rng = np.random.default_rng(0)
    count = batch * (steps + warmup)
    x = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, count).astype(np.int32)
    data = rk.CifarBatches(x, y, batch, shuffle=True, augment=augment, pipeline=pipeline) if augment != "cached" else \
        _Cached(x[:batch].astype(np.float32), y[:batch], steps + warmup)
    times = []
    cb = _keras_callback(times)
    trainer.fit(data, epochs=1, verbose=0, callbacks=[cb])
    return batch * steps / (times[-1] - times[warmup - 1])


def _keras_callback(times):
    import keras

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())
    return Clock()


def _Cached(x, y, steps):
    import keras

    class Cached(keras.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, i):
            return x, y
    return Cached()


def _input_pipeline(batch, steps):
    import numpy as np

    import resnet_keras as rk

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (50000, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 50000).astype(np.int32)
    data = rk.CifarBatches(x, y, batch, shuffle=True, augment=True)
    data[0]
    t = time.perf_counter()
    for i in range(steps):
        data[i]
    return 1000 * (time.perf_counter() - t) / steps


def _keras_infer(n, count, precision=None, keras_predict=False):
    import numpy as np

    import resnet_keras as rk

    model = rk.build_resnet(6 * n + 2)  # the reference networks take n, blocks per stage
    if precision:
        model = rk.inference_model(model, precision)
    x = np.random.default_rng(0).integers(0, 256, (count, 32, 32, 3)).astype(np.float32)
    if keras_predict:
        model.predict(x[:500], batch_size=500, verbose=0)
        t = time.perf_counter()
        model.predict(x, batch_size=500, verbose=0)
        return count / (time.perf_counter() - t)
    return rk.measure_inference(model, x, batch_size=500, latency_calls=0)["throughput_img_s"]


def _torch_net(n):
    sys.path.insert(0, HERE)
    from torch_resnet import torch_resnet

    return torch_resnet(n)


def _torch_train(n, batch, steps, warmup):
    import torch

    torch.manual_seed(0)
    net = _torch_net(n).train()
    opt = torch.optim.SGD(net.parameters(), 0.1, momentum=0.9)
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    for i in range(steps + warmup):
        if i == warmup:
            t = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t)


def _torch_infer(n, count):
    import torch

    net = _torch_net(n).eval()
    x = torch.randn(count, 3, 32, 32)
    with torch.no_grad():
        net(x[:500])
        t = time.perf_counter()
        for i in range(0, count, 500):
            net(x[i:i + 500])
    return count / (time.perf_counter() - t)


def _q3_head_epoch(count, cached):
    import numpy as np

    import resnet_keras as rk

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, count).astype(np.int32)
    empty = np.zeros((0, 32, 32, 3), np.uint8)
    data = rk.CifarData(x, y, empty, y[:0], empty, y[:0], [str(i) for i in range(10)])
    model = rk.build_transfer_model(10, weights=None)
    if cached:
        from resnet_keras.training import cache_features

        t = time.perf_counter()
        model_to_train, data = cache_features(model, data)
        extract = time.perf_counter() - t
    else:
        model_to_train, extract = model, 0.0
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        hist = rk.train(model_to_train, data, out, epochs=2, batch_size=128, augment=False, verbose=0,
                        save_best=False)
    return {"epoch_s": float(hist["time_s"].iloc[-1]), "extract_s": extract}


WORKERS = {"keras_train": _keras_train, "keras_infer": _keras_infer, "torch_train": _torch_train,
           "torch_infer": _torch_infer, "q3_head_epoch": _q3_head_epoch, "input_pipeline": _input_pipeline}


def _worker(name, kwargs):
    print(json.dumps(WORKERS[name](**kwargs)), flush=True)


# ---------------------------------------------------------------- driver

def measure(name, **kwargs):
    """Run one worker in a fresh interpreter; return its JSON result."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, __file__, "--worker", name, json.dumps(kwargs)], capture_output=True,
                          text=True, env=env, timeout=1800)
    if proc.returncode:
        raise RuntimeError(f"{name}{kwargs} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def has_torch():
    try:
        import importlib.util
        return importlib.util.find_spec("torch") is not None
    except ImportError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="seconds: check the benchmark runs, figures meaningless")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions per figure (default 3)")
    ap.add_argument("--only", choices=("train", "infer"), help="only the training or only the inference figures")
    ap.add_argument("--depths", type=int, nargs="+", default=[20, 56], help="CIFAR ResNets to measure (6n+2)")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return _worker(args.worker[0], json.loads(args.worker[1]))
    sys.path.insert(0, os.path.dirname(HERE))
    from resnet_keras.catalog import cifar_blocks

    torch = has_torch()
    if not torch:
        print("bench: PyTorch is not installed; the comparison is skipped "
              "(`.venv/bin/pip install torch==2.13.0` installs the CPU build)")
    depths = (1,) if args.tiny else [cifar_blocks(depth) for depth in args.depths]  # the reference nets take n
    steps, warmup, count = (3, 2, 1000) if args.tiny else (30, 5, 10000)
    reps = 1 if args.tiny else args.reps
    rows = []
    for n in depths:
        res = {k: [] for k in ("train", "train_cached", "train_device", "train_bf16", "infer_raw", "infer",
                               "infer_keras_predict", "infer_bf16", "torch_train", "torch_infer")}
        train, infer = args.only in (None, "train"), args.only in (None, "infer")
        for rep in range(reps):
            order = [("torch", "keras"), ("keras", "torch")][rep % 2] if torch else ("keras",)
            for fw in order:
                if fw == "keras" and train:
                    for key, kwargs in (("train", {}), ("train_cached", {"augment": "cached"}),
                                        ("train_device", {"pipeline": "device"}),
                                        ("train_bf16", {"precision": "mixed_bfloat16"})):
                        res[key].append(measure("keras_train", **{"n": n, "batch": 128, "steps": steps,
                                                                  "warmup": warmup, "augment": True, **kwargs}))
                if fw == "keras" and infer:
                    res["infer_raw"].append(measure("keras_infer", n=n, count=count))
                    res["infer"].append(measure("keras_infer", n=n, count=count, precision="float32"))
                    res["infer_keras_predict"].append(measure("keras_infer", n=n, count=count, precision="float32",
                                                              keras_predict=True))
                    res["infer_bf16"].append(measure("keras_infer", n=n, count=count, precision="bfloat16"))
                if fw == "torch" and train:
                    res["torch_train"].append(measure("torch_train", n=n, batch=128, steps=steps, warmup=warmup))
                if fw == "torch" and infer:
                    res["torch_infer"].append(measure("torch_infer", n=n, count=count))
            print(f"  resnet{6 * n + 2} rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.0f}" for k, v in res.items() if v),
                  flush=True)
        med = {k: statistics.median(v) for k, v in res.items() if v}
        row = {"model": f"resnet{6 * n + 2}", "reps": reps}
        if train:
            input_ms = measure("input_pipeline", batch=128, steps=steps)
            row.update(train_img_s=med["train"], train_cached_img_s=med["train_cached"],
                       train_device_img_s=med["train_device"], train_bf16_img_s=med["train_bf16"],
                       input_overhead=statistics.median(1 - a / c for a, c in zip(res["train"], res["train_cached"])),
                       input_ms_per_batch=input_ms, input_share=input_ms / (1000 * 128 / med["train"]))
        if infer:
            row.update(infer_raw_img_s=med["infer_raw"], infer_img_s=med["infer"],
                       infer_keras_predict_img_s=med["infer_keras_predict"], infer_bf16_img_s=med["infer_bf16"])
        if torch and train:
            row.update(torch_train_img_s=med["torch_train"], train_ratio=med["train"] / med["torch_train"],
                       train_device_ratio=med["train_device"] / med["torch_train"])
        if torch and infer:
            row.update(torch_infer_img_s=med["torch_infer"], infer_ratio=med["infer"] / med["torch_infer"],
                       infer_bf16_ratio=med["infer_bf16"] / med["torch_infer"])
        rows.append(row)
    summary = {"machine": _machine(), "rows": rows}
    if args.only is None:
        q3 = {"rerun_base": [], "cached": []}
        for rep in range(reps):
            for mode in ("rerun_base", "cached"):
                q3[mode].append(measure("q3_head_epoch", count=256 if args.tiny else 2000, cached=mode == "cached"))
        rerun = statistics.median(r["epoch_s"] for r in q3["rerun_base"])
        cached = statistics.median(r["epoch_s"] for r in q3["cached"])
        summary["q3_head"] = {"images": 256 if args.tiny else 2000, "epoch_s_rerun_base": rerun,
                              "epoch_s_cached": cached, "speedup": rerun / cached,
                              "one_time_extract_s": statistics.median(r["extract_s"] for r in q3["cached"])}
    _write(summary)


def _machine():
    import platform

    import keras
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "keras": keras.__version__, "backend": keras.backend.backend()}
    if has_torch():
        import torch
        info["torch"] = torch.__version__
    return info


def _write(summary):
    import pandas as pd

    sys.path.insert(0, os.path.dirname(HERE))
    from resnet_keras.files import write_json, write_text

    table = pd.DataFrame(summary["rows"])
    out = os.path.join(os.path.dirname(HERE), "outputs", "bench")
    write_text(os.path.join(out, "bench.csv"), table.to_csv(index=False))
    write_json(os.path.join(out, "bench.json"), summary)
    shown = table.copy()
    for col in ("input_overhead", "input_share"):
        if col in shown:
            shown[col] = shown[col].map(lambda v: f"{100 * v:.1f}%")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    q = summary.get("q3_head")
    if q:
        print(f"Q3 head, {q['images']} images: {q['epoch_s_rerun_base']:.2f} s/epoch re-running the base, "
              f"{q['epoch_s_cached']:.3f} s/epoch on cached features ({q['speedup']:.0f}x; one-time extraction "
              f"{q['one_time_extract_s']:.2f} s)")
    print(f"written to {out}/bench.csv and bench.json")


if __name__ == "__main__":
    main()
