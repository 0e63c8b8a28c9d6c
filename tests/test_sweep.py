"""The sweep end to end on the smoke profile: artefacts, incrementality, failures, the index in a browser."""

import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import chromium, copy_project, dask_cluster, requires_chromium

from resnet_keras import products
from resnet_keras.catalog import resolve_precision
from resnet_keras.cpu import cpu_flags
from resnet_keras.summary.reference import flips

pytestmark = pytest.mark.slow
SMOKE_RUNS = ["q1/cifar10-resnet8-adam", "q2/cifar10-resnet8-sgd-b32", "q3/cifar10-adam-own-base",
              "q3/cifar10-rmsprop-none", "q3/cifar10-sgd-none", "architectures/imagenet-18", "paper/resnet-20-seed0",
              "paper/resnet-20-seed1", "paper/plain-20-seed0", "paper/plain-20-seed1", "preact100/preact-8-w1",
              "precision/cifar10-resnet8-adam-float32-seed0"]


def make(root, target, *args):
    """`make TARGET ARGS...` in `root`, with the running environment standing for make's .venv (its stamp
    `root/.venv-ready`, newer than the requirements); return the finished process."""
    return subprocess.run(["make", target, *args, f"PY={sys.executable}",
                           f"VENV={os.path.dirname(os.path.dirname(sys.executable))}", f"STAMP={root / '.venv-ready'}"],
                          cwd=root, capture_output=True, text=True, timeout=900)


def make_sweep(root, *args):
    """`make sweep PROFILE=smoke ARGS...` in `root` (see `make`)."""
    return make(root, "sweep", "PROFILE=smoke", *args)


def sweep(root, *args, env=None):
    """Run the sweep CLI in `root` (with `env` added to the environment); return (exit code, output)."""
    proc = subprocess.run([sys.executable, "-m", "resnet_keras.sweep", "--profile", "smoke", *args], cwd=root,
                          capture_output=True, text=True, timeout=900, env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project after `make sweep PROFILE=smoke ONLY=all` (questions and studies) on a Dask scheduler
    with two GPU workers.

    The workers declare one GPU each (on a CPU machine just a Dask resource), so that each takes one run at a
    time although it has two threads. `make` writes the tiny data and the notebooks' .ipynb copies first.
    """
    root = copy_project(tmp_path_factory.mktemp("project"))
    (root / ".venv-ready").touch()  # `make_sweep`'s stand-in for make's .venv
    with dask_cluster(root, nthreads=2, resources="GPU=1") as (address, _):
        proc = make_sweep(root, f"SCHEDULER={address}", "ONLY=all")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"{len(SMOKE_RUNS)} runs, 2 at a time on 2 Dask GPU workers ({address})" in out
    return root, out


def test_smoke_sweep_produces_every_artefact(project):
    import resnet_keras as rk

    root, out = project
    for key in SMOKE_RUNS:
        folder = root / "outputs" / key
        for product in products.COMPLETE:
            assert (folder / product).is_file(), f"{key}: {product} missing"
        metrics = json.loads((folder / "record.json").read_text())
        assert metrics["status"] == "ok" and metrics["results"]["epochs_trained"] >= 1
        assert np.load(folder / "predictions.npy").dtype == "uint8"  # one class per test image
        # Every parameter the notebook ran with (its defaults included), for the index; the results hold measurements.
        assert metrics["settings"].items() >= metrics["parameters"].items() and "seed" in metrics["settings"]
        # "auto" precision, as this host resolves it: float32, or mixed bfloat16 on a CPU with bfloat16 instructions.
        auto = resolve_precision("auto", False, os.environ.get("KERAS_BACKEND", "tensorflow"), cpu_flags())
        assert "seed" not in metrics["results"] and metrics["results"]["precision"] == auto
        # The package modules the run executed, hashed: the sweep's own modules and the web app are not among them.
        assert {"resnet_keras", "resnet_keras.models", "resnet_keras.training"} <= set(metrics["sources"])
        tooling = {"resnet_keras.share.app", "resnet_keras.summary.index", "resnet_keras.sweep.runner"}
        assert not tooling & set(metrics["sources"])
        assert not (folder / ".resume").exists()
        assert (folder / products.TENSORBOARD / "train").is_dir()
    model = rk.load_h5(str(root / "outputs" / SMOKE_RUNS[0] / "model.h5"))
    assert model.predict(np.zeros((2, 32, 32, 3), "float32"), verbose=0).shape == (2, 10)
    results = pd.read_csv(root / "outputs" / "results.csv")
    assert (results["question"] + "/" + results["run"]).tolist() == SMOKE_RUNS
    assert (results["status"] == "ok").all()
    # Every run finished on the two Dask workers, each of which took one run at a time (its GPU=1).
    assert results["worker"].str.match(r"^tcp://127\.0\.0\.1:\d+$").all() and results["worker"].nunique() == 2
    for _, runs in results.groupby("worker"):
        spans = sorted((_finished(root, key) - elapsed, _finished(root, key)) for key, elapsed in
                       zip(runs["question"] + "/" + runs["run"], runs["elapsed_s"]))
        assert all(later[0] >= earlier[1] - 1 for earlier, later in zip(spans, spans[1:])), spans
    assert results["test_accuracy"].between(0, 1).all() and results["params"].gt(0).all()
    report = (root / "outputs" / SMOKE_RUNS[0] / "report.html").read_text()
    assert "test accuracy" in report and "rk.build_resnet" not in report  # outputs shown, code hidden
    for key in SMOKE_RUNS:  # every report reads offline: nothing fetched, no link to a file that is not there
        html = (root / "outputs" / key / "report.html").read_text()
        fetched = re.findall(r'<(?:script|link|iframe|img)\b[^>]*\b(?:src|href)="(?!data:)([^"]+)"', html)
        assert fetched == [], (key, fetched)
        links = [h for h in re.findall(r'<a\b[^>]*\bhref="([^"#][^"]*)"', html) if "://" not in h]
        assert all((root / "outputs" / key / h).exists() for h in links), (key, links)
        assert len(html) < 200_000, (key, len(html))
    q3 = (root / "outputs" / "q3/cifar10-sgd-none" / "report.html").read_text()
    assert "ResNet-50 with random weights: accuracy here says nothing about transfer learning" in q3
    assert (root / "outputs" / "q2" / "comparison.png").is_file()
    index = (root / "outputs" / "index.html").read_text()
    assert "tcp://127.0.0.1:" in index  # the index shows the workers
    assert f'href="{SMOKE_RUNS[0]}/{products.TENSORBOARD}">TensorBoard</a>' in index


def test_reports_are_titled_with_their_network_and_end_with_their_figures(project):
    import re

    root, _ = project
    for key, heading in ((SMOKE_RUNS[0], "Q1: a ResNet-8 trained from scratch on CIFAR-10"),
                         (SMOKE_RUNS[1], "Q2: a ResNet-8 trained with SGD at batch 32 on CIFAR-10")):
        html = (root / "outputs" / key / "report.html").read_text()
        headings = [re.sub(r"<[^>]+>|&#182;|¶", "", h).strip() for h in re.findall(r"<h1[^>]*>(.*?)</h1>", html, re.S)]
        assert headings[0] == heading, headings  # the notebook's own title for JupyterLab is left out
        assert "ResNet-20" not in "".join(headings) and "CIFAR ResNet trained" not in html
        results = json.loads((root / "outputs" / key / "results.json").read_text())
        table = html[html.rindex("<table"):]
        for label, value in (("test accuracy", f"{100 * results['test_accuracy']:.2f}%"),
                             ("best validation accuracy", f"{100 * results['best_val_accuracy']:.2f}%"),
                             ("trainable parameters", f"{results['params']:,}"),
                             ("time per epoch", f"{results['epoch_time_s']:,.1f} s on {results['device']}")):
            assert label in table and value in table, (label, value)
        assert "{&#39;model&#39;" not in html and "{'model'" not in html  # no raw dictionary at the end


def test_make_publish_writes_the_hub_folder_of_a_smoke_run(project):
    import keras
    from huggingface_hub import ModelCard

    import resnet_keras as rk

    root, _ = project
    proc = make(root, "publish", "RUN=paper/resnet-20-seed0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = root / "outputs" / "paper" / "resnet-20-seed0"
    hub = run / "hub"
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(keras.saving.load_model(str(hub)).predict(x, verbose=0),
                               rk.load_h5(str(run / "model.h5")).predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    accuracy = json.loads((run / "results.json").read_text())["test_accuracy"]
    assert ModelCard.load(hub / "README.md").data.eval_results[0].metric_value == round(accuracy, 4)
    assert "| He et al. (2015), table 6 | 0.9125 | 8.75% |" in (hub / "README.md").read_text()
    assert len(os.listdir(hub / "space" / "examples")) == 8  # the run's examples, one per class
    assert (hub / "curves.png").is_file() and (hub / "history.csv").is_file()


def _finished(root, key):
    """When a run's record was written, in seconds since the epoch (to the second)."""
    import time

    record = json.loads((root / "outputs" / key / "record.json").read_text())
    return time.mktime(time.strptime(record["finished"], "%Y-%m-%d %H:%M:%S"))


def test_smoke_sweep_draws_the_studys_comparisons(project):
    root, _ = project
    outputs = root / "outputs"
    table = pd.read_csv(outputs / "paper" / "paper_table.csv")
    assert table["network"].tolist() == ["ResNet-20", "plain-20"] and table["paper (%)"].iloc[0] == 8.75
    results = pd.read_csv(outputs / "results.csv")
    results = results.set_index(results["question"] + "/" + results["run"])
    # Two seeds per network: their mean, sample standard deviation and best.
    errors = [100 * (1 - results.loc[f"paper/resnet-20-seed{s}", "test_accuracy"]) for s in (0, 1)]
    assert table["seeds"].tolist() == [2, 2]
    assert table["test error (%)"].iloc[0] == pytest.approx(sum(errors) / 2, abs=0.01)
    assert table["std (points)"].iloc[0] == pytest.approx(abs(errors[0] - errors[1]) / 2 ** 0.5, abs=0.01)
    assert table["best (%)"].iloc[0] == pytest.approx(min(errors), abs=0.01)
    for figure in ("paper/error_vs_depth.png", "paper/plain_vs_residual.png", "architectures/accuracy_vs_time.png"):
        assert (outputs / figure).stat().st_size > 1000
    arch = results.loc["architectures/imagenet-18"]
    assert arch["model"] == "resnet18" and arch["latency_ms"] > 0 and arch["throughput_img_s"] > 0
    assert results.loc["preact100/preact-8-w1", "model"] == "preact_resnet8"
    metrics = json.loads((outputs / "preact100" / "preact-8-w1" / "record.json").read_text())
    assert len(metrics["results"]["class_names"]) == 100


def test_progress_is_one_line_per_run_and_epoch(project):
    root, out = project
    assert out.count("] start ") == len(SMOKE_RUNS) and out.count("] ok ") == len(SMOKE_RUNS)
    assert "ETA" in out
    # Before the first run: how many, and about how long, from a ResNet-20 step measured here.
    plan = f"{len(SMOKE_RUNS)} runs to do on tensorflow (no GPU): about "
    assert plan in out and out.index(plan) < out.index("] start ") and "ResNet-20 trains at" in out
    nb = json.loads((root / "outputs" / SMOKE_RUNS[0] / "notebook.ipynb").read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    # no per-batch progress bar
    assert "epoch 1/1  loss" in text and "legacy" not in text and "\r" not in text and "\b" not in text
    assert "absl" not in text and "oneDNN" not in text  # TensorFlow's C++ logs go to kernel.log, not the report


def test_make_tensorboard_serves_every_runs_curves_side_by_side(project):
    import signal
    import socket
    import time

    root, _ = project
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(["make", "tensorboard", f"TB_PORT={port}", f"PY={sys.executable}",
                             f"VENV={os.path.dirname(os.path.dirname(sys.executable))}",
                             f"STAMP={root / '.venv-ready'}"],
                            cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline, tags = time.time() + 120, None
        while tags is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/plugin/scalars/tags", timeout=5) as r:
                    tags = json.loads(r.read())
            except OSError:
                assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()[-2000:]
                time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    for key in SMOKE_RUNS:
        assert "epoch_loss" in tags[f"{key}/{products.TENSORBOARD}/train"], sorted(tags)
    assert "epoch_accuracy" in tags[f"{SMOKE_RUNS[0]}/{products.TENSORBOARD}/validation"]


def test_a_run_as_a_plain_script_writes_what_the_notebook_wrote_under_papermill(project, tmp_path):
    """`python -m resnet_keras.sweep.script` (no kernel, no papermill) on a run of the plan: the same products as the
    notebook wrote in the sweep, and the same results, apart from times; the sweep's own files are the sweep's."""
    root, _ = project
    key = "q1/cifar10-resnet8-adam"
    proc = subprocess.run([sys.executable, "-m", "resnet_keras.sweep.script", key, "--profile", "smoke", "--outputs",
                           str(tmp_path)], cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    swept, scripted = root / "outputs" / key, tmp_path / key
    visible = lambda folder: {p for p in os.listdir(folder) if not p.startswith(".")}  # noqa: E731
    assert visible(scripted) == visible(swept) - set(products.FROM_SWEEP)
    ours, theirs = (json.loads((folder / products.RESULTS).read_text()) for folder in (scripted, swept))
    assert ours.keys() == theirs.keys()
    assert ours["params"] == theirs["params"] and ours["epochs_trained"] == theirs["epochs_trained"]


def test_second_sweep_skips_everything_without_starting_keras(project, tmp_path):
    root, _ = project
    index = root / "outputs" / "index.html"
    drawn = index.stat().st_mtime_ns
    poisoned = tmp_path / "keras"  # shadows the real Keras: any import of it fails the sweep
    poisoned.mkdir()
    (poisoned / "__init__.py").write_text("raise ImportError('a sweep with nothing to run imported Keras')")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    # The backend `make` ran the sweep with (its default where KERAS_BACKEND is unset): the machine is the same.
    backend = os.environ.get("KERAS_BACKEND") or "tensorflow"
    code, out = sweep(root, env={"PYTHONPATH": path, "KERAS_BACKEND": backend})
    assert code == 0, out
    assert out.count("up to date  ") == len(SMOKE_RUNS) and "] start" not in out
    assert index.stat().st_mtime_ns == drawn  # the index was not drawn again


def test_sweep_reruns_exactly_the_runs_whose_parameters_changed_or_whose_record_is_missing(project):
    root, _ = project
    path = root / "params" / "q1_scratch.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["profiles"]["smoke"]["seed"] = 7
    path.write_text(yaml.safe_dump(spec))
    unrecorded = root / "outputs" / SMOKE_RUNS[1]
    (unrecorded / "record.json").unlink()  # as if killed after saving the model, before the commit
    code, out = sweep(root, "--jobs", "2")
    assert code == 0, out
    assert f"ok     {SMOKE_RUNS[0]}" in out and f"ok     {SMOKE_RUNS[1]}" in out
    assert out.count("up to date  ") == len(SMOKE_RUNS) - 2
    assert json.loads((root / "outputs" / SMOKE_RUNS[0] / "record.json").read_text())["parameters"]["seed"] == 7
    assert (unrecorded / "record.json").exists()


def test_failing_and_diverging_runs_are_reported_and_do_not_stop_others(project, tmp_path):
    import h5py

    root, _ = project
    foreign = tmp_path / "foreign.h5"  # an intact HDF5 file, but not ResNet-50 weights: fails inside the run
    with h5py.File(foreign, "w") as f:
        f["x"] = [1.0]
    (root / "params" / "qfail.yaml").write_text(yaml.safe_dump({
        "question": "qfail", "notebook": "notebooks/q3_transfer.py", "name": "bad-weights",
        "parameters": {"data_dir": "outputs/.tiny-cifar", "weights": str(foreign), "epochs": 1}}))
    (root / "params" / "qnan.yaml").write_text(yaml.safe_dump({
        "question": "qnan", "notebook": "notebooks/q1_scratch.py", "name": "diverges",
        "parameters": {"data_dir": "outputs/.tiny-cifar", "depth": 8, "epochs": 50, "batch_size": 8,
                       "optimizer": "sgd", "learning_rate": 1.0e+12}}))
    try:
        code, out = sweep(root, "--only", "qfail", "qnan", "q1_scratch", "--jobs", "2")
    finally:
        (root / "params" / "qfail.yaml").unlink()
        (root / "params" / "qnan.yaml").unlink()
    assert code == 1
    assert "failed: qfail/bad-weights: " in out and "failed: qnan/diverges: " in out and "up to date  q1/" in out
    error = json.loads((root / "outputs" / "qfail" / "bad-weights" / "error.json").read_text())
    assert error["status"] == "failed" and error["error"] and error["where"]
    assert not (root / "outputs" / "qfail" / "bad-weights" / "record.json").exists()
    index = (root / "outputs" / "index.html").read_text()
    assert all(f'href="{key}/report.html"' in index for key in SMOKE_RUNS)  # unselected runs listed too
    assert error["error"].split(":")[0] in index and 'href="qfail/bad-weights/notebook.ipynb"' in index
    results = pd.read_csv(root / "outputs" / "results.csv").set_index("run")
    assert results.loc["bad-weights", "status"] == results.loc["diverges", "status"] == "failed"
    # A diverging run stops at once, not after fifty epochs of NaN.
    error = json.loads((root / "outputs" / "qnan" / "diverges" / "error.json").read_text())
    assert error["error"].startswith("TrainingDiverged: loss became")
    assert len(pd.read_csv(root / "outputs" / "qnan" / "diverges" / "history.csv")) < 50


def test_runs_whose_data_is_missing_are_blocked_and_the_others_go_ahead(project, tmp_path):
    """A run whose inputs are missing is listed with its fix, shown as blocked, and fails the exit status; the rest
    of the sweep goes on. When no run can start, the sweep stops at once with one line."""
    root, _ = project
    empty = tmp_path / "empty"
    empty.mkdir()
    (root / "params" / "qnodata.yaml").write_text(yaml.safe_dump({
        "question": "qnodata", "notebook": "notebooks/q1_scratch.py", "name": "no-data",
        "parameters": {"data_dir": str(empty), "epochs": 1}}))
    try:
        code, out = sweep(root)
        alone, alone_out = sweep(root, "--only", "qnodata")
    finally:
        (root / "params" / "qnodata.yaml").unlink()
    why = (f"data_dir='{empty}' has no cifar-10-batches-py/ folder; point it at a folder holding the official CIFAR "
           f"python layout")
    assert code == 1, out
    assert f"blocked     qnodata/no-data: {why}" in out and f"  blocked: qnodata/no-data: {why}" in out
    assert out.count("up to date  ") == len(SMOKE_RUNS) and "0 failed, 1 blocked" in out
    results = pd.read_csv(root / "outputs" / "results.csv").set_index("question")
    assert results.loc["qnodata", "status"] == "blocked" and results.loc["qnodata", "error"] == why
    assert "1 blocked (inputs missing here)" in (root / "outputs" / "index.html").read_text()
    assert alone == 2 and alone_out.strip() == f"sweep: {why}"
    assert not (root / "outputs" / "qnodata").exists()


def test_invalid_params_fail_before_anything_runs(project, tmp_path):
    root, _ = project
    (root / "params" / "qbad.yaml").write_text("question: qbad\nnotebook: notebooks/q1_scratch.py\n"
                                               "parameters: {epochs: 0}\n")
    try:
        code, out = sweep(root)
    finally:
        (root / "params" / "qbad.yaml").unlink()
    assert code == 2
    assert "run 'default': epochs=0 is not accepted; use an integer >= 1" in out
    assert "start" not in out and not (root / "outputs" / "qbad").exists()


def test_finished_runs_become_references_that_draw_the_readme_and_the_index_overlay(project, tmp_path):
    """`make reference` / `make results` on the smoke runs (standing for full-length ones, `--profile smoke`): the
    reference folder's files and provenance, the README block drawn from it alone (mean +- std, best, figures, what
    has no reference), and the index drawing each run over the references of its network and recipe."""
    root, _ = project
    results, readme = root / "results", tmp_path / "README.md"
    readme.write_text("# Title\n\nbefore\n<!-- reference-results -->\nhand-written\n"
                      "<!-- /reference-results -->\nafter\n")
    command = [sys.executable, "-m", "resnet_keras.summary.reference", "--profile", "smoke", "--readme", str(readme)]
    # A run from before the notebooks saved their test predictions: `collect` makes them with its model.
    saved = root / "outputs" / SMOKE_RUNS[1] / "predictions.npy"
    kept_aside = saved.read_bytes()
    saved.unlink()
    try:
        collected = subprocess.run(command[:3] + ["collect"] + command[3:], cwd=root, capture_output=True, text=True)
    finally:
        saved.write_bytes(kept_aside)
    assert collected.returncode == 0 and f"{len(SMOKE_RUNS)} runs copied" in collected.stdout, collected.stderr
    made = np.load(results / SMOKE_RUNS[1] / "predictions.npy")  # by the model that `model.h5` reloads: the
    precision = json.loads((results / SMOKE_RUNS[1] / "run.json").read_text())["results"]["precision"]
    assert int(np.sum(made != np.load(saved))) <= flips(precision)  # notebook's, but for sums in another order
    for key in SMOKE_RUNS:
        entry = json.loads((results / key / "run.json").read_text())
        # The assignment's runs (and the precision study's, Q1's) keep their model, report, figures and examples;
        # the others what redraws them.
        delivered = {"model.h5", "predictions.npy", "report.html", "curves.png", "confusion.png", "examples"}
        assert set(os.listdir(results / key)) == {"run.json", "history.csv"} | (
            delivered if key.startswith(("q1/", "q2/", "q3/", "precision/")) else set())
        assert entry["provenance"]["cpu_flags"] == entry["results"]["cpu_flags"]
        record = json.loads((root / "outputs" / key / "record.json").read_text())
        assert entry["settings"] == record["settings"] and entry["results"] == record["results"]
        if key != SMOKE_RUNS[1] and (results / key / "predictions.npy").exists():
            assert (results / key / "predictions.npy").read_bytes() == (root / "outputs" / key / "predictions.npy")\
                .read_bytes()
        assert entry["provenance"]["backend"] == os.environ.get("KERAS_BACKEND", "tensorflow")
        assert "cores" in entry["provenance"]["device"] and entry["provenance"]["finished"]
        assert "commit" in entry["provenance"]  # None here: the copy of the project is not a git checkout
    import h5py

    import resnet_keras as rk

    q1_results = json.loads((results / SMOKE_RUNS[0] / "run.json").read_text())["results"]
    for key in SMOKE_RUNS[:2]:  # the committed model: no optimizer state, the same predictions as the run's
        with h5py.File(results / key / "model.h5") as slim, h5py.File(root / "outputs" / key / "model.h5") as full:
            assert "optimizer_weights" not in slim and "training_config" not in slim.attrs
            assert "model_weights" in slim and set(slim.attrs) <= set(full.attrs)
        x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
        ours, theirs = (rk.load_h5(str(folder / key / "model.h5")).predict(x, verbose=0)
                        for folder in (results, root / "outputs"))
        assert abs(ours - theirs).max() == 0
    # `make reports`: today's notebook redraws a committed run's report from its model and history, training
    # nothing; the run's own files stay as they were.
    key = SMOKE_RUNS[0]
    kept = {name: (results / key / name).read_bytes() for name in ("model.h5", "history.csv", "run.json")}
    old_report = (results / key / "report.html").read_text()
    redrawn = subprocess.run(command[:3] + ["redraw", "--only", key] + command[3:], cwd=root, capture_output=True,
                             text=True)
    assert redrawn.returncode == 0 and f"redrew {key}" in redrawn.stdout, redrawn.stderr
    assert {name: (results / key / name).read_bytes() for name in kept} == kept
    report = (results / key / "report.html").read_text()
    assert report != old_report and "this report redrawn on" in report and "without training" in report
    assert f"recorded where it trained (redrawn report)</td>\n<td>{100 * q1_results['test_accuracy']:.2f}%" in report
    epochs = pd.read_csv(results / key / "history.csv")
    assert f"<td>{100 * epochs['val_accuracy'].iloc[-1]:.2f}%</td>" in report  # the log is the committed history's
    again = subprocess.run(command[:3] + ["collect"] + command[3:], cwd=root, capture_output=True, text=True)
    assert again.returncode == 0 and "0 runs copied" in again.stdout, again.stderr  # nothing finished since
    assert (results / key / "report.html").read_text() == report  # the redrawn report stays
    shutil.rmtree(results / "paper" / "plain-20-seed1")  # one seed of plain-20 has no reference
    drawn = subprocess.run(command[:3] + ["draw"] + command[3:], cwd=root, capture_output=True, text=True)
    assert drawn.returncode == 0, drawn.stderr
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n<!-- reference-results -->\n") and text.endswith("after\n")
    assert "hand-written" not in text and "(`params/study_paper.yaml`, `make studies`: 3 of 4 runs" in text
    errors = [100 * (1 - json.loads((results / f"paper/resnet-20-seed{s}/run.json").read_text())["results"]
                     ["test_accuracy"]) for s in (0, 1)]
    mean, std = sum(errors) / 2, abs(errors[0] - errors[1]) / 2 ** 0.5
    bar = f"{'yes' if abs(mean - 8.75) <= 0.3 else 'no'} ({mean - 8.75:+.2f})"  # the paper's figure; akamaster's
    assert f"| ResNet-20 | 2 of 2 | **{mean:.2f} +- {std:.2f}** | {min(errors):.2f} | 8.75 | 8.27 | {bar} |" in text
    assert "| plain-20 | 1 of 2 |" in text and "| plain-20 | 1 of 2 |" in (results / "README.md").read_text()
    assert "| paper |" not in (results / "README.md").read_text()  # not listed again as "not yet at full length"
    assert "He et al. (2015), *Deep Residual Learning for Image Recognition*, Table 6" in text
    assert "Not yet at full length" not in text  # the README stays short: that table is results/README.md's
    for figure in ("error_vs_depth.png", "plain_vs_residual.png"):
        link = os.path.join(os.path.relpath(results, readme.parent), "paper", figure)  # from the README's folder
        assert f"({link})" in text and (results / "paper" / figure).stat().st_size > 1000
    assert (results / "README.md").read_text().count("(paper/error_vs_depth.png)") == 1
    # The assignment first: each run's figures and report, Q1 beside the original write-up, Q2's curves, Q3's note.
    prefix = os.path.relpath(results, readme.parent)
    q1 = json.loads((results / SMOKE_RUNS[0] / "run.json").read_text())["results"]
    assert text.index("**The assignment**") < text.index("**The paper's CIFAR-10 table**")
    last5 = pd.read_csv(results / SMOKE_RUNS[0] / "history.csv")["val_accuracy"].tail(5).mean()
    seed = json.loads((results / SMOKE_RUNS[0] / "run.json").read_text())["settings"]["seed"]
    assert (f"| Q1 | CIFAR-10 | ResNet-8 | Adam | 16 | {q1['precision']} | 1 of 1 | "
            f"**{100 * q1['test_accuracy']:.2f}%** | {100 * q1['best_test_accuracy']:.2f}% | "
            f"{100 * q1['best_val_accuracy']:.2f}% | {100 * last5:.2f}% | {q1['epoch_time_s']:.0f} s* | "
            f"[seed {seed}]({prefix}/{SMOKE_RUNS[0]}/report.html) |") in text  # an earlier test may set another seed
    every_seed = (results / "README.md").read_text()
    assert f"| [{SMOKE_RUNS[0]}]({SMOKE_RUNS[0]}/) | {q1['precision']} | {100 * q1['test_accuracy']:.2f}% | " \
        in every_seed
    assert f"* {q1['device']}, {q1['backend']}, {q1['precision']}; CPU flags: " in text
    assert "which states about 80% validation accuracy after 20 epochs" in text
    assert (results / "q2" / "val_accuracy_cifar10.png").stat().st_size > 1000
    assert f"({prefix}/q2/val_accuracy_cifar10.png)" in text and "`make sweep ONLY=q3_transfer`" in text
    # Q3 in words: each run's test accuracy and what fine-tuning did, against Q2's training from scratch.
    q3 = {k: json.loads((results / k / "run.json").read_text()) for k in SMOKE_RUNS if k.startswith("q3/")}
    own = q3["q3/cifar10-adam-own-base"]
    bases = {e["results"]["weights"] for e in q3.values()}  # numbered in the table, each told once below it
    assert len(bases) == 2 and "\nBases: (1) " in text and all(text.count(base) == 1 for base in bases), text
    tuned = pd.read_csv(results / "q3/cifar10-adam-own-base/history.csv")["val_accuracy"]
    assert own["settings"]["fine_tune_epochs"] == 1 and len(tuned) == own["settings"]["epochs"] + 1
    scratch = 100 * json.loads((results / SMOKE_RUNS[1] / "run.json").read_text())["results"]["test_accuracy"]
    best = 100 * max(e["results"]["test_accuracy"] for e in q3.values())
    line = next(line for line in text.splitlines() if line.startswith("- **Q3 on CIFAR-10**"))
    assert line.startswith(f"- **Q3 on CIFAR-10** ({len(q3)} runs, one seed), test accuracy: "), line
    assert (f"Adam head, then 1 epoch of fine-tuning: {100 * own['results']['test_accuracy']:.2f}%, validation "
            f"{100 * tuned.iloc[-2]:.2f}% after the head's 1 epoch and {100 * tuned.iloc[-1]:.2f}% after "
            f"fine-tuning") in line, line
    rate = own["settings"]["fine_tune_learning_rate"]  # the one run that fine-tunes
    assert (f"Fine-tuning the top of the base changed validation accuracy over the head alone by "
            f"{100 * (tuned.iloc[-1] - tuned.iloc[-2]):+.2f} points with Adam; each fine-tuned at learning rate "
            f"{rate:g}: 1/{own['settings']['learning_rate'] / rate:.3g} of the head's for Adam.") in line, line
    assert line.endswith(f"its configurations scored {scratch:.2f}-{scratch:.2f}%: the best transfer run is "
                         f"{abs(best - scratch):.2f} points {'above' if best >= scratch else 'below'} the best of "
                         f"them."), line
    code, out = sweep(root)  # nothing to run; the index now draws the runs over their references
    assert code == 0 and "] start" not in out, out
    index = (root / "outputs" / "index.html").read_text()
    questions = len({key.split("/")[0] for key in SMOKE_RUNS})
    assert index.count("Against the reference results") == questions
    with serve(root / "outputs") as base:
        driver = chromium() if shutil.which("chromium") and shutil.which("chromedriver") else None
        if driver is not None:
            try:
                driver.get(base + "index.html")
                loaded = driver.execute_script("return Array.from(document.images).filter(i => "
                                               "i.src.endsWith('against_reference.png')).map(i => i.naturalWidth)")
                assert len(loaded) == questions and all(width > 0 for width in loaded), loaded
            finally:
                driver.quit()
    shutil.rmtree(results)


@contextlib.contextmanager
def serve(folder):
    """`folder` over HTTP on a free local port; yields the base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()


@requires_chromium
def test_index_opens_in_a_browser_without_broken_links_or_images(project):
    root, _ = project
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root / "outputs"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    driver = chromium()
    try:
        pages = [base + "index.html", base + SMOKE_RUNS[0] + "/report.html"]
        links, titles = set(), []
        for page in pages:
            driver.get(page)
            titles.append(driver.title)
            images = driver.execute_script(
                "return Array.from(document.images).map(i => [i.src.slice(0, 60), i.complete && i.naturalWidth > 0])")
            assert images, f"{page} shows no images"
            assert all(ok for _, ok in images), f"broken images on {page}: {images}"
            links |= set(driver.execute_script("return Array.from(document.links).map(a => a.href)"))
        assert titles == ["ResNet experiments", SMOKE_RUNS[0]]
        local = sorted(link for link in links if link.startswith(base))
        assert len(local) >= 5 * len(SMOKE_RUNS)
        for link in local:
            with urllib.request.urlopen(link) as response:
                assert response.status == 200, link
    finally:
        driver.quit()
        server.shutdown()


def test_a_sweep_on_another_backend_reruns_its_runs_there_and_records_it(project):
    """`make sweep BACKEND=torch` computes on Keras' PyTorch backend: runs finished on the test pass's backend are
    not reused, and each run's record names the backend it ran on. (Last here: it replaces Q1's run.)"""
    root, _ = project
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    other = "torch" if backend != "torch" else "tensorflow"
    rerun = [key for key in SMOKE_RUNS if key.startswith("q1/")]
    for key in SMOKE_RUNS:
        assert json.loads((root / "outputs" / key / "record.json").read_text())["results"]["backend"] == backend
    proc = make_sweep(root, "ONLY=q1_scratch", f"BACKEND={other}")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert f"1 run to do on {other}" in out and len(rerun) == 1 and "up to date  " not in out
    for key in SMOKE_RUNS:
        record = json.loads((root / "outputs" / key / "record.json").read_text())
        assert record["results"]["backend"] == (other if key in rerun else backend), key
