"""What a run's record keeps of the package code it executed, and whether that code changed since.

A record maps each `resnet_keras` module the run executed to the digests of
the module's top-level definitions (`definitions`): one per function and
class, and one of everything else at the top of the module (imports,
constants, registrations). The run is out of date when one of those digests
differs now or its definition is gone. A definition added since cannot have
changed what the run computed: it did not exist when the run called into the
module, and nothing in the package looks functions up by a name that was
missing. So adding a function or a class to a module reruns nothing; editing
or removing one that was there does, as does any edit of the module's other
statements. Comments, docstrings and formatting never count.

Records written before kept one digest per module, of its syntax tree
(`files.source_digest`) or earlier of its text (`files.text_digest`); such a
digest stays current while the module is unchanged, and `upgrade` replaces it
with the module's definitions then.
"""

import ast
import functools
import hashlib

from resnet_keras.files import source_digest, syntax_tree, text_digest

MODULE_LEVEL = ""  # the key of a module's statements that are neither functions nor classes
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


@functools.cache
def definitions(module):
    """{name: digest} of one module's top-level functions and classes, and under `MODULE_LEVEL` its other
    statements; None when the module is gone or does not parse. Read once per process."""
    tree = syntax_tree(module)
    if tree is None:
        return None
    parts = {MODULE_LEVEL: []}
    for node in tree.body:
        parts.setdefault(node.name if isinstance(node, DEFINITIONS) else MODULE_LEVEL, []).append(ast.dump(node))
    return {name: hashlib.sha256("\n".join(dumps).encode()).hexdigest()[:16] for name, dumps in parts.items()}


def digests(modules):
    """What a record keeps of `modules`: {module: `definitions(module)`}."""
    return {m: definitions(m) for m in modules}


def changed(sources):
    """The modules of `sources` (a record's {module: digests}) whose code a run executed differs now, sorted."""
    return sorted(m for m, kept in sources.items() if _changed(m, kept))


def _changed(module, kept):
    if isinstance(kept, dict):
        now = definitions(module)
        return now is None or any(now.get(name) != digest for name, digest in kept.items())
    return source_digest(module) != kept and text_digest(module) != kept  # a record of one digest per module


def upgrade(sources):
    """`sources`, all current (`changed` is empty), with every one-digest module given its definitions."""
    return {m: kept if isinstance(kept, dict) else definitions(m) for m, kept in sources.items()}
