"""Training and inference throughput on every installed Keras backend, against eager PyTorch.

    make bench                      # full: ResNet-20 and -56, 3 alternating repetitions
    make bench BENCH_ARGS=--tiny    # seconds: a smoke test of the benchmark itself
    make bench BENCH_ARGS="--only train --depths 20 --backends tensorflow torch"

Every measurement runs in a fresh subprocess (TensorFlow's and PyTorch's
thread pools slow each other down inside one process), the frameworks and
backends alternate, and the table reports medians over repetitions: the
machine is shared and its timings drift (see ../shared/notes). One row per
network and Keras backend (`tensorflow`, `jax`, `torch`: those installed), and
one for eager PyTorch (`torch eager`). Measured:

- train: images/s of steady-state training (after warm-up steps), batch 128,
  SGD momentum, through `model.fit` on what `rk.train` fits: `CifarBatches`
  with augmentation (on TensorFlow as its native `tf_dataset`);
- train_arrays: the same model and step fit on in-memory float32 arrays, no
  augmentation: the backend's ceiling, against which `input_overhead`
  (1 - train / train_arrays, the median of the per-repetition ratios) is
  reported;
- infer: images/s of `rk.predict` (a `predict_on_batch` loop over batches of
  500) on the deployed network, batch norm folded into the convolutions by
  `rk.inference_model`, float32;
- train_speK (TensorFlow and JAX, with `--steps-per-execution K`): `train`
  with K steps per call of the compiled step (`rk.train(steps_per_execution=K)`);
- train_resident (with `--resident`): `train` on the resident pipeline (the
  train set held on the device, each batch gathered in the step:
  `rk.train(pipeline="resident")`), and train_resident_speK with K steps per
  call as well; each also as a paired ratio to `train` (`..._vs_train`);
- train_jit (torch backend only): `train` with Keras' `jit_compile=True`,
  which wraps the step in `torch.compile` (`--no-compile` skips it);
- train_channels_last (torch backend, with `--more`): `train` with the
  network built channels last, as on the other backends, instead of the
  torch backend's native channels first (`rk.blocks.native_data_format`);
- eager PyTorch: `train` is an eager loop over pre-made tensors (no
  augmentation: its best case), `infer` a `torch.no_grad()` eval loop over the
  same batches; `torch.compile` adds `train_compiled` and `infer_compiled`;
  `train_channels_last` runs the network and its input in PyTorch's
  channels-last memory format (faster on CPUs), and on CPUs with AVX512-BF16 or
  AMX `train_channels_last_bf16` adds bfloat16 autocast: PyTorch at its best;
- on those CPUs each backend's `train_bf16` (mixed bfloat16) too, and
  `train_vs_eager_best` / `train_bf16_vs_eager_best`: ours against eager
  PyTorch at its best in the same precision (paired ratios);
- with `--more` (the default backend only): `train_device` (the device
  pipeline: crop and flip inside the compiled step), `train_bf16` (mixed
  bfloat16), `infer_raw` (not folded), `infer_keras_predict` (folded, through
  `model.predict`), `infer_bf16` (folded, bfloat16 convolutions);
- ratios: `train_ratio` and `infer_ratio` against eager PyTorch's `train` and
  `infer` in the same repetitions;
- Q3 head epoch (default backend): one epoch of the transfer head re-running
  the frozen ResNet-50 on every image against the head on cached features.

The host's CPU model and its AVX2 / AVX-512 / AMX flags head the output and go
into bench.json: figures differ by about 3x between hosts with and without
AVX-512. PyTorch comes with `make venv` (requirements-cpu.txt); without it the
comparison is skipped. Results go to outputs/bench/bench.csv and bench.json.
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

def _keras_train(n, batch, steps, warmup, inputs="pipeline", precision="float32", jit=False, data_format=None,
                 steps_per_execution=1):
    """Images/s of `fit`; inputs: "pipeline" (what `rk.train` fits), "device" and "resident" (those pipelines), "arrays"
    (in-memory float32 arrays), "cached" (one batch through a PyDataset); data_format: the activations' layout
    (default: the backend's native one, `rk.blocks.native_data_format`); steps_per_execution: steps per compiled
    call (a divisor of `steps` and `warmup`)."""
    import numpy as np

    import resnet_keras as rk

    rk.set_seed(0)
    rk.set_precision(precision)
    model = rk.build_resnet(6 * n + 2, data_format=data_format)  # the reference networks take n, blocks per stage
    pipeline = inputs if inputs in ("device", "resident") else "host"
    rng = np.random.default_rng(0)
    count = batch * (steps + warmup)
    x = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, count).astype(np.int32)
    trainer = rk.training.compile_for_training(model, "sgd", 0.1, pipeline=pipeline,  # what `rk.train` fits
                                               steps_per_execution=steps_per_execution, images=x)
    if jit:
        trainer.jit_compile = True
    times = []
    cb = _keras_callback(times)
    if inputs == "arrays":
        trainer.fit(x.astype(np.float32), y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[cb])
    elif inputs == "cached":
        trainer.fit(_Cached(x[:batch].astype(np.float32), y[:batch], steps + warmup), epochs=1, verbose=0,
                    callbacks=[cb])
    else:
        data = rk.CifarBatches(x, y, batch, shuffle=True, augment=True, pipeline=pipeline, drop_remainder=True)
        data, steps_per_epoch = rk.training.fit_inputs(data, 1)  # as `rk.train` fits it
        trainer.fit(data, epochs=1, steps_per_epoch=steps_per_epoch, verbose=0, callbacks=[cb])
    return batch * steps / (times[-1] - times[warmup // steps_per_execution - 1])  # a time per compiled call


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


def _torch_train(n, batch, steps, warmup, compile=False, channels_last=False, bf16=False):
    """Eager PyTorch's training speed; `channels_last`: the network and its input in `torch.channels_last` memory
    format; `bf16`: the forward pass under bfloat16 autocast (what a PyTorch user runs on CPUs with AVX512-BF16 or
    AMX)."""
    import contextlib

    import torch

    torch.manual_seed(0)
    net = _torch_net(n).train()
    x, y = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))
    if channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), 0.1, momentum=0.9)
    precision = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def step():
        opt.zero_grad()
        with precision:
            loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
    step = torch.compile(step) if compile else step
    for i in range(steps + warmup):
        if i == warmup:
            t = time.perf_counter()
        step()
    return batch * steps / (time.perf_counter() - t)


def _torch_infer(n, count, compile=False):
    import torch

    net = _torch_net(n).eval()
    run = torch.compile(net) if compile else net
    x = torch.randn(count, 3, 32, 32)
    with torch.no_grad():
        run(x[:500])
        run(x[:500])
        t = time.perf_counter()
        for i in range(0, count, 500):
            run(x[i:i + 500])
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
           "torch_infer": _torch_infer, "q3_head_epoch": _q3_head_epoch}


def _worker(name, kwargs):
    print(json.dumps(WORKERS[name](**kwargs)), flush=True)


# ---------------------------------------------------------------- driver

def measure(name, backend=None, **kwargs):
    """Run one worker in a fresh interpreter (on Keras backend `backend`); return its JSON result, or None if it
    failed (the error is printed: one failing figure must not lose the others)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **({"KERAS_BACKEND": backend} if backend else {})}
    proc = subprocess.run([sys.executable, __file__, "--worker", name, json.dumps(kwargs)], capture_output=True,
                          text=True, env=env, timeout=1800)
    if proc.returncode:
        print(f"bench: {name} {kwargs} on {backend or 'the default backend'} failed: "
              f"{(proc.stderr.strip().splitlines() or ['?'])[-1]}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def installed(module):
    import importlib.util

    return importlib.util.find_spec(module) is not None


def plan(backends, default, train, infer, more, torch, compile, steps, warmup, count, spe=None, resident=False,
         bf16_cpu=False):
    """{(row, figure): (worker, backend, kwargs)} for one network (its `n` added later).

    `bf16_cpu`: the CPU has bfloat16 instructions (AVX512-BF16 or AMX): eager PyTorch is also measured in bfloat16
    autocast, and the default backend in mixed bfloat16, to compare like with like."""
    fig = {}
    run = dict(batch=128, steps=steps, warmup=warmup)
    for backend in backends:
        if train:
            fig[backend, "train"] = ("keras_train", backend, run)
            fig[backend, "train_arrays"] = ("keras_train", backend, {**run, "inputs": "arrays"})
            if spe and backend != "torch":  # whole calls: steps and warm-up rounded up to multiples of spe
                whole = dict(steps=-(-steps // spe) * spe, warmup=-(-warmup // spe) * spe, steps_per_execution=spe)
                fig[backend, f"train_spe{spe}"] = ("keras_train", backend, {**run, **whole})
            if resident:
                fig[backend, "train_resident"] = ("keras_train", backend, {**run, "inputs": "resident"})
                if spe and backend != "torch":
                    fig[backend, f"train_resident_spe{spe}"] = ("keras_train", backend,
                                                                {**run, **whole, "inputs": "resident"})
            if backend == "torch" and compile:
                fig[backend, "train_jit"] = ("keras_train", backend, {**run, "jit": True})
            if backend == "torch" and more:  # what the native channels-first layout buys
                fig[backend, "train_channels_last"] = ("keras_train", backend, {**run, "data_format": "channels_last"})
        if infer:
            fig[backend, "infer"] = ("keras_infer", backend, {"count": count, "precision": "float32"})
        if more and backend == default:
            if train:
                fig[backend, "train_cached"] = ("keras_train", backend, {**run, "inputs": "cached"})
                fig[backend, "train_device"] = ("keras_train", backend, {**run, "inputs": "device"})
                fig[backend, "train_bf16"] = ("keras_train", backend, {**run, "precision": "mixed_bfloat16"})
            if infer:
                fig[backend, "infer_raw"] = ("keras_infer", backend, {"count": count})
                fig[backend, "infer_keras_predict"] = ("keras_infer", backend,
                                                       {"count": count, "precision": "float32", "keras_predict": True})
                fig[backend, "infer_bf16"] = ("keras_infer", backend, {"count": count, "precision": "bfloat16"})
        if train and bf16_cpu:  # each backend against eager PyTorch's bfloat16 autocast
            fig[backend, "train_bf16"] = ("keras_train", backend, {**run, "precision": "mixed_bfloat16"})
    if torch:
        for key, on in (("train", train), ("infer", infer)):
            if on:
                kwargs = run if key == "train" else {"count": count}
                fig[EAGER, key] = (f"torch_{key}", None, kwargs)
                if compile:
                    fig[EAGER, f"{key}_compiled"] = (f"torch_{key}", None, {**kwargs, "compile": True})
        if train:  # PyTorch at its best on a CPU: channels last, and bfloat16 autocast where the CPU has it
            fig[EAGER, "train_channels_last"] = ("torch_train", None, {**run, "channels_last": True})
            if bf16_cpu:
                fig[EAGER, "train_channels_last_bf16"] = ("torch_train", None,
                                                          {**run, "channels_last": True, "bf16": True})
    return fig


EAGER = "torch eager"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="seconds: check the benchmark runs, figures meaningless")
    ap.add_argument("--reps", type=int, default=3, help="alternating repetitions per figure (default 3)")
    ap.add_argument("--only", choices=("train", "infer"), help="only the training or only the inference figures")
    ap.add_argument("--depths", type=int, nargs="+", default=[20, 56], help="CIFAR ResNets to measure (6n+2)")
    ap.add_argument("--backends", nargs="+", choices=BACKENDS, help="Keras backends to measure (default: installed)")
    ap.add_argument("--more", action="store_true", help="also the default backend's device pipeline, bfloat16 and "
                    "unfolded inference, the torch backend channels last, and the Q3 head epoch")
    ap.add_argument("--no-compile", dest="compile", action="store_false",
                    help="skip torch.compile (eager PyTorch's, and Keras' jit_compile on the torch backend)")
    ap.add_argument("--steps-per-execution", type=int, metavar="K",
                    help="also `train` with K steps per compiled call (TensorFlow, JAX): figure train_speK")
    ap.add_argument("--resident", action="store_true",
                    help="also `train` on the resident pipeline (the train set on the device): train_resident")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return _worker(args.worker[0], json.loads(args.worker[1]))
    sys.path.insert(0, os.path.dirname(HERE))
    from resnet_keras.catalog import cifar_blocks

    machine = _machine()
    print(f"bench: {machine['cpu_model']}, {machine['cores']} cores, flags {' '.join(machine['cpu_flags']) or 'none'}")
    torch = installed("torch")
    if not torch:
        print("bench: PyTorch is not installed; eager PyTorch and the torch backend are skipped "
              "(`make venv` installs it from requirements-cpu.txt)")
    backends = [b for b in (args.backends or BACKENDS) if installed(b)]
    default = os.environ.get("KERAS_BACKEND", "tensorflow")
    depths = (1,) if args.tiny else [cifar_blocks(depth) for depth in args.depths]  # the reference nets take n
    steps, warmup, count = (3, 2, 1000) if args.tiny else (30, 5, 10000)
    reps = 1 if args.tiny else args.reps
    train, infer = args.only in (None, "train"), args.only in (None, "infer")
    rows = []
    for n in depths:
        figures = plan(backends, default, train, infer, args.more, torch, args.compile and not args.tiny, steps,
                       warmup, count, args.steps_per_execution, args.resident,
                       bf16_cpu=bool({"avx512_bf16", "amx_bf16"} & set(machine["cpu_flags"])))
        res = {key: [] for key in figures}
        for rep in range(reps):
            keys = list(figures)
            if rep % 2:  # alternate: what ran first in one repetition runs last in the next
                keys.reverse()
            for key in keys:
                worker, backend, kwargs = figures[key]
                res[key].append(measure(worker, backend, n=n, **kwargs))
            print(f"  resnet{6 * n + 2} rep {rep + 1}: " + ", ".join(
                f"{row} {fig} {v[-1]:.0f}" for (row, fig), v in res.items() if v[-1] is not None), flush=True)
        rows += _rows(f"resnet{6 * n + 2}", reps, res)
    summary = {"machine": machine, "rows": rows}
    if args.more and args.only is None:
        q3 = {"rerun_base": [], "cached": []}
        for _ in range(reps):
            for mode in ("rerun_base", "cached"):
                q3[mode].append(measure("q3_head_epoch", count=256 if args.tiny else 2000, cached=mode == "cached"))
        rerun = statistics.median(r["epoch_s"] for r in q3["rerun_base"])
        cached = statistics.median(r["epoch_s"] for r in q3["cached"])
        summary["q3_head"] = {"images": 256 if args.tiny else 2000, "epoch_s_rerun_base": rerun,
                              "epoch_s_cached": cached, "speedup": rerun / cached,
                              "one_time_extract_s": statistics.median(r["extract_s"] for r in q3["cached"])}
    _write(summary)


BACKENDS = ("tensorflow", "jax", "torch")


def _rows(model, reps, res):
    """One row per backend (and eager PyTorch): medians, the input overhead, ratios to eager PyTorch."""
    def med(key):
        values = [v for v in res.get(key, []) if v is not None]
        return statistics.median(values) if values else None

    def paired(a, b):  # the median of per-repetition ratios: adjacent runs, so drift cancels
        pairs = [x / y for x, y in zip(res.get(a, []), res.get(b, [])) if x is not None and y is not None]
        return statistics.median(pairs) if pairs else None

    rows = []
    for name in dict.fromkeys(row for row, _ in res):
        row = {"model": model, "backend": name, "reps": reps}
        for (r, fig) in res:
            if r == name:
                row[f"{fig}_img_s"] = med((r, fig))
        if (name, "train_arrays") in res:
            ratio = paired((name, "train"), (name, "train_arrays"))
            row["input_overhead"] = None if ratio is None else 1 - ratio
        for (r, fig) in res:
            if r == name and fig.startswith(("train_spe", "train_resident")):  # against `train`, paired
                row[f"{fig}_vs_train"] = paired((name, fig), (name, "train"))
        for fig in ("train", "infer"):
            if name != EAGER and (EAGER, fig) in res:
                row[f"{fig}_ratio"] = paired((name, fig), (EAGER, fig))
        # Against PyTorch at its best, in the same precision: float32 channels last; bfloat16 autocast, channels last.
        for ours, theirs in (("train", "train_channels_last"), ("train_bf16", "train_channels_last_bf16")):
            if name != EAGER and (name, ours) in res and (EAGER, theirs) in res:
                row[f"{ours}_vs_eager_best"] = paired((name, ours), (EAGER, theirs))
        rows.append(row)
    return rows


def _machine():
    import platform

    import keras

    from resnet_keras.devices import cpu_flags, cpu_model
    info = {"cpu_model": cpu_model(), "cpu_flags": cpu_flags(), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "keras": keras.__version__, "backend": keras.backend.backend()}
    for module in ("tensorflow", "jax", "torch"):
        if installed(module):
            from importlib.metadata import version

            info[module] = version(module)
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
    if "input_overhead" in shown:
        shown["input_overhead"] = shown["input_overhead"].map(lambda v: "" if v is None or v != v else
                                                              f"{100 * v:.1f}%")
    print(shown.to_string(index=False, na_rep="", float_format=lambda v: f"{v:.2f}"))
    q = summary.get("q3_head")
    if q:
        print(f"Q3 head, {q['images']} images: {q['epoch_s_rerun_base']:.2f} s/epoch re-running the base, "
              f"{q['epoch_s_cached']:.3f} s/epoch on cached features ({q['speedup']:.0f}x; one-time extraction "
              f"{q['one_time_extract_s']:.2f} s)")
    print(f"written to {out}/bench.csv and bench.json")


if __name__ == "__main__":
    main()
