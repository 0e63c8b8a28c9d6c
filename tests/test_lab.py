"""The notebooks in JupyterLab, in a real browser: started as `make lab` starts it, driven in headless Chromium."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import chromium, copy_project, requires_chromium

from resnet_keras import products
from resnet_keras.data import write_tiny_cifar
from resnet_keras.sweep.params import expand

pytestmark = [pytest.mark.slow, requires_chromium]
QUESTIONS = {"q1_scratch": "Q1: a CIFAR ResNet trained from scratch", "q2_grid": "Q2:",
             "q3_transfer": "Q3:", "study": "ResNet study: one network, trained and measured"}
TOKEN = "resnet-keras-test"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """`make lab` on a copy of the project (no browser, a free port, a known token); yields (root, base URL)."""
    root = copy_project(tmp_path_factory.mktemp("project"))
    (root / ".venv-ready").touch()
    write_tiny_cifar(str(root / "outputs" / ".tiny-cifar"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    venv = os.path.dirname(os.path.dirname(sys.executable))
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={TOKEN} --expose-app-in-browser"
    log = open(root / "lab.log", "w")
    proc = subprocess.Popen(["make", "lab", f"VENV={venv}", f"PY={sys.executable}", f"STAMP={root / '.venv-ready'}",
                             f"LAB_ARGS={args}"], cwd=root, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=5)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    log = (root / "lab.log").read_text()[-3000:]
                    raise AssertionError("JupyterLab did not start:\n" + log) from None
                time.sleep(1)
        yield root, url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def open_notebook(driver, url, name):
    """Open notebooks/<name>.ipynb in the lab; return once its kernel is idle."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{url}/lab/tree/{name}.ipynb?token={TOKEN}")
    wait = WebDriverWait(driver, 120, poll_frequency=0.5)
    wait.until(lambda d: d.execute_script(
        "const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        "return !!(w && w.context && w.context.isReady && w.sessionContext.session"
        " && w.sessionContext.session.kernel && w.sessionContext.session.kernel.status === 'idle'"
        f" && w.context.path.endsWith('{name}.ipynb'));"))
    return wait


@pytest.mark.parametrize("name", sorted(QUESTIONS))
def test_each_notebook_opens_with_its_tagged_parameters_cell_and_rendered_narrative(lab, browser, name):
    from selenium.webdriver.common.by import By

    _, url = lab
    open_notebook(browser, url, name)
    cells = browser.execute_script("return window.jupyterapp.shell.currentWidget.context.model.toJSON().cells;")
    tagged = [c for c in cells if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and tagged[0]["cell_type"] == "code"
    assert "out_dir = " in "".join(tagged[0]["source"])
    assert cells[0]["cell_type"] == "markdown"
    # The narrative is rendered as HTML by the lab, not shown as Markdown source.
    titles = [h.text for h in browser.find_elements(By.CSS_SELECTOR, ".jp-MarkdownCell .jp-RenderedMarkdown h1")]
    assert any(t.startswith(QUESTIONS[name]) for t in titles), titles
    assert browser.find_elements(By.CSS_SELECTOR, ".jp-MarkdownCell .jp-RenderedMarkdown h2")


def test_a_notebook_runs_to_its_end_with_smoke_parameters_in_the_labs_kernel(lab, browser, tmp_path):
    """Q1 with its smoke run's parameters, set in a cell after the parameters cell as papermill sets them, then
    Run All in the lab: every cell runs without error and the run's products appear."""
    root, url = lab
    run = expand(str(root / "params" / "q1_scratch.yaml"), "smoke", str(root))[0]
    out_dir = tmp_path / "q1"
    parameters = {**run.parameters, "data_dir": str(root / run.parameters["data_dir"]), "out_dir": str(out_dir)}
    source = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    from selenium.webdriver.support.ui import WebDriverWait

    open_notebook(browser, url, "q1_scratch")
    count = browser.execute_script(
        "const nb = window.jupyterapp.shell.currentWidget.content.model.sharedModel;"
        "const at = nb.cells.findIndex(c => (c.getMetadata('tags') || []).includes('parameters')) + 1;"
        "nb.insertCell(at, {cell_type: 'code', source: arguments[0], metadata: {tags: ['injected-parameters']}});"
        "window.jupyterapp.commands.execute('notebook:run-all-cells');"
        "return nb.cells.length;", source)
    code_cells = ("window.jupyterapp.shell.currentWidget.content.model.sharedModel.cells"
                  ".filter(c => c.cell_type == 'code')")
    WebDriverWait(browser, 600, poll_frequency=1).until(lambda d: d.execute_script(
        f"const cells = {code_cells}; const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;"
        "return k.status === 'idle' && cells.every(c => c.execution_count !== null)"
        " || cells.some(c => c.outputs.some(o => o.output_type === 'error'));"))
    errors = browser.execute_script(
        f"return {code_cells}.flatMap(c => c.outputs.filter(o => o.output_type === 'error')"
        ".map(o => o.ename + ': ' + o.evalue));")
    assert not errors, errors
    # Streams carry `text`; tables and paragraphs are display data, read in every text form they carry.
    text = browser.execute_script(
        f"return {code_cells}.flatMap(c => c.outputs.map(o => [o.text || '']"
        ".concat(Object.values(o.data || {}).filter(v => typeof v === 'string' || Array.isArray(v))"
        ".map(v => [].concat(v).join(''))).join(''))).join('');")
    assert count > 10 and "test accuracy" in text and "epoch 1/1" in text, text[-2000:]
    for product in products.FROM_NOTEBOOK:
        assert (out_dir / product).is_file(), product
