"""A run killed mid-training, with its sweep and then with its Dask worker, resumes where it stopped.

Its own file, apart from `test_sweep.py`'s smoke sweep, which it does not need,
so that `make test`'s two pytest processes run the two at once.
"""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from conftest import copy_project, dask_cluster, tensorboard_scalars

pytestmark = pytest.mark.slow


def _eight_epoch_run(root, question):
    """A params file of one 8-epoch ResNet-8 run on 500 tiny images; returns (its folder, the params file)."""
    from resnet_keras.data import write_tiny_cifar

    data = root / "outputs" / f".{question}-cifar"
    write_tiny_cifar(str(data), per_class=50, test_per_class=3)
    params = root / "params" / f"{question}.yaml"
    params.write_text(yaml.safe_dump({
        "question": question, "notebook": "notebooks/q1_scratch.py", "name": "resume",
        "parameters": {"data_dir": str(data), "depth": 8, "epochs": 8, "batch_size": 32}}))
    return root / "outputs" / question / "resume", params


def _first_epoch_printed(folder):
    """The first epoch the run's executed notebook trained (that of its last attempt)."""
    nb = json.loads((folder / "notebook.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    return int(text.split("epoch ", 1)[1].split("/", 1)[0])


def _epochs_done(history):
    try:
        return len(pd.read_csv(history))
    except (OSError, ValueError):
        return 0


def test_run_killed_with_its_sweep_then_with_its_dask_worker_resumes_each_time_without_repeating_epochs(tmp_path):
    """Killed twice: first the whole local sweep (SIGKILL of its process group, at a random moment after an
    epoch), then the Dask worker running it. Each time the run continues after its last committed epoch, the
    second time on the other worker, and ends with epochs 1..8 exactly once."""
    import random
    import signal
    import time

    import resnet_keras as rk

    root = copy_project(tmp_path)
    (root / "outputs" / ".tiny-cifar").mkdir(parents=True)  # named by the smoke profile, which the sweep validates
    folder, params = _eight_epoch_run(root, "qkill")
    try:
        proc = subprocess.Popen([sys.executable, "-m", "resnet_keras.sweep", "--profile", "smoke", "--only", "qkill"],
                                cwd=root, start_new_session=True, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while _epochs_done(folder / "history.csv") < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(random.Random(1).uniform(0.0, 1.0))  # somewhere in the next epoch, or while saving
        assert proc.poll() is None, "the run finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(2)  # the orphaned kernel notices its parent is gone and exits
        killed = _epochs_done(folder / "history.csv")
        assert 2 <= killed < 8 and not (folder / "record.json").exists()

        with dask_cluster(root) as (address, client):
            proc = subprocess.Popen([sys.executable, "-m", "resnet_keras.sweep", "--profile", "smoke", "--only",
                                     "qkill", "--scheduler", address], cwd=root, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
            deadline, low = time.time() + 300, killed
            while _epochs_done(folder / "history.csv") <= killed and proc.poll() is None and time.time() < deadline:
                low = min(low, _epochs_done(folder / "history.csv"))
                time.sleep(0.1)
            # The second attempt continued from the first one's last committed epoch: a restart would have
            # rewritten the history from epoch 1.
            assert low == killed, (killed, low)
            busy = [worker for worker, tasks in client.processing().items() if tasks]
            assert proc.poll() is None and len(busy) == 1, "the run finished before its worker could be killed"
            os.kill(client.run(os.getpid, workers=busy)[busy[0]], signal.SIGKILL)
            killed_after = _epochs_done(folder / "history.csv")
            out, _ = proc.communicate(timeout=600)
            survivors = set(client.scheduler_info()["workers"])
    finally:
        params.unlink()
    assert proc.returncode == 0, out
    history = pd.read_csv(folder / "history.csv")
    assert history["epoch"].tolist() == list(range(1, 9))  # each epoch exactly once
    # So in TensorBoard, reading every event file the three attempts left: each epoch once, in order.
    losses = tensorboard_scalars(folder / "tensorboard")["train", "epoch_loss"]
    assert [step for step, _ in losses] == list(range(1, 9))
    assert [round(v, 5) for _, v in losses] == [round(v, 5) for v in history["loss"]]
    record = json.loads((folder / "record.json").read_text())
    assert record["worker"] != busy[0] and record["worker"] in survivors and record["results"]["epochs_trained"] == 8
    first = _first_epoch_printed(folder)
    # Resumed after the last committed epoch, not restarted (the killed worker's kernel may commit one more epoch
    # in the second it takes to notice that its parent is gone).
    assert killed_after > killed and first in (killed_after + 1, killed_after + 2), (killed, killed_after, first)
    assert record["resumed_after"] == first - 1  # its elapsed_s is the last attempt's, which trained the rest
    assert rk.count_params(rk.load_h5(str(folder / "model.h5"))) > 0


def _sweep_until(root, question, epochs):
    """Start the sweep of `question` in `root` and kill it (its whole process group) once `epochs` epochs are
    committed; return the fewest epochs the history held while it ran (a restart empties it) and the number
    committed when it was killed."""
    import signal
    import time

    folder = root / "outputs" / question / "resume"
    proc = subprocess.Popen([sys.executable, "-m", "resnet_keras.sweep", "--profile", "smoke", "--only", question],
                            cwd=root, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, low = time.time() + 300, _epochs_done(folder / "history.csv")
    while _epochs_done(folder / "history.csv") < epochs and proc.poll() is None and time.time() < deadline:
        low = min(low, _epochs_done(folder / "history.csv"))
        time.sleep(0.1)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)  # the orphaned kernel notices its parent is gone and exits
    return low, _epochs_done(folder / "history.csv")


def _dry_run(root, question):
    proc = subprocess.run([sys.executable, "-m", "resnet_keras.sweep", "--profile", "smoke", "--only", question,
                           "--dry-run"], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_a_half_done_run_resumes_after_comment_and_demo_edits_and_starts_again_after_a_code_edit(tmp_path):
    root = copy_project(tmp_path, package=True)  # its own package, which the test edits
    (root / "outputs" / ".tiny-cifar").mkdir(parents=True)
    folder, _ = _eight_epoch_run(root, "qedit")
    _, killed = _sweep_until(root, "qedit", 2)
    assert 2 <= killed < 8
    training, app = root / "resnet_keras" / "training.py", root / "resnet_keras" / "share" / "app.py"
    training.write_text(training.read_text() + "\n# a comment changes no result\n")
    app.write_text(app.read_text() + "\nUNUSED_BY_RUNS = 1\n")  # code, in a module no run executes
    assert f"to run      qedit/resume: half-done, resumes after epoch {killed}; about " in _dry_run(root, "qedit")
    low, again = _sweep_until(root, "qedit", killed + 1)
    assert low == killed and again > killed  # resumed: a restart would have rewritten the history from epoch 1

    training.write_text(training.read_text() + "\nCHANGED = 1\n")
    assert (f"to run      qedit/resume: half-done ({again} epochs), starts again: code changed in "
            f"resnet_keras.training; about ") in _dry_run(root, "qedit")
    proc = subprocess.run([sys.executable, "-m", "resnet_keras.sweep", "--profile", "smoke", "--only", "qedit"],
                          cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _first_epoch_printed(folder) == 1  # started again
    assert pd.read_csv(folder / "history.csv")["epoch"].tolist() == list(range(1, 9))
