"""The region-counting row: exact linear regions on a plane against a dense-grid sampler."""
from __future__ import annotations

import time

import numpy as np

from experiments.benchmark.timing import time_call
from jaxdl.course import regions


def _random_relu_layers(seed: int, widths, input_dim: int = 2):
    rng = np.random.default_rng(seed)
    layers, fan_in = [], input_dim
    for width in widths:
        layers.append((rng.normal(size=(fan_in, width)) * np.sqrt(2.0 / fan_in), rng.normal(size=width)))
        fan_in = width
    return layers


def regions_rows(config):
    """Rows and result entries: regions per second of :func:`jaxdl.course.regions.linear_regions` against
    :func:`jaxdl.course.regions.grid_patterns` + :func:`jaxdl.course.regions.count_patterns_on_grid` at
    ``config.regions_resolution`` points a side on the same window (which finds only part of the regions)."""
    layers = _random_relu_layers(config.seed, config.regions_widths)
    plane, window = regions.input_plane(), regions.Window(-2.0, 2.0, -2.0, 2.0)
    start = time.perf_counter()
    partition = regions.linear_regions(layers, plane, window)
    exact_seconds = time.perf_counter() - start
    resolution = config.regions_resolution
    sampler_seconds = time_call(lambda: regions.count_patterns_on_grid(
        regions.grid_patterns(layers, plane, window, resolution)), repeats=3)
    found = regions.count_patterns_on_grid(regions.grid_patterns(layers, plane, window, resolution))
    exact_rate, sampler_rate = partition.num_regions / exact_seconds, found / sampler_seconds
    widths = "-".join(map(str, config.regions_widths))
    label = (f"exact linear regions, random ReLU MLP 2-{widths} on a 4 x 4 window "
             f"({partition.num_regions} regions, {partition.num_patterns} patterns)")
    rows = [[label, exact_seconds * 1e3, f"grid sampler {resolution}^2 (found {found} patterns)",
             sampler_seconds * 1e3, exact_rate / sampler_rate, "(regions/s ratio, reported)"]]
    return rows, {"regions_exact": partition.num_patterns, "regions_sampled": found,
                  "regions_per_second": exact_rate, "regions_sampler_per_second": sampler_rate}
