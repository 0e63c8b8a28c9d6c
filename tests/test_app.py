"""The inference web app: model discovery, image decoding, the JSON API, and the page in headless Chromium."""

import io
import json
import shutil
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

import resnet_keras as rk
from conftest import chromium, requires_chromium
from resnet_keras.app import find_models, make_server, read_image, top_k
from resnet_keras.errors import ConfigError

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
    (run / "results.json").write_text(json.dumps({"model": "resnet8", "test_accuracy": 0.4, "class_names": CLASSES}))
    (run / "record.json").write_text(json.dumps({"status": "ok", "settings": {"dataset": "cifar10", "depth": 8}}))
    (run / ".resume").mkdir()
    shutil.copy(run / "model.h5", run / ".resume" / "model.h5")  # resume state is not a trained model
    return root


@pytest.fixture(scope="module")
def server(outputs):
    srv = make_server(str(outputs), port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def expected_top5(outputs, image):
    model = rk.load_h5(str(outputs / "q1" / "cifar10-resnet8-adam" / "model.h5"))
    return top_k(model.predict(read_image(image, (32, 32)), verbose=0)[0], CLASSES)


def post(url, data):
    request = urllib.request.Request(url, data=data, method="POST")
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_models_are_found_with_their_run_records(outputs):
    models = find_models(str(outputs))
    assert list(models) == ["q1/cifar10-resnet8-adam"]
    assert models["q1/cifar10-resnet8-adam"]["class_names"] == CLASSES
    assert models["q1/cifar10-resnet8-adam"]["dataset"] == "cifar10"  # from the sweep's record of the run's settings


def test_images_of_any_size_become_one_rgb_batch():
    x = read_image(png(size=(300, 200)), (32, 32))
    assert x.shape == (1, 32, 32, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 255


def test_top_k_is_sorted_and_named():
    top = top_k(np.array([0.1, 0.6, 0.3]), ["a", "b", "c"], k=2)
    assert top == [{"class": "b", "probability": 0.6}, {"class": "c", "probability": 0.3}]
    assert top_k(np.array([0.2, 0.8]), None)[0]["class"] == "class 1"


def test_api_classifies_an_upload_like_the_model_does(outputs, server):
    image = png(seed=1)
    status, answer = post(f"{server}/api/predict?model=q1/cifar10-resnet8-adam", image)
    assert status == 200
    expected = expected_top5(outputs, image)
    assert [p["class"] for p in answer["top"]] == [p["class"] for p in expected]
    np.testing.assert_allclose([p["probability"] for p in answer["top"]],
                               [p["probability"] for p in expected], atol=1e-5)


@pytest.mark.parametrize("query,body,message", [
    ("model=q1/cifar10-resnet8-adam", b"not an image", "the upload (12 bytes) is not an image Pillow can read"),
    ("model=../../etc/passwd", png(), "model='../../etc/passwd' is not accepted; use one of q1/cifar10-resnet8-adam"),
    ("model=q1/cifar10-resnet8-adam/.resume", png(), "is not accepted"),
    ("model=q1/cifar10-resnet8-adam", b"", "no image in the request"),
])
def test_api_rejects_bad_requests_with_one_line(server, query, body, message):
    status, answer = post(f"{server}/api/predict?{query}", body)
    assert status == 400 and message in answer["error"] and "\n" not in answer["error"]


def test_missing_outputs_folder_is_named(tmp_path):
    with pytest.raises(ConfigError, match="is not a folder; run `make sweep` first"):
        make_server(str(tmp_path / "nothing"), port=0)


@requires_chromium
def test_page_uploads_an_image_and_shows_the_top5_in_chromium(outputs, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    image = tmp_path / "upload.png"
    png(str(image), seed=2)
    driver = chromium()
    try:
        driver.get(server + "/")
        wait = WebDriverWait(driver, 30)
        wait.until(lambda d: Select(d.find_element(By.ID, "model")).options)
        Select(driver.find_element(By.ID, "model")).select_by_value("q1/cifar10-resnet8-adam")
        driver.find_element(By.ID, "image").send_keys(str(image))
        wait.until(ec.element_to_be_clickable((By.ID, "classify"))).click()
        wait.until(ec.visibility_of_element_located((By.ID, "predictions")))
        rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")[:2]]
                for tr in driver.find_elements(By.CSS_SELECTOR, "#predictions tbody tr")]
        assert driver.execute_script("return document.getElementById('preview').naturalWidth") == 40
        status = driver.find_element(By.ID, "status").text
    finally:
        driver.quit()
    expected = expected_top5(outputs, image.read_bytes())
    assert [r[0] for r in rows] == [p["class"] for p in expected]
    assert [r[1] for r in rows] == [f"{100 * p['probability']:.1f}%" for p in expected]
    assert status == "Top 5 classes from q1/cifar10-resnet8-adam"
