"""A finished run is redone only when something that can change its result changed, and the sweep says why.

The sweep runs in a copy of the project with its own copy of the package (`copy_project(package=True)`), which
the tests edit: a comment, a docstring or a new function changes no result, code does, and only in the runs that
executed it.
"""

import subprocess
import sys

import pytest
import yaml
from conftest import copy_project

pytestmark = pytest.mark.slow
Q1 = "q1/cifar10-resnet8-adam"
Q3 = ["q3/cifar10-rmsprop-none", "q3/cifar10-sgd-none"]  # these two execute resnet_keras.transfer; Q1 does not


def sweep(root, *args):
    proc = subprocess.run([sys.executable, "-m", "resnet_keras.sweep", "--profile", "smoke", "--only", "q1_scratch",
                           "q3_transfer", *args], cwd=root, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def edit(root, module, old, new):
    path = root / "resnet_keras" / module
    text = path.read_text()
    assert old in text, (module, old)
    path.write_text(text.replace(old, new, 1))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A project with its own package, after a smoke sweep of Q1 and Q3 (three runs)."""
    from resnet_keras.data import write_tiny_cifar

    root = copy_project(tmp_path_factory.mktemp("project"), package=True)
    write_tiny_cifar(str(root / "outputs" / ".tiny-cifar"))
    out = sweep(root)
    assert out.count("] ok ") == 3, out
    return root


def test_comments_docstrings_new_functions_and_other_modules_leave_finished_runs_up_to_date(project):
    edit(project, "training.py", "\nimport ", "\n# a comment that changes nothing\nimport ")
    edit(project, "checkpoint.py", '"""What keeps a long run safe', '"""What keeps a long, long run safe')
    edit(project, "transfer.py", "\n\n\ndef ", "\n\n\n\ndef ")  # formatting only
    edit(project, "share/app.py", "\nimport ", "\nUNUSED_BY_RUNS = 1\nimport ")  # code, but no run executes the demo
    edit(project, "models.py", "\n\n\ndef ", "\n\n\ndef a_new_function():\n    return 1\n\n\ndef ")  # no run called it
    planned = sweep(project, "--dry-run")
    assert all(f"up to date  {key}" in planned for key in [Q1, *Q3]), planned
    out = sweep(project)
    assert out.count("up to date  ") == 3 and "] start" not in out, out


def test_a_code_edit_reruns_exactly_the_runs_that_executed_it_and_says_why(project):
    edit(project, "transfer.py", "\nimport ", "\nCHANGED = 1\nimport ")
    planned = sweep(project, "--dry-run")
    assert f"up to date  {Q1}" in planned, planned
    for key in Q3:
        assert f"to run      {key}: code changed in resnet_keras.transfer; about " in planned, planned
    assert "] start" not in planned and "2 runs to do" in planned
    out = sweep(project)
    assert f"up to date  {Q1}" in out and all(f"ok     {key}" in out for key in Q3), out


def test_the_dry_run_names_changed_parameters_and_new_runs(project):
    path = project / "params" / "q1_scratch.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["profiles"]["smoke"]["learning_rate"] = 0.002
    path.write_text(yaml.safe_dump(spec))
    planned = sweep(project, "--dry-run")
    assert f"to run      {Q1}: parameters changed: learning_rate 0.001 -> 0.002; about " in planned, planned
    assert "] start" not in planned
    assert '"learning_rate": 0.001' in (project / "outputs" / Q1 / "record.json").read_text()  # nothing ran
    (project / "outputs" / Q3[0] / "record.json").unlink()  # as if it had never run
    (project / "outputs" / Q3[0] / ".plan.json").unlink()
    assert f"to run      {Q3[0]}: new; about " in sweep(project, "--dry-run")
