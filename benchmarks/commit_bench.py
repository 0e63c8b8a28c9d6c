"""What a run's per-epoch commit costs: `RunCheckpoint`'s whole commit against Keras' `save_weights` alone.

    KERAS_BACKEND=jax python benchmarks/commit_bench.py

The commit (weights and optimizer state as NumPy `.npz`, the history, `state.json`, TensorBoard) used to write
the weights with Keras' `save_weights`, which walks the model object by object. Both are timed alternately in one
process, 10 times each per network (medians); the atomic rename and fsync are in both. On a GPU, where an epoch
of ResNet-20 takes seconds, this is time the device waits each epoch.
"""

import os
import statistics
import tempfile
import time

import keras

import resnet_keras as rk
from resnet_keras.checkpoint import RunCheckpoint
from resnet_keras.files import atomic_path

ROW = {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5, "lr": 0.1, "time_s": 10.0}


def main():
    for depth in (20, 56, 110):
        rk.set_seed(0)
        model = rk.build_resnet(depth, shortcut="zero_pad", weight_decay=1e-4)
        trainer = rk.training.compile_for_training(model, "sgd", 0.1)
        folder = tempfile.mkdtemp()
        checkpoint = RunCheckpoint(os.path.join(folder, ".resume"), os.path.join(folder, "history.csv"), epochs=200,
                                   tensorboard_dir=os.path.join(folder, "tensorboard"))
        checkpoint.set_model(trainer)
        checkpoint._open_tensorboard()
        old, new = [], []
        for epoch in range(1, 11):  # as `on_epoch_end` does, without training
            checkpoint.rows.append({"epoch": epoch, **ROW})
            checkpoint._current_epoch = epoch
            start = time.perf_counter()
            checkpoint._save_model()
            new.append(time.perf_counter() - start)
            start = time.perf_counter()
            with atomic_path(os.path.join(folder, "keras.weights.h5")) as tmp:  # what the commit wrote before
                trainer.save_weights(tmp)
            old.append(time.perf_counter() - start)
        print(f"ResNet-{depth} ({keras.backend.backend()}): Keras save_weights {1000 * statistics.median(old):.0f} ms, "
              f"whole commit now (NumPy .npz, history, state, TensorBoard) {1000 * statistics.median(new):.0f} ms")


if __name__ == "__main__":
    main()
