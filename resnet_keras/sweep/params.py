"""Run definitions: YAML files in `params/`, expanded into validated runs.

A file describes one question:

    question: q2                       # outputs go to outputs/<question>/<run>/
    notebook: notebooks/q2_grid.py     # a Jupytext notebook with a `parameters` cell
    name: "{dataset}-resnet{depth}-{optimizer}" # run name, formatted with the run's parameters
    parameters: {epochs: 20, ...}      # every run
    grid:                              # optional: one run per point of the product
      dataset: [cifar10, cifar100]     #   a list of values for one parameter, or
      config: [{depth: 44, optimizer: adam}, ...]  # a list of mappings that set several together
    seeds: [0, 1, 2]                   # optional: every grid point once per seed, named
                                       #   "<name>-seed<n>" (unless name has {seed})
    profiles:                          # overrides per profile, applied last; a key
      quick: {epochs: 3, per_class: 100} # that names a grid axis (or `seeds`) replaces it
    compare: [paper_table]             # optional: cross-run summaries for the index
                                       #   (see `COMPARISONS`)

Everything is checked here, before anything runs: parameter names against the
notebook's `parameters` cell, values against `SCHEMA`. YAML is read with
`yaml.safe_load`, so a params file cannot execute code.
"""

import ast
import dataclasses
import glob
import itertools
import os
import re

import yaml

from resnet_keras.catalog import (
    DATASETS,
    FAMILIES,
    LABEL_MODES,
    OPTIMIZERS,
    PIPELINE_CHOICES,
    PRECISIONS,
    SCHEDULES,
    SHORTCUTS,
    VERSIONS,
    WARMUPS,
    check_depth,
    check_devices,
)
from resnet_keras.errors import ConfigError, check_choice, check_int, check_number
from resnet_keras.files import check_hdf5

PROFILES = ("full", "quick", "smoke")
FILE_KEYS = ("question", "notebook", "name", "parameters", "grid", "seeds", "profiles", "compare", "description")
RESERVED = ("out_dir",)  # set by the sweep, never by a params file

# The cross-run comparisons a params file may ask for (`compare`), drawn by `summary.comparisons.DRAW` on the index
# and into results/. Named here, below both, so that checking a params file does not load the page's code.
COMPARISONS = ("paper_table", "plain_vs_residual", "accuracy_vs_time")
# Settings that change neither the network nor its recipe: a run is compared with references that share the rest.
NOT_RECIPE = ("seed", "data_dir", "devices", "pipeline", "precision")


def recipe(settings):
    """The part of a run's settings that names its network and recipe (all but `NOT_RECIPE`)."""
    return {k: v for k, v in settings.items() if k not in NOT_RECIPE}


# Each rule takes (what, value) and returns the value or raises a one-line ConfigError: the package's own checks,
# with the allowed values of `catalog`.
def _choice(options):
    return lambda what, v: check_choice(what, v, options)


def _int(minimum):
    return lambda what, v: check_int(what, v, minimum)


def _number(minimum, maximum=None, inclusive=True):
    return lambda what, v: check_number(what, v, minimum, maximum, inclusive)


def _or_null(rule):
    def check(what, v):
        try:
            return None if v is None else rule(what, v)
        except ConfigError as e:
            raise ConfigError(f"{e} or null") from None
    return check


def _bool(what, v):
    if type(v) is not bool:
        raise ConfigError(f"{what}={v!r} is not accepted; use true or false")
    return v


def _data_dir(what, v):
    if not (v is None or (isinstance(v, str) and os.path.isdir(v))):
        raise ConfigError(f"{what}={v!r} is not accepted; use null or an existing folder")
    return v


def _weights(what, v):
    """"imagenet", "none" or the path of an .h5 file. A path that is not on this machine is accepted here: the
    sweep lists its runs as blocked, with the fix, and runs the others (`preflight.blocked_runs`)."""
    accepted = ("'imagenet', 'none' or the path of an intact HDF5 file (ResNet-50 weights, or a model.h5 of this "
                "suite as the base)")
    if v in ("imagenet", "none"):
        return v
    if isinstance(v, str) and v.endswith(".h5") and not os.path.exists(v):
        return v
    try:
        return check_hdf5("weights", v, accepted)
    except (ConfigError, TypeError):
        raise ConfigError(f"{what}={v!r} is not accepted; use {accepted}") from None


SCHEMA = {
    "dataset": _choice(DATASETS),
    "label_mode": _choice(LABEL_MODES),
    "data_dir": _data_dir,
    "per_class": _or_null(_int(1)),
    "test_per_class": _or_null(_int(1)),
    "validation_split": _number(0.0, 0.9),
    "family": _choice(FAMILIES),
    "depth": _int(1),  # the family's own rule (catalog.check_depth) is checked with the family, below
    "version": _choice(VERSIONS),
    "shortcut": _choice(SHORTCUTS),
    "width": _int(1),
    "plain": _bool,
    "dropout": _number(0.0, 0.99),
    "weight_decay": _number(0.0),
    "optimizer": _choice(OPTIMIZERS),
    "learning_rate": _number(0.0, inclusive=False),
    "momentum": _number(0.0, 1.0),
    "nesterov": _bool,
    "schedule": _choice(SCHEDULES),
    "warmup_epochs": _int(0),
    "warmup": _choice(WARMUPS),
    "epochs": _int(1),
    "batch_size": _int(1),
    "augment": _bool,
    "pipeline": _choice(PIPELINE_CHOICES),
    "steps_per_execution": _int(1),
    "cache_features": _bool,
    "seed": _int(0),
    "precision": _choice(PRECISIONS),
    "devices": lambda what, v: check_devices(v, what),
    "weights": _weights,
    "resize": _or_null(_int(32)),
    "head_units": _int(1),
    "fine_tune_epochs": _int(0),
    "fine_tune_fraction": _number(0.0, 1.0, inclusive=False),
    "fine_tune_learning_rate": _number(0.0, inclusive=False),
    "replay": _bool,
}


@dataclasses.dataclass(frozen=True)
class Run:
    """One execution of a notebook with fixed parameters."""

    question: str
    name: str
    notebook: str
    parameters: dict
    source: str  # the params file it came from
    compare: tuple = ()  # cross-run summaries of its question (`COMPARISONS`)
    # Every parameter the notebook runs with: its parameters cell's defaults, then `parameters`. The index reads a
    # run's settings from here and its measurements from `results.json`, so notebooks need not record their inputs.
    settings: dict = dataclasses.field(default_factory=dict, compare=False)

    @property
    def key(self):
        return f"{self.question}/{self.name}"


# A percent-format cell marker (`# %%`, `# %% [markdown] tags=[...]`) and the tag of papermill's parameters cell.
_CELL = re.compile(r"^\s*#\s*%%(?!%)")
_PARAMETERS_TAG = re.compile(r"""\btags\s*=\s*\[[^\]]*["']parameters["']""")


def notebook_parameters(path):
    """Names and defaults of the `parameters` cell of a Jupytext percent-format notebook.

    Read with a regular expression and `ast` rather than through jupytext,
    whose import alone takes 3 s on a 2-core machine and would dominate a
    sweep with nothing to run (`test_parameters_cell_reads_as_jupytext_reads_it`
    checks both agree on every notebook).
    """
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start, end = parameters_cell(path, lines)
    defaults = {}
    for node in ast.parse("\n".join(lines[start + 1:end])).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            defaults[node.targets[0].id] = ast.literal_eval(node.value)
    return defaults


def parameters_cell(path, lines):
    """(line of the `parameters` cell's marker, line where the next cell starts) in a percent-format notebook."""
    starts = [i for i, line in enumerate(lines) if _CELL.match(line)]
    tagged = [i for i in starts if _PARAMETERS_TAG.search(lines[i])]
    if len(tagged) != 1:
        raise ConfigError(f"notebook {path!r} has {len(tagged)} cells tagged 'parameters'; it needs exactly one")
    return tagged[0], next((i for i in starts if i > tagged[0]), len(lines))


def load_file(path):
    """Parse one params file (safely) into a dict, with one-line errors."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror}); check the path and its permissions") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: is not valid YAML{where}; fix the syntax") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: must be a mapping with keys {', '.join(FILE_KEYS)}")
    unknown = sorted(set(spec) - set(FILE_KEYS))
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]!r}; accepted keys are {', '.join(FILE_KEYS)}")
    for key in ("question", "notebook"):
        if not isinstance(spec.get(key), str) or not spec[key]:
            raise ConfigError(f"{path}: {key!r} must be a non-empty string")
    for key in ("parameters", "grid", "profiles"):
        if not isinstance(spec.get(key, {}) or {}, dict):
            raise ConfigError(f"{path}: {key!r} must be a mapping")
    compare = spec.get("compare") or []
    if not isinstance(compare, list) or any(c not in COMPARISONS for c in compare):
        raise ConfigError(f"{path}: compare={compare!r} is not accepted; use a list of {', '.join(COMPARISONS)}")
    return spec


def expand(path, profile, root="."):
    """The runs of one params file under `profile`, validated."""
    if profile not in PROFILES:
        raise ConfigError(f"profile={profile!r} is not accepted; use one of {', '.join(PROFILES)}")
    spec = load_file(path)
    notebook = os.path.join(root, spec["notebook"])
    if not os.path.isfile(notebook):
        raise ConfigError(f"{path}: notebook {spec['notebook']!r} does not exist")
    accepted = notebook_parameters(notebook)
    base = spec.get("parameters") or {}
    grid = spec.get("grid") or {}
    override = (spec.get("profiles") or {}).get(profile) or {}
    if not isinstance(override, dict):
        raise ConfigError(f"{path}: profile {profile!r} must be a mapping of parameters")
    grid = {**grid, **{k: v for k, v in override.items() if k in grid}}
    seeds = _seeds(path, override.get("seeds", spec.get("seeds")), {**base, **grid, **override})
    override = {k: v for k, v in override.items() if k not in grid and k != "seeds"}
    unknown_profiles = sorted(set(spec.get("profiles") or {}) - set(PROFILES))
    if unknown_profiles:
        raise ConfigError(f"{path}: profile {unknown_profiles[0]!r} is not accepted; use {', '.join(PROFILES)}")
    runs = []
    for point, seed in itertools.product(_grid_points(path, grid), seeds):
        params = {**base, **point, **override, **({} if seed is None else {"seed": seed})}
        name = _run_name(path, spec.get("name"), params, seed is not None)
        for key, value in params.items():
            check_parameter(f"{path}: run {name!r}", key, value, accepted)
        settings = {k: v for k, v in {**accepted, **params}.items() if k not in RESERVED}
        check_together(f"{path}: run {name!r}", settings)
        runs.append(Run(spec["question"], name, spec["notebook"], params, path, tuple(spec.get("compare") or ()),
                        settings))
    names = [r.name for r in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path}: run name {dupes[0]!r} is used by several grid points; put the parameters "
                          f"that differ into 'name'")
    return runs


def _grid_points(path, grid):
    axes = []
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: grid axis {key!r} must be a non-empty list, got {values!r}")
        if all(isinstance(v, dict) for v in values):
            axes.append(values)
        elif any(isinstance(v, dict) for v in values):
            raise ConfigError(f"{path}: grid axis {key!r} mixes mappings and plain values; use one kind")
        else:
            axes.append([{key: v} for v in values])
    for combo in itertools.product(*axes):
        point = {}
        for part in combo:
            point.update(part)
        yield point


def _seeds(path, seeds, params):
    """The `seeds` list, checked: [None] (one run per grid point, its seed a parameter) or distinct seeds."""
    if seeds is None:
        return [None]
    accepted = "a non-empty list of distinct integers >= 0"
    if (not isinstance(seeds, list) or not seeds or len(set(seeds)) < len(seeds)
            or any(type(s) is not int or s < 0 for s in seeds)):
        raise ConfigError(f"{path}: seeds={seeds!r} is not accepted; use {accepted}")
    if "seed" in params:
        raise ConfigError(f"{path}: both 'seeds' and the parameter 'seed' are set; keep one")
    return seeds


def _run_name(path, template, params, seeded=False):
    if template is None:
        template = "default"
    if seeded and "{seed" not in str(template):
        template = f"{template}-seed{{seed}}"
    try:
        name = str(template).format(**params)
    except (KeyError, IndexError, ValueError) as e:
        raise ConfigError(f"{path}: name {template!r} cannot be formatted ({e}); use {{parameter}} fields "
                          f"of parameters the runs set") from None
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ConfigError(f"{path}: run name {name!r} is not accepted; use letters, digits, '-', '_' and '.'")
    return name


def check_parameter(where, key, value, accepted):
    """Check one parameter against the notebook's `accepted` names and `SCHEMA`; errors start with `where`."""
    if key in RESERVED:
        raise ConfigError(f"{where}: parameter {key!r} is set by the sweep; remove it")
    if key not in accepted:
        raise ConfigError(f"{where}: parameter {key!r} is unknown; accepted: "
                          f"{', '.join(sorted(k for k in accepted if k not in RESERVED))}")
    try:
        SCHEMA[key](key, value)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def check_together(where, params):
    """Rules that involve several parameters (with the notebook's defaults filled in); errors start with `where`."""
    if "depth" in params:  # the CIFAR notebooks (no `family`) build post-activation ResNets
        try:
            check_depth(params.get("family", "resnet"), params["depth"])
        except ConfigError as e:
            raise ConfigError(f"{where}: {e}") from None


def plan(params_dir, profile, root="."):
    """All runs of every `*.yaml` in `params_dir`, validated."""
    files = sorted(glob.glob(os.path.join(params_dir, "*.yaml")))
    if not files:
        raise ConfigError(f"no params files found in {params_dir!r}; add <question>.yaml files there")
    runs = [run for f in files for run in expand(f, profile, root)]
    keys = [r.key for r in runs]
    for k in keys:
        if keys.count(k) > 1:
            raise ConfigError(f"run {k!r} is defined twice; give the params files different 'question' values")
    return runs
