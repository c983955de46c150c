"""The architecture stays visible: every folder of jaxdl is a layer, and imports point downwards
only (see the jaxdl package docstring).

Every module of the library is parsed and its imports of jaxdl and experiments collected; each
folder may import only the folders its layer stands on. A module outside every folder, or a
folder no layer names, fails the test, so a new module has to be placed before it can land.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "jaxdl").rglob("*.py"))

# Each folder, and the folders it may import (itself always).
FOUNDATIONS = ("core", "data", "models", "plot")
MAY_IMPORT = {
    "core": (),
    "data": ("core", "models"),  # a graph data set is packed in the zoo's Graph record
    "models": ("core",),
    "plot": ("core",),
    "train": FOUNDATIONS,
    "course": FOUNDATIONS + ("train",),
    "analysis": ("core", "data", "plot", "train"),  # never a model family, never a course tool
}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _folder(module: str) -> str | None:
    """The layer folder of a ``jaxdl`` module name (``jaxdl.core.tree`` -> ``core``); None for
    the package itself."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


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


def _jaxdl_imports(path: pathlib.Path) -> set[str]:
    """The folders of jaxdl that the file imports from (``from jaxdl import train`` names ``train``)."""
    folders = set()
    for name in imports_of(path):
        if name.startswith("jaxdl."):
            folders.add(_folder(name))
    return folders


def test_the_checker_sees_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom jaxdl import models\n\ndef f():\n    from experiments import framework\n"
                     "    from jaxdl.analysis import curvature\n")
    assert {"os", "jaxdl.models", "experiments.framework", "jaxdl.analysis.curvature"} <= imports_of(probe)
    assert _jaxdl_imports(probe) == {"models", "analysis"}


def test_every_module_lives_in_a_layer_folder():
    loose = [_module_name(p) for p in LIBRARY if p.parent == ROOT / "jaxdl" and p.name != "__init__.py"]
    assert not loose, f"modules outside every layer folder: {loose}"
    folders = {p.relative_to(ROOT / "jaxdl").parts[0] for p in LIBRARY if p.parent != ROOT / "jaxdl"}
    assert folders == set(MAY_IMPORT), f"folders no layer names: {sorted(folders - set(MAY_IMPORT))}"


@pytest.mark.parametrize("path", LIBRARY, ids=_module_name)
def test_the_library_never_imports_experiments(path):
    assert not [n for n in imports_of(path) if n == "experiments" or n.startswith("experiments.")]


@pytest.mark.parametrize("path", [p for p in LIBRARY if _folder(_module_name(p))], ids=_module_name)
def test_each_folder_imports_only_the_layers_below_it(path):
    folder = _folder(_module_name(path))
    allowed = {folder, *MAY_IMPORT[folder]}
    assert _jaxdl_imports(path) <= allowed, (
        f"{_module_name(path)} ({folder}/) imports {sorted(_jaxdl_imports(path) - allowed)}; "
        f"{folder}/ may import only {sorted(allowed)}")


@pytest.mark.parametrize("path", [p for p in LIBRARY if not p.name.startswith("_") or p.name == "__init__.py"],
                         ids=_module_name)
def test_every_public_module_declares_its_api(path):
    tree = ast.parse(path.read_text())
    declared = [node for node in tree.body if isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)]
    assert declared, f"{_module_name(path)} has no __all__"
    names = ast.literal_eval(declared[0].value)
    private = [n for n in names if n.startswith("_")]
    assert not private, f"{_module_name(path)} exports private names {private}"


# ----------------------------------------------------------------------------- experiments/

EXPERIMENTS_DIR = ROOT / "experiments"
FRAMEWORK = sorted((EXPERIMENTS_DIR / "framework").rglob("*.py"))
BENCHMARK = sorted((EXPERIMENTS_DIR / "benchmark").rglob("*.py"))
EXPERIMENT_MODULES = sorted(p for p in EXPERIMENTS_DIR.glob("*.py") if not p.name.startswith("_"))


def _experiment_imports(path: pathlib.Path) -> set[str]:
    """The ``experiments`` subpackages or modules the file imports (``from experiments import x``
    names ``x``; ``import experiments`` names the package itself, '')."""
    parts = set()
    for name in imports_of(path):
        if name == "experiments":
            parts.add("")
        elif name.startswith("experiments."):
            parts.add(name.split(".")[1])
    return parts


def test_experiments_folder_holds_experiments_framework_and_benchmark():
    folders = {p.name for p in EXPERIMENTS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    assert folders == {"framework", "benchmark"}


@pytest.mark.parametrize("path", FRAMEWORK, ids=lambda p: p.stem)
def test_the_runner_framework_imports_no_experiment(path):
    # The tour finds experiments by name through the package (``import experiments``), never by import.
    assert _experiment_imports(path) <= {"", "framework"}


@pytest.mark.parametrize("path", EXPERIMENT_MODULES + BENCHMARK, ids=lambda p: p.stem)
def test_experiments_and_the_benchmark_stand_on_the_framework_never_on_the_benchmark(path):
    imported = _experiment_imports(path)
    inside_benchmark = path.parent.name == "benchmark"
    assert inside_benchmark or "benchmark" not in imported
