"""The Gradio demo: model discovery, image decoding, its API, and the page in headless Chromium."""

import io
import json
import os
import shutil
import socket

import numpy as np
import pytest
from conftest import REPO, chromium, copy_project, requires_chromium

import resnet_keras as rk
from resnet_keras.errors import ConfigError
from resnet_keras.share.app import build_demo, find_models, most_accurate, read_image, top_k

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def png(path=None, seed=0, size=(48, 40)):
    """A random RGB PNG (bytes, also written to `path` if given)."""
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    if path:
        with open(path, "wb") as f:
            f.write(buf.getvalue())
    return buf.getvalue()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """An outputs folder as the sweep leaves it: one run with model.h5, results.json and record.json, plus hidden
    clutter."""
    root = tmp_path_factory.mktemp("outputs")
    run = root / "q1" / "cifar10-resnet8-adam"
    run.mkdir(parents=True)
    rk.set_seed(0)
    rk.save_h5(rk.build_resnet(8), str(run / "model.h5"))
    pixels = np.random.default_rng(3).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    rk.report.write_examples(str(run / "examples"), pixels, np.array([3, 8, 3]), CLASSES)  # 00-cat, 01-ship
    (run / "results.json").write_text(json.dumps({"model": "resnet8", "test_accuracy": 0.4, "class_names": CLASSES}))
    (run / "record.json").write_text(json.dumps({"status": "ok", "settings": {"dataset": "cifar10", "depth": 8}}))
    (run / ".resume").mkdir()
    shutil.copy(run / "model.h5", run / ".resume" / "model.h5")  # resume state is not a trained model
    return root


@pytest.fixture(scope="module")
def server(outputs):
    """The app, launched as `make app` launches it, on a free local port; yields its URL."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = build_demo(str(outputs))
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def expected_top5(outputs, image, model_path=None, class_names=CLASSES):
    """The top 5 the model itself predicts for `image` (bytes): the user's run in `outputs`, or `model_path`."""
    model = rk.load_h5(str(model_path or outputs / "q1" / "cifar10-resnet8-adam" / "model.h5"))
    return top_k(model.predict(read_image(image, (32, 32)), verbose=0)[0], class_names)


def classify_an_example_on_the_page(url, index):
    """Open the page in Chromium, click the chosen model's example `index` and classify it; return (the examples'
    labels, the chosen model as the page shows it, the rows of the top 5)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = chromium()
    try:
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        examples = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#example-images button.gallery-item")
                              or None)
        labels = [e.text for e in examples]
        chosen = driver.find_element(By.CSS_SELECTOR, "#model input").get_attribute("value")
        examples[index].click()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image img"))
        driver.find_element(By.ID, "classify").click()
        rows = wait.until(lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, LABEL_ROWS)] or None)
    finally:
        driver.quit()
    return labels, chosen, rows


def classify(server, model, image_path):
    """The app's `classify` endpoint through Gradio's own client: (status, Label value or error text)."""
    from gradio_client import Client, handle_file

    try:
        return "ok", Client(server, verbose=False).predict(model, handle_file(str(image_path)), api_name="/classify")
    except Exception as e:  # the client raises AppError with the app's gr.Error message
        return "error", str(e)


def test_models_are_found_with_their_run_records(outputs):
    models = find_models(str(outputs))
    assert list(models) == ["q1/cifar10-resnet8-adam"]
    assert models["q1/cifar10-resnet8-adam"]["class_names"] == CLASSES
    assert models["q1/cifar10-resnet8-adam"]["dataset"] == "cifar10"  # from the sweep's record of the run's settings
    assert [(os.path.basename(p), c) for p, c in models["q1/cifar10-resnet8-adam"]["example_images"]] == [
        ("00-cat.png", "cat"), ("01-ship.png", "ship")]


@pytest.fixture(scope="module")
def results(tmp_path_factory, outputs):
    """A results folder as `make reference` leaves it: one committed Q1 run, more accurate than the user's."""
    from resnet_keras.summary.reference import slim_h5

    root = tmp_path_factory.mktemp("results")
    run, own = root / "q1" / "cifar10-resnet20-adam", outputs / "q1" / "cifar10-resnet8-adam"
    run.mkdir(parents=True)
    slim_h5(str(own / "model.h5"), str(run / "model.h5"))
    shutil.copytree(own / "examples", run / "examples")
    (run / "run.json").write_text(json.dumps({"settings": {"dataset": "cifar10"}, "provenance": {},
                                              "results": {"model": "resnet8", "test_accuracy": 0.9,
                                                          "class_names": CLASSES}}))
    return root


def test_committed_models_come_after_the_users_own_and_the_most_accurate_is_chosen(outputs, results, tmp_path):
    models = find_models(str(outputs), str(results))
    assert list(models) == ["q1/cifar10-resnet8-adam", "results/q1/cifar10-resnet20-adam"]
    committed = models["results/q1/cifar10-resnet20-adam"]
    assert (committed["dataset"], committed["test_accuracy"], committed["class_names"]) == ("cifar10", 0.9, CLASSES)
    assert [os.path.basename(p) for p, _ in committed["example_images"]] == ["00-cat.png", "01-ship.png"]
    assert most_accurate(models) == "results/q1/cifar10-resnet20-adam"
    assert most_accurate({"a": {"test_accuracy": None}, "b": {"test_accuracy": 0.1}}) == "b"
    assert most_accurate({}) is None
    fresh = tmp_path / "no-outputs"  # a fresh clone: no outputs/ at all
    assert list(find_models(str(fresh), str(results))) == ["results/q1/cifar10-resnet20-adam"]
    build_demo(str(fresh), str(results))  # serves the committed models, no error


def test_images_of_any_size_become_one_rgb_batch():
    x = read_image(png(size=(300, 200)), (32, 32))
    assert x.shape == (1, 32, 32, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255


def test_top_k_is_sorted_and_named():
    top = top_k(np.array([0.1, 0.6, 0.3]), ["a", "b", "c"], k=2)
    assert top == [{"class": "b", "probability": 0.6}, {"class": "c", "probability": 0.3}]
    assert top_k(np.array([0.2, 0.8]), None)[0]["class"] == "class 1"


def test_api_classifies_an_upload_like_the_model_does(outputs, server, tmp_path):
    image = tmp_path / "image.png"
    png(str(image), seed=1)
    status, answer = classify(server, "q1/cifar10-resnet8-adam", image)
    assert status == "ok", answer
    expected = expected_top5(outputs, image.read_bytes())
    assert answer["label"] == expected[0]["class"]
    assert [c["label"] for c in answer["confidences"]] == [p["class"] for p in expected]
    np.testing.assert_allclose([c["confidence"] for c in answer["confidences"]],
                               [p["probability"] for p in expected], atol=1e-5)


@pytest.mark.parametrize("model,content,message", [
    ("q1/cifar10-resnet8-adam", b"not an image", "is not an image"),
    ("../../etc/passwd", None, "model='../../etc/passwd' is not accepted; use one of q1/cifar10-resnet8-adam"),
    ("q1/cifar10-resnet8-adam/.resume", None, "is not accepted"),
])
def test_bad_requests_get_one_line(server, tmp_path, model, content, message):
    path = tmp_path / "upload.png"
    path.write_bytes(png() if content is None else content)
    status, answer = classify(server, model, path)
    assert status == "error" and message in answer, answer


def test_missing_outputs_folder_is_named(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder; run `make sweep` first"):
        build_demo(str(tmp_path / "nothing"))


@requires_chromium
def test_page_uploads_an_image_and_shows_the_top5_in_chromium(outputs, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    image = tmp_path / "upload.png"
    png(str(image), seed=2)
    driver = chromium()
    try:
        driver.get(server)
        wait = WebDriverWait(driver, 60)
        upload = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "#image input[type=file]"))
        upload.send_keys(str(image))
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#image img"))  # the preview of the upload
        driver.find_element(By.ID, "classify").click()
        rows = wait.until(lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, LABEL_ROWS)] or None)
        chosen = driver.find_element(By.CSS_SELECTOR, "#model input").get_attribute("value")
    finally:
        driver.quit()
    expected = expected_top5(outputs, image.read_bytes())
    shown = [row.split("\n") for row in rows]
    assert [r[0] for r in shown] == [p["class"] for p in expected], rows
    assert [r[-1] for r in shown] == [f"{round(100 * p['probability'])}%" for p in expected], rows
    assert chosen.startswith("q1/cifar10-resnet8-adam (cifar10, test accuracy 0.400)")


LABEL_ROWS = "#predictions .confidence-set"  # one row per class in Gradio's Label: its name, then its percentage


@requires_chromium
def test_page_classifies_a_test_image_of_the_models_data_set_clicked_among_its_examples(outputs, server):
    labels, _, rows = classify_an_example_on_the_page(server, 1)
    assert labels == ["cat", "ship"]  # the run's examples, labelled by their class
    example = outputs / "q1" / "cifar10-resnet8-adam" / "examples" / "01-ship.png"
    expected = expected_top5(outputs, example.read_bytes())
    assert [row.split("\n")[0] for row in rows] == [p["class"] for p in expected], rows


COMMITTED_Q1 = os.path.join(REPO, "results", "q1", "cifar10-resnet20-adam-seed0")


@requires_chromium
@pytest.mark.skipif(not os.path.isfile(os.path.join(COMMITTED_Q1, "model.h5")),
                    reason="results/ holds no committed Q1 model yet (make reference adds it after a full-length run)")
def test_make_app_on_a_fresh_clone_serves_the_committed_q1_model_and_classifies_its_examples(tmp_path):
    """`make app` in a checkout with no outputs/: the committed models are served, the most accurate chosen on the
    page, which classifies one of its test images as that model does; the committed Q1 model answers the API as
    the model itself does."""
    import subprocess
    import sys
    import time
    import urllib.request

    committed = find_models(str(tmp_path / "none"), os.path.join(REPO, "results"))
    q1 = "results/q1/cifar10-resnet20-adam-seed0"
    q1_example = committed[q1]["example_images"][0][0]
    root = copy_project(tmp_path)
    shutil.copytree(os.path.join(REPO, "results"), root / "results")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (root / ".venv-ready").touch()
    proc = subprocess.Popen(["make", "app", f"PORT={port}", f"PY={sys.executable}",
                             f"VENV={os.path.dirname(os.path.dirname(sys.executable))}",
                             f"STAMP={root / '.venv-ready'}"], cwd=root, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True,
                            env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, "make app did not start"
                time.sleep(1)
        assert not (root / "outputs").exists()
        _, chosen, rows = classify_an_example_on_the_page(url, 0)
        status, answer = classify(url, q1, q1_example)
    finally:
        os.killpg(proc.pid, 15)
        proc.wait()
    best = most_accurate(committed)
    assert chosen.startswith(f"{best} (cifar10") or chosen.startswith(f"{best} (cifar100"), (chosen, best)

    def top5(run_id, image_path):
        with open(image_path, "rb") as f:
            return expected_top5(None, f.read(), committed[run_id]["path"], committed[run_id]["class_names"])

    shown = top5(best, committed[best]["example_images"][0][0])
    assert [row.split("\n")[0] for row in rows] == [p["class"] for p in shown], rows
    assert status == "ok", answer
    assert [c["label"] for c in answer["confidences"]] == [p["class"] for p in top5(q1, q1_example)]
