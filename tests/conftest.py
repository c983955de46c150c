"""Shared test set-up.

Many tests compile identical programs (the same model fitted with several seeds, a run and
its resumed copy). With JAXDL_TEST_COMPILE_CACHE=1 a persistent compilation cache in a
temporary folder, switched on before the first compile, lets them share one compilation; it
changes no numbers, and a cache the user configured wins.
"""
import atexit
import os
import shutil
import tempfile

import jax

# Off by default since two CI dry runs lost a worker (SIGSEGV) inside JAX's persistent-cache write
# of a Lanczos program; JAXDL_TEST_COMPILE_CACHE=1 switches it on.
if jax.config.jax_compilation_cache_dir is None and os.environ.get("JAXDL_TEST_COMPILE_CACHE") == "1":
    _CACHE_DIR = tempfile.mkdtemp(prefix="jaxdl-test-compile-cache-")
    atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
    jax.config.update("jax_compilation_cache_dir", _CACHE_DIR)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

# The tests compare float32 results with float64 NumPy references at tight tolerances; on GPUs
# and TPUs JAX's default float32 matmul precision (TF32 or bf16 passes) would break them.
jax.config.update("jax_default_matmul_precision", "highest")
