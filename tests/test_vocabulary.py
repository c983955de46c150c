"""One vocabulary for jaxdl's public API, read from the source with ``ast``.

Every public signature in ``jaxdl/`` -- functions and methods whose names do not start with
``_`` (plus ``__init__`` and ``__call__``) and the annotated fields of public classes (the
constructor arguments of dataclasses, NamedTuples and Flax modules), in modules whose names do
not start with ``_`` -- is held to the conventions of the package docstring:

- no iteration-count spellings (``num_steps`` / ``max_steps`` only), no ``block_points``;
- ``batch_size`` only in the training functions of ``BATCH_SIZE_ALLOWED`` (everywhere else a
  block of examples is ``chunk_size``, other items ``<items>_per_chunk``);
- no ``which`` on a function whose name says top or bottom (but the deprecated alias);
- no activation defaulting to ``'linear'`` (the name is ``'identity'``);
- every shape-suffixed name (``x_NxD``, ``keys_K``, ``basis_2xD``) uses only letters of the
  table in ``jaxdl.__doc__``, read from there so that the table and this test cannot drift.

``empirical_ntk``'s ``rows_per_chunk`` counts rows of J(x2)^T (one per example and output), not
examples, so it is an ``<items>_per_chunk`` and is allowed.
"""
from __future__ import annotations

import ast
import collections
import pathlib
import re

import pytest

import jaxdl

ROOT = pathlib.Path(jaxdl.__file__).parent

BANNED = {"max_iterations": "max_steps", "num_iterations": "num_steps", "max_iters": "max_steps",
          "num_iters": "num_steps", "iterations": "num_steps or max_steps", "block_points": "points_per_block"}
# The functions (and classes whose fields are their options) where batch_size is a training
# minibatch, or the BatchNorm batch that sets the recomputed statistics. Keyed by qualified name,
# not module: the training loop is split across train/ modules and may move.
BATCH_SIZE_ALLOWED = {"fit", "fit_seeds", "make_plan", "seeds_mesh", "fit_curve", "fit_widths", "EpochPlan",
                      "FitOptions", "recompute_batch_stats", "BatchStats"}
# Deprecated for one version: hessian_top_eigenvalues(..., which='bottom') warns and points to
# hessian_bottom_eigenvalues. Remove this entry with the argument.
WHICH_ALLOWED = {("jaxdl.analysis.curvature.eigen", "hessian_top_eigenvalues")}
# A shape suffix: groups of capital letters or of digits joined by 'x', at least one letter.
SHAPE_SUFFIX = re.compile(r"_((?:[A-Z]+|[0-9]+)(?:x(?:[A-Z]+|[0-9]+))*)$")
PUBLIC_DUNDERS = {"__init__", "__call__"}


def letter_table(doc: str) -> dict[str, str]:
    """``{letter: meaning}`` from the "Shape letters" section of a package docstring; ValueError
    if a letter appears twice."""
    if "Shape letters" not in doc:
        raise ValueError("the docstring has no 'Shape letters' section")
    section = doc.split("Shape letters", 1)[1]
    following = re.search(r"\n[^\n]+\n-{3,}\n", section[1:])  # the next section's underlined title
    section = section[: following.start() + 1] if following else section
    rows = re.findall(r"^ {4}([A-Z]) {2}(\S.*)$", section, flags=re.M)
    twice = [letter for letter, count in collections.Counter(letter for letter, _ in rows).items() if count > 1]
    if twice:
        raise ValueError(f"letters with more than one meaning: {twice}")
    return dict(rows)


def _parameters(node: ast.FunctionDef | ast.AsyncFunctionDef):
    """``(name, default or None)`` for every parameter but ``self`` and ``cls``."""
    arguments = node.args
    positional = arguments.posonlyargs + arguments.args
    defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
    pairs = list(zip(positional, defaults)) + list(zip(arguments.kwonlyargs, arguments.kw_defaults))
    pairs += [(a, None) for a in (arguments.vararg, arguments.kwarg) if a is not None]
    return [(a.arg, default) for a, default in pairs if a.arg not in ("self", "cls")]


def _is_classvar(annotation: ast.expr) -> bool:
    return "ClassVar" in ast.unparse(annotation)


def signatures(tree: ast.Module):
    """``(qualified name, owner, [(parameter, default)])`` for each public signature of a module:
    ``owner`` is the function, or the class for a method or a field."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node.name, _parameters(node)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            fields = [(item.target.id, item.value) for item in node.body
                      if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
                      and not item.target.id.startswith("_") and not _is_classvar(item.annotation)]
            if fields:
                yield node.name, node.name, fields
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        not item.name.startswith("_") or item.name in PUBLIC_DUNDERS):
                    yield f"{node.name}.{item.name}", node.name, _parameters(item)


def _says_top_or_bottom(name: str) -> bool:
    return bool({"top", "bottom"} & set(name.split(".")[-1].lower().split("_")))


def _is_linear(default) -> bool:
    if default is None:
        return False
    values = default.elts if isinstance(default, (ast.Tuple, ast.List)) else [default]
    return any(isinstance(v, ast.Constant) and v.value == "linear" for v in values)


def violations(source: str, module: str, letters) -> list[str]:
    """Every breach of the vocabulary in one module's source, one line each naming the module,
    the function (or class) and the parameter (or field)."""
    found = []
    for qualname, owner, parameters in signatures(ast.parse(source)):
        where = f"{module}: {qualname}"
        for name, default in parameters:
            bare = name.lstrip("*")
            if bare in BANNED:
                found.append(f"{where}({bare}): banned name, use {BANNED[bare]}")
            if bare == "batch_size" and owner not in BATCH_SIZE_ALLOWED:
                found.append(f"{where}(batch_size): batch_size outside the training functions; examples per "
                             "chunk are chunk_size (or add a training function to BATCH_SIZE_ALLOWED)")
            if bare == "which" and _says_top_or_bottom(qualname) and (module, qualname) not in WHICH_ALLOWED:
                found.append(f"{where}(which): the name says top or bottom, so 'which' contradicts it")
            if "activation" in bare and _is_linear(default):
                found.append(f"{where}({bare}): activation default 'linear'; the name is 'identity'")
            shape = SHAPE_SUFFIX.search(bare)
            if shape:
                unknown = sorted({c for c in shape.group(1) if c.isupper() and c != "x"} - set(letters))
                if unknown:
                    found.append(f"{where}({bare}): shape letter(s) {unknown} not in the table of jaxdl.__doc__")
    return found


def _modules():
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).parts
        if any(part.startswith("_") and part != "__init__.py" for part in parts):
            continue
        module = ".".join(parts)[: -len(".py")].removesuffix(".__init__")
        yield module, path


LETTERS = letter_table(jaxdl.__doc__)


def test_the_letter_table_gives_each_letter_one_meaning():
    assert len(LETTERS) >= 20, LETTERS
    assert {"B", "N", "C", "D", "K", "P", "S", "T", "R", "L", "H"} <= set(LETTERS)
    doubled = jaxdl.__doc__.replace("    B  examples of a batch", "    B  examples of a batch\n    B  a second meaning")
    with pytest.raises(ValueError, match="more than one meaning"):
        letter_table(doubled)


def test_every_public_signature_speaks_the_vocabulary():
    modules = list(_modules())
    assert len(modules) > 50  # the walk found the package
    found = [line for module, path in modules for line in violations(path.read_text(), module, LETTERS)]
    assert not found, "\n".join(found)


PROBE = '''
def run(loss_fn, x_BxZ, *, max_iterations=10, block_points=None, batch_size=32, rows_per_chunk=8):
    pass

def hessian_top_things(loss_fn, which="bottom"):
    pass

def _private(max_iterations, batch_size, x_Z):
    pass

class Net:
    activation: str = "linear"
    block_points: int = 4
    keys_K: object = None

    def __call__(self, x, num_iters=3):
        pass

    def _helper(self, iterations):
        pass

def fit(data, batch_size=None):
    pass
'''


def test_the_checker_reports_bad_signatures_by_module_function_and_parameter():
    found = violations(PROBE, "jaxdl.probe", LETTERS)
    expected = ["jaxdl.probe: run(max_iterations)", "jaxdl.probe: run(block_points)", "jaxdl.probe: run(batch_size)",
                "jaxdl.probe: run(x_BxZ): shape letter(s) ['Z']", "jaxdl.probe: hessian_top_things(which)",
                "jaxdl.probe: Net(activation): activation default 'linear'", "jaxdl.probe: Net(block_points)",
                "jaxdl.probe: Net.__call__(num_iters)"]
    for start in expected:
        assert any(line.startswith(start) for line in found), (start, found)
    assert len(found) == len(expected), found  # private names, keys_K, fit's batch_size, rows_per_chunk pass


def test_the_deprecated_which_is_allowed_only_on_its_alias():
    source = "def hessian_top_eigenvalues(loss_fn, which=None):\n    pass\n"
    assert violations(source, "jaxdl.analysis.curvature.eigen", LETTERS) == []
    assert violations(source, "jaxdl.analysis.ntk.empirical", LETTERS)
    assert violations(source.replace("top", "bottom"), "jaxdl.analysis.curvature.eigen", LETTERS)
