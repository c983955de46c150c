"""The peer section of the benchmark: the same model with identical weights in PyTorch, each
peer timed through its own public API beside the jaxdl tool that does the same job.

Peers (optional, never dependencies of jaxdl; ``pip install -e ".[peers]"``): PyTorch, PyHessian
(Yao et al. 2020) and loss-landscapes. Before anything is timed the PyTorch model's logits and
loss are checked against jaxdl's on the same data (``ValueError`` if they differ beyond float32
rounding). Both frameworks use every core of the machine: PyTorch's thread count is set to it,
and XLA's CPU backend uses all cores by default.

Rows, on one MLP (the issue's 40-256-256-10 on 4,000 MNIST-1D examples by default):

- the top Hessian eigenvalue and the top 3: ``hessian_top_eigenvalues`` (Lanczos, its default
  start along the gradient; the products from a Gaussian start alone are reported too) against
  PyHessian's ``eigenvalues`` (power iteration with deflation, its default tolerance 1e-3),
  each from ``config.peer_seeds`` random starts, against a float64 reference (PyTorch float64
  Hessian-vector products, ARPACK through ``scipy.sparse.linalg.eigsh`` to 1e-10), with the
  products each spent;
- the Hutchinson trace at 100 probes: ``hessian_trace`` against PyHessian's ``trace`` with
  ``tol=0`` (all 100 probes), each with its standard error;
- the primitives (a profile): one Hessian-vector product and one full-data loss in each;
- a G x G loss surface along two filter-normalised directions and a G-point interpolation:
  ``landscape.surface`` and ``landscape.interpolate`` against loss-landscapes' ``random_plane``
  and ``linear_interpolation`` and against point-by-point PyTorch loops over the same points
  (Li et al.'s code), whose losses are compared with jaxdl's, and against their FLOP floors,
  with a profile: the forward's matmuls alone at every point;
- train steps: an Adam epoch of the MLP at batch 128 (jaxdl's scanned epoch against a PyTorch
  loop over the same batches), one SGD step of the train-step row's MLP (784-512-512-10,
  batch 128; compute-bound on a CPU), and scanned SGD epochs of the CNN and ResNet-20 rows
  (train mode, the same weights, outputs checked first) against PyTorch loops, with a profile
  of one conv layer (XLA's convolution and PatchConv, jitted and inside a scan, and PyTorch);
- the empirical NTK of the NTK row's MLP: ``ntk.empirical_ntk`` against ``torch.func``'s
  Jacobian contraction (``vmap(jacrev)`` and an einsum, the recipe of its tutorial); and
  whether neural-tangents imports here.

The table and the claims are in :mod:`experiments.benchmark.peer_report`.
"""
from __future__ import annotations

import importlib.util
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmark.timing import generic_point, mlp_forward_flops, synthetic_data, time_call
from experiments.benchmark.peer_steps import bench_conv_steps, bench_train_steps, conv_profile
from experiments.benchmark.torch_models import check_same_outputs, torch_mlp
from jaxdl import train
from jaxdl.analysis import curvature, landscape, ntk
from jaxdl.core import tree
from jaxdl.train import losses
from jaxdl import data as datasets
from jaxdl.models import get_model

PEERS = {"torch": "PyTorch", "pyhessian": "PyHessian", "loss_landscapes": "loss-landscapes"}
INSTALL = 'pip install -e ".[peers]"'


def missing() -> list[str]:
    """The peers that do not import here (their distribution names)."""
    return [name for module, name in PEERS.items() if importlib.util.find_spec(module) is None]


def check_same_model(apply_fn, params, model, x, y) -> dict:
    """Logits and mean cross-entropy of jaxdl and PyTorch on ``(x, y)``; ``ValueError`` unless
    they agree to float32 rounding. Returns the largest logit difference and both losses."""
    import torch  # noqa: PLC0415

    logits = np.asarray(apply_fn(params, jnp.asarray(x)))
    loss = float(losses.make_loss_fn(apply_fn, "cross_entropy")(params, (jnp.asarray(x), jnp.asarray(y))))
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x)).numpy()
        torch_loss = float(torch.nn.functional.cross_entropy(torch.from_numpy(torch_logits),
                                                             torch.from_numpy(y.astype(np.int64))))
    difference = check_same_outputs(logits, torch_logits, "model")
    if abs(loss - torch_loss) > 1e-5 * max(abs(loss), 1.0):
        raise ValueError(f"the PyTorch model differs from jaxdl's: loss {torch_loss!r} against {loss!r}; "
                         "nothing was timed")
    return {"logit_difference": difference, "loss": loss, "torch_loss": torch_loss}


def _setup(config):
    """The MLP at a generic point, the data, jaxdl's ``apply_fn`` and ``loss_fn``, and the same
    model and data in PyTorch."""
    import torch  # noqa: PLC0415

    data = datasets.load(config.peer_dataset)
    n = min(int(config.peer_examples), len(data.x_train))
    x = np.ascontiguousarray(data.x_train[:n].reshape(n, -1), np.float32)
    y = np.asarray(data.y_train[:n], np.int32)
    model = get_model("mlp", widths=tuple(config.peer_widths), num_outputs=data.num_classes)
    params = generic_point(jax.eval_shape(model.init, jax.random.key(config.seed), x[:1])["params"], config.seed)
    apply_fn = train.make_apply_fn(model)
    torch_model = torch_mlp(params, len(config.peer_widths)).eval()
    agreement = check_same_model(apply_fn, params, torch_model, x, y)
    return {"params": params, "apply_fn": apply_fn, "loss_fn": losses.make_loss_fn(apply_fn, "cross_entropy"),
            "batch": (jnp.asarray(x), jnp.asarray(y)), "torch_model": torch_model,
            "torch_batch": (torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))), "x": x, "y": y,
            "num_params": tree.count(params), "input_dim": x.shape[1], "agreement": agreement}


def reference_eigenvalues(torch_model, torch_batch, k: int) -> np.ndarray:
    """The top ``k`` Hessian eigenvalues in float64 (PyTorch float64 products, ARPACK), descending."""
    import copy  # noqa: PLC0415

    import scipy.sparse.linalg  # noqa: PLC0415
    import torch  # noqa: PLC0415

    model = copy.deepcopy(torch_model).double()
    parameters = [p for p in model.parameters()]
    x, y = torch_batch
    loss = torch.nn.functional.cross_entropy(model(x.double()), y)
    gradients = torch.autograd.grad(loss, parameters, create_graph=True)
    sizes = [p.numel() for p in parameters]

    def matvec(v):
        pieces = torch.split(torch.from_numpy(np.asarray(v, np.float64).ravel()), sizes)
        products = torch.autograd.grad(gradients, parameters, [p.view_as(q) for p, q in zip(pieces, parameters)],
                                       retain_graph=True)
        return torch.cat([p.reshape(-1) for p in products]).numpy()

    operator = scipy.sparse.linalg.LinearOperator((sum(sizes), sum(sizes)), matvec=matvec, dtype=np.float64)
    start = np.random.default_rng(0).normal(size=sum(sizes))
    values = scipy.sparse.linalg.eigsh(operator, k=k, which="LA", tol=1e-10, v0=start, return_eigenvectors=False)
    return np.sort(values)[::-1]


class _ProductCounter:
    """Counts PyHessian's Hessian-vector products (its module-level ``hessian_vector_product``)."""

    def __init__(self):
        # The module, not the class ``pyhessian.hessian`` that its package exports under that name.
        self.module, self.count = importlib.import_module("pyhessian.hessian"), 0
        self.original = self.module.hessian_vector_product

    def __enter__(self):
        def counted(*args, **kwargs):
            self.count += 1
            return self.original(*args, **kwargs)

        self.module.hessian_vector_product = counted
        return self

    def __exit__(self, *exc):
        self.module.hessian_vector_product = self.original


def _pyhessian(setup):
    """A fresh PyHessian ``hessian`` object on the batch, the model's gradients zeroed first (a
    second object on the same model otherwise sums two gradients and doubles the Hessian)."""
    from pyhessian import hessian  # noqa: PLC0415

    model = setup["torch_model"]
    model.zero_grad(set_to_none=True)
    with warnings.catch_warnings():  # its backward(create_graph=True): PyTorch warns of a reference cycle
        warnings.simplefilter("ignore", UserWarning)
        return hessian(model, _torch_criterion(), data=setup["torch_batch"], cuda=False)


def _torch_criterion():
    import torch  # noqa: PLC0415

    return torch.nn.CrossEntropyLoss()


def bench_pyhessian(config, setup) -> dict:
    """Top-1, top-3 and trace: jaxdl against PyHessian, seconds, products and accuracy."""
    import torch  # noqa: PLC0415

    reference = reference_eigenvalues(setup["torch_model"], setup["torch_batch"], 3)
    loss_fn, params, batch = setup["loss_fn"], setup["params"], setup["batch"]
    def relative_error(values, k):
        descending = np.sort(np.asarray(values, np.float64))[::-1]
        return float(np.max(np.abs(descending - reference[:k]) / np.abs(reference[:k])))

    rows = {}
    for k in (1, 3):
        # Both start from random vectors, so each side runs from config.peer_seeds starts and
        # the row reports the mean time per run, the worst error and the mean products.
        seconds, errors, products = np.zeros((2, config.peer_seeds)), np.zeros((2, config.peer_seeds)), []
        for seed in range(config.peer_seeds):
            found = {}

            def ours(_, k=k, seed=seed, found=found):
                found["jaxdl"] = curvature.hessian_top_eigenvalues(loss_fn, params, batch, k=k,
                                                                   key=jax.random.key(seed))
                return found["jaxdl"].eigenvalues

            def theirs(_, k=k, seed=seed, found=found):
                torch.manual_seed(seed)
                with _ProductCounter() as counter:
                    found["peer"] = _pyhessian(setup).eigenvalues(top_n=k)[0]
                found["peer_products"] = counter.count
                return 0

            # One side after the other, not interleaved: PyTorch's OpenMP threads keep spinning
            # for a while after each call and would slow whatever XLA runs next.
            seconds[:, seed] = [time_call(fn, None, repeats=config.peer_repeats) for fn in (ours, theirs)]
            errors[:, seed] = relative_error(found["jaxdl"].eigenvalues, k), relative_error(found["peer"], k)
            # Untimed: the products from a Gaussian start alone (no gradient component), for context.
            random_start = curvature.hessian_top_eigenvalues(loss_fn, params, batch, k=k, key=jax.random.key(seed),
                                                             start="random")
            products.append((int(found["jaxdl"].steps), found["peer_products"], int(random_start.steps)))
        products = np.mean(products, axis=0)
        rows[f"top{k}"] = {"jaxdl": float(seconds[0].mean()), "peer": float(seconds[1].mean()),
                           "jaxdl_error": float(errors[0].max()), "peer_error": float(errors[1].max()),
                           "jaxdl_products": float(products[0]), "peer_products": float(products[1]),
                           "jaxdl_random_products": float(products[2])}
    found = {}

    def ours_trace(_):
        found["jaxdl"] = curvature.hessian_trace(loss_fn, params, batch, num_probes=config.peer_probes)
        return found["jaxdl"].estimate

    def theirs_trace(_):
        torch.manual_seed(config.seed)
        found["peer"] = np.asarray(_pyhessian(setup).trace(maxIter=config.peer_probes, tol=0.0))
        return 0

    seconds = (time_call(ours_trace, None, repeats=config.peer_repeats),
               time_call(theirs_trace, None, repeats=config.peer_repeats))
    samples = found["peer"]
    rows["trace"] = {"jaxdl": seconds[0], "peer": seconds[1], "jaxdl_estimate": float(found["jaxdl"].estimate),
                     "jaxdl_standard_error": float(found["jaxdl"].standard_error),
                     "peer_estimate": float(samples.mean()),
                     "peer_standard_error": float(samples.std(ddof=1) / np.sqrt(samples.size)),
                     "peer_probes": int(samples.size)}
    rows["reference"] = reference
    return rows


def bench_primitives(config, setup) -> dict:
    """The primitives each estimator repeats, per call: one full-data loss (a forward pass) and
    one Hessian-vector product, jaxdl (jitted; the product forward-over-reverse on the gradient
    linearised once) against PyTorch (``no_grad`` forward; PyHessian's double-backward product on
    its retained graph)."""
    import torch  # noqa: PLC0415
    from pyhessian.hessian import hessian_vector_product  # noqa: PLC0415

    loss_fn, params, batch = setup["loss_fn"], setup["params"], setup["batch"]
    model, (x, y) = setup["torch_model"], setup["torch_batch"]
    loss = jax.jit(loss_fn)
    # The product as Lanczos applies it: the gradient linearised once, each product then only
    # the tangent passes (as PyHessian's reuses its retained graph).
    params_P, unflatten = tree.flatten(params)
    product = jax.jit(jax.linearize(lambda theta: tree.flatten(jax.grad(loss_fn)(unflatten(theta), batch))[0],
                                    params_P)[1])

    def torch_loss(_):
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model(x), y).item()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        peer = _pyhessian(setup)
    vectors = [torch.ones_like(p) for p in peer.params]
    return {"loss": (time_call(loss, params, batch, repeats=config.repeats * 4),
                     time_call(torch_loss, None, repeats=config.repeats * 4)),
            "hvp": (time_call(product, jnp.ones_like(params_P), repeats=config.repeats * 2),
                    time_call(lambda _: hessian_vector_product(peer.gradsH, peer.params, vectors)[0], None,
                              repeats=config.repeats * 2))}


def matmul_chain_seconds(config, setup, direction_x, direction_y) -> float:
    """Profile of the landscape rows: seconds per point for the forward's matmuls alone -- the
    MLP's kernels moved to each point of the plane and multiplied through, with no bias,
    activation or loss -- as a jitted ``lax.map`` over the first ``config.landscape_loop_points``
    points of the G x G grid (the shapes of the surface's, so their speed on this machine, not
    the FLOP count, sets it)."""
    x = setup["batch"][0]
    kernels = [[layer["kernel"] for layer in point.values()] for point in (setup["params"], direction_x, direction_y)]
    coords = np.linspace(-1.0, 1.0, int(config.landscape_grid))
    points = jnp.asarray([(a, b) for b in coords for a in coords][: config.landscape_loop_points], jnp.float32)

    def at(point):
        hidden = x
        for kernel, along_x, along_y in zip(*kernels):
            hidden = hidden @ (kernel + point[0] * along_x + point[1] * along_y)
        return jnp.sum(hidden)

    chain = jax.jit(lambda points: jax.lax.map(at, points))
    return time_call(chain, points, repeats=config.peer_repeats) / len(points)


def bench_landscape_peers(config, setup, rate: float) -> dict:
    """A G x G surface and a G-point line: jaxdl against loss-landscapes (``random_plane``,
    ``linear_interpolation``) and against point-by-point PyTorch loops (Li et al.'s code), each
    with its FLOP floor (points x forward matmul FLOPs / the measured matmul rate) and, as a profile,
    the time of the forward's matmuls alone at every point (:func:`matmul_chain_seconds`)."""
    import torch  # noqa: PLC0415
    from loss_landscapes import linear_interpolation, random_plane  # noqa: PLC0415
    from loss_landscapes.metrics import Loss  # noqa: PLC0415

    params, apply_fn, batch = setup["params"], setup["apply_fn"], setup["batch"]
    key_x, key_y = jax.random.split(jax.random.key(config.seed + 1))
    direction_x = landscape.random_direction(key_x, params)
    direction_y = landscape.orthogonalize(landscape.random_direction(key_y, params), direction_x)
    end = tree.axpy(1.0, direction_x, params)
    grid = int(config.landscape_grid)
    coords, alphas = np.linspace(-1.0, 1.0, grid), np.linspace(0.0, 1.0, grid)
    values = {}

    def ours_surface(_):
        values["surface"] = landscape.surface(apply_fn, params, direction_x, direction_y, batch, coords, coords)["loss"]
        return values["surface"]

    def ours_line(_):
        values["line"] = landscape.interpolate(apply_fn, params, end, batch, alphas)["loss"]
        return values["line"]

    model = setup["torch_model"]
    x, y = setup["torch_batch"]
    vector = lambda p: torch.nn.utils.parameters_to_vector(torch_mlp(p, len(config.peer_widths)).parameters())
    centre, along_x, along_y = (vector(p).detach() for p in (params, direction_x, direction_y))

    def torch_loss_at(point):
        torch.nn.utils.vector_to_parameters(point, model.parameters())
        return torch.nn.functional.cross_entropy(model(x), y).item()

    def loop_surface(_):
        with torch.no_grad():
            values["loop_surface"] = np.array([[torch_loss_at(centre + float(a) * along_x + float(b) * along_y)
                                                for a in coords] for b in coords], np.float32)
            torch.nn.utils.vector_to_parameters(centre, model.parameters())
        return 0

    def loop_line(_):
        with torch.no_grad():
            values["loop_line"] = np.array([torch_loss_at((1 - float(a)) * centre + float(a) * (centre + along_x))
                                            for a in alphas], np.float32)
            torch.nn.utils.vector_to_parameters(centre, model.parameters())
        return 0

    def peer_surface(_):
        torch.manual_seed(config.seed)
        random_plane(model, Loss(_torch_criterion(), x, y), distance=1.0, steps=grid, normalization="filter",
                     deepcopy_model=True)
        return 0

    end_model = torch_mlp(end, len(config.peer_widths)).eval()

    def peer_line(_):
        linear_interpolation(model, end_model, Loss(_torch_criterion(), x, y), steps=grid, deepcopy_model=True)
        return 0

    timed = {name: time_call(fn, None, repeats=config.peer_repeats)
             for name, fn in (("surface", ours_surface), ("loop_surface", loop_surface),
                              ("peer_surface", peer_surface), ("line", ours_line), ("loop_line", loop_line),
                              ("peer_line", peer_line))}
    relative = lambda a, b: float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-6)))
    point_flops = mlp_forward_flops(setup["input_dim"], config.peer_widths, int(setup["y"].max()) + 1,
                                    len(setup["y"]))
    chain = matmul_chain_seconds(config, setup, direction_x, direction_y)
    return {**timed, "surface_floor": grid * grid * point_flops / rate, "line_floor": grid * point_flops / rate,
            "surface_chain": grid * grid * chain, "line_chain": grid * chain,
            "surface_difference": relative(values["surface"], values["loop_surface"]),
            "line_difference": relative(values["line"], values["loop_line"]), "num_points": grid * grid}


def bench_ntk_peer(config) -> dict:
    """The empirical NTK of the NTK row's MLP: jaxdl (``method='auto'``) against ``torch.func``."""
    import torch  # noqa: PLC0415
    from torch.func import functional_call, jacrev, vmap  # noqa: PLC0415

    n, outputs = int(config.ntk_examples), int(config.ntk_outputs)
    model = get_model("mlp", widths=tuple(config.ntk_mlp_widths), num_outputs=outputs)
    x = synthetic_data(n, (config.ntk_input_dim,), outputs, config.seed).x_train
    params = generic_point(jax.eval_shape(model.init, jax.random.key(config.seed), x[:1])["params"], config.seed)
    apply_fn = train.make_apply_fn(model)
    kernels = {}

    def ours(_):
        kernels["jaxdl"] = ntk.empirical_ntk(apply_fn, params, jnp.asarray(x))
        return kernels["jaxdl"]

    torch_model = torch_mlp(params, len(config.ntk_mlp_widths))
    weights = {k: v.detach() for k, v in torch_model.named_parameters()}
    inputs = torch.from_numpy(x)

    def single(w, example):
        return functional_call(torch_model, w, (example.unsqueeze(0),)).squeeze(0)

    def theirs(_):
        jacobian = vmap(jacrev(single), (None, 0))(weights, inputs)
        flat = [j.flatten(2) for j in jacobian.values()]
        kernels["peer"] = sum(torch.einsum("naf,mbf->nmab", j, j) for j in flat).diagonal(dim1=2, dim2=3).mean(-1)
        return 0

    seconds = (time_call(ours, None, repeats=config.ntk_repeats), time_call(theirs, None, repeats=config.ntk_repeats))
    reference = kernels["peer"].numpy()
    difference = float(np.abs(np.asarray(kernels["jaxdl"]) - reference).max() / np.abs(reference).max())
    return {"jaxdl": seconds[0], "peer": seconds[1], "difference": difference}


def neural_tangents_status() -> str:
    """Whether neural-tangents (Novak et al. 2020; not in the extra) imports here: ``'imports'``,
    or the error it raises. Release 0.6.5 imports ``Jaxpr``, ``JaxprEqn``, ``Literal`` and ``Var``
    from ``jax.core``, which JAX 0.10 no longer exports, and requires TensorFlow."""
    if importlib.util.find_spec("neural_tangents") is None:
        return "not installed"
    try:
        importlib.import_module("neural_tangents")
    except Exception as error:  # noqa: BLE001 -- any failure to import is the answer
        return f"fails to import: {type(error).__name__}: {error}"
    return "imports"


def peer_section(config, rate: float) -> dict:
    """Every peer row; ``{'skipped': message}`` if a peer is missing."""
    absent = missing()
    if absent:
        return {"skipped": f"peer section skipped: {', '.join(absent)} not installed ({INSTALL} to enable it)"}
    import torch  # noqa: PLC0415

    torch.set_num_threads(os.cpu_count() or 1)
    setup = _setup(config)
    return {"setup": {k: setup[k] for k in ("num_params", "input_dim", "agreement")},
            "hessian": bench_pyhessian(config, setup), "primitives": bench_primitives(config, setup),
            "landscape": bench_landscape_peers(config, setup, rate), "steps": bench_train_steps(config, setup),
            "conv_steps": bench_conv_steps(config), "conv_profile": conv_profile(config),
            "ntk": bench_ntk_peer(config), "neural_tangents": neural_tangents_status(),
            "threads": torch.get_num_threads()}
