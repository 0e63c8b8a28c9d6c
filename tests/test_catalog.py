"""One home per concept: what can be chosen (`catalog`) and a run's file names (`products`); nothing else spells
them."""

import glob
import os
import re

import pytest
from conftest import REPO

from resnet_keras import catalog, products
from resnet_keras.errors import ConfigError
from resnet_keras.sweep.params import SCHEMA

CHOICES = {name: value for name, value in vars(catalog).items()
           if name.isupper() and isinstance(value, tuple) and all(isinstance(v, str) for v in value)}
SOURCES = [p for p in glob.glob(os.path.join(REPO, "resnet_keras", "**", "*.py"), recursive=True)
           if not p.endswith("catalog.py")]


@pytest.mark.parametrize("name", sorted(CHOICES))
def test_no_module_but_the_catalog_lists_allowed_values(name):
    values = CHOICES[name]
    listed = re.compile(r"\s*,\s*".join(f"[\"']{re.escape(v)}[\"']" for v in values))  # the whole list, in order
    for path in SOURCES:
        with open(path, encoding="utf-8") as f:
            assert not listed.search(f.read()), f"{os.path.basename(path)} lists {name} again; import it from catalog"


def test_the_depth_rule_lives_only_in_the_catalog():
    rule = re.compile(r"6 \* \w+ \+ 2|\(\w+ - 2\) // 6|\(\w+ - 2\) % 6")
    for path in SOURCES + glob.glob(os.path.join(REPO, "notebooks", "*.py")):
        with open(path, encoding="utf-8") as f:
            assert not rule.search(f.read()), f"{os.path.basename(path)} applies the 6n+2 rule itself"
    assert [catalog.cifar_blocks(d) for d in (8, 20, 56, 110)] == [1, 3, 9, 18]
    for bad in (7, 21, 2, 20.0, True):
        with pytest.raises(ConfigError, match=f"depth={bad!r} is not accepted for a CIFAR network; use 6n\\+2"):
            catalog.cifar_blocks(bad)


@pytest.mark.parametrize("parameter,choices", [
    ("dataset", catalog.DATASETS), ("label_mode", catalog.LABEL_MODES), ("family", catalog.FAMILIES),
    ("version", catalog.VERSIONS), ("shortcut", catalog.SHORTCUTS), ("optimizer", catalog.OPTIMIZERS),
    ("schedule", catalog.SCHEDULES), ("precision", catalog.PRECISIONS), ("pipeline", catalog.PIPELINE_CHOICES)])
def test_params_accept_exactly_the_catalogs_choices(parameter, choices):
    for value in choices:
        assert SCHEMA[parameter](parameter, value) == value
    with pytest.raises(ConfigError, match=f"{parameter}='other' is not accepted; use one of "
                                          + re.escape(", ".join(repr(c) for c in choices))):
        SCHEMA[parameter](parameter, "other")


def test_no_module_or_notebook_but_products_names_a_runs_files():
    names = [v for k, v in vars(products).items() if k.isupper() and isinstance(v, str)]
    quoted = re.compile("|".join(f"[\"'/]{re.escape(n)}[\"']" for n in names))
    for path in SOURCES + glob.glob(os.path.join(REPO, "notebooks", "*.py")):
        if path.endswith("products.py"):
            continue
        with open(path, encoding="utf-8") as f:
            found = quoted.search(f.read())
        assert not found, f"{os.path.basename(path)} spells {found.group(0)}; use resnet_keras.products"
