"""Shared test set-up.

Many tests compile identical programs (the same model fitted with several seeds, a run and
its resumed copy). With JAXDL_TEST_COMPILE_CACHE=1 a persistent compilation cache in a
temporary folder, switched on before the first compile, lets them share one compilation; it
changes no numbers, and a cache the user configured wins.
"""
import atexit
import gc
import os
import shutil
import tempfile

import jax
import pytest

# Off by default (JAXDL_TEST_COMPILE_CACHE=1 switches it on): it saved little once every module
# releases its programs (below).
if jax.config.jax_compilation_cache_dir is None and os.environ.get("JAXDL_TEST_COMPILE_CACHE") == "1":
    _CACHE_DIR = tempfile.mkdtemp(prefix="jaxdl-test-compile-cache-")
    atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
    jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

# The tests compare float32 results with float64 NumPy references at tight tolerances; on GPUs
# and TPUs JAX's default float32 matmul precision (TF32 or bf16 passes) would break them.
jax.config.update("jax_default_matmul_precision", "highest")


def pytest_collection_modifyitems(config, items):
    """Collects the claims lock (the default tour, most of the suite's time) first. With
    ``--dist loadscope --no-loadscope-reorder`` (setup.cfg) pytest-xdist hands modules out in this
    order, so one worker starts the tour at once while the others run every other module; with its
    default reordering (largest module first) the tour started ten minutes into a CI run."""
    items.sort(key=lambda item: item.nodeid.split("::")[0] != "tests/test_claims.py")


def _mappings_limit() -> int | None:
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):  # not Linux: no such limit to keep away from
        return None


def _mappings() -> int:
    with open("/proc/self/maps", "rb") as f:
        return sum(1 for _ in f)


_LIMIT = _mappings_limit()


@pytest.fixture(autouse=True)
def _release_compiled_programs():
    """Drops JAX's in-memory caches after a test once this process holds a third of the kernel's
    limit on memory mappings.

    Every compiled CPU program holds about three mappings for as long as a jit cache holds it, and
    one pytest-xdist worker runs most modules while the other runs the tour. Kept for the whole
    session, the programs took that worker past vm.max_map_count (65530 by default), and XLA then
    crashed (SIGSEGV or SIGABRT) inside a later compile; a dead worker hangs pytest-xdist.
    Releasing only past a third of the limit keeps the programs that a module's tests share.
    """
    yield
    if _LIMIT is not None and _mappings() > _LIMIT // 3:
        jax.clear_caches()
        gc.collect()
