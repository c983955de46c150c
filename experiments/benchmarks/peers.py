"""The peer section of the benchmark: the same model with identical weights in PyTorch, each
peer timed through its own public API beside the jaxdl tool that does the same job.

Peers (optional, never dependencies of jaxdl; ``pip install -e ".[peers]"``): PyTorch, PyHessian
(Yao et al. 2020) and loss-landscapes. Before anything is timed the PyTorch model's logits and
loss are checked against jaxdl's on the same data (``ValueError`` if they differ beyond float32
rounding). Both frameworks use every core of the machine: PyTorch's thread count is set to it,
and XLA's CPU backend uses all cores by default.

Rows, on one MLP (the issue's 40-256-256-10 on 4,000 MNIST-1D examples by default):

- the top Hessian eigenvalue and the top 3: ``hessian_top_eigenvalues`` (Lanczos) against
  PyHessian's ``eigenvalues`` (power iteration with deflation, its default tolerance 1e-3),
  both against a float64 reference (PyTorch float64 Hessian-vector products, ARPACK through
  ``scipy.sparse.linalg.eigsh`` to 1e-10), with the products each spent;
- the Hutchinson trace at 100 probes: ``hessian_trace`` against PyHessian's ``trace`` with
  ``tol=0`` (all 100 probes), each with its standard error;
- a G x G loss surface along two filter-normalised directions: ``landscape.surface`` against
  loss-landscapes' ``random_plane`` (its own directions, the same grid size) and against a
  point-by-point PyTorch loop over the same directions and grid (Li et al.'s code), whose
  losses are compared with jaxdl's;
- train steps: an Adam epoch of the MLP at batch 128 (jaxdl's scanned epoch against a PyTorch
  loop over the same batches), and one SGD step of the train-step row's MLP (784-512-512-10,
  batch 128; compute-bound on a CPU) against the PyTorch step;
- the empirical NTK of the NTK row's MLP: ``ntk.empirical_ntk`` against ``torch.func``'s
  Jacobian contraction (``vmap(jacrev)`` and an einsum, the recipe of its tutorial).
"""
from __future__ import annotations

import importlib.util
import os
import types
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from experiments import common
from experiments.benchmarks.timing import generic_point, net_name, synthetic_data, time_call
from experiments.benchmarks.training import epoch_calls
from jaxdl import curvature, landscape, losses, ntk, optim, train, tree
from jaxdl import data as datasets
from jaxdl.models import get_model

PEERS = {"torch": "PyTorch", "pyhessian": "PyHessian", "loss_landscapes": "loss-landscapes"}
INSTALL = 'pip install -e ".[peers]"'


def missing() -> list[str]:
    """The peers that do not import here (their distribution names)."""
    return [name for module, name in PEERS.items() if importlib.util.find_spec(module) is None]


def torch_mlp(params, num_hidden: int):
    """A ``torch.nn.Sequential`` of Linear and ReLU layers holding jaxdl's MLP ``params``
    (``hidden_i`` and ``output`` Dense layers; Flax kernels are (in, out), PyTorch weights
    (out, in))."""
    import torch  # noqa: PLC0415 -- an optional peer

    layers = []
    for name in [f"hidden_{i}" for i in range(num_hidden)] + ["output"]:
        kernel, bias = np.array(params[name]["kernel"]), np.array(params[name]["bias"])
        linear = torch.nn.Linear(*kernel.shape)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.T)))
            linear.bias.copy_(torch.from_numpy(bias))
        layers += [linear, torch.nn.ReLU()] if name != "output" else [linear]
    return torch.nn.Sequential(*layers)


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
    difference = float(np.abs(logits - torch_logits).max())
    scale = float(np.abs(logits).max())
    if difference > 1e-4 * max(scale, 1.0) or abs(loss - torch_loss) > 1e-5 * max(abs(loss), 1.0):
        raise ValueError(f"the PyTorch model differs from jaxdl's: logits by {difference:.3g} (scale {scale:.3g}), "
                         f"loss {torch_loss!r} against {loss!r}; nothing was timed")
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
    rows = {}
    for k in (1, 3):
        found = {}

        def ours(_, k=k, found=found):
            found["jaxdl"] = curvature.hessian_top_eigenvalues(loss_fn, params, batch, k=k)
            return found["jaxdl"].eigenvalues

        def theirs(_, k=k, found=found):
            torch.manual_seed(config.seed)
            with _ProductCounter() as counter:
                found["peer"] = _pyhessian(setup).eigenvalues(top_n=k)[0]
            found["peer_products"] = counter.count
            return 0

        seconds = time_call(ours, None, repeats=config.peer_repeats), time_call(theirs, None,
                                                                                repeats=config.peer_repeats)
        error = lambda values, k=k: float(np.max(np.abs(np.sort(np.asarray(values, np.float64))[::-1] - reference[:k])
                                                 / np.abs(reference[:k])))
        rows[f"top{k}"] = {"jaxdl": seconds[0], "peer": seconds[1], "jaxdl_error": error(found["jaxdl"].eigenvalues),
                           "peer_error": error(found["peer"]), "peer_products": found["peer_products"],
                           "jaxdl_products": int(found["jaxdl"].steps)}
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


def bench_surface(config, setup) -> dict:
    """A G x G surface: jaxdl, loss-landscapes' ``random_plane``, and Li et al.'s loop in PyTorch."""
    import torch  # noqa: PLC0415
    from loss_landscapes import random_plane  # noqa: PLC0415
    from loss_landscapes.metrics import Loss  # noqa: PLC0415

    params, apply_fn, batch = setup["params"], setup["apply_fn"], setup["batch"]
    key_x, key_y = jax.random.split(jax.random.key(config.seed + 1))
    direction_x = landscape.random_direction(key_x, params)
    direction_y = landscape.orthogonalize(landscape.random_direction(key_y, params), direction_x)
    grid = int(config.landscape_grid)
    coords = np.linspace(-1.0, 1.0, grid)
    surfaces = {}

    def ours(_):
        surfaces["jaxdl"] = landscape.surface(apply_fn, params, direction_x, direction_y, batch, coords, coords,
                                              points_per_chunk=config.landscape_points_per_chunk)
        return surfaces["jaxdl"]["loss"]

    model = setup["torch_model"]
    x, y = setup["torch_batch"]
    vector = lambda p: torch.nn.utils.parameters_to_vector(torch_mlp(p, len(config.peer_widths)).parameters())
    centre, along_x, along_y = (vector(p).detach() for p in (params, direction_x, direction_y))

    def loop(_):
        values = np.zeros((grid, grid), np.float32)
        with torch.no_grad():
            for i, b in enumerate(coords):
                for j, a in enumerate(coords):
                    torch.nn.utils.vector_to_parameters(centre + float(a) * along_x + float(b) * along_y,
                                                        model.parameters())
                    values[i, j] = torch.nn.functional.cross_entropy(model(x), y).item()
            torch.nn.utils.vector_to_parameters(centre, model.parameters())
        surfaces["loop"] = values
        return 0

    def peer(_):
        torch.manual_seed(config.seed)
        surfaces["peer"] = random_plane(model, Loss(_torch_criterion(), x, y), distance=1.0, steps=grid,
                                        normalization="filter", deepcopy_model=True)
        return 0

    seconds = [time_call(fn, None, repeats=config.peer_repeats) for fn in (ours, loop, peer)]
    difference = np.abs(surfaces["jaxdl"]["loss"] - surfaces["loop"]) / np.maximum(np.abs(surfaces["loop"]), 1e-6)
    return {"jaxdl": seconds[0], "loop": seconds[1], "peer": seconds[2], "loop_difference": float(difference.max()),
            "num_points": grid * grid}


def bench_train_steps(config, setup) -> dict:
    """Train steps against PyTorch, per step:

    - ``epoch``: an epoch of the peer MLP on its data at batch ``config.peer_batch_size`` with
      Adam (1e-3), jaxdl's scanned epoch against a PyTorch loop over the same batches (the
      issue's overhead-bound case);
    - ``step``: one SGD step of the train-step row's MLP on one batch, jitted, against the
      PyTorch step (compute-bound on a CPU: both near the FLOP floor).
    """
    import torch  # noqa: PLC0415

    data = types.SimpleNamespace(x_train=setup["x"], y_train=setup["y"])
    model = get_model("mlp", widths=tuple(config.peer_widths), num_outputs=int(setup["y"].max()) + 1)
    scanned, _, order = epoch_calls(model, data, int(config.peer_batch_size), config.seed,
                                    tx=optim.get_optimizer("adam", 1e-3))
    torch_model = torch_mlp(generic_point(jax.eval_shape(model.init, jax.random.key(config.seed),
                                                         setup["x"][:1])["params"], config.seed),
                            len(config.peer_widths))
    adam = torch.optim.Adam(torch_model.parameters(), lr=1e-3)
    x, y = setup["torch_batch"]
    batches = [torch.from_numpy(index.astype(np.int64)) for index in order]

    def torch_epoch(_):
        for index in batches:
            adam.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(torch_model(x[index]), y[index]).backward()
            adam.step()
        return 0

    steps = len(batches)
    epoch = {"jaxdl": time_call(scanned, None, repeats=config.repeats) / steps,
             "peer": time_call(torch_epoch, None, repeats=config.repeats) / steps, "steps": steps}

    model = get_model("mlp", widths=tuple(config.step_widths), num_outputs=10)
    step_data = synthetic_data(config.step_batch_size, config.step_input_dim, 10, config.seed)
    tx = optim.get_optimizer("sgd", 0.01)
    state = train.init_state(model, tx, step_data.x_train[:1], jax.random.key(config.seed))
    step = jax.jit(train.make_train_step(model, tx))
    batch = (jnp.asarray(step_data.x_train), jnp.asarray(step_data.y_train))
    ours = time_call(lambda s: step(s, batch)[0].params, state, repeats=config.repeats * 20)
    torch_model = torch_mlp(state.params, len(config.step_widths))
    sgd = torch.optim.SGD(torch_model.parameters(), lr=0.01)
    step_x, step_y = torch.from_numpy(step_data.x_train), torch.from_numpy(step_data.y_train.astype(np.int64))

    def torch_step(_):
        sgd.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(torch_model(step_x), step_y).backward()
        sgd.step()
        return 0

    return {"epoch": epoch, "step": {"jaxdl": ours, "peer": time_call(torch_step, None, repeats=config.repeats * 20)}}


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


def peer_section(config) -> dict:
    """Every peer row; ``{'skipped': message}`` if a peer is missing."""
    absent = missing()
    if absent:
        return {"skipped": f"peer section skipped: {', '.join(absent)} not installed ({INSTALL} to enable it)"}
    import torch  # noqa: PLC0415

    torch.set_num_threads(os.cpu_count() or 1)
    setup = _setup(config)
    return {"setup": {k: setup[k] for k in ("num_params", "input_dim", "agreement")},
            "hessian": bench_pyhessian(config, setup),
            "surface": bench_surface(config, setup), "steps": bench_train_steps(config, setup),
            "ntk": bench_ntk_peer(config),
            "threads": torch.get_num_threads()}


def table(config, section) -> tuple[str, dict]:
    """The peer section's table and result entries (one line if the peers are not installed)."""
    if "skipped" in section:
        print(section["skipped"])
        return section["skipped"], {}
    hessian, surface, kernel = section["hessian"], section["surface"], section["ntk"]
    epoch, step = section["steps"]["epoch"], section["steps"]["step"]
    setup = section["setup"]
    net = (f"MLP {net_name(setup['input_dim'], config.peer_widths)} ({setup['num_params']} params), "
           f"{config.peer_examples} {config.peer_dataset} examples")
    reference = ", ".join(f"{v:.6g}" for v in hessian["reference"])
    rows = [
        [f"top eigenvalue, {net}", hessian["top1"]["jaxdl"] * 1e3, "PyHessian eigenvalues(top_n=1)",
         hessian["top1"]["peer"] * 1e3, hessian["top1"]["peer"] / hessian["top1"]["jaxdl"],
         f"rel. error {hessian['top1']['jaxdl_error']:.1e} ({hessian['top1']['jaxdl_products']} HVPs) vs "
         f"{hessian['top1']['peer_error']:.1e} ({hessian['top1']['peer_products']} HVPs)", ">= 2x"],
        [f"top 3 eigenvalues, {net}", hessian["top3"]["jaxdl"] * 1e3, "PyHessian eigenvalues(top_n=3)",
         hessian["top3"]["peer"] * 1e3, hessian["top3"]["peer"] / hessian["top3"]["jaxdl"],
         f"rel. error {hessian['top3']['jaxdl_error']:.1e} ({hessian['top3']['jaxdl_products']} HVPs) vs "
         f"{hessian['top3']['peer_error']:.1e} ({hessian['top3']['peer_products']} HVPs)", ">= 2x"],
        [f"Hutchinson trace, {config.peer_probes} probes, {net}", hessian["trace"]["jaxdl"] * 1e3,
         f"PyHessian trace(maxIter={config.peer_probes}, tol=0)", hessian["trace"]["peer"] * 1e3,
         hessian["trace"]["peer"] / hessian["trace"]["jaxdl"],
         f"{hessian['trace']['jaxdl_estimate']:.5g} +- {hessian['trace']['jaxdl_standard_error']:.2g} vs "
         f"{hessian['trace']['peer_estimate']:.5g} +- {hessian['trace']['peer_standard_error']:.2g}", ">= 1.5x"],
        [f"loss surface {config.landscape_grid} x {config.landscape_grid}, {net}", surface["jaxdl"] * 1e3,
         "loss-landscapes random_plane", surface["peer"] * 1e3, surface["peer"] / surface["jaxdl"], "", ">= 1x"],
        [f"loss surface {config.landscape_grid} x {config.landscape_grid}, {net}", surface["jaxdl"] * 1e3,
         "PyTorch loop over points (Li et al.)", surface["loop"] * 1e3, surface["loop"] / surface["jaxdl"],
         f"max rel. difference {surface['loop_difference']:.1e}", ">= 1x"],
        [f"Adam train step in an epoch of {epoch['steps']} steps, {net}, batch {config.peer_batch_size}",
         epoch["jaxdl"] * 1e3, "PyTorch loop over the same batches", epoch["peer"] * 1e3,
         epoch["peer"] / epoch["jaxdl"], "(scanned epoch)", ">= 1.5x"],
        [f"SGD train step, MLP {net_name(config.step_input_dim, config.step_widths)}, batch {config.step_batch_size}",
         step["jaxdl"] * 1e3, "PyTorch step", step["peer"] * 1e3, step["peer"] / step["jaxdl"],
         "(compute-bound; see the floor row)", "(reported)"],
        [f"empirical NTK, MLP {'-'.join(map(str, (config.ntk_input_dim, *config.ntk_mlp_widths, config.ntk_outputs)))}"
         f", N = {config.ntk_examples}", kernel["jaxdl"] * 1e3, "torch.func vmap(jacrev) contraction",
         kernel["peer"] * 1e3, kernel["peer"] / kernel["jaxdl"], f"max rel. difference {kernel['difference']:.1e}",
         "(reported)"],
    ]
    agreement = setup["agreement"]
    header = (f"PyTorch {section['threads']} threads; the same weights: logits within "
              f"{agreement['logit_difference']:.1e}, loss {agreement['loss']:.6g} "
              f"(PyTorch {agreement['torch_loss']:.6g}); float64 reference top eigenvalues {reference}")
    table = common.format_table(["row", "jaxdl ms", "peer", "peer ms", "peer / jaxdl", "accuracy", "target"], rows,
                                float_format="{:.3g}")
    result = {
        "peer_top1_speedup": hessian["top1"]["peer"] / hessian["top1"]["jaxdl"],
        "peer_top3_speedup": hessian["top3"]["peer"] / hessian["top3"]["jaxdl"],
        "peer_top3_errors": (hessian["top3"]["jaxdl_error"], hessian["top3"]["peer_error"]),
        "peer_trace_speedup": hessian["trace"]["peer"] / hessian["trace"]["jaxdl"],
        "peer_surface_speedup": min(surface["peer"], surface["loop"]) / surface["jaxdl"],
        "peer_surface_difference": surface["loop_difference"],
        "peer_epoch_speedup": epoch["peer"] / epoch["jaxdl"],
        "peer_batch_size": int(config.peer_batch_size),
        "peer_step_speedup": step["peer"] / step["jaxdl"],
        "peer_ntk_speedup": kernel["peer"] / kernel["jaxdl"],
    }
    return header + "\n\n" + table, result


def claims(result: dict) -> list:
    """The peer section's targets, when it ran."""
    if "peer_trace_speedup" not in result:
        return []
    jaxdl_error, peer_error = result["peer_top3_errors"]
    return [
        common.Claim.at_least("design target", "the Hutchinson trace at 100 probes is >= 1.5x faster than "
                              "PyHessian's", result["peer_trace_speedup"], 1.5, "{:.2f}x"),
        common.Claim.at_least("design target", "the top Hessian eigenvalue is >= 2x faster than PyHessian's",
                              result["peer_top1_speedup"], 2.0, "{:.2f}x"),
        common.Claim.at_least("design target", f"the top 3 Hessian eigenvalues are >= 2x faster than PyHessian's "
                              f"(relative error {jaxdl_error:.1e} against its {peer_error:.1e})",
                              result["peer_top3_speedup"], 2.0, "{:.2f}x"),
        common.Claim.at_least("design target", "a loss surface is no slower than the fastest peer (loss-landscapes, "
                              "a PyTorch loop over points)", result["peer_surface_speedup"], 1.0, "{:.2f}x"),
        common.Claim.at_most("design target", "the surface's losses equal the PyTorch loop's to float32 rounding "
                             "(largest relative difference)", result["peer_surface_difference"], 1e-4, "{:.1e}"),
        common.Claim.at_least("design target", f"an Adam train step of the peer MLP at batch "
                              f"{result['peer_batch_size']} (scanned epoch) is >= 1.5x faster than PyTorch's",
                              result["peer_epoch_speedup"], 1.5, "{:.2f}x"),
    ]
