"""Analysis benches: a full-data Hessian-vector product against a gradient, Lanczos and the SLQ
spectral density as compiled programs against Python loops of jitted HVPs, the SLQ density of a
small MLP against its dense spectrum, a 2-D loss surface (Li et al. 2018) against its FLOP floor
and against a Python loop over grid points, sharpness tracked inside the training loop against
host calls, and the empirical NTK by each method against its FLOP floor and against the
Jacobian contraction.

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
from jaxdl.core import linalg, tree
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


def _lanczos_loop(matvec, start_P, steps):
    """The (S, S) Lanczos tridiagonal T of ``matvec`` from ``start_P`` as a user writes it first:
    a Python loop of the jitted product, full reorthogonalisation (twice) in NumPy."""
    basis_SxP = np.zeros((steps + 1, start_P.size), np.float32)
    alphas_S, betas_S = np.zeros(steps), np.zeros(steps)
    basis_SxP[0] = start_P / np.linalg.norm(start_P)
    for i in range(steps):
        w_P = np.array(matvec(basis_SxP[i]))
        alphas_S[i] = w_P @ basis_SxP[i]
        for _ in range(2):
            w_P -= basis_SxP[: i + 1].T @ (basis_SxP[: i + 1] @ w_P)
        betas_S[i] = np.linalg.norm(w_P)
        basis_SxP[i + 1] = w_P / betas_S[i]
    return np.diag(alphas_S) + np.diag(betas_S[:-1], 1) + np.diag(betas_S[:-1], -1)


def _broadened_density(nodes_RxS, weights_RxS, num_points=1000):
    """The Gaussian-broadened SLQ density on its grid in NumPy, as
    :func:`jaxdl.analysis.curvature.hessian_spectral_density` computes it (bandwidth 1% of the
    nodes' range, the grid padded by six bandwidths)."""
    low, high = nodes_RxS.min(), nodes_RxS.max()
    sigma = 0.01 * max(high - low, 1e-3 * max(abs(low), abs(high)), np.finfo(np.float32).eps)
    grid_G = np.linspace(low - 6 * sigma, high + 6 * sigma, num_points)
    gaussians_GxRS = np.exp(-0.5 * np.square((grid_G[:, None] - nodes_RxS.reshape(-1)) / sigma))
    return grid_G, gaussians_GxRS @ weights_RxS.reshape(-1) / (len(nodes_RxS) * sigma * np.sqrt(2 * np.pi))


def bench_curvature(config):
    """Seconds for one full-data HVP and one full-data gradient (each jitted), for the top
    eigenvalue by Lanczos: the compiled program versus a Python loop of the jitted HVP with full
    reorthogonalisation in NumPy (what a user would write first), and for Hutchinson's trace
    with ``config.trace_probes`` probes evaluated one at a time (``'auto'`` on a CPU), all at
    once, and 8 at a time, beside its floor (that many HVPs one after another).

    The spectral density by SLQ (``config.density_runs`` runs R of ``config.density_steps`` steps
    S, one compiled program) against the same R x S products as R runs of that loop, each
    followed by the quadrature and the broadening in NumPy, and against its floor (R x S HVPs).

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
        eigenvalues["loop"] = np.linalg.eigvalsh(_lanczos_loop(lambda v: flat_hvp(params, data, v), start, steps))[-1]
        return eigenvalues["loop"]

    runs, density_steps = int(config.density_runs), int(config.density_steps)
    starts_RxP = np.random.default_rng(config.seed + 1).normal(size=(runs, params_P.size)).astype(np.float32)

    def density(_):
        return curvature.hessian_spectral_density(loss_fn, params, data, num_steps=density_steps, num_runs=runs,
                                                  key=jax.random.key(config.seed)).density

    def density_loop(_):
        quadrature = [np.linalg.eigh(_lanczos_loop(lambda v: flat_hvp(params, data, v), start_P, density_steps))
                      for start_P in starts_RxP]
        return _broadened_density(np.stack([theta_S for theta_S, _ in quadrature]),
                                  np.stack([np.square(s_SxS[0]) for _, s_SxS in quadrature]))

    hvp_seconds, gradient_seconds = time_interleaved([(flat_hvp, (params, data, start)), (gradient, (params, data))],
                                                     repeats=config.repeats)
    lanczos_seconds, loop_seconds = time_interleaved([(compiled, (None,)), (loop, (None,))],
                                                     repeats=config.curvature_repeats)
    density_seconds, density_loop_seconds = time_interleaved([(density, (None,)), (density_loop, (None,))],
                                                             repeats=config.density_repeats)
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
        "density": density_seconds,
        "density_loop": density_loop_seconds,
        "density_floor": runs * density_steps * hvp_seconds,
        "eigenvalue": float(eigenvalues["compiled"]),
        "loop_eigenvalue": float(eigenvalues["loop"]),
        "num_params": int(params_P.size),
    }


def _wasserstein_to_spectrum(grid_G, density_G, eigenvalues_P, num_points=20001):
    """Wasserstein-1 distance, the L1 distance between CDFs (the integral of |F - G|), between a
    density on a grid (its CDF by the trapezoid rule; 0 before the grid, 1 after) and the
    empirical distribution of ``eigenvalues_P`` (mass 1/P each), on a fine axis spanning both."""
    cdf_G = np.concatenate([[0.0], np.cumsum(0.5 * (density_G[1:] + density_G[:-1]) * np.diff(grid_G))])
    axis_T = np.linspace(min(grid_G[0], eigenvalues_P.min()), max(grid_G[-1], eigenvalues_P.max()), num_points)
    slq_T = np.interp(axis_T, grid_G, cdf_G / cdf_G[-1], left=0.0, right=1.0)
    dense_T = np.searchsorted(np.sort(eigenvalues_P), axis_T, side="right") / eigenvalues_P.size
    return float(np.trapezoid(np.abs(slq_T - dense_T), axis_T))


def bench_density(config):
    """The Hessian's spectral density by SLQ (:func:`jaxdl.analysis.curvature.hessian_spectral_density`,
    ``config.density_accuracy_runs`` runs R of ``config.density_accuracy_steps`` steps S) of an
    MLP small enough to diagonalise, against its dense spectrum (the float32 Hessian by
    ``jax.hessian``, jitted, then ``numpy.linalg.eigvalsh`` in float64), both timed warm.

    Accuracy: the first two spectral moments m1 = mean(lambda) = tr(H) / P and m2 =
    mean(lambda^2) = tr(H^2) / P, from SLQ as sum_j w_rj theta_rj^m averaged over the R runs;
    Gauss quadrature is exact for them (u^T H^m u for the run's unit start u), so their only
    error is the random starts', whose standard error for a start uniform on the sphere is
    sqrt(2 (m_2m - m_m^2) / ((P + 2) R)), here from the dense spectrum. Also the top eigenvalue
    (the largest node) and the Wasserstein-1 distance between the broadened density and the P
    eigenvalues (:func:`_wasserstein_to_spectrum`).

    Returns a dict of seconds (``slq``, ``dense``), the parameter count, the pairs
    ``(slq, dense)`` of the moments (``moment1``, ``moment2``) and the top eigenvalue (``top``),
    the relative error of each (``moment1_error``, ...), the moments' errors in standard errors
    (``moment1_z``, ``moment2_z``), and the Wasserstein-1 distance over the spectrum's range
    (largest minus smallest eigenvalue), ``wasserstein_over_range``.
    """
    model = get_model("mlp", widths=tuple(config.density_widths), num_outputs=10)
    data = synthetic_data(config.density_examples, config.density_input_dim, 10, config.seed)
    params = generic_point(jax.eval_shape(model.init, jax.random.key(config.seed), data.x_train[:1])["params"],
                           config.seed)
    loss_fn = losses.make_loss_fn(train.make_apply_fn(model), "cross_entropy")
    batch = (jnp.asarray(data.x_train), jnp.asarray(data.y_train))
    params_P, unflatten = tree.flatten(params)
    hessian = jax.jit(jax.hessian(lambda theta_P, batch: loss_fn(unflatten(theta_P), batch)))
    found = {}

    def slq(_):
        found["slq"] = curvature.hessian_spectral_density(loss_fn, params, batch,
                                                          num_steps=config.density_accuracy_steps,
                                                          num_runs=config.density_accuracy_runs,
                                                          key=jax.random.key(config.seed))
        return found["slq"].density

    def dense(_):
        hessian_PxP = np.asarray(hessian(params_P, batch), np.float64)
        found["dense"] = np.linalg.eigvalsh(0.5 * (hessian_PxP + hessian_PxP.T))
        return found["dense"]

    slq_seconds, dense_seconds = time_interleaved([(slq, (None,)), (dense, (None,))],
                                                  repeats=config.curvature_repeats)
    estimate, eigenvalues_P = found["slq"], found["dense"]
    nodes_RxS, weights_RxS = (np.asarray(a, np.float64) for a in (estimate.nodes, estimate.weights))
    grid_G, density_G = (np.asarray(a, np.float64) for a in (estimate.grid, estimate.density))
    runs, size = nodes_RxS.shape[0], eigenvalues_P.size
    pairs = {**{f"moment{m}": (float(np.mean(np.sum(weights_RxS * nodes_RxS**m, axis=1))),
                               float(np.mean(eigenvalues_P**m))) for m in (1, 2)},
             "top": (float(nodes_RxS.max()), float(eigenvalues_P.max()))}
    standard_errors = {f"moment{m}": float(np.sqrt(2 * np.var(eigenvalues_P**m) / ((size + 2) * runs)))
                       for m in (1, 2)}
    spread = float(eigenvalues_P.max() - eigenvalues_P.min())
    return {
        "slq": slq_seconds,
        "dense": dense_seconds,
        "num_params": int(params_P.size),
        **pairs,
        **{f"{name}_error": abs(slq - dense) / abs(dense) for name, (slq, dense) in pairs.items()},
        **{f"{name}_z": abs(pairs[name][0] - pairs[name][1]) / error for name, error in standard_errors.items()},
        "wasserstein_over_range": _wasserstein_to_spectrum(grid_G, density_G, eigenvalues_P) / spread,
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


def bench_convexity(config):
    """A ``G x G`` convexity map (``G = config.convexity_grid``; Li et al. 2018, section 6) of an
    MLP on ``config.convexity_examples`` examples: ``config.convexity_steps`` Lanczos steps on
    the data-set Hessian at every point, as one :func:`jaxdl.analysis.landscape.convexity_map`
    call, against a Python loop over the points of one jitted per-point run of the same Lanczos
    (the point built inside, both extreme Ritz values fetched to the host), as a user without
    the map would write it; the loop is timed on ``config.convexity_loop_points`` points and
    scaled to the grid. Compilation is excluded from both; they alternate.

    Returns a dict of seconds (``map``, ``loop``: the scaled estimate), points per second of
    each, the number of points, and the largest relative difference of the extremes between the
    map and the loop on the looped points (the same products: they agree to rounding).
    """
    model = get_model("mlp", widths=tuple(config.convexity_widths), num_outputs=10)
    data = synthetic_data(config.convexity_examples, config.convexity_input_dim, 10, config.seed)
    init_key, x_key, y_key, start_key = jax.random.split(jax.random.key(config.seed), 4)
    params = train.init_state(model, optim.get_optimizer("sgd", 0.01), data.x_train[:1], init_key).params
    direction_x, direction_y = (landscape.random_direction(k, params) for k in (x_key, y_key))
    apply_fn = train.make_apply_fn(model)
    loss_fn = losses.make_loss_fn(apply_fn, "cross_entropy")
    batch = (jnp.asarray(data.x_train), jnp.asarray(data.y_train))
    grid, steps = int(config.convexity_grid), int(config.convexity_steps)
    coords = np.linspace(-1.0, 1.0, grid)
    maps = []

    def whole_map(_):
        maps.append(landscape.convexity_map(apply_fn, params, direction_x, direction_y, batch, coords, coords,
                                            num_steps=steps, key=start_key))
        return maps[-1]["top"]

    start_P = jax.random.normal(start_key, (tree.count(params),), jnp.float32)

    @jax.jit
    def point_extremes(anchors, a, b):
        centre, along_x, along_y = anchors
        point = tree.axpy(b, along_y, tree.axpy(a, along_x, centre))
        result = linalg.lanczos(curvature.hessian_matvec(loss_fn, point, batch), start_P, steps)
        theta_S = jnp.linalg.eigvalsh(linalg.tridiagonal(result.alphas, result.betas))
        return theta_S[-1], theta_S[0]

    anchors = (params, direction_x, direction_y)
    points = [(a, b) for b in coords for a in coords][: config.convexity_loop_points]
    looped = []

    def loop(_):
        looped[:] = [tuple(float(v) for v in point_extremes(anchors, a, b)) for a, b in points]
        return looped

    map_seconds, loop_seconds = time_interleaved([(whole_map, (None,)), (loop, (None,))],
                                                 repeats=config.convexity_repeats)
    num_points = grid * grid
    top, bottom = (maps[-1][name].ravel()[: len(points)] for name in ("top", "bottom"))
    loop_top, loop_bottom = (np.asarray(v, np.float64) for v in zip(*looped))
    scale = np.maximum(np.abs(top), 1e-12)
    loop_seconds = loop_seconds / len(points) * num_points
    return {
        "map": map_seconds,
        "loop": loop_seconds,
        "map_points_per_second": num_points / map_seconds,
        "loop_points_per_second": num_points / loop_seconds,
        "loop_points": len(points),
        "num_points": num_points,
        "agreement": float(max(np.max(np.abs(top - loop_top) / scale), np.max(np.abs(bottom - loop_bottom) / scale))),
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


def _cntk_network(config, depth: int):
    layers = []
    for _ in range(depth):
        layers += [ntk.Conv(1, (3, 3), weight_std=config.cntk_weight_std, bias_std=config.cntk_bias_std), ntk.Relu()]
    return ntk.serial(*layers, ntk.GlobalAvgPool(), ntk.Dense(1, weight_std=config.cntk_weight_std,
                                                              bias_std=config.cntk_bias_std))


def cntk_numpy_loop(x_NxHxWxC, depth: int, weight_std: float, bias_std: float) -> dict:
    """The same CNTK with global average pooling (``depth`` 3 x 3 SAME convolutions, each
    followed by a ReLU, then GAP and a dense read-out) as a reader would write it from Arora et
    al. 2019: NumPy over the pairs of inputs, Python loops over every pair of positions and the
    filter's offsets. The benchmark's naive baseline, and an independent check of the layer
    algebra's values."""
    n, height, width, channels = x_NxHxWxC.shape
    positions = [(i, j) for i in range(height) for j in range(width)]
    index = {position: p for p, position in enumerate(positions)}
    flat = x_NxHxWxC.reshape(n, height * width, channels).astype(np.float64)
    nngp = np.einsum("apc,bqc->abpq", flat, flat) / channels
    ntk_ = np.zeros_like(nngp)
    offsets = [(di, dj) for di in (-1, 0, 1) for dj in (-1, 0, 1)]
    w2, b2 = weight_std ** 2, bias_std ** 2

    def conv(k):
        out = np.zeros_like(k)
        for p, (i, j) in enumerate(positions):
            for q, (u, v) in enumerate(positions):
                for di, dj in offsets:
                    a, b = index.get((i + di, j + dj)), index.get((u + di, v + dj))
                    if a is not None and b is not None:
                        out[:, :, p, q] += k[:, :, a, b]
        return out / len(offsets)

    examples = np.arange(n)
    for _ in range(depth):
        nngp = w2 * conv(nngp) + b2
        ntk_ = nngp + w2 * conv(ntk_)
        variance = nngp[examples, examples][:, np.arange(len(positions)), np.arange(len(positions))]  # (n, P)
        norms = np.sqrt(variance[:, None, :, None] * variance[None, :, None, :])
        cosine = np.clip(nngp / norms, -1.0, 1.0)
        angle = np.arccos(cosine)
        nngp = norms / (2 * np.pi) * (np.sin(angle) + (np.pi - angle) * cosine)
        ntk_ = ntk_ * (np.pi - angle) / (2 * np.pi)
    nngp, ntk_ = nngp.mean(axis=(2, 3)), ntk_.mean(axis=(2, 3))
    nngp = w2 * nngp + b2
    return {"nngp": nngp, "ntk": nngp + w2 * ntk_}


def bench_cntk(config):
    """The CNTK with global average pooling (Arora et al. 2019) of ``config.cntk_examples``
    random images ``config.cntk_image_shape`` against itself: ``ntk.serial(...).kernels`` in
    blocks of ``config.cntk_chunk_size`` images against :func:`cntk_numpy_loop` (timed on
    ``config.cntk_loop_examples`` images and scaled by the number of pairs), both warm.

    Returns seconds (``kernels``; ``loop``, the scaled estimate), the bytes of one block's
    largest kernel array (chunk^2 x positions^2 x 4 in float32), and the largest difference of
    the two on the looped images relative to the largest entry (float32 against float64).
    """
    depth, chunk = int(config.cntk_depth), int(config.cntk_chunk_size)
    rng = np.random.default_rng(config.seed)
    x = rng.standard_normal((config.cntk_examples, *config.cntk_image_shape)).astype(np.float32)
    net = _cntk_network(config, depth)
    looped = x[: config.cntk_loop_examples]
    results = {}

    def algebra(_):
        results["kernels"] = net.kernels(x, chunk_size=chunk)
        return results["kernels"]["ntk"]

    def loop(_):
        results["loop"] = cntk_numpy_loop(looped, depth, config.cntk_weight_std, config.cntk_bias_std)
        return results["loop"]["ntk"]

    kernel_seconds = time_call(algebra, None, repeats=config.cntk_repeats)
    loop_seconds = time_call(loop, None, repeats=1)
    m = len(looped)
    reference = results["loop"]
    agreement = max(float(np.abs(np.asarray(results["kernels"][key])[:m, :m] - reference[key]).max()
                          / np.abs(reference[key]).max()) for key in ("nngp", "ntk"))
    positions = int(np.prod(config.cntk_image_shape[:2]))
    return {"kernels": kernel_seconds, "loop": loop_seconds * (len(x) / m) ** 2,
            "block_bytes": min(chunk, len(x)) ** 2 * positions ** 2 * 4, "agreement": agreement}
