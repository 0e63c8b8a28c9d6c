"""What the sweep settles before its first run: machine, inputs, time; and what its workers get."""

import json
import os
import shutil
import textwrap

import pytest
from conftest import REPO

from resnet_keras import files, products
from resnet_keras.catalog import resolve_precision
from resnet_keras.errors import ConfigError
from resnet_keras.files import source_digest
from resnet_keras.sweep import is_complete, run_hash, run_sweep, sources
from resnet_keras.sweep.params import Run, notebook_parameters
from resnet_keras.sweep.preflight import (
    GPU_SHARING,
    auto_jobs,
    blocked_runs,
    estimate,
    probe,
    remember,
    remembered,
    work,
)

CPU = {"backend": "tensorflow", "gpu": False}
GPU = {"backend": "tensorflow", "gpu": True}


def run_of(name="r", notebook="study", **parameters):
    """A run with these parameters, its settings completed from the notebook's defaults (as `expand` does)."""
    defaults = notebook_parameters(os.path.join(REPO, "notebooks", f"{notebook}.py"))
    return Run("q", name, f"notebooks/{notebook}.py", parameters, "params/q.yaml", settings={**defaults, **parameters})


def test_hash_records_the_precision_auto_resolves_to_and_the_backend():
    auto = run_of(depth=20)  # the notebook's default precision is "auto"
    assert run_hash(auto, CPU, REPO) != run_hash(auto, GPU, REPO)  # float32 here, mixed float16 there
    fixed = run_of(depth=20, precision="float32")
    assert run_hash(fixed, CPU, REPO) == run_hash(fixed, GPU, REPO)
    assert run_hash(fixed, CPU, REPO) != run_hash(fixed, {**CPU, "backend": "jax"}, REPO)
    assert resolve_precision("auto", False) == "float32" and resolve_precision("auto", True) == "mixed_float16"
    # A CPU with bfloat16 instructions trains in mixed bfloat16 on TensorFlow and PyTorch: another hash.
    bf16 = {**CPU, "cpu_flags": ["avx2", "avx512f", "avx512_bf16"]}
    assert run_hash(auto, bf16, REPO) != run_hash(auto, CPU, REPO)
    assert run_hash(fixed, bf16, REPO) == run_hash(fixed, CPU, REPO)


@pytest.mark.parametrize("gpu,backend,flags,expected", [
    (True, "torch", ["avx512_bf16"], "mixed_float16"),  # a GPU first
    (False, "tensorflow", [], "float32"),
    (False, "tensorflow", ["avx2", "fma", "avx512f", "avx512_vnni"], "float32"),  # AVX-512 without bfloat16
    (False, "tensorflow", ["avx512f", "avx512_bf16"], "mixed_bfloat16"),
    (False, "torch", ["avx512f", "amx_bf16", "amx_tile"], "mixed_bfloat16"),
    (False, "jax", ["avx512f", "avx512_bf16", "amx_bf16"], "float32"),  # JAX's CPU bfloat16: not measured
    (False, None, ["avx512_bf16"], "float32"),
])
def test_auto_precision_is_mixed_bfloat16_on_cpus_with_bfloat16_instructions_where_it_was_measured(
        gpu, backend, flags, expected):
    assert resolve_precision("auto", gpu, backend, flags) == expected
    assert resolve_precision("float32", gpu, backend, flags) == "float32"  # a named precision is kept


@pytest.mark.parametrize("memory,sees_gpu,cpus,jobs", [
    ([], False, 16, 1),  # no GPU: one run uses every core
    ([81559], False, 16, 1),  # a GPU the backend cannot use (a CPU-only install)
    ([81559], True, 16, 4),  # one H100: 4 runs
    ([81559, 81559], True, 16, 8),
    ([81559, 81559], True, 6, 6),  # one core per run
    ([12288], True, 8, 1),  # 12 GiB: one run
])
def test_auto_jobs(memory, sees_gpu, cpus, jobs):
    assert auto_jobs(memory, sees_gpu, cpus) == jobs


def test_work_follows_epochs_images_and_depth():
    ten = [5000] * 10
    base = work({"depth": 20, "epochs": 2}, ten)
    assert base == 2 * 50000
    assert work({"depth": 56, "epochs": 2}, ten) == pytest.approx(base * 56 / 20)
    assert work({"epochs": 2}, ten) == base  # the notebooks' default network is ResNet-20
    assert work({"depth": 20, "epochs": 2, "per_class": 500, "validation_split": 0.1}, ten) == pytest.approx(
        2 * 4500)
    assert work({"family": "imagenet", "depth": 18, "epochs": 2}, ten) > 10 * base


def test_estimate_scales_finished_runs_times_by_their_work():
    classes = {("cifar10", None, "fine"): [5000] * 10}
    machine = {**CPU, "classes": classes, "startup_s": 5.0, "img_per_s": 1e9}
    done = run_of(depth=20, epochs=10)
    # 10 epochs of ResNet-20 took 1,010 s here: 1,000 s of training, 10 s of overhead.
    todo = run_of(depth=56, epochs=20)
    expected = 10 + 1000 * 2 * 56 / 20
    assert estimate([todo], machine, REPO, finished=[(done, 1010.0, 0)]) == pytest.approx(expected)
    # A run resumed after 5 of its 10 epochs trained half of them in its 510 s; one resuming after 15 of its 20
    # epochs has a quarter of its work left.
    assert estimate([todo], machine, REPO, finished=[(done, 510.0, 5)]) == pytest.approx(expected)
    assert estimate([todo], machine, REPO, [(done, 1010.0, 0)], resumed={todo.key: 15}) == pytest.approx(
        10 + 1000 * 2 * 56 / 20 / 4)
    measured = {**machine, "img_per_s": 500.0}
    # The study notebook holds 10% of the train set out for validation by default: 45,000 images.
    assert estimate([todo], measured, REPO) == pytest.approx(10 + 20 * 45000 * 56 / 20 / 500)


def test_probe_reports_the_backend_and_the_data(tiny_data, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    answer = probe([run_of(depth=20, data_dir=tiny_data)], REPO)
    assert answer["backend"] == "jax" and answer["gpu"] is False
    assert answer["classes"] == {("cifar10", tiny_data, "fine"): [6] * 10}


def test_probe_names_missing_data_in_one_line_when_no_run_can_start(tmp_path):
    with pytest.raises(ConfigError, match=f"data_dir='{tmp_path}' has no cifar-10-batches-py/ folder"):
        probe([run_of(depth=20, data_dir=str(tmp_path))], REPO)


def test_probe_blocks_only_the_runs_whose_data_is_missing(tiny_data, tmp_path):
    here, missing = run_of("here", depth=8, data_dir=tiny_data), run_of("missing", depth=8, data_dir=str(tmp_path))
    answer = probe([here, missing], REPO)
    why = (f"data_dir='{tmp_path}' has no cifar-10-batches-py/ folder; point it at a folder holding the official "
           f"CIFAR python layout")
    assert answer["classes"] == {("cifar10", tiny_data, "fine"): [6] * 10}
    assert answer["missing"] == {("cifar10", str(tmp_path), "fine"): why}
    assert blocked_runs([here, missing], answer, REPO) == {"q/missing": why}


def test_runs_that_need_missing_imagenet_weights_are_blocked_and_the_others_are_not(tiny_data):
    why = "weights='imagenet' needs resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5 in ...; copy the file there"
    runs = [run_of("imagenet", "q3_transfer", data_dir=tiny_data, weights="imagenet"),
            run_of("none", "q3_transfer", data_dir=tiny_data, weights="none"), run_of("scratch", data_dir=tiny_data)]
    machine = {**CPU, "classes": {("cifar10", tiny_data, "fine"): [6] * 10}, "missing": {"imagenet": why}}
    assert blocked_runs(runs, machine, REPO) == {"q/imagenet": why}
    assert blocked_runs(runs, CPU, REPO) == {}  # a remembered answer holds no inputs: nothing is blocked


ENV_NOTEBOOK = textwrap.dedent('''\
    # ---
    # jupyter:
    #   kernelspec:
    #     display_name: Python 3
    #     language: python
    #     name: python3
    # ---

    # %% tags=["parameters"]
    out_dir = "."
    tag = 0

    # %%
    import json, os
    for product in ("model.h5", "history.csv", "curves.png"):
        open(os.path.join(out_dir, product), "w").write("stand-in")
    names = ("XLA_PYTHON_CLIENT_PREALLOCATE", "TF_FORCE_GPU_ALLOW_GROWTH", "JAX_COMPILATION_CACHE_DIR")
    json.dump({name: os.environ.get(name) for name in names}, open(os.path.join(out_dir, "results.json"), "w"))
    ''')


@pytest.mark.slow
def test_every_worker_runs_its_notebooks_with_the_gpu_sharing_settings_and_the_compile_cache(tmp_path, monkeypatch):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "env.py").write_text(ENV_NOTEBOOK)
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    monkeypatch.setenv("TF_FORCE_GPU_ALLOW_GROWTH", "false")  # the user's own choice wins
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    runs = [Run("env", f"r{i}", "notebooks/env.py", {"tag": i}, "params/env.yaml") for i in range(2)]
    machine = {**CPU, "classes": {("cifar10", None, "fine"): [1] * 10}, "img_per_s": 100.0}
    records = run_sweep(runs, str(tmp_path / "outputs"), jobs=2, root=str(tmp_path), log=lambda s: None,
                        machine=machine)
    assert [r["status"] for r in records.values()] == ["ok", "ok"], records
    for record in records.values():
        assert record["results"] == {"XLA_PYTHON_CLIENT_PREALLOCATE": GPU_SHARING["XLA_PYTHON_CLIENT_PREALLOCATE"],
                                     "TF_FORCE_GPU_ALLOW_GROWTH": "false",
                                     "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "outputs" / ".jax-cache")}
    assert "XLA_PYTHON_CLIENT_PREALLOCATE" not in os.environ  # set in the workers, not in the sweep itself
    assert json.loads((tmp_path / "outputs" / "env" / "r0" / "record.json").read_text())["status"] == "ok"


def test_machine_is_remembered_while_its_backend_packages_and_settings_stay_the_same(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    assert remembered(str(tmp_path)) is None  # never probed into this folder
    remember(str(tmp_path), {**GPU, "classes": {}, "img_per_s": 10.0})
    assert remembered(str(tmp_path)) == {**GPU, "img_per_s": 10.0}  # not the data: checked whenever runs are due
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert remembered(str(tmp_path)) is None
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the GPUs hidden
    assert remembered(str(tmp_path)) is None
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    (tmp_path / "keras-home").mkdir()
    (tmp_path / "keras-home" / "keras.json").write_text('{"backend": "jax"}')
    assert remembered(str(tmp_path)) is None
    (tmp_path / "keras-home" / "keras.json").unlink()
    assert remembered(str(tmp_path)) == {**GPU, "img_per_s": 10.0}
    import resnet_keras.cpu

    monkeypatch.setattr(resnet_keras.cpu, "_cpuinfo", lambda key: "avx2 fma" if key == "flags" else "Other CPU")
    assert remembered(str(tmp_path)) is None  # another host (the outputs folder moved with its files): probed again


def test_a_finished_run_depends_only_on_the_code_of_the_package_modules_it_executed(tmp_path, monkeypatch):
    package = tmp_path / "resnet_keras"
    shutil.copytree(files.PACKAGE_DIR, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(files, "PACKAGE_DIR", str(package))
    sources.definitions.cache_clear()
    folder = tmp_path / "run"
    folder.mkdir()
    for product in products.COMPLETE:
        (folder / product).write_text("x")
    executed = ["resnet_keras", "resnet_keras.models", "resnet_keras.training"]  # as a notebook records them
    (folder / "record.json").write_text(json.dumps({"status": "ok", "hash": "h",
                                                     "sources": sources.digests(executed)}))
    assert is_complete(str(folder), "h") and not is_complete(str(folder), "another")
    edits = [("app.py", "\nX = 1\n", False), ("index.py", "\nX = 1\n", False),  # code no run executes
             ("training.py", "\n# a comment\n", False), ("training.py", "\n\n\n", False),
             ("training.py", "\ndef f():\n    'a function the run cannot have called'\n", False),
             ("training.py", "\nX = 1\n", True),  # a module-level statement is code the run executed
             ]
    try:
        for edited, text, invalidates in edits:
            with open(package / edited, "a") as f:
                f.write(text)
            sources.definitions.cache_clear()  # a new sweep reads the sources again
            assert is_complete(str(folder), "h") is not invalidates, (edited, text)
    finally:
        sources.definitions.cache_clear()


MODULE = '''import os

A = 1


def f():
    return A


class C:
    def g(self):
        return os.sep
'''
DOCUMENTED = MODULE.replace("def f():", "def f():\n    \"\"\"A docstring.\"\"\"") + "# a comment\n"


@pytest.mark.parametrize("edited, changes", [
    (DOCUMENTED, False),
    (MODULE + "\n\ndef h():\n    return 2\n\n\nclass D(C):\n    pass\n", False),  # new definitions
    (MODULE.replace("return A", "return A + 1"), True),  # a function's body
    (MODULE.replace("return os.sep", "return os.pathsep"), True),  # a method's
    (MODULE.replace("def f():\n    return A\n", ""), True),  # a function removed
    (MODULE.replace("A = 1", "A = 2"), True),  # a constant
    (MODULE.replace("import os", "import os\nimport sys"), True),  # an import
    (MODULE + "\nf = staticmethod(f)\n", True),  # a name rebound at module level
])
def test_a_record_keeps_the_code_of_each_definition_and_only_definitions_added_since_leave_it_current(
        tmp_path, monkeypatch, edited, changes):
    monkeypatch.setattr(files, "PACKAGE_DIR", str(tmp_path))
    module = tmp_path / "m.py"
    module.write_text(MODULE)
    sources.definitions.cache_clear()
    source_digest.cache_clear()
    kept, whole = sources.definitions("resnet_keras.m"), source_digest("resnet_keras.m")
    assert set(kept) == {sources.MODULE_LEVEL, "f", "C"}
    module.write_text(edited)
    sources.definitions.cache_clear()
    source_digest.cache_clear()
    try:
        assert sources.changed({"resnet_keras.m": kept}) == (["resnet_keras.m"] if changes else [])
        # a record of one digest per module, as written before, sees any change of code, new definitions too
        assert sources.changed({"resnet_keras.m": whole}) == ([] if edited == DOCUMENTED else ["resnet_keras.m"])
        module.unlink()
        sources.definitions.cache_clear()
        assert sources.changed({"resnet_keras.m": kept}) == ["resnet_keras.m"]  # the module is gone
    finally:
        sources.definitions.cache_clear()
        source_digest.cache_clear()


def test_a_docstring_edit_leaves_the_digest_and_a_code_edit_changes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(files, "PACKAGE_DIR", str(tmp_path))
    module = tmp_path / "m.py"
    digests = []
    for text in ['"""Module."""\ndef f(x):\n    """Twice x."""\n    return 2 * x  # doubled\n',
                 '"""The module, documented anew."""\n\n\ndef f(x):\n    """Two times x, as a float."""\n'
                 '    return (2 *\n            x)\n',
                 'def f(x):\n    return 2 * x\n',
                 'def f(x):\n    return 3 * x\n',
                 'def f(x):\n    "not a docstring: code follows"\n    x = 0\n    return 3 * x\n']:
        module.write_text(text)
        source_digest.cache_clear()
        digests.append(source_digest("resnet_keras.m"))
    source_digest.cache_clear()
    assert digests[0] == digests[1] == digests[2] and len(set(digests[2:])) == 3, digests


def test_a_record_of_one_digest_per_module_stays_current_and_is_upgraded_once(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for product in products.COMPLETE:
        (folder / product).write_text("x")
    executed = ["resnet_keras", "resnet_keras.training"]
    (folder / "record.json").write_text(json.dumps({"status": "ok", "hash": "h",
                                                     "sources": {m: files.text_digest(m) for m in executed}}))
    assert is_complete(str(folder), "h")  # the text is unchanged since the record
    record = json.loads((folder / "record.json").read_text())
    assert record["sources"] == sources.digests(executed) and record["status"] == "ok"
    (folder / "record.json").write_text(json.dumps({**record, "sources": {m: source_digest(m) for m in executed}}))
    assert is_complete(str(folder), "h")  # a record of syntax-tree digests too
    assert json.loads((folder / "record.json").read_text())["sources"] == sources.digests(executed)
    (folder / "record.json").write_text(json.dumps({"status": "ok", "hash": "h",
                                                     "sources": {m: "0" * 16 for m in executed}}))
    assert not is_complete(str(folder), "h")  # the text changed since: it reruns
