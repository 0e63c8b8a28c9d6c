"""What a run's per-epoch commit costs: `RunCheckpoint`'s whole commit against Keras' `save_weights` alone.

    KERAS_BACKEND=jax python benchmarks/commit_bench.py

The commit (weights and optimizer state as NumPy `.npz`, the history, `state.json`, TensorBoard) used to write
the weights with Keras' `save_weights`, which walks the model object by object. Both are timed alternately in one
process, 10 times each per network (medians); the atomic rename and fsync are in both. On a GPU, where an epoch
of ResNet-20 takes seconds, this is time the device waits each epoch.
"""

import os, tempfile, time, statistics
import keras
import resnet_keras as rk
from resnet_keras.checkpoint import RunCheckpoint
from resnet_keras.files import atomic_path
for depth in (20, 56, 110):
    rk.set_seed(0)
    trainer = rk.training.compile_for_training(rk.build_resnet(depth, shortcut="zero_pad", weight_decay=1e-4), "sgd", 0.1)
    d = tempfile.mkdtemp()
    ck = RunCheckpoint(os.path.join(d, ".resume"), os.path.join(d, "history.csv"), epochs=200, tensorboard_dir=os.path.join(d, "tb"))
    ck.set_model(trainer); ck._open_tensorboard()
    old, new = [], []
    for e in range(10):
        ck.rows.append({"epoch": e + 1, "loss": 1.0, "accuracy": 0.5, "val_loss": 1.0, "val_accuracy": 0.5, "lr": 0.1, "time_s": 10.0})
        ck._current_epoch = e + 1
        t = time.perf_counter(); ck._save_model(); new.append(time.perf_counter() - t)
        t = time.perf_counter()
        with atomic_path(os.path.join(d, "keras.weights.h5")) as tmp:  # what the commit wrote before: Keras' save_weights
            trainer.save_weights(tmp)
        old.append(time.perf_counter() - t)
    print(f"ResNet-{depth} ({keras.backend.backend()}): Keras save_weights {1000*statistics.median(old):.0f} ms, "
          f"whole commit now (NumPy .npz, history, state, TensorBoard) {1000*statistics.median(new):.0f} ms")
