"""The tree shows the architecture: a flat library that runs execute, the tooling above it in subpackages, and
imports that go down, never around in a circle."""

import ast
import os

from conftest import REPO

PACKAGE = os.path.join(REPO, "resnet_keras")
TOOLING = ("sweep", "summary", "share")  # subpackages; every top-level module is the library


def modules(root):
    """{dotted name: path} of every module of the package in `root` (a folder named like the package)."""
    base = os.path.basename(root)
    found = {}
    for folder, _, files in os.walk(root):
        for file in files:
            if file.endswith(".py"):
                parts = os.path.relpath(os.path.join(folder, file), os.path.dirname(root))[:-3].split(os.sep)
                found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = os.path.join(folder, file)
    assert base in found, f"{root} is not a package"
    return found


def imports(root):
    """{module: the package's modules it imports anywhere in its code (functions included)}."""
    known = modules(root)
    graph = {}
    for name, path in known.items():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        targets = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                targets |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in known else node.module
                            for a in node.names}
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def circles(graph):
    """Every import circle of `graph` found by a depth-first search, each as [a, b, ..., a]."""
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                found.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_module_of_the_package_imports_itself_in_a_circle():
    assert circles(imports(PACKAGE)) == []


def test_the_check_finds_a_circle(tmp_path):
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.sub import b\n")
    (package / "sub" / "b.py").write_text("def f():\n    from pkg import c\n")  # inside a function counts too
    (package / "c.py").write_text("import pkg.a\n")
    assert circles(imports(str(package))) == [["pkg.a", "pkg.sub.b", "pkg.c", "pkg.a"]]


def test_the_library_imports_no_tooling():
    """A run executes the library only: its modules never import the sweep, the summary or the demo."""
    graph = imports(PACKAGE)
    library = [m for m in graph if m.count(".") == 1 and m.split(".")[1] not in TOOLING]
    assert len(library) >= 15
    for module in library:
        assert not {t for t in graph[module] if t.split(".")[1:2] and t.split(".")[1] in TOOLING}, module


def test_the_comparisons_a_params_file_names_are_the_ones_drawn():
    from resnet_keras.summary.comparisons import DRAW
    from resnet_keras.sweep.params import COMPARISONS

    assert tuple(DRAW) == COMPARISONS
