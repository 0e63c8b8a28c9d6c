"""A notebook's code as a plain Python script, with parameters: no Jupyter kernel, no papermill.

    python -m resnet_keras.sweep.script paper/resnet-20-seed0 [--profile full]   # a run of the sweep's plan
    python -m resnet_keras.sweep.script notebooks/study.py -p depth=56 -p epochs=2 --out-dir outputs/study/d56

For batch and cluster jobs and bare GPU machines, where starting a kernel is a
hassle. The notebook's code runs top to bottom in this process, with the
parameters set right after its `parameters` cell, as papermill sets them. It
writes what the notebook writes (`model.h5`, `history.csv`, the figures,
`results.json`, last) into its `out_dir`, and prints what the notebook prints;
an interrupted run continues from its last epoch, as under the sweep. The
executed notebook, `report.html` and the sweep's `record.json` are the
sweep's (`make sweep`), so the sweep runs such a run again for its report.

A run of the plan (`question/run`, as `make sweep` lists them) gets the sweep's
parameters for that profile and its folder `outputs/<question>/<run>`; `-p`
then changes single parameters. Parameters are validated as in a params file,
before anything runs; values are YAML (`-p per_class=null`, `-p augment=false`).
"""

import argparse
import os
import sys

import yaml

from resnet_keras.errors import ConfigError
from resnet_keras.sweep.params import (
    PROFILES,
    check_parameter,
    check_together,
    notebook_parameters,
    parameters_cell,
    plan,
)


def resolve(target, profile="full", params_dir="params", outputs="outputs", overrides=None, out_dir=None):
    """(notebook path, parameters with `out_dir`) for a run key (`question/run`) or a notebook path."""
    overrides = dict(overrides or {})
    if target.endswith(".py"):
        if not os.path.isfile(target):
            raise ConfigError(f"notebook {target!r} does not exist; give a notebooks/*.py file or a run "
                              f"such as paper/resnet-20-seed0")
        notebook, parameters = target, {}
        if out_dir is None:
            raise ConfigError(f"{target}: --out-dir is needed: the folder the notebook writes its products to")
    else:
        runs = {run.key: run for run in plan(params_dir, profile)}
        if target not in runs:
            raise ConfigError(f"run {target!r} is not in the {profile} profile's plan; use question/run as "
                              f"`make sweep` lists them, e.g. {next(iter(runs))}")
        run = runs[target]
        notebook, parameters = run.notebook, dict(run.parameters)
        out_dir = out_dir or os.path.join(outputs, run.question, run.name)
    accepted = notebook_parameters(notebook)
    for key, value in overrides.items():
        check_parameter(f"{notebook}: -p", key, value, accepted)
    parameters.update(overrides)
    check_together(f"{notebook}: -p", {**accepted, **parameters})
    return notebook, {**parameters, "out_dir": out_dir}


def execute(notebook, parameters):
    """Run the code of Jupytext notebook `notebook` with `parameters` in this process; return its namespace.

    The parameters are assigned right after the `parameters` cell (papermill's
    injected-parameters cell). Markdown cells are comments in the percent
    format, so the file's text is the script.
    """
    with open(notebook, encoding="utf-8") as f:
        lines = f.read().splitlines()
    end = parameters_cell(notebook, lines)[1]
    injected = ["# %% injected parameters"] + [f"{key} = {value!r}" for key, value in parameters.items()]
    source = "\n".join(lines[:end] + injected + lines[end:]) + "\n"
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures are saved, not shown
    namespace = {"__name__": "__main__", "__file__": os.path.abspath(notebook)}
    exec(compile(source, notebook, "exec"), namespace)
    return namespace


def _assignment(text):
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"-p {text!r} is not accepted; use -p name=value")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"-p {text!r}: the value is not valid YAML") from None


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m resnet_keras.sweep.script", description=__doc__.splitlines()[0])
    ap.add_argument("target", help="a run of the plan (question/run, e.g. paper/resnet-20-seed0) or a notebook")
    ap.add_argument("-p", dest="overrides", type=_assignment, action="append", default=[], metavar="NAME=VALUE",
                    help="set one parameter (a YAML value); repeatable")
    ap.add_argument("--profile", default="full", choices=PROFILES, help="the plan's profile (default: full)")
    ap.add_argument("--params", default="params", help="folder of params files (default: params)")
    ap.add_argument("--outputs", default="outputs", help="output folder of the plan's runs (default: outputs)")
    ap.add_argument("--out-dir", help="where the products go (default: the run's folder under --outputs)")
    args = ap.parse_args(argv)
    try:
        notebook, parameters = resolve(args.target, args.profile, args.params, args.outputs,
                                       dict(args.overrides), args.out_dir)
    except ConfigError as e:
        print(f"script: {e}", file=sys.stderr)
        return 2
    print(f"script: {notebook} -> {parameters['out_dir']}", flush=True)
    execute(notebook, parameters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
