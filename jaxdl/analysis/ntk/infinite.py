"""Infinite-width kernels of networks built from layers: convolutions, pooling, residual blocks
and LayerNorm, with the finite network each kernel is the limit of.

A network is ``serial(layer, ...)`` of the layers below; ``net.kernels(x1, x2)`` returns its NNGP
kernel and NTK ``{'nngp': (N1, N2), 'ntk': (N1, N2)}`` (one output unit, every output unit
independent of the others) and ``net.module()`` the finite Flax Linen network whose wide limit
they are, its weights drawn as the kernel assumes::

    from jaxdl.analysis import ntk
    net = ntk.serial(ntk.Conv(64, (3, 3), weight_std=1.5, bias_std=0.1), ntk.Relu(),
                     ntk.Residual(ntk.Relu(), ntk.Conv(64, (3, 3), weight_std=1.5, bias_std=0.1)),
                     ntk.AvgPool((2, 2), strides=(2, 2)), ntk.GlobalAvgPool(),
                     ntk.Dense(10, weight_std=1.5, bias_std=0.1))
    k = net.kernels(x1, x2)        # x1 (N1, H, W, C), x2 (N2, H, W, C)

Inputs are ``(N, D)`` for fully connected nets, ``(N, L, C)`` for 1-D and ``(N, H, W, C)`` for
2-D convolutions (channels last). The recursions are those of Lee et al. 2018, Novak et al. 2019
and Arora et al. 2019 (CNTK), in the conventions of neural-tangents' ``stax`` (Novak et al. 2020),
whose values they match to 1e-6 relative in float64 (``tests/test_ntk_layers.py``):

- the input kernel averages over channels: x . x' / C at every pair of positions;
- ``Dense`` acts on the channel axis (at every position), ``Conv`` with weights N(0, 1) scaled by
  ``weight_std / sqrt(fan_in)``, fan_in = channels x filter size, and a bias ``bias_std`` b
  (``parameterization='ntk'``); ``'standard'`` draws the weights with that variance instead, so
  the NTK gains fan_in x the input kernel, and 1 for a bias (``bias_std=None``: no bias);
- ``AvgPool`` divides by the window size at the edges too (zero padding, neural-tangents'
  ``normalize_edges=False``); ``Flatten`` averages the kernel's diagonal over positions (the
  next layer's fan-in counts every position); ``GlobalAvgPool`` averages over all pairs;
- ``LayerNorm(axis, eps=1e-12)`` divides by the root of eps plus the mean variance over ``axis``
  (which must hold the channel axis, and not the batch axis); like neural-tangents it needs a
  Gaussian input (after ``Dense``, ``Conv``, pooling or a residual sum of those);
- ``Residual(*branch)`` is x + branch(x), the two summands independent (the branch must end in a
  ``Dense`` or ``Conv``, as neural-tangents' ``FanInSum`` assumes);
- ``Relu``, ``Erf`` and ``Identity`` in closed form (Cho & Saul 2009; Williams 1997), any other
  elementwise function by Gauss-Hermite quadrature (``Elementwise(jnp.tanh)``).

A network without pooling carries only the same-position covariances (positions x channels
average independently); one with pooling carries every pair of positions, (N1, N2, P, P), in
blocks of ``chunk_size`` inputs. Kernels are computed in the inputs' float dtype (float64 under
``jax.enable_x64``).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxdl.core import checks

__all__ = ["AvgPool", "Conv", "Dense", "Elementwise", "Erf", "Flatten", "GlobalAvgPool", "Identity", "LayerNorm",
           "Network", "Relu", "Residual", "serial"]

PARAMETERIZATIONS = ("ntk", "standard")
PADDINGS = ("SAME", "VALID")


class _Kernels(NamedTuple):
    """A block's kernels: ``nngp`` and ``ntk`` (n1, n2, *S), ``cov1`` (n1, *S1), ``cov2`` (n2, *S2),
    where S is the positions of x1 then of x2 with every pair carried (``full``), else one
    position (the same in both); the self covariances ``cov`` likewise."""
    nngp: jax.Array
    ntk: jax.Array
    cov1: jax.Array
    cov2: jax.Array


@dataclasses.dataclass(frozen=True)
class _Shape:
    """What the kernels stand for: the spatial shape, the finite channels (the standard
    parameterisation's fan-in) and whether the layer's outputs are Gaussian."""
    spatial: tuple
    channels: int
    gaussian: bool


# ------------------------------------------------------------------------------ spatial algebra

def _pads(sizes, window, strides, padding) -> list[tuple[int, int]]:
    return list(lax.padtype_to_pads(tuple(sizes), tuple(window), tuple(strides), padding))


def _window_sum(x, axes, window, strides, pads):
    """Sum over the window's offsets along ``axes`` (each offset one strided slice); the same
    offset on every group of axes given together: ``axes`` is a list of groups."""
    width = [(0, 0)] * x.ndim
    for group in axes:
        for axis, pad in zip(group, pads):
            width[axis] = pad
    x = jnp.pad(x, width)
    sizes = [(x.shape[a] - w) // s + 1 for a, w, s in zip(axes[0], window, strides)]
    total = 0.0
    for offset in itertools.product(*(range(w) for w in window)):
        index = [slice(None)] * x.ndim
        for group in axes:
            for axis, o, s, n in zip(group, offset, strides, sizes):
                index[axis] = slice(o, o + (n - 1) * s + 1, s)
        total = total + x[tuple(index)]
    return total


def _groups(batch_ndim: int, spatial_ndim: int, full: bool) -> list[tuple[int, ...]]:
    """The axis groups of the positions: one group per input of a pair when ``full``."""
    first = tuple(range(batch_ndim, batch_ndim + spatial_ndim))
    if not full:
        return [first]
    return [first, tuple(a + spatial_ndim for a in first)]


def _conv_mean(x, batch_ndim, spatial_ndim, full, window, strides, padding, sizes):
    """Mean over the filter's offsets, one offset shared by both positions of a pair."""
    groups = _groups(batch_ndim, spatial_ndim, full)
    return _window_sum(x, groups, window, strides, _pads(sizes, window, strides, padding)) / math.prod(window)


def _pool_mean(x, batch_ndim, spatial_ndim, window, strides, padding, sizes):
    """Average pooling of each position of a pair on its own (full covariances only)."""
    for group in _groups(batch_ndim, spatial_ndim, True):
        x = _window_sum(x, [group], window, strides, _pads(sizes, window, strides, padding)) / math.prod(window)
    return x


def _variances(cov, spatial_ndim, full):
    """Each input's variance at each position, (n, *spatial), from its self covariance."""
    if not full or spatial_ndim == 0:
        return cov
    n, sizes = cov.shape[0], cov.shape[1:1 + spatial_ndim]
    flat = cov.reshape(n, math.prod(sizes), math.prod(sizes))
    return jnp.diagonal(flat, axis1=1, axis2=2).reshape(n, *sizes)


def _outer(v1, v2, spatial_ndim, full, pair: bool):
    """(v1, v2) broadcast against a pair's kernel (``pair``) or a self covariance."""
    s = spatial_ndim
    if pair:
        a = v1.reshape(v1.shape[:1] + (1,) + v1.shape[1:] + ((1,) * s if full else ()))
        b = v2.reshape((1,) + v2.shape[:1] + ((1,) * s if full else ()) + v2.shape[1:])
        return a, b
    if not full or s == 0:
        return v1, v1
    return v1.reshape(v1.shape + (1,) * s), v1.reshape(v1.shape[:1] + (1,) * s + v1.shape[1:])


# ------------------------------------------------------------------------------ expectations

def _relu(k11, k22, k12):
    norms = jnp.sqrt(k11 * k22)
    cosine = jnp.clip(k12 / jnp.where(norms > 0, norms, 1.0), -1.0, 1.0)
    angle = jnp.arccos(cosine)
    return norms / (2 * jnp.pi) * (jnp.sin(angle) + (jnp.pi - angle) * cosine), (jnp.pi - angle) / (2 * jnp.pi)


def _erf(k11, k22, k12):
    scale = jnp.sqrt((1 + 2 * k11) * (1 + 2 * k22))
    value = 2 / jnp.pi * jnp.arcsin(jnp.clip(2 * k12 / scale, -1.0, 1.0))
    return value, 4 / jnp.pi / jnp.sqrt(jnp.maximum(scale ** 2 - 4 * k12 ** 2, jnp.finfo(scale.dtype).tiny))


def _identity(k11, k22, k12):
    return k12, jnp.ones_like(k12)


def _gauss_hermite(fn, num_points):
    nodes, weights = np.polynomial.hermite.hermgauss(num_points)
    z, w = np.sqrt(2.0) * nodes, weights / np.sqrt(np.pi)
    derivative = jnp.vectorize(jax.grad(fn))

    def expectations(k11, k22, k12):
        dtype = k12.dtype
        z1, z2 = jnp.asarray(z, dtype)[:, None], jnp.asarray(z, dtype)[None, :]
        w12 = jnp.asarray(w[:, None] * w[None, :], dtype)
        s1, s2 = jnp.sqrt(k11)[..., None, None], jnp.sqrt(k22)[..., None, None]
        norms = jnp.sqrt(k11 * k22)
        rho = jnp.clip(k12 / jnp.where(norms > 0, norms, 1.0), -1.0, 1.0)[..., None, None]
        u, v = s1 * z1, s2 * (rho * z1 + jnp.sqrt(1 - rho ** 2) * z2)
        mean = lambda f: jnp.sum(f(u) * f(v) * w12, axis=(-2, -1))
        return mean(fn), mean(derivative)

    return expectations


# ------------------------------------------------------------------------------ layers

class _Layer:
    """A layer: its kernel map, its finite version and the shape it maps."""
    needs_pairs = False

    def shape(self, shape: _Shape) -> _Shape:
        return dataclasses.replace(shape, gaussian=False)

    def kernel(self, k: _Kernels, shape: _Shape, full: bool) -> _Kernels:
        raise NotImplementedError

    def finite(self, x, name: str):
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class _Affine(_Layer):
    """Dense and Conv: the affine map of a kernel, ``weight_std^2 conv(K) + bias_std^2``."""
    features: int
    window: tuple = ()
    strides: tuple = ()
    padding: str = "SAME"
    weight_std: float = 1.0
    bias_std: float | None = 0.0
    parameterization: str = "ntk"

    def __post_init__(self):
        checks.integer("features", self.features, minimum=1)
        checks.number("weight_std", self.weight_std)
        if self.bias_std is not None:
            checks.number("bias_std", self.bias_std, inclusive=True)
        checks.one_of("parameterization", self.parameterization, PARAMETERIZATIONS)
        checks.one_of("padding", self.padding, PADDINGS)

    def _window(self, shape):
        return self.window or (1,) * len(shape.spatial), self.strides or (1,) * len(shape.spatial)

    def shape(self, shape):
        if self.window and len(self.window) != len(shape.spatial):
            checks.fail("filter_shape", self.window, f"{len(shape.spatial)} spatial sizes for inputs with spatial "
                        f"shape {shape.spatial}")
        window, strides = self._window(shape)
        sizes = _out_sizes("filter_shape", shape.spatial, window, strides, self.padding)
        return _Shape(sizes, self.features, True)

    def kernel(self, k, shape, full):
        window, strides = self._window(shape)
        s, w2 = len(shape.spatial), self.weight_std ** 2
        b2 = 0.0 if self.bias_std is None else self.bias_std ** 2
        conv = lambda x, nb: _conv_mean(x, nb, s, full, window, strides, self.padding, shape.spatial)
        nngp, cov1, cov2 = conv(k.nngp, 2), conv(k.cov1, 1), conv(k.cov2, 1)
        if self.parameterization == "ntk":
            nngp = w2 * nngp + b2
            ntk = nngp + w2 * conv(k.ntk, 2)
        else:
            fan_in = shape.channels * math.prod(window)
            ntk = fan_in * nngp + w2 * conv(k.ntk, 2) + (0.0 if self.bias_std is None else 1.0)
            nngp = w2 * nngp + b2
        return _Kernels(nngp, ntk, w2 * cov1 + b2, w2 * cov2 + b2)

    def finite(self, x, name):
        return _FiniteAffine(self.features, self.window or (1,) * (x.ndim - 2), self.strides or (1,) * (x.ndim - 2),
                             self.padding, self.weight_std, self.bias_std, self.parameterization, name=name)(x)


def Dense(out_dim: int, *, weight_std: float = 1.0, bias_std: float | None = 0.0,
          parameterization: str = "ntk") -> _Affine:
    """A fully connected layer on the channel axis (at every position of a spatial input):
    ``(weight_std / sqrt(fan_in)) W x + bias_std b`` with W, b ~ N(0, 1) (``'ntk'``), or W ~
    N(0, weight_std^2 / fan_in), b ~ N(0, bias_std^2) (``'standard'``); ``bias_std=None``: no bias."""
    return _Affine(out_dim, weight_std=weight_std, bias_std=bias_std, parameterization=parameterization)


def Conv(out_chan: int, filter_shape: Sequence[int], strides: Sequence[int] | None = None, padding: str = "SAME", *,
         weight_std: float = 1.0, bias_std: float | None = 0.0, parameterization: str = "ntk") -> _Affine:
    """A convolution, 1-D (``filter_shape=(k,)``, inputs (N, L, C)) or 2-D (``(kh, kw)``, inputs
    (N, H, W, C)), ``'SAME'`` (zero padding as ``lax.conv``) or ``'VALID'``, with ``strides``;
    weights and bias as :func:`Dense` with fan_in = C x prod(filter_shape)."""
    window = tuple(checks.integer("filter_shape", f, minimum=1) for f in filter_shape)
    strides = tuple(checks.integer("strides", s, minimum=1) for s in (strides or (1,) * len(window)))
    if not 1 <= len(window) <= 2 or len(strides) != len(window):
        checks.fail("filter_shape", filter_shape, "1 or 2 sizes, as many as strides")
    return _Affine(out_chan, window, strides, padding, weight_std, bias_std, parameterization)


def _out_sizes(field, sizes, window, strides, padding) -> tuple:
    if any(w > n for w, n in zip(window, sizes)) and padding == "VALID":
        checks.fail(field, tuple(window), f"a window no larger than the input's spatial shape {tuple(sizes)} "
                    "(VALID padding)")
    if padding == "SAME":
        return tuple(-(-n // s) for n, s in zip(sizes, strides))
    return tuple((n - w) // s + 1 for n, w, s in zip(sizes, window, strides))


@dataclasses.dataclass(frozen=True)
class _Activation(_Layer):
    """An elementwise non-linearity: ``name`` in closed form, or ``fn`` by quadrature."""
    name: str
    fn: Callable | None = None
    num_points: int = 32

    def shape(self, shape):
        return dataclasses.replace(shape, gaussian=self.name == "identity" and shape.gaussian)

    def _expectations(self):
        closed = {"relu": _relu, "erf": _erf, "identity": _identity}
        return closed[self.name] if self.name in closed else _gauss_hermite(self.fn, self.num_points)

    def kernel(self, k, shape, full):
        s, expect = len(shape.spatial), self._expectations()
        v1, v2 = _variances(k.cov1, s, full), _variances(k.cov2, s, full)
        nngp, derivative = expect(*_outer(v1, v2, s, full, True), k.nngp)
        cov1 = expect(*_outer(v1, v1, s, full, False), k.cov1)[0]
        cov2 = expect(*_outer(v2, v2, s, full, False), k.cov2)[0]
        return _Kernels(nngp, k.ntk * derivative, cov1, cov2)

    def finite(self, x, name):
        functions = {"relu": jax.nn.relu, "erf": jax.scipy.special.erf, "identity": lambda z: z}
        return functions.get(self.name, self.fn)(x)


def Relu() -> _Activation:
    """max(0, z): the arc-cosine kernels of Cho & Saul 2009."""
    return _Activation("relu")


def Erf() -> _Activation:
    """erf(z): Williams 1997's kernel."""
    return _Activation("erf")


def Identity() -> _Activation:
    """No non-linearity."""
    return _Activation("identity")


def Elementwise(fn: Callable, *, num_points: int = 32) -> _Activation:
    """Any elementwise function ``fn`` (jnp.tanh, jax.nn.gelu), its expectations by
    ``num_points`` x ``num_points`` Gauss-Hermite quadrature (the derivative by ``jax.grad``),
    as neural-tangents' ``ElementwiseNumerical``: exact for polynomials of degree below
    2 num_points; for tanh at unit variances and correlation 0.3 the error measured 7e-8 (value)
    and 2e-6 (derivative's expectation) at 32 points, 5e-11 and 2e-9 at 64, and it grows with the
    variance (3e-4 for the derivative at variance 4, correlation 0.975, 64 points). Memory is
    num_points^2 times the kernel block's."""
    if not callable(fn):
        checks.fail("fn", fn, "a callable elementwise function")
    return _Activation(getattr(fn, "__name__", "elementwise"), fn, checks.integer("num_points", num_points, minimum=2))


@dataclasses.dataclass(frozen=True)
class AvgPool(_Layer):
    """Average pooling over ``window_shape`` with ``strides`` (default: the window) and
    ``padding`` ('VALID' default; 'SAME' divides by the window size at the edges too)."""
    window_shape: tuple
    strides: tuple | None = None
    padding: str = "VALID"
    needs_pairs = True

    def __post_init__(self):
        object.__setattr__(self, "window_shape", tuple(checks.integer("window_shape", w, minimum=1)
                                                        for w in self.window_shape))
        strides = self.strides or self.window_shape
        object.__setattr__(self, "strides", tuple(checks.integer("strides", s, minimum=1) for s in strides))
        checks.one_of("padding", self.padding, PADDINGS)

    def shape(self, shape):
        if len(self.window_shape) != len(shape.spatial) or len(self.strides) != len(shape.spatial):
            checks.fail("window_shape", self.window_shape, f"{len(shape.spatial)} sizes for inputs with spatial "
                        f"shape {shape.spatial}")
        if any(w > n for w, n in zip(self.window_shape, shape.spatial)):
            checks.fail("window_shape", self.window_shape, f"a window no larger than the input's spatial shape "
                        f"{shape.spatial}")
        sizes = _out_sizes("window_shape", shape.spatial, self.window_shape, self.strides, self.padding)
        return dataclasses.replace(shape, spatial=sizes)

    def kernel(self, k, shape, full):
        s = len(shape.spatial)
        pool = lambda x, nb: _pool_mean(x, nb, s, self.window_shape, self.strides, self.padding, shape.spatial)
        return _Kernels(pool(k.nngp, 2), pool(k.ntk, 2), pool(k.cov1, 1), pool(k.cov2, 1))

    def finite(self, x, name):
        return nn.avg_pool(x, self.window_shape, self.strides, self.padding, count_include_pad=True)


@dataclasses.dataclass(frozen=True)
class GlobalAvgPool(_Layer):
    """The mean over every position: (N, *spatial, C) -> (N, C)."""
    needs_pairs = True

    def shape(self, shape):
        if not shape.spatial:
            checks.fail("GlobalAvgPool", "inputs without positions", "inputs (N, L, C) or (N, H, W, C)")
        return _Shape((), shape.channels, shape.gaussian)

    def kernel(self, k, shape, full):
        mean = lambda x, nb: jnp.mean(x, axis=tuple(range(nb, x.ndim)))
        return _Kernels(mean(k.nngp, 2), mean(k.ntk, 2), mean(k.cov1, 1), mean(k.cov2, 1))

    def finite(self, x, name):
        return jnp.mean(x, axis=tuple(range(1, x.ndim - 1)))


@dataclasses.dataclass(frozen=True)
class Flatten(_Layer):
    """(N, *spatial, C) -> (N, prod(spatial) C): the kernel is the mean over positions of the
    same-position covariance."""

    def shape(self, shape):
        return _Shape((), shape.channels * math.prod(shape.spatial), shape.gaussian)

    def kernel(self, k, shape, full):
        s = len(shape.spatial)

        def diagonal_mean(x, nb):
            if s == 0:
                return x
            if not full:
                return jnp.mean(x, axis=tuple(range(nb, x.ndim)))
            size = math.prod(shape.spatial)
            return jnp.mean(jnp.diagonal(x.reshape(x.shape[:nb] + (size, size)), axis1=-2, axis2=-1), axis=-1)

        return _Kernels(diagonal_mean(k.nngp, 2), diagonal_mean(k.ntk, 2), diagonal_mean(k.cov1, 1),
                        diagonal_mean(k.cov2, 1))

    def finite(self, x, name):
        return x.reshape(x.shape[0], -1)


@dataclasses.dataclass(frozen=True)
class LayerNorm(_Layer):
    """(x - mean) / sqrt(eps + var) over ``axis`` of the input array (N, *spatial, C), which must
    include the channel axis (-1) and not the batch axis (0); no learned scale or shift."""
    axis: int | tuple = -1
    eps: float = 1e-12

    def _axes(self, shape):
        ndim = len(shape.spatial) + 2
        axes = self.axis if isinstance(self.axis, (tuple, list)) else (self.axis,)
        if not axes or any(not checks.is_integer(a) or not -ndim <= a < ndim for a in axes):
            checks.fail("axis", self.axis, f"axes of inputs with {ndim} dimensions (batch, {len(shape.spatial)} "
                        "spatial, channels)")
        axes = sorted({a % ndim for a in axes})
        if 0 in axes or ndim - 1 not in axes:
            checks.fail("axis", self.axis, "axes including the channel axis (-1) and not the batch axis (0)")
        return tuple(a - 1 for a in axes if a != ndim - 1)

    def shape(self, shape):
        self._axes(shape)
        if not shape.gaussian:
            checks.fail("LayerNorm", "an input after a non-linearity", "a Gaussian input (after Dense, Conv, pooling "
                        "or a residual sum of those), as neural-tangents requires")
        return shape

    def kernel(self, k, shape, full):
        s, spatial_axes = len(shape.spatial), self._axes(shape)
        mean = lambda v: jnp.mean(self.eps + v, axis=tuple(1 + a for a in spatial_axes), keepdims=True)
        m1, m2 = mean(_variances(k.cov1, s, full)), mean(_variances(k.cov2, s, full))
        pair = lambda a, b: jnp.sqrt(a * b)
        scale = pair(*_outer(m1, m2, s, full, True))
        return _Kernels(k.nngp / scale, k.ntk / scale, k.cov1 / pair(*_outer(m1, m1, s, full, False)),
                        k.cov2 / pair(*_outer(m2, m2, s, full, False)))

    def finite(self, x, name):
        axes = tuple(sorted({a % x.ndim for a in (self.axis if isinstance(self.axis, (tuple, list))
                                                   else (self.axis,))}))
        mean = jnp.mean(x, axis=axes, keepdims=True)
        return (x - mean) / jnp.sqrt(self.eps + jnp.var(x, axis=axes, keepdims=True))


@dataclasses.dataclass(frozen=True)
class Network(_Layer):
    """Layers in sequence (:func:`serial`): their kernels and their finite network."""
    layers: tuple

    @property
    def needs_pairs(self) -> bool:
        return any(layer.needs_pairs for layer in self.layers)

    def shape(self, shape):
        for layer in self.layers:
            shape = layer.shape(shape)
        return shape

    def kernel(self, k, shape, full):
        for layer in self.layers:
            k, shape = layer.kernel(k, shape, full), layer.shape(shape)
        return k

    def finite(self, x, name):
        for i, layer in enumerate(self.layers):
            x = layer.finite(x, f"{name}_{i}")
        return x

    def kernels(self, x1, x2=None, *, chunk_size: int | None = None) -> dict:
        """The NNGP kernel and the NTK between ``x1`` (N1, ...) and ``x2`` (N2, ...) (default
        ``x1``): ``{'nngp': (N1, N2), 'ntk': (N1, N2)}``, in blocks of ``chunk_size`` inputs of
        each (None: one block)."""
        x1 = _inputs("x1", x1)
        x2 = x1 if x2 is None else _inputs("x2", x2)
        if x1.shape[1:] != x2.shape[1:]:
            checks.fail("x2", f"inputs of shape {x2.shape[1:]}", f"the shape of x1's, {x1.shape[1:]}")
        shape = self.shape(_Shape(tuple(x1.shape[1:-1]), x1.shape[-1], False))
        if shape.spatial:
            checks.fail("layers", f"outputs with spatial shape {shape.spatial}", "a network ending without positions "
                        "(Flatten or GlobalAvgPool before the read-out)")
        chunk = checks.integer("chunk_size", chunk_size, minimum=1, allow_none=True)
        chunk1, chunk2 = chunk or len(x1), chunk or len(x2)
        rows = []
        for i in range(0, len(x1), chunk1):
            blocks = [_block(self, x1[i:i + chunk1], x2[j:j + chunk2]) for j in range(0, len(x2), chunk2)]
            rows.append({key: jnp.concatenate([b[key] for b in blocks], axis=1) for key in ("nngp", "ntk")})
        return {key: jnp.concatenate([r[key] for r in rows], axis=0) for key in ("nngp", "ntk")}

    def module(self) -> nn.Module:
        """The finite network (a ``flax.linen.Module``) whose infinitely wide limit
        :meth:`kernels` is: ``module.init(key, x)``, ``module.apply(params, x)``."""
        return _FiniteNetwork(self)


@dataclasses.dataclass(frozen=True)
class Residual(_Layer):
    """x + branch(x) (:func:`serial` of ``layers``), the two summands independent."""
    layers: tuple

    def __init__(self, *layers):
        object.__setattr__(self, "layers", _checked_layers(layers))

    @property
    def needs_pairs(self) -> bool:
        return Network(self.layers).needs_pairs

    def shape(self, shape):
        out = Network(self.layers).shape(shape)
        if out.spatial != shape.spatial or out.channels != shape.channels:
            checks.fail("Residual", f"a branch mapping {shape.spatial} x {shape.channels} channels to {out.spatial} x "
                        f"{out.channels}", "a branch that keeps the positions and the channels")
        return dataclasses.replace(shape, gaussian=shape.gaussian and out.gaussian)

    def kernel(self, k, shape, full):
        branch = Network(self.layers).kernel(k, shape, full)
        return _Kernels(*(a + b for a, b in zip(k, branch)))

    def finite(self, x, name):
        return x + Network(self.layers).finite(x, name)


def _checked_layers(layers) -> tuple:
    for layer in layers:
        if not isinstance(layer, _Layer):
            checks.fail("layers", type(layer).__name__, "layers of jaxdl.analysis.ntk (Dense, Conv, Relu, ...)")
    return tuple(layers)


def serial(*layers) -> Network:
    """The network of ``layers`` in sequence (networks nest)."""
    return Network(_checked_layers(layers))


def _inputs(field, x):
    x = jnp.asarray(x)
    if x.ndim not in (2, 3, 4) or not jnp.issubdtype(x.dtype, jnp.floating):
        checks.fail(field, f"an array of shape {x.shape} and dtype {x.dtype}", "float inputs (N, D), (N, L, C) or "
                    "(N, H, W, C)")
    return x


def _input_kernels(x1, x2, full: bool) -> _Kernels:
    """The input kernel x . x' / C at every pair of positions (``full``) or same position."""
    channels, s = x1.shape[-1], x1.ndim - 2
    first, second = "hw"[:s], "uv"[:s]
    if s and full:
        pair = f"a{first}c,b{second}c->ab{first}{second}"
        own = lambda x: jnp.einsum(f"a{first}c,a{second}c->a{first}{second}", x, x)
    else:
        pair = f"a{first}c,b{first}c->ab{first}"
        own = lambda x: jnp.sum(x * x, axis=-1)
    nngp = jnp.einsum(pair, x1, x2) / channels
    return _Kernels(nngp, jnp.zeros_like(nngp), own(x1) / channels, own(x2) / channels)


@functools.partial(jax.jit, static_argnums=0)
def _block(net: Network, x1, x2) -> dict:
    """One block's kernels: one compiled program per network and block shape."""
    full = net.needs_pairs
    k = net.kernel(_input_kernels(x1, x2, full), _Shape(tuple(x1.shape[1:-1]), x1.shape[-1], False), full)
    return {"nngp": k.nngp, "ntk": k.ntk}


class _FiniteAffine(nn.Module):
    """The finite Dense or Conv layer of :class:`_Affine`, weights drawn as the kernel assumes."""
    features: int
    window: tuple
    strides: tuple
    padding: str
    weight_std: float
    bias_std: float | None
    parameterization: str

    @nn.compact
    def __call__(self, x):
        fan_in = x.shape[-1] * math.prod(self.window)
        scale = self.weight_std / math.sqrt(fan_in)
        ntk = self.parameterization == "ntk"
        w = self.param("kernel", nn.initializers.normal(1.0 if ntk else scale), (*self.window, x.shape[-1],
                                                                                  self.features))
        spatial = "HW"[:x.ndim - 2] if x.ndim <= 4 else None
        if x.ndim == 2:
            y = x @ w
        else:
            dims = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
            y = lax.conv_general_dilated(x, w, self.strides, self.padding, dimension_numbers=dims)
        y = scale * y if ntk else y
        if self.bias_std is None:
            return y
        b = self.param("bias", nn.initializers.normal(1.0 if ntk else self.bias_std), (self.features,))
        return y + (self.bias_std * b if ntk else b)


class _FiniteNetwork(nn.Module):
    network: Network

    @nn.compact
    def __call__(self, x):
        return self.network.finite(x, "layer")

