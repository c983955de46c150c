"""Exact linear regions (jaxdl.course.regions) against closed forms, a dense sampler and the model itself."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdl.course import regions
from jaxdl.models import get_model
from helpers import count_compiles


def _random_layers(rng, widths, input_dim):
    layers, fan_in = [], input_dim
    for width in widths:
        layers.append((rng.normal(size=(fan_in, width)) / np.sqrt(fan_in), rng.normal(size=width)))
        fan_in = width
    return layers


def test_one_hidden_layer_matches_zaslavsky_for_1_to_30_units():
    rng = np.random.default_rng(0)
    plane = regions.input_plane()
    for m in range(1, 31):
        layer = (rng.normal(size=(2, m)), rng.normal(size=m))
        partition = regions.linear_regions([layer], plane, regions.window_around_lines(layer, plane))
        assert partition.num_regions == partition.num_patterns == regions.zaslavsky_count(m), m
        assert regions.region_areas(partition).sum() == pytest.approx(partition.window.area, rel=1e-9)


def test_lines_through_one_point_give_2m_regions():
    """Not in general position: m lines through the origin cut the plane into 2m sectors, not Zaslavsky's count."""
    angles = np.linspace(0.1, np.pi - 0.1, 7)
    layer = (np.stack([np.cos(angles), np.sin(angles)]), np.zeros(7))
    partition = regions.linear_regions([layer], regions.input_plane(), regions.Window(-1, 1, -1, 1))
    assert partition.num_regions == 14 != regions.zaslavsky_count(7)


@pytest.mark.parametrize("depth", [1, 2, 3, 4])
def test_folding_network_reaches_montufar_count_exactly(depth):
    layers = regions.folding_network(depth, width=4)
    partition = regions.linear_regions(layers, regions.input_plane(), regions.Window(0.0, 1.0, 0.0, 1.0))
    assert partition.num_regions == regions.montufar_count(depth, 4) == 4 ** (depth - 1) * 11
    assert regions.montufar_count(3, 6) == 9**2 * 22


def _containing_polygon(partition, points_Px2):
    """Index of the polygon holding each point (-1 if none): a brute-force point-in-convex-polygon test."""
    index = np.full(len(points_Px2), -1)
    for q, vertices in enumerate(partition.polygons):
        edges = np.roll(vertices, -1, axis=0) - vertices
        relative = points_Px2[:, None, :] - vertices[None]
        cross = edges[None, :, 0] * relative[..., 1] - edges[None, :, 1] * relative[..., 0]
        inside = (cross >= 0).all(1) | (cross <= 0).all(1)
        index[inside & (index < 0)] = q
    return index


def test_every_grid_point_has_the_pattern_of_its_exact_region():
    rng = np.random.default_rng(1)
    layers = _random_layers(rng, (6, 5, 4), input_dim=5)
    plane = regions.plane_through(*rng.normal(size=(3, 5)))
    window = regions.Window(-1.0, 2.0, -1.5, 1.5)
    partition = regions.linear_regions(layers, plane, window)
    assert regions.region_areas(partition).sum() == pytest.approx(window.area, rel=1e-9)

    patterns = regions.grid_patterns(layers, plane, window, 120)
    u, v = regions.grid_points(window, 120)
    points = np.stack(np.meshgrid(u, v), -1).reshape(-1, 2)
    where = _containing_polygon(partition, points)
    assert (where >= 0).all()
    agree = (partition.patterns_AxU[where] == patterns.reshape(-1, patterns.shape[-1])).all(1)
    assert agree.mean() > 0.999  # A float32 grid point may sit on a boundary; nowhere else may they differ.
    sampled = regions.count_patterns_on_grid(patterns)
    assert 0.5 * partition.num_patterns < sampled <= partition.num_patterns
    # The same network written with a layer's units shuffled is the same partition.
    perm = rng.permutation(5)
    shuffled = [layers[0], (layers[1][0][:, perm], layers[1][1][perm]), (layers[2][0][perm], layers[2][1])]
    assert regions.linear_regions(shuffled, plane, window).num_regions == partition.num_regions


@pytest.mark.parametrize("parameterization", ["standard", "ntk"])
def test_the_zoo_mlp_is_affine_on_every_region(parameterization):
    """Independent of how the layers were read: on each region, the model's own outputs are affine."""
    model = get_model("mlp", widths=(7, 6), num_outputs=3, parameterization=parameterization, bias_std=0.5)
    key = jax.random.key(3)
    params = model.init(key, jnp.zeros((1, 4)))["params"]
    params = jax.tree.map(lambda p: p + 0.3 * jax.random.normal(jax.random.fold_in(key, p.size), p.shape), params)
    rng = np.random.default_rng(2)
    plane = regions.plane_through(*rng.normal(size=(3, 4)))
    partition = regions.linear_regions(regions.relu_layers(model, params), plane, regions.Window(-2, 2, -2, 2))
    assert partition.num_regions > 10
    weights_Qx3xV = rng.dirichlet(np.ones(3), size=(partition.num_regions, 3))
    corners, mixes = [], []
    for vertices, weights in zip(partition.polygons, weights_Qx3xV):
        picks = vertices[rng.choice(len(vertices), 3, replace=False)]
        corners.append(picks)
        mixes.append(weights @ picks)  # Three interior points of a convex region ...
    uv = np.concatenate([np.stack(mixes).reshape(-1, 2)])
    x = plane.origin_D + uv @ plane.basis_2xD
    outputs = np.asarray(model.apply({"params": params}, jnp.asarray(x, jnp.float32))).reshape(-1, 3, 3)
    uv = uv.reshape(-1, 3, 2)
    centre_x = plane.origin_D + uv.mean(1) @ plane.basis_2xD
    centre = np.asarray(model.apply({"params": params}, jnp.asarray(centre_x, jnp.float32)))
    np.testing.assert_allclose(centre, outputs.mean(1), atol=2e-5)  # ... and f(mean) = mean f there.


def test_a_window_across_a_bend_is_not_affine():
    """The check above can fail: across a boundary the mean rule breaks."""
    layer = (np.array([[1.0], [0.0]]), np.array([0.0]))
    f = lambda uv: np.maximum(uv @ layer[0] + layer[1], 0)[:, 0]
    points = np.array([[-1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    assert abs(f(points.mean(0, keepdims=True))[0] - f(points).mean()) > 0.1
    assert regions.linear_regions([layer], regions.input_plane(), regions.Window(-1, 1, -1, 1)).num_regions == 2


def test_stop_after_layer_and_segments_by_layer():
    rng = np.random.default_rng(4)
    layers = _random_layers(rng, (5, 5), input_dim=2)
    window = regions.Window(-2, 2, -2, 2)
    first = regions.linear_regions(layers, regions.input_plane(), window, stop_after_layer=1)
    both = regions.linear_regions(layers, regions.input_plane(), window)
    assert first.patterns_AxU.shape[1] == 5 and both.patterns_AxU.shape[1] == 10
    assert both.num_regions > first.num_regions
    assert set(np.unique(both.segment_layers_E)) == {0, 1}
    # Every layer-1 segment lies on one of layer 1's lines.
    a = first.segments_Ex2x2 @ layers[0][0] + layers[0][1]
    assert np.all(np.min(np.abs(a).max(1), axis=-1) < 1e-9)


def test_bad_inputs_name_the_field():
    model = get_model("mlp", widths=(4,), activation="tanh")
    params = model.init(jax.random.key(0), jnp.zeros((1, 2)))["params"]
    with pytest.raises(ValueError, match="model.activation"):
        regions.relu_layers(model, params)
    with pytest.raises(ValueError, match="model"):
        regions.relu_layers(get_model("cnn1d"), params)
    relu = get_model("mlp", widths=(4,))
    with pytest.raises(ValueError, match="params"):
        regions.relu_layers(relu, {"something": 1})
    layers = regions.relu_layers(relu, relu.init(jax.random.key(0), jnp.zeros((1, 3)))["params"])
    with pytest.raises(ValueError, match=r"layers\[0\]"):
        regions.linear_regions(layers, regions.input_plane(2), regions.Window(0, 1, 0, 1))
    with pytest.raises(ValueError, match="plane.basis_2xD"):
        regions.linear_regions(layers, regions.Plane(np.zeros(3), np.ones((3, 3))), regions.Window(0, 1, 0, 1))
    with pytest.raises(ValueError, match="collinear"):
        regions.plane_through(np.zeros(3), np.ones(3), 2 * np.ones(3))
    with pytest.raises(ValueError, match="window"):
        regions.linear_regions(layers, regions.input_plane(3), regions.Window(1, 0, 0, 1))


def test_grid_sampler_compiles_once_per_shape():
    rng = np.random.default_rng(5)
    plane, window = regions.input_plane(), regions.Window(-1, 1, -1, 1)
    regions.grid_patterns(_random_layers(rng, (8, 8), 2), plane, window, 32)
    with count_compiles() as compiles:
        regions.grid_patterns(_random_layers(rng, (8, 8), 2), plane, window, 32)
    assert compiles.count == 0
