"""Publishing a run for the Hugging Face Hub: the folder, its model and card, its Space in Chromium, the upload's
one-line failures. (`make publish` on a run of the smoke sweep: tests/test_sweep.py.)"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import chromium, requires_chromium

import resnet_keras as rk
from resnet_keras import products
from resnet_keras.models import plain_keras_model
from resnet_keras.share.publish import HUB, main

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def randomise_batch_norm(model, seed=0):
    """Batch-norm statistics and affine parameters away from 0/1, so that a conversion that drops them shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.1, c), rng.normal(0, 0.1, c),
                               rng.uniform(0.5, 1.5, c)])
    return model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run as the sweep leaves it (ResNet-20 with option-A shortcuts), published without a repository."""
    folder = tmp_path_factory.mktemp("outputs") / "paper" / "resnet-20-seed0"
    folder.mkdir(parents=True)
    rk.set_seed(0)
    rk.save_h5(randomise_batch_norm(rk.build_model("resnet", 20, shortcut="zero_pad")), str(folder / "model.h5"))
    (folder / "results.json").write_text(json.dumps({"model": "resnet20", "test_accuracy": 0.9141,
                                                     "class_names": CLASSES}))
    (folder / "record.json").write_text(json.dumps({"status": "ok", "settings": {
        "dataset": "cifar10", "family": "resnet", "depth": 20, "shortcut": "zero_pad", "epochs": 164,
        "optimizer": "sgd", "learning_rate": 0.1, "seed": 0}}))
    (folder / "history.csv").write_text("epoch,accuracy\n1,0.5\n")
    (folder / ".hub.tmp-killed").mkdir()  # left by a publish killed half-way
    pixels = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    rk.report.write_examples(str(folder / "examples"), pixels, np.array([0, 1, 2, 3]), CLASSES)
    assert main([str(folder)]) == 0
    return folder


def pixels(n=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3)).astype("float32")


@pytest.mark.backend
def test_published_model_is_plain_keras_and_predicts_what_the_runs_model_predicts(run):
    hub = run / HUB
    assert {"config.json", "metadata.json", "model.weights.h5"} <= set(os.listdir(hub))  # Keras' hf:// layout
    assert "resnet_keras" not in (hub / "config.json").read_text()  # no layer of this package: Keras alone loads it
    published = keras.saving.load_model(str(hub))
    # Channels last whichever backend published it: the layout every backend runs.
    assert {layer.data_format for layer in published.layers if hasattr(layer, "data_format")} == {"channels_last"}
    np.testing.assert_allclose(published.predict(pixels(), verbose=0),
                               rk.load_h5(str(run / "model.h5")).predict(pixels(), verbose=0), rtol=1e-5, atol=1e-6)
    assert json.loads((hub / "labels.json").read_text()) == CLASSES
    assert not [name for name in os.listdir(run) if name.startswith(".")]  # no temporary folder stays behind


@pytest.mark.backend
def test_package_layers_become_keras_layers_computing_the_same():
    """Option-A shortcuts, our BatchNorm and the ResNet-50 preprocessing, also inside a nested model."""
    rk.set_seed(1)
    inner = randomise_batch_norm(rk.build_model("resnet", 8, shortcut="zero_pad"), seed=1)
    x = keras.Input((32, 32, 3))
    outer = keras.Model(x, inner(keras.layers.Resizing(32, 32)(rk.layers.CaffePreprocess()(x))))
    plain = plain_keras_model(outer)
    layers = [layer for model in (plain, plain.layers[-1]) for layer in model.layers]
    assert all(type(layer).__module__.startswith("keras.") for layer in layers)
    assert sum(type(layer).__name__ == "BatchNormalization" for layer in layers) == 7
    np.testing.assert_allclose(plain.predict(pixels(), verbose=0), outer.predict(pixels(), verbose=0),
                               rtol=1e-5, atol=1e-6)
    assert plain.count_params() - outer.count_params() == 3 * 3 + 3 + 16 * 32 + 32 * 64  # the frozen 1x1 kernels
    assert rk.count_params(plain) == rk.count_params(outer)  # trainable: the same


def test_card_metadata_parses_with_the_test_accuracy_and_the_papers_figure_beside_it(run):
    from huggingface_hub import ModelCard

    card = ModelCard.load(run / HUB / "README.md")
    assert card.data.library_name == "keras" and card.data.pipeline_tag == "image-classification"
    assert card.data.datasets == ["uoft-cs/cifar10"] and "resnet" in card.data.tags
    [result] = card.data.eval_results
    assert (result.dataset_type, result.dataset_split, result.metric_type, result.metric_value) == (
        "uoft-cs/cifar10", "test", "accuracy", 0.9141)
    assert "| this model | 0.9141 | 8.59% |" in card.text
    assert "| He et al. (2015), table 6 | 0.9125 | 8.75% |" in card.text
    assert "| `learning_rate` | `0.1` |" in card.text and "![learning curves]" not in card.text  # no curves.png here
    space = ModelCard.load(run / HUB / "space" / "README.md")
    assert space.data.sdk == "gradio" and space.data.app_file == "app.py"


@requires_chromium
def test_space_app_starts_and_classifies_an_example_in_chromium(run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from resnet_keras.share.app import read_image, top_k

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    space = run / HUB / "space"
    env = {**os.environ, "PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    app = subprocess.Popen([sys.executable, "app.py"], cwd=space, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 120
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert app.poll() is None and time.time() < deadline, app.communicate()[0] if app.poll() else "timeout"
            time.sleep(0.5)
        driver = chromium()
        try:
            driver.get(f"http://127.0.0.1:{port}/")
            wait = WebDriverWait(driver, 60)
            examples = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "button.gallery-item") or None)
            assert len(examples) == 4
            examples[2].click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "img"))
            buttons = [b for b in driver.find_elements(By.TAG_NAME, "button") if b.text.strip() == "Submit"]
            buttons[0].click()
            rows = wait.until(lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, ".confidence-set")] or None)
        finally:
            driver.quit()
    finally:
        app.terminate()
        app.wait(30)
    example = (space / "examples" / "02-bird.png").read_bytes()
    model = rk.load_h5(str(run / "model.h5"))
    expected = top_k(model.predict(read_image(example, (32, 32)), verbose=0)[0], CLASSES)
    assert [row.split("\n")[0] for row in rows] == [p["class"] for p in expected], rows


def copy_run(run, tmp_path):
    copy = tmp_path / "paper" / run.name
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(HUB))
    return copy


def test_upload_without_a_token_says_so_in_one_line_and_leaves_the_folder(run, monkeypatch, capsys, tmp_path):
    import huggingface_hub.constants

    run = copy_run(run, tmp_path)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-tokens"))
    assert main([str(run), "--repo", "someone/resnet20"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "publish: no Hugging Face token: set HF_TOKEN or run `hf auth login`" in err, err
    assert (run / HUB / "config.json").is_file()
    assert "hf://someone/resnet20" in (run / HUB / "README.md").read_text()  # the card names the repository


def test_upload_without_network_says_so_in_one_line(run, monkeypatch, capsys, tmp_path):
    import huggingface_hub.constants

    run = copy_run(run, tmp_path)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    assert main([str(run), "--repo", "someone/resnet20"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "publish: the upload to someone/resnet20 failed (" in err, err
    assert "the folder is ready in" in err and (run / HUB / "model.weights.h5").is_file()


@pytest.mark.parametrize("args,message", [
    (["--repo", "not a repo"], "REPO='not a repo' is not accepted; use a Hugging Face repository id user/name"),
    (["--repo", "a/b/c"], "REPO='a/b/c' is not accepted"),
])
def test_bad_repository_ids_are_refused_before_anything_is_written(tmp_path, capsys, args, message):
    assert main(["paper/nothing", "--outputs", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err
    assert not os.listdir(tmp_path)


def test_unknown_and_unfinished_runs_are_named(tmp_path, capsys):
    assert main(["paper/nothing", "--outputs", str(tmp_path)]) == 2
    assert "run 'paper/nothing' has no folder" in capsys.readouterr().err
    (tmp_path / "paper" / "half").mkdir(parents=True)
    (tmp_path / "paper" / "half" / products.MODEL).write_bytes(b"")
    assert main(["paper/half", "--outputs", str(tmp_path)]) == 2
    assert "has not finished: it needs model.h5 and results.json" in capsys.readouterr().err
    assert os.listdir(tmp_path / "paper" / "half") == [products.MODEL]  # nothing written
