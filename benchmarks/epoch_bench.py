"""Where an epoch of `rk.train` goes: the training steps, the validation pass, the commit, and the rest.

    python benchmarks/epoch_bench.py [--depth 20] [--images 50000] [--epochs 3] [--pipeline auto]
                                     [--steps-per-execution K]

Trains a CIFAR ResNet with `rk.train`, as the notebooks do (SGD, batch 128,
10,000 validation images, best model and per-epoch commit), on random uint8
images, and splits each epoch's wall time (the history's `time_s`, which ends where
the commit starts, plus the commit) into:

- steps: from the epoch's start until its last training step has finished
  (the benchmark waits for it there, where training itself only dispatches
  the validation pass behind it);
- validation: the validation pass;
- commit: `RunCheckpoint`'s end of epoch (best model when improved, weights
  and optimizer state, history, TensorBoard);
- other: the rest (Keras' own work between them).

It prints one line per epoch and the steps' images/s; the first epoch
includes compiling. Runs on any backend and device; on a GPU it shows what
part of an epoch is not training steps.
"""

import argparse
import tempfile
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--images", type=int, default=50000, help="training images (default 50,000, CIFAR's)")
    ap.add_argument("--val-images", type=int, default=10000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--pipeline", default="auto")
    ap.add_argument("--steps-per-execution", type=int, default=1, metavar="K")
    args = ap.parse_args()
    import keras

    import resnet_keras as rk

    rng = np.random.default_rng(0)
    n = args.images + args.val_images
    x, y = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n).astype(np.int32)
    cut = args.images
    data = rk.data.CifarData(x[:cut], y[:cut], x[cut:], y[cut:], x[:0], y[:0], [str(i) for i in range(10)])
    marks = []
    commit = rk.checkpoint.RunCheckpoint.on_epoch_end

    def timed_commit(self, epoch, logs=None):
        t = time.perf_counter()
        commit(self, epoch, logs)
        marks.append(("commit", time.perf_counter() - t))

    def steps_done(self, logs=None):  # the training steps have finished once the optimizer's step count is read
        keras.ops.convert_to_numpy(self.model.optimizer.iterations)
        marks.append(("steps_end", time.perf_counter()))

    def val_end(self, logs=None):
        marks.append(("val_end", time.perf_counter()))

    def epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()
        marks.append(("begin", self._t0))

    rk.checkpoint.RunCheckpoint.on_epoch_end = timed_commit
    rk.checkpoint.RunCheckpoint.on_test_begin = steps_done
    rk.checkpoint.RunCheckpoint.on_test_end = val_end
    rk.checkpoint.RunCheckpoint.on_epoch_begin = epoch_begin
    rk.set_seed(0)
    with tempfile.TemporaryDirectory() as out:
        hist = rk.train(rk.build_resnet(args.depth), data, out, epochs=args.epochs, batch_size=128,
                        optimizer="sgd", learning_rate=0.1, schedule="step", pipeline=args.pipeline,
                        steps_per_execution=args.steps_per_execution, verbose=0)
    print(f"ResNet-{args.depth}, {args.images} train and {args.val_images} validation images, "
          f"{keras.backend.backend()} on {rk.devices.describe()}, pipeline {args.pipeline}, "
          f"{args.steps_per_execution} steps per call")
    steps = len(data.y_train) // 128
    epochs = [marks[i:i + 4] for i in range(0, len(marks), 4)]
    for epoch, (((_, t0), (_, t_steps), (_, t_val), (_, c)), time_s) in enumerate(zip(epochs, hist["time_s"]), 1):
        run, val, total = t_steps - t0, t_val - t_steps, time_s + c  # the history's time_s ends where the commit starts
        print(f"epoch {epoch}: {total:.2f} s = steps {run:.2f} s ({128 * steps / run:,.0f} img/s) + validation "
              f"{val:.2f} s + commit {c:.3f} s + other {total - run - val - c:.3f} s; "
              f"steps {100 * run / total:.0f}% of the epoch")


if __name__ == "__main__":
    main()
