"""The architecture stays visible: imports point downwards only (see the jaxdl package docstring).

Every module of the library is parsed and its imports of jaxdl and experiments collected:
the library never imports ``experiments``, and the analysis layer never imports a model family.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "jaxdl").rglob("*.py"))
ANALYSIS = ("jaxdl.landscape", "jaxdl.curvature", "jaxdl.implicit", "jaxdl.ntk", "jaxdl.regions", "jaxdl.features",
            "jaxdl.adversarial")
FOUNDATIONS = ("jaxdl.checks", "jaxdl.batching", "jaxdl.compiled", "jaxdl.tree", "jaxdl.io")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: pathlib.Path) -> set[str]:
    """Every module named by an ``import`` or ``from ... import`` in the file, top level or not."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _starts(name: str, prefixes) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_the_checker_sees_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom jaxdl import models\n\ndef f():\n    from experiments import framework\n")
    assert {"os", "jaxdl.models", "experiments.framework"} <= imports_of(probe)


@pytest.mark.parametrize("path", LIBRARY, ids=_module_name)
def test_the_library_never_imports_experiments(path):
    assert not [n for n in imports_of(path) if _starts(n, ("experiments",))]


@pytest.mark.parametrize("path", [p for p in LIBRARY if _starts(_module_name(p), ANALYSIS)], ids=_module_name)
def test_analysis_never_imports_a_model_family(path):
    assert not [n for n in imports_of(path) if _starts(n, ("jaxdl.models",))]


@pytest.mark.parametrize("path", [p for p in LIBRARY if _starts(_module_name(p), FOUNDATIONS)], ids=_module_name)
def test_foundations_import_no_higher_layer(path):
    higher = ("jaxdl.train", "jaxdl.optim", "jaxdl.losses", "jaxdl.landscape", "jaxdl.curvature", "jaxdl.implicit",
              "jaxdl.ntk")
    assert not [n for n in imports_of(path) if _starts(n, higher)]
