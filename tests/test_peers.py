"""The benchmark's peer section: skipped with one line naming the extra when a peer is missing;
with PyTorch installed, the same MLP in PyTorch (identical weights) gives jaxdl's logits, loss
and Hessian, and a model that differs is refused before anything is timed."""
from __future__ import annotations

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import benchmark
from experiments import framework as fw
from experiments.benchmark import peer_report, peers
from jaxdl import train
from jaxdl.analysis import curvature
from jaxdl.core import tree
from jaxdl.train import losses
from jaxdl.models import get_model

from helpers import random_params

# PyHessian calls backward(create_graph=True), on which PyTorch warns of a reference cycle.
pytestmark = pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True:UserWarning")


def test_without_the_peers_the_section_is_one_line_saying_how_to_enable_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyhessian" else real(name, *a))
    assert "PyHessian" in peers.missing()  # with the other peers installed or not
    section = peers.peer_section(fw.config_for(benchmark, "quick"), rate=1e9)
    assert set(section) == {"skipped"} and peers.INSTALL in section["skipped"] and "PyHessian" in section["skipped"]
    table, result = peer_report.table(fw.config_for(benchmark, "quick"), section)
    assert table == section["skipped"] and result == {}
    assert peer_report.targets(result) == [] and peer_report.checks(result) == []


def _mlp(widths=(7, 5)):
    model = get_model("mlp", widths=widths, num_outputs=3)
    x = np.random.default_rng(0).normal(size=(12, 4)).astype(np.float32)
    y = np.random.default_rng(1).integers(0, 3, size=12).astype(np.int32)
    return train.make_apply_fn(model), random_params(model, x, seed=2, scale=0.7), x, y


def test_the_pytorch_mlp_has_jaxdls_weights_and_hessian():
    torch = pytest.importorskip("torch")
    apply_fn, params, x, y = _mlp()
    model = peers.torch_mlp(params, 2)
    agreement = peers.check_same_model(apply_fn, params, model, x, y)
    assert agreement["logit_difference"] < 1e-5
    # The float64 reference eigenvalues (PyTorch products, ARPACK) against jax.hessian.
    loss_fn = losses.make_loss_fn(apply_fn, "cross_entropy")
    with jax.enable_x64(True):
        flat, unflatten = tree.flatten(jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params))
        batch = (jnp.asarray(x, jnp.float64), jnp.asarray(y))
        dense = np.asarray(jax.hessian(lambda v: loss_fn(unflatten(v), batch))(flat))
    expected = np.sort(np.linalg.eigvalsh(dense))[::-1][:3]
    reference = peers.reference_eigenvalues(model, (torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))), 3)
    np.testing.assert_allclose(reference, expected, rtol=1e-8)
    top = curvature.hessian_top_eigenvalues(loss_fn, params, (jnp.asarray(x), jnp.asarray(y)), k=3, num_steps=40)
    np.testing.assert_allclose(np.asarray(top.eigenvalues), expected, rtol=1e-3)  # the default tol


def test_a_pytorch_model_that_differs_is_refused_before_timing():
    torch = pytest.importorskip("torch")
    apply_fn, params, x, y = _mlp()
    model = peers.torch_mlp(params, 2)
    with torch.no_grad():
        model[0].bias.add_(0.1)
    with pytest.raises(ValueError, match="differs"):
        peers.check_same_model(apply_fn, params, model, x, y)


# ----------------------------------------------------------------------------- what the peers do
# Facts about the peer versions the extra pins (PyHessian 0.1, loss-landscapes 3.0.6), stated in
# the README; each test fails if a release changes the behaviour.


def _torch_problem():
    torch = pytest.importorskip("torch")
    apply_fn, params, x, y = _mlp()
    return torch, peers.torch_mlp(params, 2), (torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))


def test_pyhessian_second_object_on_the_same_model_doubles_the_hessian():
    pytest.importorskip("pyhessian")
    from pyhessian import hessian
    torch, model, data = _torch_problem()
    first = hessian(model, torch.nn.CrossEntropyLoss(), data=data, cuda=False)
    second = hessian(model, torch.nn.CrossEntropyLoss(), data=data, cuda=False)  # .grad not zeroed in between
    tops = []
    for comp in (first, second):
        torch.manual_seed(0)
        tops.append(comp.eigenvalues(maxIter=200, tol=1e-8)[0][0])
    np.testing.assert_allclose(tops[1], 2 * tops[0], rtol=1e-3)
    model.zero_grad(set_to_none=True)
    third = hessian(model, torch.nn.CrossEntropyLoss(), data=data, cuda=False)
    torch.manual_seed(0)
    np.testing.assert_allclose(third.eigenvalues(maxIter=200, tol=1e-8)[0][0], tops[0], rtol=1e-3)


def test_pyhessian_default_trace_stops_early_and_density_fails():
    pytest.importorskip("pyhessian")
    from pyhessian import hessian
    torch, model, data = _torch_problem()
    torch.manual_seed(0)
    samples = hessian(model, torch.nn.CrossEntropyLoss(), data=data, cuda=False).trace()  # maxIter=100, tol=1e-3
    assert len(samples) < 100
    model.zero_grad(set_to_none=True)
    with pytest.raises((AttributeError, RuntimeError)):  # torch.eig was removed from PyTorch
        hessian(model, torch.nn.CrossEntropyLoss(), data=data, cuda=False).density(iter=5, n_v=1)


def test_loss_landscapes_random_plane_directions_grid_and_model():
    pytest.importorskip("loss_landscapes")
    from loss_landscapes import random_plane
    from loss_landscapes.metrics import Loss
    from loss_landscapes.model_interface.model_parameters import ModelParameters, rand_u_like
    torch, model, (x, y) = _torch_problem()
    start = [p.detach().clone() for p in model.parameters()]
    # Directions are uniform on [0, 1), not Gaussian ...
    direction = rand_u_like(ModelParameters([p.detach().clone() for p in model.parameters()]))
    assert all(float(p.min()) >= 0 and float(p.max()) < 1 for p in direction.parameters)
    # ... and filter normalisation sets each bias entry to the magnitude of the model's bias entry.
    direction.filter_normalize_(ModelParameters(start))
    np.testing.assert_allclose(direction.parameters[1].abs().numpy(), start[1].abs().numpy(), rtol=1e-5)
    # On a 3 x 3 grid the centre is off the grid (the start is moved by 1.5 steps), and the
    # caller's model is left moved: deepcopy_model defaults to False.
    values = random_plane(model, Loss(torch.nn.CrossEntropyLoss(), x, y), distance=1.0, steps=3)
    with torch.no_grad():
        centre_loss = float(torch.nn.functional.cross_entropy(peers.torch_mlp(_mlp()[1], 2)(x), y))
    assert values.shape == (3, 3) and not np.any(np.isclose(values, centre_loss, rtol=1e-6))
    assert any(not torch.equal(p, q) for p, q in zip(model.parameters(), start))


def test_loss_landscapes_linear_interpolation_never_evaluates_the_start():
    pytest.importorskip("loss_landscapes")
    from loss_landscapes import linear_interpolation
    from loss_landscapes.metrics import Loss
    torch, model, data = _torch_problem()
    apply_fn, params, x, y = _mlp()
    end = jax.tree.map(lambda a: 1.5 * a, params)
    values = linear_interpolation(model, peers.torch_mlp(end, 2), Loss(torch.nn.CrossEntropyLoss(), *data), steps=4,
                                  deepcopy_model=True)
    # steps=4 evaluates a = 1/4, 2/4, 3/4, 1: the start model (a = 0) is never evaluated.
    loss_fn = losses.make_loss_fn(apply_fn, "cross_entropy")
    expected = [float(loss_fn(tree.lerp(params, end, a), (x, y))) for a in (0.25, 0.5, 0.75, 1.0)]
    np.testing.assert_allclose(values, expected, rtol=1e-5)
    assert not np.any(np.isclose(values, float(loss_fn(params, (x, y))), rtol=1e-4))


def test_jax_no_longer_exports_the_core_names_neural_tangents_imports():
    # neural-tangents 0.6.5 (its latest release) does `from jax.core import Jaxpr, JaxprEqn,
    # Literal, Var` in _src/empirical.py; this JAX has none of them, so it cannot import.
    import jax.core

    assert not any(hasattr(jax.core, name) for name in ("Jaxpr", "JaxprEqn", "Literal", "Var"))


def test_the_neural_tangents_status_reports_the_import_error(monkeypatch):
    real_find, real_import = importlib.util.find_spec, importlib.import_module

    def failing_import(name, *args):
        if name == "neural_tangents":
            raise ImportError("cannot import name 'Jaxpr' from 'jax.core'")
        return real_import(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "neural_tangents"
                        else real_find(name, *a))
    assert peers.neural_tangents_status() == "not installed"
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "neural_tangents"
                        else real_find(name, *a))
    monkeypatch.setattr(importlib, "import_module", failing_import)
    assert peers.neural_tangents_status() == "fails to import: ImportError: cannot import name 'Jaxpr' from 'jax.core'"
