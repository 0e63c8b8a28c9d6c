import math

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import tensorboard_scalars

import resnet_keras as rk
from resnet_keras.errors import ConfigError

pytestmark = pytest.mark.backend


def test_optimizers_by_name():
    sgd = rk.make_optimizer("sgd", 0.1, momentum=0.9, nesterov=True)
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9 and sgd.nesterov is True
    assert float(sgd.learning_rate) == pytest.approx(0.1)
    assert rk.make_optimizer("sgd", 0.1, momentum=0.5).nesterov is False
    adam = rk.make_optimizer("adam", 3e-4)
    assert isinstance(adam, keras.optimizers.Adam) and adam.epsilon == 1e-8  # the Adam paper's, not Keras' 1e-7
    assert float(adam.learning_rate) == pytest.approx(3e-4)
    rmsprop = rk.make_optimizer("rmsprop", 1e-3)
    assert isinstance(rmsprop, keras.optimizers.RMSprop) and float(rmsprop.learning_rate) == pytest.approx(1e-3)
    schedule = rk.LRSchedule("step", 0.1, 100)
    assert rk.make_optimizer("sgd", schedule).learning_rate is not None
    assert float(rk.make_optimizer("sgd", schedule).learning_rate) == pytest.approx(0.1)


@pytest.mark.parametrize("call,bad", [
    (lambda: rk.make_optimizer("adagrad"), "optimizer='adagrad'"),
    (lambda: rk.make_optimizer("sgd", -0.1), "learning_rate=-0.1"),
    (lambda: rk.LRSchedule("exponential", 0.1, 100), "schedule='exponential'"),
    (lambda: rk.LRSchedule("step", 0.1, 0), "total_steps=0"),
    (lambda: rk.LRSchedule("step", 0.1, 100, 10, warmup="cosine"), "warmup='cosine'"),
])
def test_bad_training_arguments_name_value_and_accepted(call, bad):
    with pytest.raises(ConfigError) as err:
        call()
    assert bad in str(err.value) and "use" in str(err.value)


def lr_at(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_step_schedule_divides_by_ten_at_the_papers_milestones():
    s = rk.LRSchedule("step", 0.1, 64_000)
    assert lr_at(s, 0) == pytest.approx(0.1)
    assert lr_at(s, 31_999) == pytest.approx(0.1)
    assert lr_at(s, 32_000) == pytest.approx(0.01)
    assert lr_at(s, 48_000) == pytest.approx(0.001)


def test_cosine_schedule_with_warmup():
    s = rk.LRSchedule("cosine", 0.1, 1000, warmup_steps=100)
    assert lr_at(s, 0) == pytest.approx(0.001)
    assert lr_at(s, 49) == pytest.approx(0.05)
    assert lr_at(s, 500) == pytest.approx(0.05, rel=1e-4)
    assert lr_at(s, 1000) == pytest.approx(0.0, abs=1e-7)


def test_constant_warmup_holds_a_tenth_of_the_rate_as_the_paper_does_for_resnet110():
    s = rk.LRSchedule("step", 0.1, 64_000, warmup_steps=400, warmup="constant")
    assert [lr_at(s, step) for step in (0, 399, 400, 31_999, 32_000)] == pytest.approx([0.01, 0.01, 0.1, 0.1, 0.01])


def test_schedule_survives_serialisation():
    s = rk.LRSchedule("step", 0.1, 1000, 10, (0.3, 0.6), 0.2, warmup="constant")
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(s))
    assert again.get_config() == s.get_config()


def test_stop_on_nan_raises_with_position():
    cb = rk.StopOnNaN()
    cb.on_epoch_begin(2)
    cb.on_train_batch_end(0, {"loss": 1.0})
    with pytest.raises(rk.TrainingDiverged, match="loss became nan at epoch 3, batch 5"):
        cb.on_train_batch_end(4, {"loss": math.nan})


def small(tiny_data, **kw):
    return rk.load_dataset("cifar10", tiny_data, validation_split=0.2, **kw)


def test_train_writes_history_and_best_model(tiny_data, tmp_path):
    rk.set_seed(0)
    model = rk.build_resnet(8)
    hist = rk.train(model, small(tiny_data), str(tmp_path), epochs=2, batch_size=16, optimizer="sgd",
                    learning_rate=0.05, schedule="cosine", verbose=0)
    assert hist["epoch"].tolist() == [1, 2]
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "time_s"} <= set(hist.columns)
    on_disk = pd.read_csv(tmp_path / "history.csv")
    pd.testing.assert_frame_equal(on_disk, hist, check_dtype=False)
    assert (tmp_path / "best.h5").exists()


def test_replay_takes_a_finished_runs_model_and_history_and_trains_nothing(tiny_data, tmp_path):
    """`train(replay=True)`, which `make reports` runs: the committed model's weights in a freshly built model, the
    committed history with its provenance, and a clear refusal where the run is not finished."""
    import json

    from resnet_keras.errors import ConfigError

    data = small(tiny_data)
    rk.set_seed(0)
    trained = rk.build_resnet(8)
    hist = rk.train(trained, data, str(tmp_path), epochs=2, batch_size=16, optimizer="sgd", learning_rate=0.05,
                    verbose=0)
    rk.save_h5(trained, str(tmp_path / "model.h5"))
    (tmp_path / "run.json").write_text(json.dumps({
        "provenance": {"device": "a CPU", "backend": "torch", "precision": "mixed_bfloat16", "resumed_after": 1},
        "results": {"test_accuracy": 0.4321}}))
    rk.set_seed(1)
    fresh = rk.build_resnet(8)
    before = [w.copy() for w in fresh.get_weights()]
    replayed = rk.train(fresh, data, str(tmp_path), epochs=2, replay=True)
    pd.testing.assert_frame_equal(replayed, hist, check_dtype=False)
    assert replayed.attrs == {"resumed_after": 1, "replayed": True, "trained_on": "a CPU, torch, mixed_bfloat16",
                              "recorded_test_accuracy": 0.4321}
    x = data.x_test[:8].astype("float32")
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), trained.predict(x, verbose=0))
    assert any((a != b).any() for a, b in zip(fresh.get_weights(), before, strict=True))
    with pytest.raises(ConfigError, match=r"replay=True needs a finished run of 3 epochs"):
        rk.train(fresh, data, str(tmp_path), epochs=3, replay=True)


def test_best_model_loads_with_keras_alone_and_is_tested_beside_the_last(tiny_data, tmp_path):
    import subprocess
    import sys

    data = small(tiny_data)
    rk.set_seed(0)
    model = rk.build_resnet(8, shortcut="zero_pad")  # option A: a layer of this package's own
    hist = rk.train(model, data, str(tmp_path), epochs=3, batch_size=16, optimizer="sgd", learning_rate=0.05,
                    verbose=0)
    # A process that never imports this package reads best.h5 and model.h5 (save_h5: Keras' layers only).
    rk.save_h5(model, str(tmp_path / "model.h5"))
    x = data.x_test[:8].astype("float32")
    np.save(tmp_path / "x.npy", x)
    code = ("import sys, keras, numpy as np\n"
            "for name in ('best.h5', 'model.h5'):\n"
            "    m = keras.models.load_model(sys.argv[1] + '/' + name, compile=False)\n"
            "    np.save(sys.argv[1] + '/' + name + '.npy', m.predict(np.load(sys.argv[1] + '/x.npy'), verbose=0))\n"
            "print(sorted(sys.modules).count('resnet_keras'))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.split()[-1] == "0", proc.stderr[-2000:]
    np.testing.assert_allclose(np.load(tmp_path / "model.h5.npy"), model.predict(x, verbose=0), atol=1e-5)

    best = rk.evaluate_best(str(tmp_path), data)
    again = rk.evaluate(rk.load_h5(str(tmp_path / "best.h5")), data.x_test, data.y_test)
    assert best["accuracy"] == again["accuracy"] and best["loss"] == pytest.approx(again["loss"])
    summary = rk.report.run_summary(hist, rk.evaluate(model, data.x_test, data.y_test), model, best)
    assert summary["best_epoch"] == int(hist["epoch"][hist["val_accuracy"].idxmax()])
    assert summary["best_test_accuracy"] == best["accuracy"] and summary["best_test_loss"] == best["loss"]
    no_val = rk.load_dataset("cifar10", tiny_data, validation_split=0.0)
    assert rk.evaluate_best(str(tmp_path), no_val) is None  # best.h5 then follows training accuracy: no selection
    assert "best_test_accuracy" not in rk.report.run_summary(hist, again, model, None)


def test_resume_continues_from_last_completed_epoch(tiny_data, tmp_path):
    data = small(tiny_data)
    rk.set_seed(0)
    rk.train(rk.build_resnet(8), data, str(tmp_path), epochs=2, batch_size=16, verbose=0)
    rk.set_seed(0)
    model = rk.build_resnet(8)
    hist = rk.train(model, data, str(tmp_path), epochs=3, batch_size=16, verbose=0)
    assert hist["epoch"].tolist() == [1, 2, 3]
    assert pd.read_csv(tmp_path / "history.csv")["epoch"].tolist() == [1, 2, 3]
    # TensorBoard shows the same epochs, once each, in order, with the history's values, across both attempts.
    scalars = tensorboard_scalars(tmp_path / "tensorboard")
    assert set(scalars) == {("train", "epoch_loss"), ("train", "epoch_accuracy"), ("train", "epoch_learning_rate"),
                            ("train", "epoch_time_s"), ("validation", "epoch_loss"), ("validation", "epoch_accuracy")}
    for (part, tag), points in scalars.items():
        column = ("val_" if part == "validation" else "") + tag.removeprefix("epoch_").replace("learning_rate", "lr")
        assert [step for step, _ in points] == [1, 2, 3], (part, tag)
        np.testing.assert_allclose([v for _, v in points], hist[column], rtol=1e-6)


def test_a_resumed_run_trains_exactly_what_an_uninterrupted_one_trains(tiny_data, tmp_path):
    """A commit holds all the next epoch depends on: weights, batch-norm statistics, the optimizer's momentum and
    step count (where the warm-up stands). Two epochs in one go, against one and then a resumed second."""
    data = small(tiny_data)
    kwargs = dict(batch_size=16, optimizer="sgd", learning_rate=0.05, momentum=0.9, warmup_epochs=1, verbose=0)
    runs = {}
    for name, stops in (("straight", (2,)), ("resumed", (1, 2))):
        for epochs in stops:
            rk.set_seed(0)
            model = rk.build_resnet(8)
            history = rk.train(model, data, str(tmp_path / name), epochs=epochs, **kwargs)
        runs[name] = history[["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]].to_numpy(), model
    np.testing.assert_allclose(runs["resumed"][0], runs["straight"][0], rtol=1e-5)
    for a, b in zip(runs["resumed"][1].get_weights(), runs["straight"][1].get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_divergence_fails_the_run(tiny_data, tmp_path):
    """A loss that is not finite fails the run, in its first epoch, which is not committed. (The classifier is set
    to NaN: a huge learning rate is no portable way to get there, as JAX kept the loss of lr=1e30 finite, about
    1e30, on an AVX-512 CPU where TensorFlow and PyTorch reached NaN.)"""
    rk.set_seed(0)
    model = rk.build_resnet(8)
    kernel = model.get_layer("logits").kernel
    kernel.assign(np.full(kernel.shape, np.nan, "float32"))
    with pytest.raises(rk.TrainingDiverged, match="loss became nan at epoch 1"):
        rk.train(model, small(tiny_data), str(tmp_path), epochs=3, batch_size=8, optimizer="sgd",
                 learning_rate=0.1, verbose=0)
    assert not (tmp_path / ".resume" / "state.json").exists()


def test_confidently_wrong_classifier_still_learns(tiny_data, tmp_path):
    """The loss comes from logits: no clipped probability silences the gradient of a confident mistake.

    Keras' JAX backend computes a loss on probabilities as log(clip(p, 1e-7)), at most 16.1 per image, with no
    gradient past the clip; with the classifier scaled x300 such a network stayed stuck there.
    """
    rk.set_seed(0)
    model = rk.build_resnet(8)
    kernel = model.get_layer("logits").kernel
    kernel.assign(kernel * 300.0)
    hist = rk.train(model, small(tiny_data), str(tmp_path), epochs=5, batch_size=8, optimizer="sgd",
                    learning_rate=0.1, augment=False, verbose=0)
    assert hist["loss"].iloc[0] > 50  # far beyond -log(1e-7) = 16.1: computed from the logits, unclipped
    # measured: /280 on TensorFlow, /150 on JAX (Intel Xeon); /17 on JAX on an AMD EPYC with AVX-512
    assert hist["loss"].iloc[-1] < hist["loss"].iloc[0] / 10


def test_model_outputs_probabilities_and_trains_on_its_logits():
    model = rk.build_resnet(8)
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    probs = rk.predict(model, x)
    logits = keras.ops.convert_to_numpy(rk.training.training_model(model)(x))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(probs, keras.ops.convert_to_numpy(keras.ops.softmax(logits)), atol=1e-6)


def test_training_model_refuses_a_model_without_softmax_output():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="scores")(inputs))
    with pytest.raises(ConfigError, match="ends in Dense 'scores', not a softmax layer"):
        rk.training.training_model(model)


@pytest.mark.parametrize("pipeline", ["device", "resident"])
@pytest.mark.parametrize("augment", [False, True])
def test_every_pipeline_gives_the_host_pipelines_batches_every_epoch_and_after_a_resume(tiny_data, augment,
                                                                                         pipeline):
    """The pipeline contract, batch by batch: the device pipeline's images, once `CropFlip` has run in the step,
    and the resident pipeline's, once `ResidentImages` has gathered them and `CropFlip` has run, are the host
    pipeline's, with the same labels, in epoch 1, in epoch 2, and in epoch 2 of a fresh pipeline (a resumed run),
    with and without augmentation. The resident set holds other images before these (`first`)."""
    from resnet_keras.layers import CropFlip, ResidentImages

    data = small(tiny_data)
    first = len(data.x_val)
    host, batches = (rk.CifarBatches(data.x_train, data.y_train, 16, shuffle=True, augment=augment, seed=3,
                                     pipeline=p, first=first) for p in ("host", pipeline))
    resumed = rk.CifarBatches(data.x_train, data.y_train, 16, shuffle=True, augment=augment, seed=3, epoch=1,
                              pipeline=pipeline, first=first)
    resident = ResidentImages(np.concatenate([data.x_val, data.x_train]))

    def same_as_host(batches, epoch):
        assert len(batches) == len(host)
        for i in range(len(host)):
            (x, y), (inputs, labels) = host[i], batches[i]
            if pipeline == "device":
                pixels = inputs["pixels"]
                assert pixels.dtype == np.uint8  # a quarter of the bytes of the host's float32
            else:
                assert set(inputs) == {"index", "crops"} and inputs["index"].dtype == np.int32
                pixels = resident(inputs["index"])
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(CropFlip()(pixels, inputs["crops"])),
                                          x, err_msg=f"epoch {epoch}, batch {i}")
            np.testing.assert_array_equal(labels, y)

    same_as_host(batches, 1)
    host.on_epoch_end()
    batches.on_epoch_end()
    same_as_host(batches, 2)
    same_as_host(resumed, 2)


def test_every_pipeline_trains_identically(tiny_data, tmp_path):
    """The pipeline contract in training: the same augmented epochs give the same history, resume included; the
    resident pipeline's checkpoints hold the same state as the others', not its images."""
    data = small(tiny_data)
    histories = {}
    for pipeline in ("host", "device", "resident"):
        rk.set_seed(0)
        hist = rk.train(rk.build_resnet(8), data, str(tmp_path / pipeline), epochs=2, batch_size=16,
                        optimizer="sgd", learning_rate=0.05, augment=True, pipeline=pipeline, verbose=0)
        rk.set_seed(0)  # resume: a third epoch on top of the two committed ones
        hist = rk.train(rk.build_resnet(8), data, str(tmp_path / pipeline), epochs=3, batch_size=16,
                        optimizer="sgd", learning_rate=0.05, augment=True, pipeline=pipeline, verbose=0)
        assert hist["epoch"].tolist() == [1, 2, 3]
        histories[pipeline] = hist[["loss", "accuracy", "val_loss", "val_accuracy"]].to_numpy()
    for pipeline in ("device", "resident"):
        np.testing.assert_allclose(histories[pipeline], histories["host"], rtol=1e-5, err_msg=pipeline)
    with np.load(tmp_path / "host" / ".resume" / "epoch-0003.npz") as host, \
            np.load(tmp_path / "resident" / ".resume" / "epoch-0003.npz") as resident:
        assert [resident[k].shape for k in resident.files] == [host[k].shape for k in host.files]


def test_the_resident_pipeline_needs_images():
    with pytest.raises(ConfigError, match="pipeline='resident' needs the images its batches index"):
        rk.training.training_model(rk.build_resnet(8), "resident")
    features = np.zeros((4, 64), np.float32)
    with pytest.raises(ConfigError, match=r"pipeline='resident' needs images \(n, h, w, c\), not arrays of shape "
                                          r"\(4, 64\)"):
        rk.CifarBatches(features, np.zeros(4, np.int32), 2, pipeline="resident")


def test_several_steps_per_call_train_the_same_epochs_as_one(tmp_path):
    """Three steps per compiled call (an epoch of 9, a validation pass of 2 batches of 500): the same history and
    weights as one step per call, resume included; refused on PyTorch, and where it does not divide the epoch.

    On JAX the three steps compile as one call (`training.Trainer`), whose float sums XLA may order otherwise:
    each weight's update is compared as a vector, to 1e-4 of its norm. (The images have their class's colour, as
    CIFAR's classes differ: on images of noise, random labels make training chaotic, and float rounding alone
    grows from 1e-5 to 1e-2 of the update within an epoch.)"""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 672).astype(np.int32)
    x = np.clip(y[:, None, None, None] * 25 + rng.integers(0, 40, (672, 32, 32, 3)), 0, 255).astype(np.uint8)
    data = rk.data.CifarData(x[:72], y[:72], x[72:], y[72:], x[:0], y[:0], [str(i) for i in range(10)])
    kwargs = dict(batch_size=8, optimizer="sgd", learning_rate=0.05, schedule="cosine", verbose=0)
    if keras.backend.backend() == "torch":
        with pytest.raises(ConfigError, match="steps_per_execution=3 is not accepted on the PyTorch backend"):
            rk.train(rk.build_resnet(8), data, str(tmp_path), epochs=1, steps_per_execution=3, **kwargs)
        return
    with pytest.raises(ConfigError, match="steps_per_execution=4 is not accepted; use a divisor of the 9 steps "
                                          "of an epoch: 1, 3, 9$"):
        rk.train(rk.build_resnet(8), data, str(tmp_path / "bad"), epochs=1, steps_per_execution=4, **kwargs)
    assert not (tmp_path / "bad").exists()  # refused before anything was written
    runs = {}
    for k in (1, 3):
        for epochs in (1, 2):  # the second epoch resumes from the first's checkpoint
            rk.set_seed(0)
            model = rk.build_resnet(8)
            start = model.get_weights()
            history = rk.train(model, data, str(tmp_path / str(k)), epochs=epochs, steps_per_execution=k, **kwargs)
        runs[k] = history[["epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr"]].to_numpy(), model
    np.testing.assert_allclose(runs[3][0], runs[1][0], rtol=1e-5)
    for a, b, w0, v in zip(runs[3][1].get_weights(), runs[1][1].get_weights(), start, runs[1][1].weights):
        assert np.linalg.norm(a - b) <= 1e-4 * np.linalg.norm(b - w0), v.path


def test_on_jax_the_steps_of_a_call_run_as_one_compiled_call(monkeypatch):
    """Three steps per call over an epoch of 9, in the second epoch (the first compiles): the training thread
    dispatches 3 compiled calls (Keras' own JAX loop would call its step 9 times, and none of ours)."""
    if keras.backend.backend() != "jax":
        pytest.skip(f"JAX's own dispatch; Keras' {keras.backend.backend()} trainer runs K steps per call itself")
    import jax

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (72, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, 72).astype(np.int32)
    rk.set_seed(0)
    trainer = rk.training.compile_for_training(rk.build_resnet(8), "sgd", 0.05, pipeline="resident",
                                               steps_per_execution=3, images=x)
    batches = rk.CifarBatches(x, y, 8, shuffle=True, augment=True, pipeline="resident", drop_remainder=True)
    calls, epochs, jit = [], [], jax.jit  # the epoch of each compiled call

    def counted_jit(fun, **kwargs):
        compiled = jit(fun, **kwargs)
        return lambda *args: (calls.append(epochs[-1]), compiled(*args))[1]

    class Epoch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs.append(epoch)

    monkeypatch.setattr(jax, "jit", counted_jit)
    trainer.fit(batches, epochs=2, verbose=0, callbacks=[Epoch()])
    assert calls.count(1) == 3


def test_no_step_waits_for_its_loss_to_be_checked(tiny_data, tmp_path, monkeypatch):
    """Where Keras can (JAX, PyTorch), it calls the per-step callbacks of `train` (the NaN check) on a helper
    thread, so the training thread never waits for a step's loss to reach the host before dispatching the next
    (on a GPU, such a wait per step leaves the device idle). On TensorFlow, Keras itself reads every call's
    logs on the training thread: there `steps_per_execution` makes that one read per K steps."""
    import threading

    threads = []
    check = rk.checkpoint.StopOnNaN.on_train_batch_end

    def spy(self, batch, logs=None):
        threads.append(threading.get_ident())
        return check(self, batch, logs)

    monkeypatch.setattr(rk.checkpoint.StopOnNaN, "on_train_batch_end", spy)
    rk.train(rk.build_resnet(8), small(tiny_data), str(tmp_path), epochs=1, batch_size=16, verbose=2)
    assert threads
    on_training_thread = threads.count(threading.get_ident())
    assert on_training_thread == (len(threads) if keras.backend.backend() == "tensorflow" else 0)


def test_bad_pipeline_is_refused_by_name(tiny_data, tmp_path):
    with pytest.raises(ConfigError, match="pipeline='gpu' is not accepted; use one of 'auto', 'host', 'device', "
                                          "'resident'"):
        rk.train(rk.build_resnet(8), small(tiny_data), str(tmp_path), epochs=1, pipeline="gpu", verbose=0)


def test_h5_model_reloads_with_identical_predictions(tiny_data, tmp_path):
    data = small(tiny_data)
    rk.set_seed(1)
    model = rk.build_resnet(8, shortcut="zero_pad", version="v2", weight_decay=1e-4)
    rk.train(model, data, str(tmp_path), epochs=1, batch_size=16, optimizer="sgd", learning_rate=0.1,
             schedule="step", warmup_epochs=1, verbose=0)
    path = str(tmp_path / "model.h5")
    rk.save_h5(model, path)
    again = rk.load_h5(path)
    x = data.x_test.astype("float32")
    # Saved as Keras' own layers (`save_h5`): on PyTorch, Keras' batch norm sums in another order than PyTorch's.
    np.testing.assert_allclose(model.predict(x, verbose=0), again.predict(x, verbose=0), rtol=1e-6, atol=1e-6)


def test_save_h5_rejects_other_extensions(tmp_path):
    with pytest.raises(ConfigError, match="must end in .h5"):
        rk.save_h5(rk.build_resnet(8), str(tmp_path / "model.keras"))


def test_evaluate_reports_accuracy_and_predictions(tiny_data):
    data = small(tiny_data)
    result = rk.evaluate(rk.build_resnet(8), data.x_test, data.y_test)
    assert result["predictions"].shape == data.y_test.shape
    assert result["accuracy"] == pytest.approx(np.mean(result["predictions"] == data.y_test))


def test_cached_features_train_the_head_of_the_whole_model(tiny_data, tmp_path):
    data = small(tiny_data)
    rk.set_seed(0)
    model = rk.build_transfer_model(10, weights=None)
    head, feats = rk.cache_features(model, data)
    assert feats.x_train.shape == (len(data.y_train), 2048) and feats.x_test.shape == (len(data.y_test), 2048)
    before = keras.ops.convert_to_numpy(model.get_layer("logits").kernel).copy()
    rk.train(head, feats, str(tmp_path), epochs=2, batch_size=16, augment=False, verbose=0, save_best=False)
    after = keras.ops.convert_to_numpy(model.get_layer("logits").kernel)
    assert not np.array_equal(before, after)  # shared weights trained
    whole = model.predict(data.x_test.astype("float32"), verbose=0)
    np.testing.assert_allclose(head.predict(feats.x_test, verbose=0), whole, rtol=1e-4, atol=1e-5)


def test_cached_features_train_exactly_what_rerunning_the_base_trains(tiny_data, tmp_path):
    """Without augmentation the two Q3 modes are the same computation: same history, same model."""
    data = small(tiny_data)
    histories, outputs = [], []
    for cached in (False, True):
        rk.set_seed(0)
        model = rk.build_transfer_model(10, weights=None)
        trained, inputs = rk.cache_features(model, data) if cached else (model, data)
        rk.set_seed(1)
        hist = rk.train(trained, inputs, str(tmp_path / str(cached)), epochs=2, batch_size=16, augment=False,
                        verbose=0, save_best=False)
        histories.append(hist[["loss", "accuracy", "val_loss", "val_accuracy"]].to_numpy())
        outputs.append(rk.predict(model, data.x_test))
    assert histories[0][-1, 2] < histories[0][0, 2]  # it did learn: the validation loss fell
    np.testing.assert_allclose(histories[1], histories[0], rtol=1e-5)
    # Measured 0.0 once, 2.9e-6 in a later session on the same code (CPU reduction order): float32 noise.
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)


def test_augmenting_features_is_refused(tiny_data, tmp_path):
    model = rk.build_transfer_model(10, weights=None)
    head, feats = rk.cache_features(model, small(tiny_data))
    with pytest.raises(ConfigError, match="augment=True needs images"):
        rk.train(head, feats, str(tmp_path), epochs=1, augment=True, verbose=0)



@pytest.mark.parametrize("devices,flags,expected", [
    (["cpu:0"], ["avx2", "avx512f"], "float32"), (["gpu:0", "gpu:1"], ["avx512_bf16"], "mixed_float16"),
    (["cpu:0"], ["avx2", "avx512f", "avx512_bf16"], "mixed_bfloat16")])
def test_auto_precision_is_mixed_float16_on_a_gpu_and_mixed_bfloat16_on_a_cpu_with_bfloat16_instructions(
        monkeypatch, restore_precision, devices, flags, expected):
    monkeypatch.setattr(rk.devices, "local_devices", lambda: devices)
    monkeypatch.setattr(rk.devices, "cpu_flags", lambda: flags)
    if expected == "mixed_bfloat16" and keras.backend.backend() == "jax":
        expected = "float32"  # JAX's CPU bfloat16 is not measured (`catalog.BF16_CPU_BACKENDS`)
    assert rk.set_precision("auto") == expected
    assert rk.build_resnet(8).get_layer("stem_conv").compute_dtype == expected.replace("mixed_", "")


# mixed_float16 trains on the resident pipeline, as a GPU can: its uint8 images are not autocast under loss scaling.
@pytest.mark.parametrize("precision,compute,pipeline", [("mixed_bfloat16", "bfloat16", "host"),
                                                        ("mixed_float16", "float16", "resident")])
def test_mixed_precision_trains_saves_and_reloads(tiny_data, tmp_path, restore_precision, precision, compute,
                                                  pipeline):
    rk.set_seed(0)
    assert rk.set_precision(precision) == precision
    model = rk.build_resnet(8)
    hist = rk.train(model, small(tiny_data), str(tmp_path), epochs=1, batch_size=16, optimizer="sgd",
                    learning_rate=0.05, pipeline=pipeline, verbose=0)
    assert model.get_layer("stem_conv").compute_dtype == compute
    assert model.get_layer("stem_conv").kernel.dtype == "float32"  # weights stay float32
    trainer = rk.training.compile_for_training(model, "sgd", 0.05)  # what `train` compiles
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer) == (precision == "mixed_float16")
    assert np.isfinite(hist["loss"]).all()
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype(np.float32)
    rk.save_h5(model, str(tmp_path / "m.h5"))
    keras.config.set_dtype_policy("float32")
    again = rk.load_h5(str(tmp_path / "m.h5"))
    assert again.get_layer("stem_conv").compute_dtype == compute
    # The file holds Keras' batch norm (`save_h5`), which rounds to the 16-bit compute dtype where the package's
    # computes in float32 on PyTorch: a few units in the last place of a 16-bit number (bfloat16's is 2**-8).
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=4e-3)


def test_unknown_precision_is_refused_by_name(restore_precision):
    with pytest.raises(ConfigError, match="precision='fp8' is not accepted; use one of 'auto', 'float32'"):
        rk.set_precision("fp8")
