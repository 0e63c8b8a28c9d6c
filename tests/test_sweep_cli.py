"""Bad sweep arguments stop at once with one line and leave nothing behind."""

import os

import pytest
from conftest import REPO

from resnet_keras.sweep import main


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)
    os.makedirs("outputs/.tiny-cifar", exist_ok=True)


@pytest.mark.parametrize("args,message", [
    (["--profile", "huge"], "profile='huge' is not accepted; use one of full, quick, smoke"),
    (["--jobs", "0"], "jobs='0' is not accepted; use an integer >= 1 or auto"),
    (["--only", "q9_nothing"], "only=['q9_nothing'] matches no params file"),
    (["--only", "q1_scratch", "--runs", "paper/*"], "runs='paper/*' matches no run of the selected params files"),
    (["--scheduler", "127.0.0.1"], "scheduler='127.0.0.1' is not accepted; use tcp://HOST:PORT of a running Dask "
                                   "scheduler, or local"),
])
def test_bad_arguments_exit_2_with_one_line(in_repo, tmp_path, capsys, args, message):
    outputs = tmp_path / "out"
    assert main([*args, "--outputs", str(outputs)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not outputs.exists()


def test_outputs_that_cannot_be_written_are_named(in_repo, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    assert main(["--profile", "smoke", "--outputs", str(blocker / "outputs")]) == 2
    err = capsys.readouterr().err
    assert f"outputs='{blocker}/outputs' is not writable" in err and "choose a writable folder" in err


def test_params_folder_without_files_is_named(in_repo, tmp_path, capsys):
    assert main(["--params", str(tmp_path), "--outputs", str(tmp_path / "out")]) == 2
    assert "no params files found" in capsys.readouterr().err


def test_run_start_removes_temporary_files_of_a_killed_attempt(tmp_path):
    import json

    from resnet_keras.sweep import execute_run
    from resnet_keras.sweep.params import Run

    run = Run("q", "r", "notebooks/missing.py", {}, "params/q.yaml")
    leftovers = [tmp_path / "q" / "r" / ".resume" / ".epoch-0003.tmp-x1.weights.h5",
                 tmp_path / "q" / "r" / ".history.tmp-x2.csv"]
    for path in leftovers:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    record = execute_run(run, str(tmp_path), "abc", root=str(tmp_path))
    assert record["status"] == "failed" and "missing.py" in record["error"]
    assert not any(path.exists() for path in leftovers)
    assert json.loads((tmp_path / "q" / "r" / "error.json").read_text())["hash"] == "abc"


def test_unreachable_scheduler_exits_2_with_one_line_before_anything_runs(in_repo, tmp_path, capsys):
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outputs = tmp_path / "out"
    address = f"tcp://127.0.0.1:{port}"
    assert main(["--profile", "smoke", "--only", "q1_scratch", "--outputs", str(outputs), "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sweep: scheduler='{address}' cannot be reached (") and err.count("\n") == 1
    assert "start it (`dask scheduler`) or leave SCHEDULER empty to run here" in err
    assert os.listdir(outputs) == []  # nothing run, nothing probed


def test_a_failed_run_with_committed_epochs_says_whether_it_resumes(tmp_path):
    """A run that failed (a kernel killed, say) after committing epochs: the dry run says it failed, and whether
    its retry resumes or starts again, as `resume_blocker` decides."""
    import json

    from resnet_keras.files import package_modules, source_digest
    from resnet_keras.sweep.params import Run
    from resnet_keras.sweep.runner import run_hash, why

    (tmp_path / "nb.py").write_text("# %%\nx = 1\n")
    run = Run("q", "r", "nb.py", {"epochs": 8}, "params/q.yaml")
    machine = {"backend": "tensorflow", "gpu": False}
    digest = run_hash(run, machine, str(tmp_path))
    folder = tmp_path / "outputs" / "q" / "r"
    (folder / ".resume").mkdir(parents=True)
    (folder / "error.json").write_text(json.dumps({"hash": digest, "error": "DeadKernelError: Kernel died",
                                                   "where": "nbclient"}))
    (folder / ".resume" / "state.json").write_text(json.dumps({"epoch": 3, "modules": ["resnet_keras.training"]}))
    sources = {m: source_digest(m) for m in package_modules()}
    (folder / ".plan.json").write_text(json.dumps({"hash": digest, "sources": sources}))
    outputs = str(tmp_path / "outputs")
    assert why(run, machine, outputs, str(tmp_path)) == (
        "failed before", "DeadKernelError: Kernel died (nbclient); resumes after epoch 3")
    (folder / ".plan.json").write_text(json.dumps({"hash": digest, "sources": {**sources,
                                                                                "resnet_keras.training": "0" * 16}}))
    assert why(run, machine, outputs, str(tmp_path)) == (
        "failed before", "DeadKernelError: Kernel died (nbclient); starts again: code changed in "
                         "resnet_keras.training")


def test_a_run_interrupted_in_fine_tuning_resumes_after_both_stages_epochs(tmp_path):
    """A Q3 run commits its head's epochs in `.resume/` and fine-tuning's in `finetune/.resume/`: the dry run counts
    both (20 head epochs and 3 of fine-tuning: it resumes after epoch 23)."""
    import json

    from resnet_keras import products
    from resnet_keras.files import package_modules, source_digest
    from resnet_keras.sweep.params import Run
    from resnet_keras.sweep.runner import resumes_after, run_hash, why

    (tmp_path / "nb.py").write_text("# %%\nx = 1\n")
    run = Run("q", "r", "nb.py", {"epochs": 20, "fine_tune_epochs": 5}, "params/q.yaml")
    machine = {"backend": "torch", "gpu": False}
    digest = run_hash(run, machine, str(tmp_path))
    folder = tmp_path / "outputs" / "q" / "r"
    for resume, epoch in zip(products.RESUME_FOLDERS, (20, 3)):
        (folder / resume).mkdir(parents=True)
        (folder / resume / "state.json").write_text(json.dumps({"epoch": epoch, "modules": []}))
    (folder / ".plan.json").write_text(json.dumps({"hash": digest, "sources": {
        m: source_digest(m) for m in package_modules()}}))
    assert resumes_after(str(folder), digest) == 23
    outputs = str(tmp_path / "outputs")
    assert why(run, machine, outputs, str(tmp_path)) == ("to run", "half-done, resumes after epoch 23")


def test_a_long_plan_is_told_what_is_quicker_with_estimates_as_the_sweeps(in_repo):
    """Quicker choices for a long sweep: each params file, the assignment, the quick profile; estimated as the sweep
    estimates, from the runs finished here when there are some."""
    import argparse

    from resnet_keras.sweep.params import plan
    from resnet_keras.sweep.preflight import data_key, estimate, fmt_duration
    from resnet_keras.sweep.runner import LONG_S, quicker

    runs = [r for r in plan("params", "full") if r.question in ("q1", "q2", "paper")]
    machine = {"backend": "tensorflow", "gpu": False, "img_per_s": 400.0, "startup_s": 10.0,
               "classes": {data_key(r.settings, "."): [5000] * (100 if r.settings["dataset"] == "cifar100" else 10)
                           for r in plan("params", "full") + plan("params", "quick")}}
    args = argparse.Namespace(profile="full", params="params", dry_run=False)
    assert quicker(LONG_S, machine, runs, args) == []  # not long: nothing to say
    q1 = [r for r in runs if r.question == "q1"]
    finished = [(q1[0], 3600.0, 0)]  # Q1 took an hour here: the estimates follow that speed
    lines = quicker(2 * LONG_S, machine, runs, args, finished)
    assignment = [r for r in runs if r.question in ("q1", "q2")]
    assert lines[1] == (f"  make sweep ONLY='q1_scratch q2_grid'  the assignment alone: about "
                        f"{fmt_duration(estimate(assignment, machine, '.', finished))}")
    assert f"  make sweep ONLY=q1_scratch  about {fmt_duration(estimate(q1, machine, '.', finished))}" in lines
    assert estimate(q1, machine, ".", finished) != estimate(q1, machine)  # the calibration changed the figure
    assert any(line.startswith("  make sweep PROFILE=quick  the same runs on CIFAR subsets: about ") for line in lines)
    assert lines[-1].startswith("sweep: going on with the sweep as asked")
    assert quicker(2 * LONG_S, machine, runs, argparse.Namespace(**{**vars(args), "dry_run": True}),
                   finished) == lines[:-1]  # a dry run goes on with nothing


def test_make_sweep_runs_the_question_notebooks_and_make_studies_the_studies():
    """`make sweep` alone plans the assignment (Q1-Q3), not the studies' days of training; `make studies` plans
    every params/study_*.yaml; ONLY=all every params file (read from `make -n`, which runs nothing)."""
    import glob
    import subprocess

    def only(*args):
        text = subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, timeout=60).stdout
        flat = text.replace("\\\n", " ")  # the recipe's continued lines as one
        command = flat[flat.index("-m resnet_keras.sweep"):].split("\n")[0]
        return command.split("--only", 1)[1].split() if "--only" in command else None

    studies = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(REPO, "params", "study_*.yaml")))
    assert only("sweep") == ["q1_scratch", "q2_grid", "q3_transfer", "q3_own_base"]
    assert only("studies") == studies and "study_paper" in studies
    assert only("sweep", "ONLY=all") is None  # every params file
    assert only("sweep", "ONLY=study_paper") == ["study_paper"]
    assert only("sweep", "RUNS=paper/resnet-56-seed0") is None  # runs of any params file


def test_runs_select_runs_by_key_or_shell_pattern_within_the_params_files(in_repo):
    import subprocess

    from resnet_keras.sweep.params import plan
    from resnet_keras.sweep.runner import _matching

    runs = plan("params", "full")
    keys = [r.key for r in _matching(runs, ["paper/resnet-20-*", "paper/resnet-56-seed0"])]
    assert keys == ["paper/resnet-20-seed0", "paper/resnet-20-seed1", "paper/resnet-20-seed2", "paper/resnet-56-seed0"]
    assert _matching(runs, None) == runs
    text = subprocess.run(["make", "-n", "sweep", "RUNS=paper/resnet-20-* q1/*"], cwd=REPO, capture_output=True,
                          text=True, timeout=60).stdout
    assert "--runs 'paper/resnet-20-*' 'q1/*'" in text  # quoted: the shell does not expand them


def test_a_copy_without_git_history_records_the_commit_it_was_copied_from(tmp_path, monkeypatch):
    from resnet_keras.sweep.runner import _commit

    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repository above tmp_path either
    monkeypatch.delenv("RESNET_KERAS_COMMIT", raising=False)
    assert _commit(str(tmp_path)) is None
    monkeypatch.setenv("RESNET_KERAS_COMMIT", "0000000")
    assert _commit(str(tmp_path)) == "0000000"
    assert _commit(REPO) != "0000000"  # in a checkout, git says which commit
