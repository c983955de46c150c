"""Linear regions of a ReLU network on a 2-D plane of its input space, exactly.

A ReLU MLP is affine wherever its activation pattern (which units are on) is constant. On a plane
x(u, v) = origin + u e_1 + v e_2 of the input space every pre-activation of layer 1 is affine in
(u, v), so its zero set is a line; on each region of layer 1 the pre-activations of layer 2 are
affine again, so their zero sets are line segments that bend where they cross a layer-1 line; and
so on. :func:`linear_regions` follows exactly that: it starts from a rectangular window of the
plane and cuts every convex polygon by the zero line of each unit, layer by layer, carrying the
affine map of the layer's input on each polygon (float64, on the host). The result is the exact
partition into connected activation regions (convex polygons), their patterns, and every
boundary segment tagged with its layer: the course's two pictures, the hyperplanes of layer 1 and
the bent lines of layer 2.

References: Zaslavsky (1975), m lines in general position cut R^2 into C(m, 2) + m + 1 regions
(:func:`zaslavsky_count`); Montufar, Pascanu, Cho & Bengio (2014), a deep ReLU net with L hidden
layers of width n on n0 inputs can have (prod_{l<L} floor(n/n0))^{n0} sum_{j<=n0} C(n, j) regions
(:func:`montufar_count`), reached exactly by the folding network of :func:`folding_network`;
Hanin & Rolnick (2019), random and trained networks have far fewer regions than that.

Shapes (the letters of :mod:`jaxdl`): ``U`` units of a layer, ``A`` regions, ``V`` vertices of a polygon,
``E`` boundary segments (the partition's edges), ``G`` grid points per side of the sampler.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdl.core import checks

__all__ = ["Plane", "Window", "Partition", "relu_layers", "input_plane", "plane_through", "window_around_lines",
           "linear_regions", "region_areas", "grid_points", "grid_patterns", "count_patterns_on_grid",
           "zaslavsky_count", "montufar_count", "folding_network"]

# A layer is (kernel_DxU, bias_U): pre-activation z = a @ kernel + bias.
Layer = tuple[np.ndarray, np.ndarray]


class Plane(NamedTuple):
    """The plane x(u, v) = origin_D + u basis_2xD[0] + v basis_2xD[1] of a D-dimensional input space."""

    origin_D: np.ndarray
    basis_2xD: np.ndarray


class Window(NamedTuple):
    """The rectangle [u_min, u_max] x [v_min, v_max] of plane coordinates where regions are counted."""

    u_min: float
    u_max: float
    v_min: float
    v_max: float

    @property
    def area(self) -> float:
        return (self.u_max - self.u_min) * (self.v_max - self.v_min)


class Partition(NamedTuple):
    """The exact partition of a window into connected activation regions.

    Attributes:
      polygons: A convex polygons, each ``vertices_Vx2`` in plane coordinates (counter-clockwise).
      patterns_AxU: bool, which hidden units are on in each region (all layers, in order).
      segments_Ex2x2: every boundary segment inside the window (its two end points).
      segment_layers_E: the hidden layer (0-based) whose unit switches across each segment.
      window: the rectangle that was partitioned.
    """

    polygons: tuple
    patterns_AxU: np.ndarray
    segments_Ex2x2: np.ndarray
    segment_layers_E: np.ndarray
    window: Window

    @property
    def num_regions(self) -> int:
        return len(self.polygons)

    @property
    def num_patterns(self) -> int:
        """Distinct activation patterns (at most ``num_regions``: a pattern may recur in disconnected places)."""
        return count_patterns_on_grid(self.patterns_AxU[None]) if self.num_regions else 0


# --- the network as affine layers ------------------------------------------------------------------

def relu_layers(model, params) -> list[Layer]:
    """The hidden layers of a zoo ReLU MLP (``get_model("mlp", activation="relu")``) as float64
    ``(kernel_DxU, bias_U)`` pairs; the linear read-out does not change the regions and is left out.

    Raises:
      ValueError: the model is not a non-residual MLP with ReLU activations, or ``params`` does not
        hold its layers.
    """
    # Read by its fields, not its class: the analysis layer imports no model family.
    if not all(hasattr(model, field) for field in ("widths", "activation", "residual", "parameterization")):
        checks.fail("model", type(model).__name__, "a jaxdl MLP (get_model('mlp', activation='relu'))")
    if model.activation != "relu":
        checks.fail("model.activation", model.activation, "'relu' (linear regions are defined for ReLU networks)")
    if model.residual:
        checks.fail("model.residual", model.residual, "False")
    params = params.get("params", params)
    layers = []
    for i, width in enumerate(model.widths):
        layer = params.get(f"hidden_{i}") if hasattr(params, "get") else None
        if layer is None:
            checks.fail("params", sorted(params) if hasattr(params, "keys") else type(params).__name__,
                        f"the parameters of {model!r} with a layer 'hidden_{i}'")
        if model.parameterization == "ntk":
            kernel = np.asarray(layer["dense"]["kernel"], np.float64)
            kernel = kernel * model.weight_std / math.sqrt(kernel.shape[0])
            bias = model.bias_std * np.asarray(layer["bias"], np.float64)
        else:
            kernel = np.asarray(layer["kernel"], np.float64)
            bias = np.asarray(layer["bias"], np.float64) if "bias" in layer else np.zeros(kernel.shape[1])
        layers.append((kernel, bias))
    return layers


def _check_layers(layers: Sequence[Layer], plane: Plane) -> None:
    if len(plane.basis_2xD) != 2 or np.ndim(plane.basis_2xD) != 2:
        checks.fail("plane.basis_2xD", np.shape(plane.basis_2xD), "two direction vectors, shape (2, D)")
    if np.shape(plane.origin_D) != np.shape(plane.basis_2xD)[1:]:
        checks.fail("plane.origin_D", np.shape(plane.origin_D), f"shape {np.shape(plane.basis_2xD)[1:]}")
    fan_in = np.shape(plane.origin_D)[0]
    for i, (kernel, bias) in enumerate(layers):
        if np.ndim(kernel) != 2 or np.shape(kernel)[0] != fan_in or np.shape(bias) != np.shape(kernel)[1:]:
            checks.fail(f"layers[{i}]", (np.shape(kernel), np.shape(bias)),
                        f"a kernel of shape ({fan_in}, U) and a bias of shape (U,)")
        fan_in = np.shape(kernel)[1]


def input_plane(dimension: int = 2) -> Plane:
    """The plane of the first two input coordinates (the whole input space when ``dimension == 2``)."""
    checks.integer("dimension", dimension, minimum=2)
    return Plane(np.zeros(dimension), np.eye(2, dimension))


def plane_through(x0, x1, x2) -> Plane:
    """The plane through three inputs (any shape, flattened): x0 at (0, 0), x1 at (1, 0), x2 at (0, 1)."""
    x0, x1, x2 = (np.asarray(x, np.float64).reshape(-1) for x in (x0, x1, x2))
    basis = np.stack([x1 - x0, x2 - x0])
    if np.linalg.matrix_rank(basis) < 2:
        checks.fail("x0, x1, x2", "collinear inputs", "three inputs that span a plane")
    return Plane(x0, basis)


def window_around_lines(layer: Layer, plane: Plane, margin: float = 1.0) -> Window:
    """A square window that holds every crossing of the first layer's lines on the plane (and a point
    of every line), widened by ``margin`` times its half-width: on it a one-hidden-layer net shows every
    region it has on the whole plane (Zaslavsky's count when the lines are in general position)."""
    coefficients_Ux3 = _first_layer_lines(layer, plane)
    a, b, c = coefficients_Ux3.T
    points = [np.stack([-a * c, -b * c], -1) / (a**2 + b**2)[:, None]]  # Each line's point nearest the origin.
    i, j = np.triu_indices(len(a), 1)
    determinant = a[i] * b[j] - a[j] * b[i]
    ok = np.abs(determinant) > 1e-12 * (np.abs(a[i] * b[j]) + np.abs(a[j] * b[i]))
    i, j, determinant = i[ok], j[ok], determinant[ok]
    points.append(np.stack([(b[i] * c[j] - b[j] * c[i]) / determinant, (a[j] * c[i] - a[i] * c[j]) / determinant], -1))
    points = np.concatenate(points)
    center = (points.max(0) + points.min(0)) / 2
    half = max(float(np.max(points.max(0) - points.min(0))) / 2, 1e-3) * (1 + margin)
    return Window(center[0] - half, center[0] + half, center[1] - half, center[1] + half)


def _first_layer_lines(layer: Layer, plane: Plane) -> np.ndarray:
    kernel, bias = layer
    affine_3xD = np.concatenate([plane.basis_2xD, plane.origin_D[None]]).astype(np.float64)
    return (affine_3xD @ kernel + np.eye(3)[2][:, None] * bias).T


# --- the exact partition ----------------------------------------------------------------------------

def _split(vertices_Vx2, values_V, tolerance):
    """Cuts a convex polygon by the zero line of an affine function with the given vertex values.

    Returns (negative part, positive part, chord); a part is None when the line misses the polygon's
    interior on that side, and the chord (2 x 2) is None unless the polygon was cut in two."""
    positive, negative = values_V > tolerance, values_V < -tolerance
    if not negative.any():
        return None, vertices_Vx2, None
    if not positive.any():
        return vertices_Vx2, None, None
    below, above, chord = [], [], []
    count = len(values_V)
    for i in range(count):
        j = (i + 1) % count
        p, s = vertices_Vx2[i], values_V[i]
        if s <= tolerance:
            below.append(p)
        if s >= -tolerance:
            above.append(p)
        if abs(s) <= tolerance:
            chord.append(p)
        t = values_V[j]
        if (s > tolerance and t < -tolerance) or (s < -tolerance and t > tolerance):
            crossing = p + (s / (s - t)) * (vertices_Vx2[j] - p)
            below.append(crossing)
            above.append(crossing)
            chord.append(crossing)
    return np.array(below), np.array(above), np.array(chord[:2])


def _window_polygon(window: Window) -> np.ndarray:
    return np.array([[window.u_min, window.v_min], [window.u_max, window.v_min],
                     [window.u_max, window.v_max], [window.u_min, window.v_max]], np.float64)


def linear_regions(layers: Sequence[Layer], plane: Plane, window: Window, *,
                   stop_after_layer: int | None = None) -> Partition:
    """The exact partition of ``window`` (plane coordinates) into connected activation regions.

    Args:
      layers: the hidden layers as ``(kernel_DxU, bias_U)`` (e.g. :func:`relu_layers`), D the input
        dimension for the first and the previous width after.
      plane: the input plane (:func:`input_plane`, :func:`plane_through`).
      window: the rectangle of the plane to partition.
      stop_after_layer: partition by the first ``stop_after_layer`` hidden layers only (the course's
        picture of layer 1 alone is ``stop_after_layer=1``).

    Returns:
      A :class:`Partition`: polygons, patterns of every hidden unit counted, boundary segments.

    Each polygon carries the affine map (u, v, 1) -> layer input, a 3 x D matrix; the layer's
    pre-activations on it are then an affine 3 x U matrix, and each unit whose zero line crosses the
    polygon cuts it in two. Vertex values within a relative 1e-12 of zero count as on the line, so a
    unit that only touches zero (a fold of :func:`folding_network`) cuts nothing.
    """
    _check_layers(layers, plane)
    if window.u_max <= window.u_min or window.v_max <= window.v_min:
        checks.fail("window", tuple(window), "u_min < u_max and v_min < v_max")
    depth = len(layers) if stop_after_layer is None else checks.integer(
        "stop_after_layer", stop_after_layer, maximum=len(layers))
    scale = max(abs(window.u_min), abs(window.u_max), abs(window.v_min), abs(window.v_max), 1.0)
    affine_3xD = np.concatenate([plane.basis_2xD, plane.origin_D[None]]).astype(np.float64)
    pieces = [(_window_polygon(window), affine_3xD, np.zeros(0, bool))]
    segments, segment_layers = [], []
    for layer_index, (kernel, bias) in enumerate(layers[:depth]):
        kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
        next_pieces = []
        for vertices, affine_in, pattern in pieces:
            z_3xU = affine_in @ kernel
            z_3xU[2] += bias
            values_VxU = vertices @ z_3xU[:2] + z_3xU[2]
            tolerance_U = 1e-12 * (scale * np.abs(z_3xU[:2]).sum(0) + np.abs(z_3xU[2]))
            cells = []
            # Cut recursively: a cell is tested only against the units that crossed its parent.
            stack = [(vertices, ((values_VxU > tolerance_U).any(0) & (values_VxU < -tolerance_U).any(0)).nonzero()[0])]
            while stack:
                cell, candidates = stack.pop()
                if len(candidates):
                    values = cell @ z_3xU[:2, candidates] + z_3xU[2, candidates]
                    tolerance = tolerance_U[candidates]
                    candidates = candidates[(values > tolerance).any(0) & (values < -tolerance).any(0)]
                if not len(candidates):
                    cells.append(cell)
                    continue
                unit, rest = candidates[0], candidates[1:]
                below, above, chord = _split(cell, cell @ z_3xU[:2, unit] + z_3xU[2, unit], tolerance_U[unit])
                stack += [(part, rest) for part in (below, above) if part is not None and len(part) >= 3]
                if chord is not None and len(chord) == 2:
                    segments.append(chord)
                    segment_layers.append(layer_index)
            for cell in cells:
                if _area(cell) <= 1e-24 * window.area:
                    continue
                on_U = (cell.mean(0) @ z_3xU[:2] + z_3xU[2]) > 0
                affine_out = z_3xU * on_U if layer_index + 1 < depth else None  # The last layer's is not needed.
                next_pieces.append((cell, affine_out, np.concatenate([pattern, on_U])))
        pieces = next_pieces
    num_units = sum(np.shape(kernel)[1] for kernel, _ in layers[:depth])
    return Partition(
        polygons=tuple(vertices for vertices, _, _ in pieces),
        patterns_AxU=np.array([pattern for _, _, pattern in pieces], bool).reshape(len(pieces), num_units),
        segments_Ex2x2=np.array(segments, np.float64).reshape(-1, 2, 2),
        segment_layers_E=np.array(segment_layers, np.int32),
        window=window)


def _area(vertices_Vx2: np.ndarray) -> float:
    u, v = vertices_Vx2[:, 0], vertices_Vx2[:, 1]
    return 0.5 * abs(float(np.dot(u, np.roll(v, -1)) - np.dot(v, np.roll(u, -1))))


def region_areas(partition: Partition) -> np.ndarray:
    """The area of each region, ``areas_A`` (they sum to the window's area)."""
    return np.array([_area(vertices) for vertices in partition.polygons])


# --- a sampler to check against ---------------------------------------------------------------------

def grid_points(window: Window, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """The centres of a ``resolution`` x ``resolution`` grid of cells over the window, as ``(u_G, v_G)``."""
    checks.integer("resolution", resolution, minimum=2)
    du, dv = (window.u_max - window.u_min) / resolution, (window.v_max - window.v_min) / resolution
    return (window.u_min + du * (np.arange(resolution) + 0.5), window.v_min + dv * (np.arange(resolution) + 0.5))


@jax.jit
def _grid_patterns(layers, origin_D, basis_2xD, u_G, v_G):
    x_GxGxD = origin_D + u_G[None, :, None] * basis_2xD[0] + v_G[:, None, None] * basis_2xD[1]
    patterns = []
    for kernel, bias in layers:
        z = x_GxGxD @ kernel + bias
        patterns.append(z > 0)
        x_GxGxD = jnp.maximum(z, 0.0)
    return jnp.concatenate(patterns, -1)


def grid_patterns(layers: Sequence[Layer], plane: Plane, window: Window, resolution: int) -> np.ndarray:
    """Activation patterns at the grid centres of :func:`grid_points`, ``patterns_GxGxU`` (row = v, column = u),
    one compiled float32 program per network shape."""
    _check_layers(layers, plane)
    u_G, v_G = grid_points(window, resolution)
    layers32 = [(jnp.asarray(k, jnp.float32), jnp.asarray(b, jnp.float32)) for k, b in layers]
    return np.asarray(_grid_patterns(layers32, jnp.asarray(plane.origin_D, jnp.float32),
                                     jnp.asarray(plane.basis_2xD, jnp.float32),
                                     jnp.asarray(u_G, jnp.float32), jnp.asarray(v_G, jnp.float32)))


def count_patterns_on_grid(patterns_GxGxU: np.ndarray) -> int:
    """Distinct activation patterns among the grid points: what a dense-grid sampler counts. It can only
    miss regions (those no grid point falls in), so it approaches :attr:`Partition.num_patterns` from below
    as the grid refines. (Counting connected groups of grid cells instead would also split thin regions
    in two, so it errs both ways.)"""
    packed = np.packbits(patterns_GxGxU.reshape(-1, patterns_GxGxU.shape[-1]), axis=-1)
    return len(np.unique(np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[-1])))))


# --- closed forms and the folding construction -------------------------------------------------------

def zaslavsky_count(num_lines: int) -> int:
    """Regions of m lines in general position in the plane: C(m, 2) + m + 1 (Zaslavsky 1975)."""
    return math.comb(num_lines, 2) + num_lines + 1


def montufar_count(depth: int, width: int, input_dim: int = 2) -> int:
    """Montufar et al. (2014)'s count for L = ``depth`` hidden layers of ``width`` n on n0 inputs:
    (prod_{l<L} floor(n / n0))^{n0} * sum_{j<=n0} C(n, j)."""
    folds = (width // input_dim) ** (depth - 1)
    return folds**input_dim * sum(math.comb(width, j) for j in range(input_dim + 1))


def folding_network(depth: int, width: int = 4) -> list[Layer]:
    """The construction of Montufar et al. (2014) on the unit square, for two inputs.

    Each of the first ``depth - 1`` hidden layers gives every input coordinate p = width // 2 units
    relu(p g - k), k = 0..p-1, whose alternating sum g' = relu(p g) + sum_{k>=1} 2 (-1)^k relu(p g - k)
    folds [0, 1] onto itself p times (the sum is linear, so it is folded into the next layer's
    kernel). The last hidden layer puts ``width`` lines in general position with every crossing
    inside the unit square. On the window [0, 1]^2 the network then has exactly
    :func:`montufar_count` ``(depth, width)`` linear regions.
    """
    checks.integer("depth", depth, minimum=1)
    checks.integer("width", width, minimum=2)
    p = width // 2
    fold_weights_p = np.array([1.0] + [2.0 * (-1) ** k for k in range(1, p)])
    layers, folded_from = [], np.eye(2)  # folded_from: how the next layer reads (g_1, g_2) from its input.
    for _ in range(depth - 1):
        kernel = np.zeros((2, 2 * p))
        for coordinate in range(2):
            kernel[coordinate, coordinate * p:(coordinate + 1) * p] = p
        bias = -np.tile(np.arange(p, dtype=np.float64), 2)
        layers.append((folded_from @ kernel, bias))
        folded_from = np.zeros((2 * p, 2))
        for coordinate in range(2):
            folded_from[coordinate * p:(coordinate + 1) * p, coordinate] = fold_weights_p
    angles = np.pi * (np.arange(width) + 0.3) / width
    normals_2xU = np.stack([np.cos(angles), np.sin(angles)])
    # Lines n_j . (g - c) = 0.1 j / width: small offsets keep every crossing near the centre c.
    offsets = 0.1 * np.arange(width) / width
    layers.append((folded_from @ normals_2xU, -(np.array([0.5, 0.5]) @ normals_2xU) - offsets))
    return layers
