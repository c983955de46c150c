"""The sharded phases on 1 and on N forced CPU devices, each in a fresh interpreter: what the
sharding costs and whether the numbers stay put (on one CPU the forced devices share its cores,
so this measures overhead and correctness, not speed-up; a GPU or TPU table needs the real
devices).

Phases: ``fit`` (batches over 'data'), ``fit_seeds`` (seeds over 'seeds'), the top Hessian
eigenvalues, Hutchinson's trace and a loss surface, on a small MLP and data set.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_with_devices(code: str, num_devices: int, timeout: float = 600.0) -> subprocess.CompletedProcess:
    """Runs ``code`` with ``python -c`` in a fresh interpreter that sees ``num_devices`` CPU
    devices (the XLA flag, read once when JAX starts; the caller's other XLA flags kept), from
    the repository root. Returns the completed process (``subprocess.TimeoutExpired`` past
    ``timeout`` seconds)."""
    flags = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG)]
    flags.append(f"{DEVICE_COUNT_FLAG}={num_devices}")
    env = dict(os.environ, XLA_FLAGS=" ".join(flags), JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=_REPO_ROOT, capture_output=True, text=True,
                          timeout=timeout)


_SCRIPT = textwrap.dedent("""
    import json, time

    import jax
    import numpy as np

    from jaxdl import train
    from jaxdl.analysis import curvature, landscape
    from jaxdl.train import losses, optim
    from jaxdl.data import Dataset
    from jaxdl.models import get_model

    EXAMPLES, WIDTH, SEEDS, REPEATS = {examples}, {width}, {seeds}, {repeats}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((EXAMPLES, 40)).astype(np.float32)
    y = rng.integers(0, 10, EXAMPLES).astype(np.int32)
    data = Dataset(x, y, x[:64], y[:64], 10, "synthetic")
    model = get_model("mlp", widths=(WIDTH, WIDTH), num_outputs=10)
    # Plain SGD: Adam's normalised step m / sqrt(v) turns float32 rounding of a near-zero gradient
    # coordinate into a full step, so two Adam runs whose inputs differ by 2e-7 (relative) on ONE
    # device already end 8e-3 apart (measured); SGD keeps rounding at rounding (1e-7) and so
    # measures the sharding, not Adam's sensitivity.
    tx = optim.get_optimizer("sgd", 0.1)
    kwargs = dict(epochs=2, batch_size=64, progress=False)
    params = train.fit(model, data, tx, **kwargs).state.params
    apply_fn = train.make_apply_fn(model)
    loss_fn = losses.make_loss_fn(apply_fn, "cross_entropy")
    dx = landscape.random_direction(jax.random.key(1), params)
    dy = landscape.random_direction(jax.random.key(2), params)
    grid = np.linspace(-1, 1, 9)
    phases = {{
        "fit": lambda: train.fit(model, data, tx, **kwargs).state.params,
        "fit_seeds": lambda: train.fit_seeds(model, data, tx, seeds=list(range(SEEDS)), **kwargs).state.params,
        "top_eigenvalues": lambda: curvature.hessian_top_eigenvalues(loss_fn, params, (x, y), k=2, num_steps=20,
                                                                     tol=None).eigenvalues,
        "trace": lambda: curvature.hessian_trace(loss_fn, params, (x, y), num_probes=16).estimate,
        "surface": lambda: landscape.surface(apply_fn, params, dx, dy, (x, y), grid, grid)["loss"],
    }}
    out = {{"devices": jax.device_count()}}
    for name, phase in phases.items():
        value = jax.block_until_ready(phase())
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            jax.block_until_ready(phase())
            times.append(time.perf_counter() - start)
        leaves = [np.asarray(v, np.float64).ravel() for v in jax.tree.leaves(value)]
        out[name] = {{"seconds": float(np.median(times)), "values": np.concatenate(leaves).tolist()}}
    print("RESULT " + json.dumps(out))
""")


def bench_devices(config) -> dict:
    """``{phase: {'seconds': (one, many), 'difference': largest relative difference}}`` and the
    device counts, from two subprocesses (1 and ``config.forced_devices`` CPU devices)."""
    code = _SCRIPT.format(examples=int(config.devices_examples), width=int(config.devices_width),
                          seeds=int(config.forced_devices), repeats=int(config.repeats))
    runs = {}
    for count in (1, int(config.forced_devices)):
        process = run_with_devices(code, count)
        lines = [line for line in process.stdout.splitlines() if line.startswith("RESULT ")]
        if process.returncode != 0 or not lines:
            raise RuntimeError(f"the {count}-device run exited with {process.returncode}:\n{process.stderr[-3000:]}")
        runs[count] = json.loads(lines[-1][len("RESULT "):])
    one, many = runs[1], runs[int(config.forced_devices)]
    result = {"devices": (one["devices"], many["devices"])}
    for phase in ("fit", "fit_seeds", "top_eigenvalues", "trace", "surface"):
        a, b = np.asarray(one[phase]["values"]), np.asarray(many[phase]["values"])
        result[phase] = {"seconds": (one[phase]["seconds"], many[phase]["seconds"]),
                         "difference": float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12))}
    return result
