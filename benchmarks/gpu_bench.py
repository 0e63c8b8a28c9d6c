"""Training throughput on a GPU: ours (Keras, each pipeline and precision) against PyTorch.

    python benchmarks/gpu_bench.py [--steps 200] [--nets 3 9] [--compile] [--steps-per-execution K]

One process, the contenders one after another on the same GPU, ResNet-(6n+2)
option A at batch 128 on random uint8 images. Ours trains through `model.fit`
with augmentation (random crop and flip) on the device pipeline (in the
compiled step) and on the host pipeline (NumPy), and without augmentation
(the input-pipeline ceiling), and on the resident pipeline (the train set
held on the device, each batch gathered in the step); the timed epoch is the
second one of `steps`
batches (the first compiles). PyTorch: eager float32, eager bfloat16
autocast + channels_last, and optionally `torch.compile`, on pre-made GPU
tensors without augmentation (its best case). `--steps-per-execution K` adds
ours, mixed float16 on the device and the resident pipelines, with K steps
per compiled call (`rk.train(steps_per_execution=K)`; K must divide `steps`).
Prints one line per figure.
On a machine without a GPU it says so and stops.
"""

import argparse
import time

import numpy as np


def ours(n, steps, precision, pipeline, augment, steps_per_execution=1):
    import keras

    import resnet_keras as rk

    rk.set_seed(0)
    rk.set_precision(precision)
    model = rk.build_resnet(6 * n + 2, shortcut="zero_pad", weight_decay=1e-4)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (128 * steps, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 128 * steps).astype(np.int32)
    batches = rk.CifarBatches(x, y, 128, shuffle=True, augment=augment, pipeline=pipeline)
    trainer = rk.training.compile_for_training(model, "sgd", 0.1, pipeline=pipeline, images=x,
                                               steps_per_execution=rk.training.check_steps_per_execution(
                                                   steps_per_execution, len(batches)))
    times = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            times.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            times[-1] = time.perf_counter() - times[-1]

    trainer.fit(batches, epochs=2, verbose=0, callbacks=[Clock()])
    keras.config.set_dtype_policy("float32")
    return 128 * steps / times[-1]


def torch_eager(n, steps, mode):
    import sys

    import torch

    sys.path.insert(0, "benchmarks")
    from torch_resnet import torch_resnet

    torch.manual_seed(0)
    net = torch_resnet(n, shortcut="zero_pad").cuda()
    if mode == "bf16":
        net = net.to(memory_format=torch.channels_last)
    step_net = torch.compile(net) if mode == "compile" else net
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x = torch.randint(0, 256, (128 * 4, 3, 32, 32), device="cuda").float()
    y = torch.randint(0, 10, (128 * 4,), device="cuda")

    def step(i):
        xb, yb = x[(i % 4) * 128:(i % 4 + 1) * 128], y[(i % 4) * 128:(i % 4 + 1) * 128]
        if mode == "bf16":
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", torch.bfloat16, enabled=mode == "bf16"):
            loss = torch.nn.functional.cross_entropy(step_net(xb), yb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for i in range(30):
        step(i)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for i in range(steps):
        step(i)
    torch.cuda.synchronize()
    return 128 * steps / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--nets", type=int, nargs="+", default=[3, 9])
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (minutes of compiling)")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--steps-per-execution", type=int, metavar="K", help="also ours with K steps per compiled call")
    args = ap.parse_args()
    import keras

    import resnet_keras as rk

    if not rk.devices.has_gpu():
        print(f"gpu_bench: skipped, the Keras backend ({keras.backend.backend()}) sees no GPU here")
        return
    for n in args.nets:
        name = f"ResNet-{6 * n + 2}"
        spe = args.steps_per_execution
        spe = [("mixed_float16", "device", True, spe), ("mixed_float16", "resident", True, spe)] if spe else []
        runs = [("mixed_float16", "device", True, 1), ("mixed_float16", "host", True, 1),
                ("mixed_float16", "device", False, 1), ("float32", "device", True, 1),
                ("mixed_float16", "resident", True, 1), *spe]
        for precision, pipeline, augment, k in runs:
            r = ours(n, args.steps, precision, pipeline, augment, k)
            print(f"{name} ours ({keras.backend.backend()}) {precision} {pipeline} augment={augment}"
                  f"{f' steps_per_execution={k}' if k > 1 else ''}: {r:,.0f} img/s", flush=True)
        if not args.skip_torch:
            for mode in ("float32", "bf16") + (("compile",) if args.compile else ()):
                print(f"{name} pytorch {mode}: {torch_eager(n, args.steps, mode):,.0f} img/s", flush=True)


if __name__ == "__main__":
    main()
