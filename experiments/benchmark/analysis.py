"""Analysis benches: a full-data Hessian-vector product against a gradient, Lanczos as one
compiled program against a Python loop of jitted HVPs, a 2-D loss surface (Li et al. 2018)
against its FLOP floor and against a Python loop over grid points, sharpness tracked inside the
training loop against host calls, and the empirical NTK by each method against its FLOP floor
and against the Jacobian contraction.

Every bench returns a dict of seconds and the numbers its rows need.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from experiments.benchmark.timing import (compiled_flops, generic_point, mlp_forward_flops, synthetic_data,
                                           time_call, time_interleaved)
from jaxdl import train
from jaxdl.analysis import curvature, landscape, ntk
from jaxdl.core import tree
from jaxdl.train import losses, optim
from jaxdl.models import get_model


def _curvature_setup(config):
    """The MLP's params, full data, and ``loss_fn(params, batch)`` (mean cross-entropy)."""
    model = get_model("mlp", widths=tuple(config.curvature_widths), num_outputs=10)
    data = synthetic_data(config.curvature_examples, config.curvature_input_dim, 10, config.seed)
    # A generic point, not a trained one (no initialiser to compile).
    params = generic_point(jax.eval_shape(model.init, jax.random.key(config.seed), data.x_train[:1])["params"],
                           config.seed)
    loss_fn = losses.make_loss_fn(train.make_apply_fn(model), "cross_entropy")
    return params, (jnp.asarray(data.x_train), jnp.asarray(data.y_train)), loss_fn


def bench_curvature(config):
    """Seconds for one full-data HVP and one full-data gradient (each jitted), for the top
    eigenvalue by Lanczos: the compiled program versus a Python loop of the jitted HVP with full
    reorthogonalisation in NumPy (what a user would write first), and for Hutchinson's trace
    with ``config.trace_probes`` probes evaluated one at a time (``'auto'`` on a CPU), all at
    once, and 8 at a time, beside its floor (that many HVPs one after another).

    Returns a dict of the times, both eigenvalues and the parameter count P.
    """
    params, data, loss_fn = _curvature_setup(config)
    steps = config.lanczos_steps
    params_P, unflatten = tree.flatten(params)
    start = np.random.default_rng(config.seed).normal(size=params_P.shape).astype(np.float32)
    flat_hvp = jax.jit(lambda p, d, v: tree.flatten(curvature.hvp(loss_fn, p, d, unflatten(v)))[0])
    gradient = jax.jit(jax.grad(loss_fn))
    eigenvalues = {}

    def compiled(_):
        eigenvalues["compiled"] = curvature.hessian_top_eigenvalues(loss_fn, params, data, num_steps=steps,
                                                                    tol=None).eigenvalues[0]
        return eigenvalues["compiled"]

    def loop(_):
        basis = np.zeros((steps + 1, start.size), np.float32)
        alphas, betas = np.zeros(steps), np.zeros(steps)
        basis[0] = start / np.linalg.norm(start)
        for i in range(steps):
            w = np.array(flat_hvp(params, data, basis[i]))
            alphas[i] = w @ basis[i]
            for _ in range(2):
                w -= basis[: i + 1].T @ (basis[: i + 1] @ w)
            betas[i] = np.linalg.norm(w)
            basis[i + 1] = w / betas[i]
        tridiagonal = np.diag(alphas) + np.diag(betas[:-1], 1) + np.diag(betas[:-1], -1)
        eigenvalues["loop"] = np.linalg.eigvalsh(tridiagonal)[-1]
        return eigenvalues["loop"]

    hvp_seconds, gradient_seconds = time_interleaved([(flat_hvp, (params, data, start)), (gradient, (params, data))],
                                                     repeats=config.repeats)
    lanczos_seconds, loop_seconds = time_interleaved([(compiled, (None,)), (loop, (None,))],
                                                     repeats=config.curvature_repeats)
    probes = int(config.trace_probes)
    trace = {f"trace_{name}": seconds for name, seconds in zip(("auto", "all", "chunk8"), time_interleaved(
        [(lambda _, c=chunk: curvature.hessian_trace(loss_fn, params, data, num_probes=probes,
                                                     probes_per_chunk=c).estimate, (None,))
         for chunk in ("auto", None, 8)], repeats=config.curvature_repeats))}
    return {
        **trace,
        "trace_floor": probes * hvp_seconds,
        "hvp": hvp_seconds,
        "gradient": gradient_seconds,
        "lanczos": lanczos_seconds,
        "lanczos_loop": loop_seconds,
        "eigenvalue": float(eigenvalues["compiled"]),
        "loop_eigenvalue": float(eigenvalues["loop"]),
        "num_params": int(params_P.size),
    }


def bench_landscape(config, rate):
    """A ``G x G`` loss surface (``G = config.landscape_grid``) of an MLP on
    ``config.landscape_examples`` examples along two filter-normalised directions (Li et al.
    2018), as one :func:`jaxdl.analysis.landscape.surface` call (compilation excluded; timed in
    alternation with the loop), against

    - the floor: G^2 forward passes' matmul FLOPs at the measured matmul rate;
    - a Python double loop over the grid of a jitted per-point loss (the perturbed params built
      inside the jitted function, the loss fetched to the host at each point, as the reference
      PyTorch code of Li et al. does), timed on the first ``config.landscape_loop_points``
      points in row-major order and scaled per point to all G^2.

    Returns a dict of seconds (``surface``, ``floor``, ``loop``: the scaled estimate,
    ``loop_per_point``), the two losses at the grid centre (surface and loop; they agree) and
    the grid size.
    """
    model = get_model("mlp", widths=tuple(config.landscape_widths), num_outputs=10)
    data = synthetic_data(config.landscape_examples, config.landscape_input_dim, 10, config.seed)
    init_key, x_key, y_key = jax.random.split(jax.random.key(config.seed), 3)
    params = train.init_state(model, optim.get_optimizer("sgd", 0.01), data.x_train[:1], init_key).params
    direction_x = landscape.random_direction(x_key, params)
    direction_y = landscape.random_direction(y_key, params)
    apply_fn = train.make_apply_fn(model)
    batch = (jnp.asarray(data.x_train), jnp.asarray(data.y_train))
    grid = int(config.landscape_grid)
    coords = np.linspace(-1.0, 1.0, grid)
    chunk_size = config.landscape_chunk_size or None
    surfaces = []

    def whole_surface(_):
        surfaces.append(landscape.surface(apply_fn, params, direction_x, direction_y, batch, coords, coords,
                                          chunk_size=chunk_size, points_per_chunk=config.landscape_points_per_chunk))
        return surfaces[-1]["loss"]

    @jax.jit
    def point_loss(anchors, batch, a, b):
        centre, along_x, along_y = anchors
        point = tree.axpy(b, along_y, tree.axpy(a, along_x, centre))
        return landscape.evaluate_params(apply_fn, point, batch, chunk_size=chunk_size)["loss"]

    anchors = (params, direction_x, direction_y)

    grid_points = [(a, b) for b in coords for a in coords][: config.landscape_loop_points]

    def loop(_):
        return [float(point_loss(anchors, batch, a, b)) for a, b in grid_points]

    surface_seconds, loop_seconds = time_interleaved([(whole_surface, (None,)), (loop, (None,))],
                                                     repeats=config.landscape_repeats)
    num_points = grid * grid
    flops = num_points * mlp_forward_flops(config.landscape_input_dim, config.landscape_widths, 10,
                                           config.landscape_examples)
    centre = grid // 2
    return {
        "surface": surface_seconds,
        "floor": flops / rate,
        "loop_per_point": loop_seconds / len(grid_points),
        "loop": loop_seconds / len(grid_points) * num_points,
        "loop_points": len(grid_points),
        "centre_loss": float(surfaces[-1]["loss"][centre, centre]),
        "loop_centre_loss": float(point_loss(anchors, batch, coords[centre], coords[centre])),
        "num_points": num_points,
    }


def bench_sharpness_tracking(config, widths, num_examples, every):
    """Full-batch gradient descent for ``config.tracking_steps`` steps of a tanh MLP of hidden
    ``widths`` on ``num_examples`` examples (MSE on one-hot targets, Cohen et al. 2021's
    setting), with the top Hessian eigenvalue measured every ``every`` steps by
    ``config.tracking_lanczos_steps`` Lanczos steps:

    - inside the compiled training program (:class:`jaxdl.analysis.curvature.SharpnessProbe`, warm-started
      from the last eigenvector), one call for all the steps;
    - by separate host calls: the compiled program runs ``tracking_every`` steps, then
      :func:`jaxdl.analysis.curvature.hessian_top_eigenvalues` measures, and its value is fetched.

    Returns ``{'in_program', 'host_calls'}`` seconds (compilation excluded) and both final
    eigenvalues (which agree).
    """
    model = get_model("mlp", widths=tuple(widths), activation="tanh", num_outputs=10)
    data = synthetic_data(num_examples, config.tracking_input_dim, 10, config.seed)
    data.y_train = np.eye(10, dtype=np.float32)[data.y_train]
    data.num_classes = None
    tx = optim.get_optimizer("gd", config.tracking_learning_rate)
    plan = train.make_plan(data, None, 1)
    every, steps = int(every), int(config.tracking_steps)
    probe = curvature.SharpnessProbe(num_steps=int(config.tracking_lanczos_steps))
    tracked, _ = train.build_block_programs(model, tx, "mse", plan, probes={"sharpness": probe}, probe_every=every)
    plain, _ = train.build_block_programs(model, tx, "mse", plan)
    x, y = jnp.asarray(data.x_train), jnp.asarray(data.y_train)
    state = train.init_state(model, tx, data.x_train[:1], jax.random.key(config.seed))
    copy = jax.jit(lambda tree: jax.tree.map(jnp.copy, tree))
    order = np.tile(train.epoch_order(jax.random.key(0), 0, plan), (steps, 1))
    loss_fn = losses.make_loss_fn(train.make_apply_fn(model), "mse")
    values = {}

    def in_program(_):
        states = (copy(state), {"sharpness": probe.init(state.params)})
        _, _, metrics = tracked(*states, x, y, order, np.arange(steps, dtype=np.int32), (x, y))
        values["in_program"] = float(metrics["probe/sharpness"][(steps - 1) // every * every])
        return metrics["loss"]

    def host_calls(_):
        current = copy(state)
        for first in range(0, steps, every):
            top = curvature.hessian_top_eigenvalues(loss_fn, current.params, (x, y), num_steps=probe.num_steps,
                                                    tol=None)
            values["host_calls"] = float(top.eigenvalues[0])  # fetched: the host round trip
            current, _, _ = plain(current, {}, x, y, order[:every], np.arange(first, first + every, dtype=np.int32), None)
        return current.params

    in_program_seconds, host_seconds = time_interleaved([(in_program, (None,)), (host_calls, (None,))],
                                                        repeats=config.curvature_repeats)
    return {"in_program": in_program_seconds, "host_calls": host_seconds, "measurements": -(-steps // every),
            "in_program_eigenvalue": values["in_program"], "host_eigenvalue": values["host_calls"]}


def _ntk_flop_floor(forward_flops: float, num_outputs: int) -> float:
    """FLOPs every method of the empirical NTK spends at least: the forward pass, and one
    backward pass to the activations per output (about a forward pass each)."""
    return (1 + num_outputs) * forward_flops


def bench_ntk(config, rate):
    """The empirical NTK ``(N, N)`` (mean over the O outputs) of an MLP and of a small CNN on N
    inputs, by every method of :func:`jaxdl.analysis.ntk.empirical_ntk`, against the FLOP floor
    (:func:`_ntk_flop_floor`) and against the Jacobian contraction, each timed warm.

    Returns ``{'mlp': ..., 'cnn': ...}``, each a dict of seconds per method, the floor in
    seconds, the parameter count and the largest difference of a method from the Jacobian
    contraction relative to the kernel's largest entry.
    """
    n, outputs = int(config.ntk_examples), int(config.ntk_outputs)
    mlp = get_model("mlp", widths=tuple(config.ntk_mlp_widths), num_outputs=outputs)
    cnn = get_model("cnn2d", channels=tuple(config.ntk_cnn_channels), kernel_size=3, num_outputs=outputs)
    setups = {"mlp": (mlp, (config.ntk_input_dim,)), "cnn": (cnn, tuple(config.ntk_image_shape))}
    results = {}
    for name, (model, input_shape) in setups.items():
        x = jnp.asarray(synthetic_data(n, input_shape, outputs, config.seed).x_train)
        params = generic_point(jax.eval_shape(model.init, jax.random.key(config.seed), x[:1])["params"], config.seed)
        apply_fn = train.make_apply_fn(model)
        if name == "mlp":
            forward = mlp_forward_flops(config.ntk_input_dim, config.ntk_mlp_widths, outputs, n)
        else:
            forward = compiled_flops(apply_fn, params, x)
        kernels, seconds = {}, []

        def kernel(method, apply_fn=apply_fn, params=params, x=x, kernels=kernels):
            kernels[method] = ntk.empirical_ntk(apply_fn, params, x, method=method)
            return kernels[method]

        methods = ("structured", "ntvp", "jacobian")
        # One method after another, not interleaved: the first call after the contraction's
        # gigabytes are freed pays for the allocator (10x on a CPU), which no user sees twice.
        seconds = [time_call(kernel, method, repeats=config.ntk_repeats) for method in methods]
        reference = np.asarray(kernels["jacobian"], np.float64)
        scale = np.abs(reference).max()
        results[name] = {
            **dict(zip(methods, seconds)), "floor": _ntk_flop_floor(forward, outputs) / rate,
            "num_params": tree.count(params),
            "agreement": max(float(np.abs(np.asarray(kernels[m], np.float64) - reference).max() / scale)
                             for m in methods),
        }
    return results
