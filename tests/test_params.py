"""Run definitions: expansion of grids and profiles, and validation before anything runs."""

import math
import os

import pytest
import yaml
from conftest import REPO

from resnet_keras.errors import ConfigError
from resnet_keras.sweep.params import PROFILES, SCHEMA, expand, notebook_parameters, plan

NOTEBOOKS = sorted(f for f in os.listdir(os.path.join(REPO, "notebooks")) if f.endswith(".py"))


def write(tmp_path, spec, name="q.yaml"):
    path = tmp_path / name
    path.write_text(spec if isinstance(spec, str) else yaml.safe_dump(spec))
    return str(path)


def spec(**changes):
    base = {"question": "q", "notebook": "notebooks/q2_grid.py", "name": "{dataset}-{optimizer}",
            "parameters": {"epochs": 2}, "grid": {"dataset": ["cifar10", "cifar100"],
                                                  "opt": [{"optimizer": "adam"}, {"optimizer": "sgd",
                                                                                  "learning_rate": 0.1}]}}
    if isinstance(changes.get("grid"), dict):
        changes["grid"] = {**base["grid"], **changes["grid"]}  # change one axis, keep the other
    base.update(changes)
    return base


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_every_notebook_parameter_is_in_the_schema_and_its_default_passes(notebook):
    params = notebook_parameters(os.path.join(REPO, "notebooks", notebook))
    params.pop("out_dir")
    for name, default in params.items():
        assert name in SCHEMA, f"{notebook}: parameter {name} has no validation rule"
        assert SCHEMA[name](name, default) == default  # raises ConfigError, naming the value, when it is not


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_parameters_cell_reads_as_jupytext_reads_it(notebook):
    import ast

    import jupytext

    path = os.path.join(REPO, "notebooks", notebook)
    cells = [c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1
    expected = {n.targets[0].id: ast.literal_eval(n.value) for n in ast.parse(cells[0].source).body
                if isinstance(n, ast.Assign)}
    assert notebook_parameters(path) == expected and len(expected) >= 5


@pytest.mark.parametrize("header", ["# %%", '# %% tags=["parameters"]\nx = 1\n\n# %% tags=["parameters"]'])
def test_notebook_needs_exactly_one_parameters_cell(tmp_path, header):
    path = tmp_path / "nb.py"
    path.write_text(f"# %% [markdown]\n# # Title\n\n{header}\ny = 2\n")
    with pytest.raises(ConfigError, match=r"nb.py' has [02] cells tagged 'parameters'; it needs exactly one$"):
        notebook_parameters(str(path))


@pytest.mark.parametrize("profile", PROFILES)
def test_shipped_params_plan_without_errors(profile, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    os.makedirs("outputs/.tiny-cifar", exist_ok=True)  # the smoke profile's data folder must exist
    runs = plan("params", profile)
    assert {r.question for r in runs} == {"q1", "q2", "q3", "paper", "architectures", "preact100",
                                              "precision"}
    assert len({r.key for r in runs}) == len(runs)


def test_paper_profile_trains_the_papers_64k_iterations_on_all_50k_images():
    # He et al. (2015, 4.2): batch 128, x0.1 at 32k and 48k iterations, stop at 64k; the 45k/5k
    # split only chose that schedule, so the table's networks train on the whole train set.
    runs = expand(os.path.join(REPO, "params", "study_paper.yaml"), "full", REPO)
    assert [r.name for r in runs][:4] == ["resnet-20-seed0", "resnet-20-seed1", "resnet-20-seed2", "resnet-32-seed0"]
    assert len(runs) == 27 and {r.parameters["seed"] for r in runs} == {0, 1, 2}
    for r in runs:
        p = r.parameters
        assert p["validation_split"] == 0.0 and p["batch_size"] == 128 and p["schedule"] == "step"
        steps = p["epochs"] * math.ceil(50_000 / p["batch_size"])
        assert abs(steps - 64_000) / 64_000 < 0.005, (r.name, steps)
    # ResNet-110 alone warms up: 0.01 for about 400 iterations (one epoch of 390), then 0.1.
    warm = {r.name: (r.parameters.get("warmup_epochs", 0), r.parameters.get("warmup")) for r in runs}
    assert all(warm.pop(f"resnet-110-seed{s}") == (1, "constant") for s in range(3))
    assert set(warm.values()) == {(0, None)}


def test_grid_is_the_product_of_its_axes(tmp_path):
    runs = expand(write(tmp_path, spec()), "full", REPO)
    assert [r.name for r in runs] == ["cifar10-adam", "cifar10-sgd", "cifar100-adam", "cifar100-sgd"]
    sgd = runs[1].parameters
    assert sgd == {"epochs": 2, "dataset": "cifar10", "optimizer": "sgd", "learning_rate": 0.1}
    # What the notebook runs with, for the index: its parameters cell's defaults, then the run's parameters.
    defaults = notebook_parameters(os.path.join(REPO, runs[1].notebook))
    assert runs[1].settings == {**{k: v for k, v in defaults.items() if k != "out_dir"}, **sgd}
    assert runs[1].settings["batch_size"] == defaults["batch_size"] and "out_dir" not in runs[1].settings


def test_profile_overrides_parameters_and_replaces_named_axes(tmp_path):
    s = spec(profiles={"quick": {"epochs": 1, "dataset": ["cifar10"]}})
    runs = expand(write(tmp_path, s), "quick", REPO)
    assert [r.name for r in runs] == ["cifar10-adam", "cifar10-sgd"]
    assert all(r.parameters["epochs"] == 1 for r in runs)


def test_seeds_repeat_every_grid_point_and_name_each_run(tmp_path):
    runs = expand(write(tmp_path, spec(seeds=[0, 3], grid={"dataset": ["cifar10"]})), "full", REPO)
    assert [(r.name, r.parameters["seed"], r.settings["seed"]) for r in runs] == [
        ("cifar10-adam-seed0", 0, 0), ("cifar10-adam-seed3", 3, 3), ("cifar10-sgd-seed0", 0, 0),
        ("cifar10-sgd-seed3", 3, 3)]
    named = expand(write(tmp_path, spec(seeds=[1], name="s{seed}-{dataset}-{optimizer}")), "full", REPO)
    assert named[0].name == "s1-cifar10-adam"


def test_a_profile_sets_or_replaces_the_seeds(tmp_path):
    s = spec(seeds=[0, 1, 2], grid={"dataset": ["cifar10"]}, profiles={"smoke": {"seeds": [5]}, "quick": {}})
    assert [r.name for r in expand(write(tmp_path, s), "smoke", REPO)] == ["cifar10-adam-seed5", "cifar10-sgd-seed5"]
    assert len(expand(write(tmp_path, s), "quick", REPO)) == 6
    unseeded = spec(grid={"dataset": ["cifar10"]}, profiles={"smoke": {"seeds": [0, 1]}})
    assert [r.name for r in expand(write(tmp_path, unseeded), "full", REPO)] == ["cifar10-adam", "cifar10-sgd"]
    assert len(expand(write(tmp_path, unseeded), "smoke", REPO)) == 4


def test_file_without_grid_is_one_run(tmp_path):
    runs = expand(write(tmp_path, spec(grid=None, name=None)), "full", REPO)
    assert [(r.name, r.parameters) for r in runs] == [("default", {"epochs": 2})]


# Each case: a change to a valid file, and what the one-line error must mention.
BAD = [
    ({"parameters": {"epoch": 2}}, "'epoch' is unknown; accepted:"),
    ({"parameters": {"epochs": 0}}, "epochs=0 is not accepted; use an integer >= 1"),
    ({"parameters": {"epochs": -3}}, "epochs=-3"),
    ({"parameters": {"epochs": "20"}}, "epochs='20'"),
    ({"parameters": {"epochs": 2.5}}, "epochs=2.5"),
    ({"parameters": {"batch_size": 0}}, "batch_size=0"),
    ({"parameters": {"depth": 0}}, "depth=0"),
    ({"parameters": {"depth": True}}, "depth=True"),
    ({"parameters": {"depth": 21}}, "depth=21 is not accepted for family 'resnet'; use 6n+2"),  # Q2's networks
    ({"parameters": {"n": 7}}, "'n' is unknown; accepted:"),  # depth names the network, as everywhere
    ({"parameters": {"learning_rate": 0}}, "learning_rate=0 is not accepted; use a number > 0.0"),
    ({"parameters": {"learning_rate": "fast"}}, "learning_rate='fast'"),
    ({"parameters": {"momentum": 1.5}}, "momentum=1.5"),
    ({"parameters": {"validation_split": -0.1}}, "validation_split=-0.1"),
    ({"parameters": {"augment": "yes"}}, "augment='yes' is not accepted; use true or false"),
    ({"parameters": {"schedule": "exponential"}}, "schedule='exponential' is not accepted; use one of"),
    ({"parameters": {"shortcut": "b"}}, "shortcut='b'"),
    ({"notebook": "notebooks/study.py", "parameters": {"warmup": "cosine"}},
     "warmup='cosine' is not accepted; use one of 'linear', 'constant'"),
    ({"parameters": {"devices": 0}}, "devices=0 is not accepted; use an integer >= 1 or 'all'"),
    ({"parameters": {"devices": "gpu"}}, "devices='gpu'"),
    ({"parameters": {"out_dir": "/tmp"}}, "'out_dir' is set by the sweep"),
    ({"parameters": {"data_dir": "/no/such/folder"}}, "data_dir='/no/such/folder'"),
    ({"grid": {"dataset": ["cifar10", "svhn"]}}, "dataset='svhn' is not accepted; use one of 'cifar10'"),
    ({"grid": {"opt": [{"optimizer": "adagrad"}]}}, "optimizer='adagrad'"),
    ({"grid": {"dataset": []}}, "grid axis 'dataset' must be a non-empty list"),
    ({"grid": {"dataset": "cifar10"}}, "grid axis 'dataset' must be a non-empty list"),
    ({"grid": {"x": [{"depth": 8}, 3]}}, "mixes mappings and plain values"),
    ({"name": "same"}, "run name 'same' is used by several grid points"),
    ({"name": "{depth}"}, "name '{depth}' cannot be formatted"),
    ({"name": "../{dataset}-{optimizer}"}, "run name '../cifar10-adam' is not accepted"),
    ({"notebook": "notebooks/missing.py"}, "notebook 'notebooks/missing.py' does not exist"),
    ({"question": ""}, "'question' must be a non-empty string"),
    ({"colour": "blue"}, "unknown key 'colour'; accepted keys are"),
    ({"parameters": [1, 2]}, "'parameters' must be a mapping"),
    ({"profiles": {"fast": {}}}, "profile 'fast' is not accepted; use full, quick, smoke"),
    ({"compare": ["paper_tables"]}, "compare=['paper_tables'] is not accepted; use a list of paper_table,"),
    ({"compare": "paper_table"}, "compare='paper_table' is not accepted"),
    ({"seeds": []}, "seeds=[] is not accepted; use a non-empty list of distinct integers >= 0"),
    ({"seeds": [0, 0]}, "seeds=[0, 0] is not accepted"),
    ({"seeds": [1, -1]}, "seeds=[1, -1] is not accepted"),
    ({"seeds": 3}, "seeds=3 is not accepted"),
    ({"seeds": [True]}, "seeds=[True] is not accepted"),
    ({"seeds": [0, 1], "parameters": {"seed": 2}}, "both 'seeds' and the parameter 'seed' are set; keep one"),
]


@pytest.mark.parametrize("change,message", BAD, ids=[m[:40] for _, m in BAD])
def test_bad_params_fail_with_one_line_naming_the_value(tmp_path, change, message):
    path = write(tmp_path, spec(**change))
    with pytest.raises(ConfigError) as err:
        expand(path, "full", REPO)
    text = str(err.value)
    assert message in text and "\n" not in text
    assert text.startswith(path)


@pytest.mark.parametrize("content,message", [
    ("question: q\nnotebook: [unclosed\n", "is not valid YAML at line"),
    ("- just\n- a list\n", "must be a mapping"),
    ("", "must be a mapping"),
    ("!!python/object/apply:os.system ['echo unsafe']\n", "is not valid YAML"),
])
def test_malformed_or_unsafe_yaml_is_rejected(tmp_path, content, message):
    with pytest.raises(ConfigError, match=message):
        expand(write(tmp_path, content), "full", REPO)


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot be read"):
        expand(str(tmp_path / "missing.yaml"), "full", REPO)


def test_unknown_profile_is_named(tmp_path):
    with pytest.raises(ConfigError, match="profile='huge' is not accepted; use one of full, quick, smoke"):
        expand(write(tmp_path, spec()), "huge", REPO)


def test_empty_params_folder_is_named(tmp_path):
    with pytest.raises(ConfigError, match="no params files found"):
        plan(str(tmp_path), "full", REPO)


STUDY = {"question": "s", "notebook": "notebooks/study.py", "name": "{family}-{depth}", "compare": ["paper_table"],
         "grid": {"net": [{"family": "resnet", "depth": 20}, {"family": "imagenet", "depth": 50}]}}


def test_study_networks_are_named_by_family_and_depth(tmp_path):
    runs = expand(write(tmp_path, STUDY), "full", REPO)
    assert [r.name for r in runs] == ["resnet-20", "imagenet-50"]
    assert runs[0].compare == ("paper_table",)


@pytest.mark.parametrize("net,message", [
    ({"family": "resnet", "depth": 21}, "depth=21 is not accepted for family 'resnet'; use 6n+2"),
    ({"family": "plain", "depth": 18}, "depth=18 is not accepted for family 'plain'"),
    ({"family": "imagenet", "depth": 20}, "depth=20 is not accepted; use one of 18, 34, 50"),
    ({"family": "imagenet"}, "depth=20 is not accepted; use one of 18, 34, 50"),  # the notebook's default depth
])
def test_depth_must_suit_the_family_before_anything_runs(tmp_path, net, message):
    path = write(tmp_path, {**STUDY, "grid": {"net": [net]}, "name": "{family}"})
    with pytest.raises(ConfigError) as err:
        expand(path, "full", REPO)
    text = str(err.value)
    assert text.startswith(f"{path}: run '{net['family']}': ") and message in text and "\n" not in text
