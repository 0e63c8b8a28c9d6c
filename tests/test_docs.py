"""The docs stay true: every make target, make variable, file path and link that README.md and docs/*.md name
exists in the project."""

import glob
import os
import re

import pytest
from conftest import REPO

DOCS = [os.path.join(REPO, "README.md"), os.path.join(REPO, "CHANGELOG.md"),
        *sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))]
# Paths under these folders (or these top-level files) are the project's own; outputs/ and data/ are made by runs.
TRACKED = ("resnet_keras/", "tests/", "benchmarks/", "notebooks/", "params/", "docs/", ".ci/")
TOP_LEVEL = r"(?:Makefile|README\.md|CHANGELOG\.md|requirements(?:-\w+)?\.txt|pyproject\.toml|jupytext\.toml)"


def makefile():
    with open(os.path.join(REPO, "Makefile")) as f:
        return f.read()


def broken_references(text, make_text, page_dir=REPO):
    """The make targets, make variables, project paths (from the project's root) and relative links (from
    `page_dir`) named in `text` that do not exist."""
    targets = set(re.findall(r"^([a-z][\w.-]*)\s*:", make_text, re.M))
    variables = set(re.findall(r"^(?:export\s+)?([A-Z][A-Z_]*)\s*[?:]?=", make_text, re.M))
    variables |= set(re.findall(r"\$\(([A-Z][A-Z_]*)\)", make_text))  # set on the command line
    broken = []
    for command in re.findall(r"(?:`|^    +)make((?: +[\w./=\"'|-]+)+)", text, re.M):  # in code, not prose
        words = command.split()
        if words and re.fullmatch(r"[a-z][\w-]*", words[0]) and words[0] not in targets:
            broken.append(f"make target {words[0]}")
        for word in words:
            name = word.split("=")[0].strip("\"'")
            if "=" in word and re.fullmatch(r"[A-Z][A-Z_]*", name) and name not in variables:
                broken.append(f"make variable {name}")
    for path in re.findall(rf"`((?:{'|'.join(map(re.escape, TRACKED))})[\w./-]*|{TOP_LEVEL})[`:]", text):
        if "*" not in path and not os.path.exists(os.path.join(REPO, path.rstrip("."))):
            broken.append(f"path {path}")
    for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if "://" not in link and not link.startswith("mailto:") and not os.path.exists(os.path.join(page_dir, link)):
            broken.append(f"path {link}")
    return broken


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: os.path.relpath(p, REPO))
def test_every_target_variable_path_and_link_a_doc_names_exists(doc):
    assert os.path.exists(doc), f"{os.path.relpath(doc, REPO)} is missing"
    with open(doc) as f:
        broken = broken_references(f.read(), makefile(), os.path.dirname(doc))
    assert not broken, f"{os.path.relpath(doc, REPO)} names what does not exist: {broken}"


def test_the_check_finds_a_removed_target_variable_and_path():
    text = ("Run `make sweep PROFILE=smoke`, then `make deploy`, or `make sweep COLOUR=red`; the make targets; see "
            "`resnet_keras/sweep/runner.py`, `resnet_keras/gone.py`, [the guide](docs/nowhere.md).")
    assert broken_references(text, makefile()) == ["make target deploy", "make variable COLOUR",
                                                         "path resnet_keras/gone.py", "path docs/nowhere.md"]


def test_the_readmes_results_are_what_make_results_draws_from_results(tmp_path):
    """The README's results block is drawn from the committed `results/` (`make results`), not written by hand."""
    import shutil

    from resnet_keras.summary.reference import draw

    shutil.copytree(os.path.join(REPO, "results"), tmp_path / "results")
    shutil.copy(os.path.join(REPO, "README.md"), tmp_path / "README.md")
    draw(str(tmp_path / "results"), str(tmp_path / "README.md"), os.path.join(REPO, "params"))
    assert (tmp_path / "README.md").read_text() == open(os.path.join(REPO, "README.md")).read(), \
        "README.md's results block is out of date: run make results"
