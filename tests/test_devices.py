"""Every heavy phase on 8 forced CPU devices gives what one device gives (to float32
reassociation): fit (batches over 'data'), fit_seeds (seeds over 'seeds', batches over 'data'),
fit_curve, the top Hessian eigenvalues, Hutchinson's trace, a loss surface and empirical NTKs. The same script
runs in two fresh interpreters, one seeing 1 device and one seeing 8 (the device count is an
XLA flag read once, when JAX starts)."""
from __future__ import annotations

import textwrap

import numpy as np
import pytest

from helpers import TOY_FIT_PROBLEM, json_result, numbers_in, run_on_devices

_SCRIPT = textwrap.dedent("""
    import json

    import jax
    import numpy as np

    from jaxdl import train
    from jaxdl.core import meshes
    from jaxdl.analysis import curvature, landscape, ntk
    from jaxdl.train import losses, optim
""") + TOY_FIT_PROBLEM + textwrap.dedent("""
    leaves = lambda tree: [np.asarray(v, np.float64).ravel().tolist() for v in jax.tree.leaves(tree)]
    out = {"devices": jax.device_count()}

    single = train.fit(model, data, tx, **kwargs)
    out["fit"] = leaves(single.state.params) + [single.history["batch_loss"].tolist()]
    for k in (8, 4, 3):
        seeds = train.fit_seeds(model, data, tx, seeds=list(range(k)), **kwargs)
        out[f"seeds_{k}"] = leaves(seeds.state.params) + [seeds.history["batch_loss"].ravel().tolist(),
                                                          seeds.history["test_loss"].ravel().tolist()]
        out[f"mesh_{k}"] = dict(meshes.seeds_mesh(k, 16).shape)
    other = train.fit(model, data, tx, seed=1, **kwargs).state.params
    bend, history = landscape.fit_curve(model, {}, single.state.params, other, data, optim.get_optimizer("sgd", 0.05),
                                        epochs=2, batch_size=16, key=jax.random.key(3), progress=False)
    out["curve"] = leaves(bend) + [history["loss"].tolist()]

    apply_fn = train.make_apply_fn(model)
    loss_fn = losses.make_loss_fn(apply_fn, "cross_entropy")
    batch = (x, y)
    top = curvature.hessian_top_eigenvalues(loss_fn, single.state.params, batch, k=2, num_steps=20, tol=None)
    out["eigenvalues"] = np.asarray(top.eigenvalues).tolist()
    out["trace"] = float(curvature.hessian_trace(loss_fn, single.state.params, batch, num_probes=16).estimate)
    dx = landscape.random_direction(jax.random.key(1), single.state.params)
    dy = landscape.random_direction(jax.random.key(2), single.state.params)
    grid = np.linspace(-1, 1, 5)
    out["surface"] = landscape.surface(apply_fn, single.state.params, dx, dy, batch, grid, grid)["loss"].tolist()
    out["ntk"] = {method: np.asarray(ntk.empirical_ntk(apply_fn, single.state.params, x[:16], x[16:24],
                                                       method=method)).tolist()
                  for method in ("structured", "jacobian")}
    print("RESULT " + json.dumps(out))
""")


@pytest.fixture(scope="module")
def runs():
    return {n: json_result(run_on_devices(_SCRIPT, num_devices=n, timeout=600)) for n in (1, 8)}


def _close(a, b, rtol, atol):
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(np.asarray(u), np.asarray(v), rtol=rtol, atol=atol)


def test_eight_devices_are_used(runs):
    assert runs[1]["devices"] == 1 and runs[8]["devices"] == 8
    # K seeds on K devices side by side; 4 seeds on 8: two devices per seed's batch; 3 seeds
    # share no factor with 8: the batch alone is split.
    assert runs[8]["mesh_8"] == {"seeds": 8, "data": 1}
    assert runs[8]["mesh_4"] == {"seeds": 4, "data": 2}
    assert runs[8]["mesh_3"] == {"seeds": 1, "data": 8}
    assert runs[1]["mesh_4"] == {"seeds": 1, "data": 1}


@pytest.mark.parametrize("name", ["fit", "seeds_8", "seeds_4", "seeds_3", "curve"])
def test_training_on_eight_devices_equals_one(runs, name):
    _close(runs[8][name], runs[1][name], rtol=1e-4, atol=1e-5)


def test_curvature_surface_and_ntk_on_eight_devices_equal_one(runs):
    np.testing.assert_allclose(runs[8]["eigenvalues"], runs[1]["eigenvalues"], rtol=1e-4)
    np.testing.assert_allclose(runs[8]["trace"], runs[1]["trace"], rtol=1e-4)
    np.testing.assert_allclose(runs[8]["surface"], runs[1]["surface"], rtol=1e-5)
    for method, kernel in runs[1]["ntk"].items():
        np.testing.assert_allclose(runs[8]["ntk"][method], kernel, rtol=1e-4, atol=1e-5 * np.abs(kernel).max())


_EXPERIMENT_SCRIPT = textwrap.dedent("""
    import json
    from experiments import loss_landscape
    outcome = loss_landscape.main(["--size", "quick", "--workdir", WORKDIR])
    print("RESULT " + json.dumps({"claims": outcome["claims"], "checks": outcome["checks"]}))
""")


def test_an_experiment_on_eight_devices_measures_what_one_device_does(tmp_path):
    # The loss-landscape experiment (fit, fit_curve on other batch sizes, lines, a surface,
    # BatchNorm statistics) at its quick size: the same claims and checks, decided alike, and
    # the same numbers to float32 reassociation, compared number by number.
    runs = {n: json_result(run_on_devices(_EXPERIMENT_SCRIPT.replace("WORKDIR", repr(str(tmp_path / str(n)))),
                                          num_devices=n, timeout=600)) for n in (1, 8)}
    one, eight = runs[1], runs[8]
    assert [c["key"] for c in eight["claims"]] == [c["key"] for c in one["claims"]]
    assert [c["verdict"] for c in eight["claims"]] == [c["verdict"] for c in one["claims"]]
    assert [c["passed"] for c in eight["checks"]] == [c["passed"] for c in one["checks"]]
    for claim_8, claim_1 in zip(eight["claims"], one["claims"]):
        np.testing.assert_allclose(claim_8["samples"], claim_1["samples"], rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(claim_8["statistic"], claim_1["statistic"], rtol=1e-3, atol=1e-6)
    for check_8, check_1 in zip(eight["checks"], one["checks"]):
        measured_8, measured_1 = numbers_in(check_8["measured"]), numbers_in(check_1["measured"])
        assert len(measured_8) == len(measured_1) > 0, (check_8, check_1)
        # A check's measured value is often a rounding error (1e-7): compare it by its bound.
        bound = max(numbers_in(check_1["expected"]) or [0.0])
        np.testing.assert_allclose(measured_8, measured_1, rtol=1e-3, atol=max(1e-6, abs(bound)))
