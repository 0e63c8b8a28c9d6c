"""The committed results keep their word: each committed model, loaded from `results/`, predicts on the real test
set what its run recorded (run when the data is on this machine, as it is in CI).

A committed model comes with `predictions.npy`, the class it predicted for each of the 10,000 test images (saved by
its notebook; for runs from before that, made once by `make reference` after checking that they count the test
accuracy the run recorded). The test checks that those predictions count the recorded test accuracy, and that the
model, evaluated here on 1,000 of the test images (the first of each class), predicts them image by image. That
costs a ninth of the whole test set (a Q2 ResNet-44 on TensorFlow: 3.7 s against 33.1 s, 2-core AMD EPYC with AVX2,
2026-12-07), which matters once every committed seed brings a model.

Each model is checked on the backend that trained it, where the same kernels make the same sums; `make test` runs
this file on every backend. On the others, the smallest committed model is checked the same way: the models are all
of one family, so it shows that a model trained on one backend loads and predicts on another, as the demo does.

One exception: on a CPU without bfloat16 instructions, a model that computes in mixed bfloat16 is checked on
TensorFlow, whatever trained it. PyTorch emulates bfloat16 convolutions there at a seventh of TensorFlow's speed (the
Q2 ResNet-44 on the test set: 186 s on PyTorch, 28 s on TensorFlow, 37 s on JAX; all three within 2 images of the
recorded 8,464; 2-core AMD EPYC with AVX2 and no AVX-512, 2026-12-07), and a bfloat16 model's tolerance already
covers another backend's order of sums.
"""

import glob
import json
import os
import pathlib

import keras
import numpy as np
import pytest
from conftest import REPO, chromium, real_data_dir, requested_urls, requires_chromium, requires_real_data

import resnet_keras as rk
from resnet_keras.catalog import resolve_precision
from resnet_keras.cpu import cpu_flags
from resnet_keras.summary.reference import flips


def _committed():
    """{run: its run.json} for each committed run with a model, `question/run` as the sweep names it."""
    runs = {}
    for path in sorted(glob.glob(os.path.join(REPO, "results", "*", "*", "model.h5"))):
        folder = os.path.dirname(path)
        with open(os.path.join(folder, "run.json")) as f:
            runs[os.path.relpath(folder, os.path.join(REPO, "results"))] = json.load(f)
    return runs


NATIVE_BF16 = resolve_precision("auto", gpu=False, backend="torch", cpu_flags=cpu_flags()) == "mixed_bfloat16"


def _checked_on(entry):
    """The backend whose pass checks this committed run in full (see the module's docstring)."""
    if "bfloat16" in (entry["results"].get("precision") or "") and not NATIVE_BF16:
        return "tensorflow"
    return entry["provenance"]["backend"]


COMMITTED = _committed()
SMALLEST = min(COMMITTED, key=lambda run: COMMITTED[run]["results"]["params"], default=None)
CHECKED_HERE = [run for run, entry in COMMITTED.items() if _checked_on(entry) == keras.backend.backend()
                or run == SMALLEST]


SUBSET = 1000  # test images each model predicts again here: the first of each class


@requires_real_data
@pytest.mark.slow
@pytest.mark.backend
@pytest.mark.parametrize("run", CHECKED_HERE)
def test_a_committed_model_predicts_the_test_classes_its_run_recorded(run):
    entry = COMMITTED[run]
    s, recorded = entry["settings"], entry["results"]
    data = rk.load_dataset(s.get("dataset", "cifar10"), real_data_dir(), label_mode=s.get("label_mode", "fine"),
                           test_per_class=s.get("test_per_class"))
    predictions = np.load(os.path.join(REPO, "results", run, "predictions.npy"))
    assert predictions.shape == data.y_test.shape, (run, predictions.shape)
    # Evaluated again, the same weights and images may differ only by float sums in another order, which can flip
    # an image whose two best classes tie to rounding: two images in float32, ten in mixed bfloat16 (`flips`).
    tolerance = flips(recorded.get("precision"))
    right = int(np.sum(predictions == data.y_test))
    assert abs(right - round(recorded["test_accuracy"] * len(data.y_test))) <= tolerance, (run, right)
    classes = np.unique(data.y_test)
    subset = np.sort(np.concatenate([np.flatnonzero(data.y_test == c)[:SUBSET // len(classes)] for c in classes]))
    model = rk.load_h5(os.path.join(REPO, "results", run, "model.h5"))
    here = rk.evaluate(model, data.x_test[subset], data.y_test[subset])["predictions"]
    assert len(subset) == SUBSET and int(np.sum(here != predictions[subset])) <= tolerance, run
    assert recorded["test_accuracy"] > 0.2  # a trained model, not a placeholder


def test_every_committed_model_is_checked_on_one_backend_against_its_predictions():
    backends = {_checked_on(entry) for entry in COMMITTED.values()}
    assert backends <= {"tensorflow", "jax", "torch"}, backends  # each has a pass in `make test`
    assert all(entry["results"]["params"] > 0 for entry in COMMITTED.values())
    missing = [run for run in COMMITTED if not os.path.isfile(os.path.join(REPO, "results", run, "predictions.npy"))]
    assert not missing, (f"committed models without predictions.npy (`python -m resnet_keras.summary.reference "
                         f"predict` writes them): {missing}")


REPORTS = sorted(os.path.relpath(path, os.path.join(REPO, "results"))
                 for path in glob.glob(os.path.join(REPO, "results", "*", "*", "report.html")))


@requires_chromium
def test_every_committed_report_reads_offline_as_a_finished_write_up():
    """Each committed report in Chromium with the network off: it requests nothing but itself, shows every
    figure, holds the template's parts (setup table, captioned figures, what the run shows, every epoch) and is
    under 200 KB."""
    assert REPORTS, "no committed report"
    driver = chromium(log_requests=True)
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.emulateNetworkConditions", {"offline": True, "latency": 0,
                                                                    "downloadThroughput": -1, "uploadThroughput": -1})
        for report in REPORTS:
            path = os.path.join(REPO, "results", report)
            assert os.path.getsize(path) < 200_000, (report, os.path.getsize(path))
            url = pathlib.Path(path).as_uri()
            driver.get(url)
            assert requested_urls(driver) == [url], report  # the page itself, and nothing else
            images = driver.execute_script("return Array.from(document.images).map(i => i.complete && "
                                           "i.naturalWidth > 0)")
            assert len(images) >= 2 and all(images), (report, images)
            text = driver.execute_script("return document.body.innerText")
            headers = driver.execute_script("return Array.from(document.querySelectorAll('th'))"
                                            ".map(th => th.innerText.trim())")
            assert {"setting", "value", "epoch", "validation accuracy"} <= set(headers), (report, headers)
            for part in ("Figure 1.", "Figure 2.", "What this run shows.", "confusion matrix"):
                assert part.lower() in text.lower(), (report, part)
    finally:
        driver.quit()
