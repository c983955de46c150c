"""The benchmark's config (``python -m experiments.benchmark --help`` lists every field): sizes
quick (the tests), default (minutes on a 2-core CPU) and full (a GPU or TPU), as data, and the
fields' declared checks."""
from __future__ import annotations

import ml_collections

from experiments import framework as fw


def get_config() -> ml_collections.ConfigDict:
    """The default size: minutes on a 2-core CPU."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.repeats = 5
    c.matmul_size = 1024
    c.step_widths = (512, 512)
    c.step_input_dim = 784
    c.step_batch_size = 128
    c.epoch_steps = 50
    c.tiny_widths = (32, 32)
    c.tiny_input_dim = 2
    c.tiny_batch_size = 32
    c.seeds = 16
    c.seed_widths = (100, 100)
    c.seed_input_dim = 40
    c.seed_batch_size = 100
    c.seed_steps = 40
    c.seed_epochs = 5
    c.regularizer_batch_size = 500  # a step with Smith et al.'s explicit regulariser: 10 minibatches of 50
    c.regularizer_num_batches = 10
    c.curvature_widths = (320, 256)  # 40-320-256-10: 97,866 parameters
    c.curvature_input_dim = 40
    c.curvature_examples = 5000
    c.lanczos_steps = 30
    c.trace_probes = 30
    c.curvature_repeats = 3
    # The spectral density by SLQ: its cost on the curvature MLP (R runs x S steps, kept short:
    # every product is a full-data HVP, 0.05-0.1 s on 2 CPU cores, timed once after the warm-up),
    # and its accuracy on an MLP 8-16-16-10 (586 parameters) small enough to diagonalise, at
    # hessian_spectral_density's defaults (4 runs of 30 steps).
    c.density_runs = 2
    c.density_steps = 5
    c.density_repeats = 1
    c.density_widths = (16, 16)
    c.density_input_dim = 8
    c.density_examples = 256
    c.density_accuracy_runs = 4
    c.density_accuracy_steps = 30
    c.conv_image_shape = (32, 32, 3)  # CIFAR-10
    c.conv_batch_size = 128
    c.conv_channels = (32, 64)
    c.resnet_depth = 20
    c.conv_repeats = 3
    c.cnn1d_channels = (25, 25, 25)  # the MNIST-1D CNN (Greydanus 2020)
    c.cnn1d_length = 40
    c.cnn1d_batch_size = 100
    c.cnn1d_steps = 40
    c.landscape_grid = 51  # 51 x 51 = 2601 points
    c.landscape_widths = (100, 100)  # 40-100-100-10
    c.landscape_input_dim = 40
    c.landscape_examples = 5000
    # Fastest on 2 shared CPU cores: one point at a time (a plain lax.map) and all examples in
    # one pass, 1.5-1.9 ms per point; vmapped chunks of 2-8 points were no faster, 64 points
    # (surface's default) 2.3-2.5 ms, chunk_size 1000 or 2500 no faster than one pass.
    c.landscape_points_per_chunk = 1
    c.landscape_chunk_size = 0  # 0: all examples in one pass
    c.landscape_loop_points = 260  # the loop is timed on this many points, then scaled
    c.landscape_repeats = 2
    # A convexity map (Li et al. 2018, section 6): 11 x 11 points, 10 Lanczos steps each, on an
    # MLP 40-32-32-10 (2,698 parameters) and 1000 examples; the per-point loop timed on 30 points.
    c.convexity_grid = 11
    c.convexity_widths = (32, 32)
    c.convexity_input_dim = 40
    c.convexity_examples = 1000
    c.convexity_steps = 10
    c.convexity_loop_points = 30
    c.convexity_repeats = 2
    # Sharpness tracked during full-batch descent: the size of sharp_flat's edge-of-stability
    # runs (compute-bound on a CPU), and a small network measured often (overhead-bound).
    c.tracking_widths = (100, 100)
    c.tracking_examples = 1000
    c.tracking_every = 20
    c.tracking_small_widths = (32, 32)
    c.tracking_small_examples = 256
    c.tracking_small_every = 5
    c.tracking_input_dim = 40
    c.tracking_learning_rate = 0.5
    c.tracking_steps = 1000
    c.tracking_lanczos_steps = 10
    # The empirical NTK (N, N) by each method: neural-tangents' MLP benchmark (3 hidden layers
    # of 2048, N = 16, O = 8; Novak et al. 2022) and a small CNN on 16 x 16 x 3 images.
    c.ntk_examples = 16
    c.ntk_outputs = 8
    c.ntk_input_dim = 128
    c.ntk_mlp_widths = (2048, 2048, 2048)
    c.ntk_image_shape = (16, 16, 3)
    c.ntk_cnn_channels = (16, 32)
    c.ntk_repeats = 2
    # The CNTK with global average pooling (Arora et al. 2019) of 128 random 8 x 8 x 3 images,
    # two 3 x 3 convolutions, in blocks of 32 images; the NumPy loop over positions is timed on 16.
    c.cntk_examples = 128
    c.cntk_image_shape = (8, 8, 3)
    c.cntk_depth = 2
    c.cntk_chunk_size = 32
    c.cntk_loop_examples = 16
    c.cntk_weight_std = 1.5
    c.cntk_bias_std = 0.1
    c.cntk_repeats = 2
    # The peer section (PyTorch, PyHessian, loss-landscapes; skipped unless installed): the
    # issue's MLP 40-256-256-10 on 4,000 MNIST-1D examples.
    c.peer_dataset = "mnist1d"
    c.peer_examples = 4000
    c.peer_widths = (256, 256)
    c.peer_probes = 100
    c.peer_batch_size = 128
    c.peer_repeats = 3
    c.peer_seeds = 5  # random starts of each eigenvalue solver
    c.peer_conv_steps = 4  # the CNN and ResNet rows' scanned epochs against PyTorch
    # The sharded phases on 1 and on this many forced CPU devices (subprocesses): overhead and
    # equality, not speed (the forced devices share the CPU's cores).
    c.forced_devices = 8
    c.devices_examples = 4096
    c.devices_width = 256
    c.regions_widths = (32, 32, 32)
    c.regions_resolution = 1024
    c.width_sweep_widths = (2, 4, 8, 16, 32, 64, 128)
    c.width_sweep_examples = 100
    c.width_sweep_input_dim = 40
    c.width_sweep_steps = 500
    c.width_sweep_seeds = 2
    c.profile_scan_length = 2  # iterations of the conv profile's scans
    return c


def _mlp_param_count(input_dim, widths, num_outputs) -> int:
    dims = [input_dim, *widths, num_outputs]
    return sum((a + 1) * b for a, b in zip(dims[:-1], dims[1:]))


SIZES = {
    "quick": {
        "repeats": 2, "matmul_size": 256, "step_widths": (64, 64), "step_input_dim": 64, "step_batch_size": 32,
        "epoch_steps": 5, "seeds": 2, "seed_widths": (16,), "tiny_widths": (8,), "seed_steps": 5, "seed_epochs": 1,
        "regularizer_batch_size": 40, "regularizer_num_batches": 4, "curvature_widths": (16,),
        "curvature_input_dim": 8, "curvature_examples": 64, "lanczos_steps": 5, "trace_probes": 4,
        "curvature_repeats": 2, "density_runs": 2, "density_steps": 3, "density_repeats": 1,
        "density_widths": (8,), "density_input_dim": 4, "density_examples": 32, "density_accuracy_runs": 2,
        "density_accuracy_steps": 10, "conv_image_shape": (8, 8, 3), "conv_batch_size": 8, "conv_channels": (4, 8),
        "resnet_depth": 8, "conv_repeats": 2, "cnn1d_channels": (4, 4, 4), "cnn1d_batch_size": 8, "cnn1d_steps": 5,
        "landscape_grid": 5, "landscape_widths": (16,), "landscape_input_dim": 8, "landscape_examples": 64,
        "landscape_loop_points": 5, "tracking_widths": (16,), "tracking_small_widths": (16,),
        "tracking_examples": 64, "tracking_small_examples": 64, "tracking_steps": 20, "tracking_every": 5,
        "tracking_small_every": 5, "tracking_lanczos_steps": 4, "ntk_examples": 4, "ntk_outputs": 3,
        "ntk_input_dim": 8, "ntk_mlp_widths": (32, 32), "ntk_image_shape": (6, 6, 1), "ntk_cnn_channels": (3, 4),
        "ntk_repeats": 1, "peer_examples": 128, "peer_widths": (16, 16), "peer_probes": 4, "peer_batch_size": 32,
        "peer_repeats": 1, "peer_seeds": 1, "peer_conv_steps": 2, "forced_devices": 2, "devices_examples": 256,
        "devices_width": 16, "regions_widths": (8, 8), "regions_resolution": 64, "width_sweep_widths": (2, 4),
        "width_sweep_examples": 16, "width_sweep_steps": 2, "width_sweep_seeds": 1,
        "convexity_grid": 3, "convexity_widths": (8,), "convexity_input_dim": 4, "convexity_examples": 32,
        "convexity_steps": 4, "convexity_loop_points": 3, "convexity_repeats": 1,
        "cntk_examples": 8, "cntk_image_shape": (4, 4, 2), "cntk_chunk_size": 4, "cntk_loop_examples": 4,
        "cntk_repeats": 1,
    },
    "full": {
        "repeats": 20, "matmul_size": 4096, "epoch_steps": 200, "conv_repeats": 10, "landscape_repeats": 3,
        "landscape_loop_points": 2601, "ntk_repeats": 5, "width_sweep_steps": 2000,
    },
}

FIELDS = {
    **{field: fw.positive_int for field in (
        "repeats", "matmul_size", "step_batch_size", "tiny_batch_size", "epoch_steps", "seeds", "seed_batch_size",
        "seed_steps", "seed_epochs", "curvature_input_dim", "curvature_examples", "lanczos_steps",
        "curvature_repeats", "conv_batch_size", "conv_repeats", "cnn1d_length", "cnn1d_batch_size", "cnn1d_steps",
        "landscape_grid", "landscape_input_dim", "trace_probes", "landscape_examples", "landscape_points_per_chunk",
        "landscape_repeats", "ntk_examples", "ntk_outputs", "ntk_input_dim", "ntk_repeats",
        "peer_examples", "peer_probes", "peer_repeats", "peer_batch_size", "peer_seeds", "peer_conv_steps",
        "profile_scan_length", "forced_devices", "devices_examples", "devices_width", "regions_resolution",
        "width_sweep_examples", "width_sweep_input_dim", "width_sweep_steps", "width_sweep_seeds", "density_runs",
        "density_steps", "density_repeats", "density_input_dim", "density_examples", "density_accuracy_runs",
        "convexity_grid", "convexity_input_dim", "convexity_examples", "convexity_repeats", "cntk_examples",
        "cntk_depth", "cntk_chunk_size", "cntk_repeats")},
    "cntk_image_shape": fw.expect(lambda v: len(v) == 3 and all(isinstance(d, int) and d > 0 for d in v),
                                  "(H, W, C), positive integers"),
    "cntk_loop_examples": (fw.positive_int, fw.expect(lambda v, c: v <= c.cntk_examples, "at most cntk_examples",
                                                      uses_config=True)),
    **{f: fw.positive for f in ("cntk_weight_std", "cntk_bias_std")},
    "convexity_widths": fw.positive_ints,
    "convexity_steps": (fw.positive_int, fw.expect(
        lambda v, c: v <= _mlp_param_count(c.convexity_input_dim, c.convexity_widths, 10),
        "at most the convexity MLP's parameter count", uses_config=True)),
    "convexity_loop_points": (fw.positive_int, fw.expect(lambda v, c: v <= c.convexity_grid ** 2,
                                                         "at most convexity_grid ** 2", uses_config=True)),
    "regions_widths": fw.positive_ints,
    "density_widths": fw.positive_ints,
    "density_accuracy_steps": (fw.positive_int, fw.expect(
        lambda v, c: v <= _mlp_param_count(c.density_input_dim, c.density_widths, 10),
        "at most the density MLP's parameter count", uses_config=True)),
    "width_sweep_widths": fw.positive_ints,
    "landscape_loop_points": (fw.positive_int, fw.expect(lambda v, c: v <= c.landscape_grid ** 2,
                                                         "at most landscape_grid ** 2", uses_config=True)),
    "landscape_chunk_size": fw.expect(lambda v: v >= 0, "a non-negative integer (0: all examples in one pass)"),
    "conv_image_shape": fw.expect(lambda v: len(v) == 3 and min(v) > 0, "a positive (height, width, channels)"),
    "resnet_depth": fw.expect(lambda v: v >= 8 and (v - 2) % 6 == 0, "6n + 2 with n >= 1 (8, 14, 20, ...)"),
}
