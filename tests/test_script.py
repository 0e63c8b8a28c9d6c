"""A notebook as a plain script (`python -m resnet_keras.sweep.script`): the notebook's products, no kernel."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, copy_project

from resnet_keras import products
from resnet_keras.data import write_tiny_cifar
from resnet_keras.errors import ConfigError
from resnet_keras.sweep.script import execute, resolve

# What notebooks write into their run folder (each at least products.FROM_NOTEBOOK); the sweep adds FROM_SWEEP.
WRITTEN = {products.MODEL, products.BEST_MODEL, products.HISTORY, products.TENSORBOARD, products.CURVES,
           products.CONFUSION, products.EXAMPLES, products.PREDICTIONS, products.RESULTS}


def script(*args, cwd=REPO):
    proc = subprocess.run([sys.executable, "-m", "resnet_keras.sweep.script", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A copy of the project with the smoke profile's tiny data, where `make sweep PROFILE=smoke` would find it."""
    root = copy_project(tmp_path_factory.mktemp("project"))
    write_tiny_cifar(str(root / "outputs" / ".tiny-cifar"))
    return root


@pytest.mark.slow
@pytest.mark.parametrize("key", ["q1/cifar10-resnet8-adam", "q2/cifar10-resnet8-sgd-b32", "q3/cifar10-sgd-none",
                                 "paper/resnet-20-seed0"])
def test_each_notebook_runs_as_a_script_and_writes_its_products(project, key):
    """A smoke run of each notebook, as the sweep plans it, executed without a kernel."""
    code, out = script(key, "--profile", "smoke", cwd=project)
    assert code == 0, out
    folder = project / "outputs" / key
    written = {p for p in os.listdir(folder) if not p.startswith(".")} - {products.FINETUNE}
    # tests/test_sweep.py compares Q1's with papermill's
    assert set(products.FROM_NOTEBOOK) | {products.TENSORBOARD, products.EXAMPLES} <= written <= WRITTEN, out
    results = json.loads((folder / products.RESULTS).read_text())
    assert 0 <= results["test_accuracy"] <= 1 and results["epochs_trained"] == 1
    assert f"script: {os.path.join('notebooks', '')}" in out and "epoch 1/1" in out
    if key.startswith("q3/"):  # its notes, printed rather than rendered
        assert "ResNet-50 with random weights: accuracy here says nothing about transfer learning" in out


def test_parameters_are_set_after_the_parameters_cell(tmp_path):
    notebook = tmp_path / "nb.py"
    notebook.write_text('# %% [markdown]\n# # Title\n\n# %% tags=["parameters"]\nepochs = 3\nout_dir = "x"\n\n'
                        "# %%\nseen = (epochs, out_dir)\n")
    assert execute(str(notebook), {"epochs": 5, "out_dir": "y"})["seen"] == (5, "y")


@pytest.mark.parametrize("args,message", [
    (["paper/resnet-21"], "run 'paper/resnet-21' is not in the full profile's plan; use question/run"),
    (["notebooks/study.py"], "notebooks/study.py: --out-dir is needed"),
    (["notebooks/missing.py", "--out-dir", "x"], "notebook 'notebooks/missing.py' does not exist"),
    (["notebooks/study.py", "--out-dir", "x", "-p", "depth=21"], "depth=21 is not accepted for family"),
    (["notebooks/study.py", "--out-dir", "x", "-p", "epochs=0"], "epochs=0 is not accepted; use an integer >= 1"),
    (["notebooks/study.py", "--out-dir", "x", "-p", "epoch=2"], "parameter 'epoch' is unknown; accepted:"),
    (["notebooks/study.py", "--out-dir", "x", "-p", "epochs"], "-p 'epochs' is not accepted; use -p name=value"),
])
def test_bad_targets_and_parameters_are_refused_with_one_line_before_anything_runs(args, message):
    code, out = script(*args)
    lines = out.strip().splitlines()
    assert code == 2 and message in lines[-1], out
    assert len(lines) == 1 or lines[0].startswith("usage:")  # argparse's own errors follow the usage


def test_a_run_of_the_plan_gets_the_sweeps_parameters_and_folder():
    notebook, parameters = resolve("paper/resnet-110-seed2", "full", os.path.join(REPO, "params"), "out")
    assert notebook == "notebooks/study.py"
    assert parameters["seed"] == 2 and parameters["epochs"] == 164 and parameters["warmup"] == "constant"
    assert parameters["out_dir"] == os.path.join("out", "paper", "resnet-110-seed2")
    with pytest.raises(ConfigError, match="'out_dir' is set by the sweep"):
        resolve("notebooks/study.py", overrides={"out_dir": "x", "seed": 1}, out_dir="y")
