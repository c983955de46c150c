"""Signal propagation at initialisation, and the learning dynamics of deep linear networks.

- Deep MLPs (Glorot & Bengio 2010; He et al. 2015; Saxe et al. 2014): :func:`init_deep_mlp` draws
  the kernels of a bias-free, constant-width MLP with the zoo's initialisers, :func:`layer_statistics`
  measures per layer the second moments of pre-activations and activations and of the gradients
  with respect to activations and weights, :func:`mlp_signal_statistics` does it for several
  schemes and seeds in one compiled program, and :func:`mean_field_second_moments` gives the
  infinite-width prediction (the recursion of Poole et al. 2016) to compare with.
- Residual networks (De & Smith 2020): :func:`residual_branch_statistics` measures, per residual
  block, the variance of the residual branch against that of the skip path, for any Flax module
  whose blocks ``sow`` both (the zoo's ``resnet`` does).
- Deep linear networks (Saxe et al. 2014): :func:`linear_regression_task` builds whitened inputs
  and targets with a chosen input-output correlation spectrum, :func:`deep_linear_training` runs
  full-batch gradient descent as one ``lax.scan`` and records the strength ``u_i^T W v_i`` of every
  singular mode, and :func:`crossing_steps` reads off when each mode reaches a fraction of its target.

Shape letters as in the table of :mod:`jaxdl` (M layers, Q singular modes); initialisation schemes and
residual blocks are counted in words.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence

import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import numpy as np
from threadpoolctl import threadpool_limits

from jaxdl.core import checks, fits
from jaxdl.models.initializers import get_initializer
from jaxdl.models.activations import get_activation

__all__ = ["SCHEMES", "GAINS", "scheme_weight_variance", "init_deep_mlp", "layer_statistics", "mlp_signal_statistics",
           "single_threaded_lapack", "mean_field_second_moments", "residual_branch_variances", "order_blocks",
           "residual_branch_statistics", "linear_regression_task", "deep_linear_training", "crossing_steps"]

SCHEMES = ("naive", "glorot", "he", "orthogonal")
GAINS = {"relu": math.sqrt(2.0)}  # the gain of an orthogonal init; 1 for every other activation
BRANCH, SKIP = "residual_branch", "residual_skip"  # what residual blocks sow into 'intermediates'


# ----------------------------------------------------------------------------- deep MLPs


def scheme_weight_variance(scheme: str, width: int, activation: str = "relu", naive_std: float = 0.01) -> float:
    """sigma_w^2 = D Var(W_ij) of ``scheme`` for a D x D kernel: what multiplies the second moment
    of the activations in the pre-activations, ``E[z_l^2] = sigma_w^2 E[a_{l-1}^2]``."""
    checks.one_of("scheme", scheme, SCHEMES)
    return {"naive": width * naive_std**2, "glorot": 1.0, "he": 2.0,
            "orthogonal": GAINS.get(activation, 1.0) ** 2}[scheme]


def init_deep_mlp(key, scheme, depth: int, width: int, *, activation: str = "relu", naive_std: float = 0.01,
                  dtype=jnp.float32):
    """The kernels ``kernels_MxDxD`` of a bias-free MLP of ``depth`` M layers of width D, drawn by
    ``scheme`` with the zoo's initialisers (:func:`jaxdl.models.get_initializer`):

    - ``naive``: N(0, naive_std^2) whatever the width, the fixed small std (0.01) that He et al.
      2015 set against their init; the zoo's ``normal`` with gain ``naive_std sqrt(D)`` (fan-in D);
    - ``glorot``: Glorot & Bengio 2010, uniform with Var = 2 / (D + D);
    - ``he``: He et al. 2015, N(0, 2 / D);
    - ``orthogonal``: Saxe et al. 2014, a random orthogonal matrix times the activation's gain
      (sqrt 2 for ReLU, as He et al.'s factor 2; 1 otherwise).

    Layer l draws from ``fold_in(key, l)``, so the first m kernels of a deeper network are those of
    the m-layer network: one draw serves every depth. Biases are zero, as in both papers. A sequence
    of schemes gives kernels of shape ``(len(schemes), M, D, D)``, each drawn as alone. Orthogonal
    draws are QRs: on a busy CPU run them inside :func:`single_threaded_lapack`.
    """
    schemes = (scheme,) if isinstance(scheme, str) else tuple(scheme)
    for name in schemes:
        checks.one_of("scheme", name, SCHEMES)
    depth, width = checks.integer("depth", depth), checks.integer("width", width)
    get_activation(activation)
    inits = {"naive": lambda: get_initializer("normal", gain=checks.number("naive_std", naive_std) * math.sqrt(width)),
             "orthogonal": lambda: get_initializer("orthogonal", gain=GAINS.get(activation, 1.0))}
    initializers = {name: inits[name]() if name in inits else get_initializer(name) for name in set(schemes)}
    keys_M = jax.vmap(lambda layer: jax.random.fold_in(key, layer))(jnp.arange(depth))
    draw = lambda name, k: initializers[name](k, (width, width), dtype)
    # Random draws with a batch of keys compile several times slower on a CPU: a loop over layers.
    # But a loop of LAPACK QRs can stall for seconds on a busy CPU: orthogonal draws are vmapped.
    looped = [name for name in schemes if name != "orthogonal"]
    kernels = dict(zip(looped, jnp.swapaxes(jax.lax.map(
        lambda k: jnp.stack([draw(name, k) for name in looped]), keys_M), 0, 1))) if looped else {}
    if "orthogonal" in schemes:
        kernels["orthogonal"] = jax.vmap(functools.partial(draw, "orthogonal"))(keys_M)
    return kernels[scheme] if isinstance(scheme, str) else jnp.stack([kernels[name] for name in schemes])


def layer_statistics(kernels_MxDxD, x_BxD, cotangent_BxD, activation, depths: Sequence[int] | None = None):
    """Per-layer forward and backward statistics of ``a_l = f(a_{l-1} W_l)``, ``a_0 = x``, l = 1..M;
    ``activation`` f is a name (:data:`jaxdl.models.ACTIVATIONS`) or an elementwise function.

    Forward, shape ``(M,)`` (entry l - 1 for layer l), means over the batch and the units:

    - ``preactivation_second_moment``: E[z_l^2] with z_l = a_{l-1} W_l;
    - ``activation_second_moment``: E[a_l^2].

    These are moments over the random weights as much as over the batch: E[z_l^2] is the variance
    Var[y_l] of He et al. 2015 (z has mean zero over the weights). The variance over the batch
    alone would also fall with depth where every input's representation aligns (deep ReLU nets).

    A network of depth m < M is the first m layers with the same kernels, so its forward statistics
    are the first m entries: one forward pass of the deepest network serves every depth.

    Backward, shape ``(len(depths), M)``, one row per depth m of ``depths`` (default ``(M,)``), NaN above m:
    the objective ``J_m = sum(cotangent * a_m)``, i.e. the top hidden layer receives ``cotangent``
    from a linear read-out (at initialisation, a random vector independent of the forward pass:
    what a squared loss on random targets sends back). Gradients depend on every layer above them
    and on where the read-out sits, so they are NOT a prefix of the deepest network's: each depth
    gets its own backward pass, all of them run as one batched reverse scan.

    - ``activation_gradient_second_moment``: E[(dJ_m / da_l)^2];
    - ``weight_gradient_second_moment``: E[(dJ_m / dW_l)^2] over the D x D entries.

    Second moments of quantities with mean zero (pre-activations, gradients) are their variances.
    """
    act = activation if callable(activation) else get_activation(activation)
    num_layers, width = kernels_MxDxD.shape[0], kernels_MxDxD.shape[-1]
    depths_P = jnp.asarray(tuple(depths) if depths is not None else (num_layers,))

    def forward_layer(a_BxD, kernel_DxD):
        z_BxD = a_BxD @ kernel_DxD
        return act(z_BxD), (a_BxD, z_BxD)

    _, (inputs_MxBxD, z_MxBxD) = jax.lax.scan(forward_layer, x_BxD, kernels_MxDxD)
    forward = {"preactivation_second_moment": jnp.mean(z_MxBxD**2, axis=(1, 2)),
               "activation_second_moment": jnp.mean(act(z_MxBxD) ** 2, axis=(1, 2))}

    def backward_layer(g_PxBxD, layer_inputs):
        layer, kernel_DxD, a_prev_BxD, z_BxD = layer_inputs
        g_PxBxD = g_PxBxD + jnp.where((depths_P == layer)[:, None, None], cotangent_BxD, 0.0)
        slope_BxD = jax.jvp(act, (z_BxD,), (jnp.ones_like(z_BxD),))[1]
        delta_PxBxD = g_PxBxD * slope_BxD
        # ||a^T delta||_F^2 = <a a^T, delta delta^T>: B x B Gram matrices instead of P D x D gradients.
        gram_BxB = a_prev_BxD @ a_prev_BxD.T
        delta_gram_PxBxB = jnp.einsum("pbd,pcd->pbc", delta_PxBxD, delta_PxBxD)
        weight_ms_P = jnp.sum(gram_BxB * delta_gram_PxBxB, axis=(1, 2)) / width**2
        stats = (jnp.mean(g_PxBxD**2, axis=(1, 2)), weight_ms_P)
        return delta_PxBxD @ kernel_DxD.T, stats

    layers_M = jnp.arange(1, num_layers + 1)
    g0_PxBxD = jnp.zeros((depths_P.shape[0],) + x_BxD.shape, x_BxD.dtype)
    _, (act_grad_MxP, weight_grad_MxP) = jax.lax.scan(
        backward_layer, g0_PxBxD, (layers_M, kernels_MxDxD, inputs_MxBxD, z_MxBxD), reverse=True)
    above_PxM = layers_M[None, :] > depths_P[:, None]
    backward = {"activation_gradient_second_moment": jnp.where(above_PxM, jnp.nan, act_grad_MxP.T),
                "weight_gradient_second_moment": jnp.where(above_PxM, jnp.nan, weight_grad_MxP.T)}
    return {**forward, **backward}


def mlp_signal_statistics(key, *, schemes: Sequence[str] = SCHEMES, activations: Sequence[str] = ("relu",),
                          depth: int = 50, width: int = 256, num_inputs: int = 16, num_seeds: int = 8,
                          depths: Sequence[int] | None = None, naive_std: float = 0.01, dtype=jnp.float32) -> dict:
    """:func:`layer_statistics` of :func:`init_deep_mlp` networks for every activation, scheme and
    seed in one compiled program (schemes ``vmap``ped, seeds ``lax.map``ped, one seed's memory at a
    time): ``{activation: {statistic: array}}``, every array with leading axes ``(len(schemes), K)``.

    Seed k draws from ``fold_in(key, k)`` its kernels (one key for every scheme and activation: the
    activations see the same weights, an orthogonal draw scaled by each one's gain), its
    ``num_inputs`` inputs ``x_BxD`` (B = ``num_inputs``) and its cotangent, both with N(0, 1)
    entries, all in float32 (the kernels as the zoo draws them), and propagates them in ``dtype``;
    ``depths`` (default ``(depth,)``) are the depths whose backward statistics are measured. Calling
    again with the same arguments compiles nothing. Run inside ``jax.enable_x64(True)`` with
    ``dtype=jnp.float64`` where a scheme shrinks the signal below float32's range (the naive init
    does within about 20 layers).
    """
    schemes = tuple(checks.one_of("schemes", s, SCHEMES) for s in schemes)
    activations = tuple(activations)
    for activation in activations:
        get_activation(activation)
    for name, value in (("schemes", schemes), ("activations", activations)):
        if not value:
            checks.fail(name, value, "a non-empty sequence")
    depth = checks.integer("depth", depth)
    depths = (depth,) if depths is None else tuple(checks.integer("depths", m, maximum=depth) for m in depths)
    if not depths:
        checks.fail("depths", depths, "a non-empty sequence of depths or None")
    args = (schemes, activations, depth, checks.integer("width", width), checks.integer("num_inputs", num_inputs),
            checks.integer("num_seeds", num_seeds), depths, checks.number("naive_std", naive_std), jnp.dtype(dtype))
    with single_threaded_lapack():
        return jax.block_until_ready(_mlp_signal_statistics(key, *args))


def single_threaded_lapack():
    """A context that limits the BLAS/LAPACK library behind ``jnp.linalg`` on a CPU (OpenBLAS) to
    one thread. Its threads spin against XLA's on a busy CPU, which makes a loop of small QRs
    (orthogonal draws) far slower with two threads than with one. Block on the results
    (``jax.block_until_ready``) inside the context: JAX dispatches asynchronously."""
    return threadpool_limits(1, user_api="blas")


@functools.partial(jax.jit, static_argnums=tuple(range(1, 10)))
def _mlp_signal_statistics(key, schemes, activations, depth, width, num_inputs, num_seeds, depths, naive_std, dtype):
    def one_seed(seed_key):
        init_key, data_key = jax.random.split(seed_key)
        x_BxD, cotangent_BxD = jax.random.normal(data_key, (2 * num_inputs * width,)).reshape(2, num_inputs, width)
        x_BxD, cotangent_BxD = x_BxD.astype(dtype), cotangent_BxD.astype(dtype)
        base_IxMxDxD = init_deep_mlp(init_key, schemes, depth, width, activation="identity", naive_std=naive_std)
        out = {}
        for activation in activations:
            gains_I = jnp.asarray([GAINS.get(activation, 1.0) if s == "orthogonal" else 1.0 for s in schemes])
            kernels_IxMxDxD = (base_IxMxDxD * gains_I[:, None, None, None]).astype(dtype)
            out[activation] = jax.vmap(
                lambda k, a=activation: layer_statistics(k, x_BxD, cotangent_BxD, a, depths))(kernels_IxMxDxD)
        return out

    keys_K = jax.vmap(lambda k: jax.random.fold_in(key, k))(jnp.arange(num_seeds))
    # Seeds one after the other (schemes vmapped within): unbatched random draws, which compile
    # faster on a CPU, and the memory of one seed (16 seeds of 50 float64 kernels 256 x 256: 3.4 GB).
    stats = jax.lax.map(one_seed, keys_K)  # leaves (K, schemes, ...)
    return jax.tree.map(lambda v: jnp.swapaxes(v, 0, 1), stats)


def mean_field_second_moments(activation: str, weight_variance: float, depth: int,
                              input_second_moment: float = 1.0, num_nodes: int = 100) -> dict:
    """The infinite-width prediction for :func:`layer_statistics` (Poole et al. 2016), shape ``(M,)``:
    ``preactivation_second_moment`` q_l = sigma_w^2 E[a_{l-1}^2], ``activation_second_moment``
    E[f(z)^2] with z ~ N(0, q_l), and ``gradient_factor`` chi_l = sigma_w^2 E[f'(z)^2], the factor by
    which E[(dJ/da)^2] grows from layer l to layer l - 1. Gauss-Hermite quadrature with an even
    number of nodes (none at 0, so that ReLU's kink is integrated exactly), in float64 NumPy."""
    get_activation(activation)
    depth = checks.integer("depth", depth)
    nodes, weights = np.polynomial.hermite_e.hermegauss(2 * (checks.integer("num_nodes", num_nodes) // 2))
    weights = weights / weights.sum()
    a_ms, out = float(input_second_moment), {"preactivation_second_moment": [], "activation_second_moment": [],
                                             "gradient_factor": []}
    for _ in range(depth):
        q = weight_variance * a_ms
        values, slopes = (np.asarray(v, np.float64) for v in _values_and_slopes(activation, np.sqrt(q) * nodes))
        a_ms = float(np.sum(weights * values**2))
        for name, value in zip(out, (q, a_ms, weight_variance * float(np.sum(weights * slopes**2)))):
            out[name].append(value)
    return {name: np.asarray(values) for name, values in out.items()}


_NUMPY_VALUES_AND_SLOPES = {  # what needs no compiling
    "relu": lambda z: (np.maximum(z, 0.0), (z > 0).astype(np.float64)),
    "tanh": lambda z: (np.tanh(z), 1.0 - np.tanh(z) ** 2),
    "identity": lambda z: (z, np.ones_like(z)),
}


def _values_and_slopes(activation, z):
    if activation in _NUMPY_VALUES_AND_SLOPES:
        return _NUMPY_VALUES_AND_SLOPES[activation](z)
    return _jax_values_and_slopes(activation, z)


@functools.partial(jax.jit, static_argnums=0)
def _jax_values_and_slopes(activation, z):
    act = get_activation(activation)
    return act(z), jax.vmap(jax.grad(act))(z)


# ----------------------------------------------------------------------------- residual networks


def residual_branch_variances(model: nn.Module, variables, x, *, train: bool = True) -> dict:
    """``{block name: (Var[branch], Var[skip])}`` at ``variables``, for any Flax module called as
    ``model.apply(variables, x, train=...)`` whose residual blocks ``sow`` their branch ``f(x)`` as
    ``'residual_branch'`` and their skip path as ``'residual_skip'`` into ``'intermediates'`` (the
    zoo's ``resnet`` does). Pure and traceable (``jit``, ``vmap`` over seeds); see
    :func:`residual_branch_statistics` for the ordered, compiled version.

    A variance is taken per channel (last axis) over every other axis (batch, positions), then
    averaged over channels. ``train=True`` normalises BatchNorm by the batch, as a training step at
    initialisation does (a fresh network's running averages, 0 and 1, would leave it unnormalised).
    """
    mutable = ["intermediates"] + ([name for name in variables if name != "params"] if train else [])
    _, state = model.apply(variables, x, train=train, mutable=mutable)
    found = {}
    for path, (value,) in flax.traverse_util.flatten_dict(dict(state.get("intermediates", {}))).items():
        if path[-1] in (BRANCH, SKIP):
            channels = value.reshape(-1, value.shape[-1])
            found.setdefault("/".join(map(str, path[:-1])), {})[path[-1]] = jnp.mean(jnp.var(channels, axis=0))
    return {block: (v[BRANCH], v[SKIP]) for block, v in found.items() if len(v) == 2}


def order_blocks(variances: dict) -> dict:
    """:func:`residual_branch_variances` as ``{"blocks": names, "branch_variance",
    "skip_variance", "ratio"}``, the arrays of shape ``(..., blocks)`` (any leading seed axes), blocks
    ordered by name with numbers compared as numbers (call order for the zoo's
    ``stage_<s>_block_<b>``). ``ValueError`` when there is no block."""
    if not variances:
        raise ValueError(f"the model sows no '{BRANCH}' and '{SKIP}' into 'intermediates': no residual block found")
    natural = lambda name: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
    blocks = sorted(variances, key=natural)
    branch, skip = (np.stack([np.asarray(variances[b][i]) for b in blocks], axis=-1) for i in (0, 1))
    return {"blocks": blocks, "branch_variance": branch, "skip_variance": skip, "ratio": branch / skip}


def residual_branch_statistics(model: nn.Module, variables, x, *, train: bool = True, seed_axis: bool = False) -> dict:
    """The variance of each residual block's branch against its skip path at ``variables`` (De & Smith
    2020: with BatchNorm the ratio falls like 1/depth, so a deep network starts out shallow):
    :func:`residual_branch_variances`, compiled once per model and shapes, as :func:`order_blocks`
    arrays of shape ``(blocks,)``, or ``(K, blocks)`` with ``seed_axis`` (``variables`` and ``x`` then carry a
    leading seed axis K, vmapped)."""
    return order_blocks(_branch_variances(model, variables, x, bool(train), bool(seed_axis)))


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _branch_variances(model, variables, x, train, seed_axis):
    one_network = functools.partial(residual_branch_variances, model, train=train)
    return jax.vmap(one_network)(variables, x) if seed_axis else one_network(variables, x)


# ----------------------------------------------------------------------------- deep linear networks


def linear_regression_task(key, singular_values: Sequence[float], dim: int, num_examples: int | None = None):
    """A regression task with a known input-output correlation (Saxe et al. 2014): whitened inputs
    ``x_NxD`` (``x^T x / N = I`` exactly) and targets ``y_NxD = x S`` with ``S = U diag(s) V^T``
    (U, V random orthogonal, s the ``singular_values`` padded with zeros to D), so that
    ``x^T y / N = S``. Returns ``(x_NxD, y_NxD, modes_in_DxQ, modes_out_DxQ)``, the first Q
    columns of U and V (Q = len(singular_values)). N defaults to D."""
    dim = checks.integer("dim", dim)
    num_examples = dim if num_examples is None else checks.integer("num_examples", num_examples, minimum=dim)
    s = np.asarray(singular_values, np.float64)
    if s.ndim != 1 or not 0 < s.size <= dim or np.any(s <= 0):
        checks.fail("singular_values", singular_values, f"between 1 and dim={dim} positive numbers")
    return _linear_regression_task(key, jnp.asarray(s, jnp.float32), dim, num_examples)


@functools.partial(jax.jit, static_argnums=(2, 3))
def _linear_regression_task(key, s_Q, dim, num_examples):
    # One draw split three ways (every distinct random draw costs compile time).
    gaussian = jax.random.normal(key, (num_examples + 2 * dim, dim))
    x_NxD = np.sqrt(num_examples) * jnp.linalg.qr(gaussian[:num_examples])[0]
    u_DxQ, v_DxQ = (jnp.linalg.qr(g)[0][:, : s_Q.shape[0]] for g in jnp.split(gaussian[num_examples:], 2))
    return x_NxD, x_NxD @ ((u_DxQ * s_Q) @ v_DxQ.T), u_DxQ, v_DxQ


@functools.partial(jax.jit, static_argnames=("num_steps", "record_every"))
def deep_linear_training(kernels_MxDxD, x_NxD, y_NxD, modes_in_DxQ, modes_out_DxQ, learning_rate, *,
                         num_steps: int, record_every: int = 1, trainable_M=None) -> dict:
    """Full-batch gradient descent on ``1/(2N) sum_n ||x_n W_1 ... W_M - y_n||^2`` from
    ``kernels_MxDxD`` (Saxe et al. 2014), as one ``lax.scan``; every ``record_every`` steps it records
    the strength ``u_q^T W v_q`` of each mode (``W = W_1 ... W_M``, u and v the columns of
    ``modes_in_DxQ`` and ``modes_out_DxQ``) and the loss. Returns ``mode_strength_TxQ``, ``loss_T`` and
    ``steps_T`` (0, record_every, ..., num_steps rounded down to a multiple of record_every), with
    T = num_steps // record_every + 1. ``trainable_M`` (a boolean mask, default all) freezes layers:
    frozen identity kernels make a shallower network with the same program, so depths, initial
    kernels and learning rates (all traced) can be ``vmap``ped together."""
    trainable_M = jnp.ones(kernels_MxDxD.shape[0], bool) if trainable_M is None else trainable_M

    def product(kernels):
        return functools.reduce(jnp.matmul, list(kernels))

    def loss_fn(kernels):
        return 0.5 * jnp.mean(jnp.sum((x_NxD @ product(kernels) - y_NxD) ** 2, axis=-1))

    def record(kernels):
        w_DxD = product(kernels)
        return jnp.einsum("dq,de,eq->q", modes_in_DxQ, w_DxD, modes_out_DxQ), loss_fn(kernels)

    def gd_step(kernels, _):
        grads = jax.grad(loss_fn)(kernels)
        return kernels - learning_rate * jnp.where(trainable_M[:, None, None], grads, 0.0), None

    def block(kernels, _):
        kernels = jax.lax.scan(gd_step, kernels, None, length=record_every)[0]
        return kernels, record(kernels)

    num_records = checks.integer("num_steps", num_steps) // checks.integer("record_every", record_every)
    _, (strength_TxQ, loss_T) = jax.lax.scan(block, kernels_MxDxD, None, length=num_records)
    strength0_Q, loss0 = record(kernels_MxDxD)
    return {"mode_strength_TxQ": jnp.concatenate([strength0_Q[None], strength_TxQ]),
            "loss_T": jnp.concatenate([loss0[None], loss_T]),
            "steps_T": jnp.arange(num_records + 1) * record_every}


def crossing_steps(strength_TxQ, steps_T, targets_Q, fraction: float = 0.5) -> np.ndarray:
    """The first recorded step at which each mode's strength reaches ``fraction`` of its target
    (``inf`` where it never does), shape ``(..., Q)`` for strengths ``(..., T, Q)``."""
    level_Qx1 = fraction * np.asarray(targets_Q, np.float64)[:, None]
    return fits.first_crossing(np.moveaxis(np.asarray(strength_TxQ), -2, -1), level_Qx1, at_T=steps_T)
