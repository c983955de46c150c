"""The benchmark's config (``python -m experiments.benchmark --help`` lists every field): sizes
quick (the tests), default (minutes on a 2-core CPU) and full (a GPU or TPU), and its checks."""
from __future__ import annotations

import ml_collections

from experiments import common


def get_config(size: str = "default") -> ml_collections.ConfigDict:
    common.check_size(size)
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
    if size == "quick":
        c.repeats = 2
        c.matmul_size = 256
        c.step_widths = (64, 64)
        c.step_input_dim = 64
        c.step_batch_size = 32
        c.epoch_steps = 5
        c.seeds = 2
        c.seed_widths = (16,)
        c.tiny_widths = (8,)
        c.seed_steps = 5
        c.seed_epochs = 1
        c.regularizer_batch_size = 40
        c.regularizer_num_batches = 4
        c.curvature_widths = (16,)
        c.curvature_input_dim = 8
        c.curvature_examples = 64
        c.lanczos_steps = 5
        c.trace_probes = 4
        c.curvature_repeats = 2
        c.conv_image_shape = (8, 8, 3)
        c.conv_batch_size = 8
        c.conv_channels = (4, 8)
        c.resnet_depth = 8
        c.conv_repeats = 2
        c.cnn1d_channels = (4, 4, 4)
        c.cnn1d_batch_size = 8
        c.cnn1d_steps = 5
        c.landscape_grid = 5
        c.landscape_widths = (16,)
        c.landscape_input_dim = 8
        c.landscape_examples = 64
        c.landscape_loop_points = 5
        c.tracking_widths = c.tracking_small_widths = (16,)
        c.tracking_examples = c.tracking_small_examples = 64
        c.tracking_steps = 20
        c.tracking_every = c.tracking_small_every = 5
        c.tracking_lanczos_steps = 4
        c.ntk_examples = 4
        c.ntk_outputs = 3
        c.ntk_input_dim = 8
        c.ntk_mlp_widths = (32, 32)
        c.ntk_image_shape = (6, 6, 1)
        c.ntk_cnn_channels = (3, 4)
        c.ntk_repeats = 1
        c.peer_examples = 128
        c.peer_widths = (16, 16)
        c.peer_probes = 4
        c.peer_batch_size = 32
        c.peer_repeats = 1
        c.peer_seeds = 1
        c.peer_conv_steps = 2
        c.forced_devices = 2
        c.devices_examples = 256
        c.devices_width = 16
        c.regions_widths = (8, 8)
        c.regions_resolution = 64
        c.width_sweep_widths = (2, 4)
        c.width_sweep_examples = 16
        c.width_sweep_steps = 2
        c.width_sweep_seeds = 1
    elif size == "full":
        c.repeats = 20
        c.matmul_size = 4096
        c.epoch_steps = 200
        c.conv_repeats = 10
        c.landscape_repeats = 3
        c.landscape_loop_points = 2601
        c.ntk_repeats = 5
        c.width_sweep_steps = 2000
    return c


def validate(config):
    """ValueError naming the first config field out of range."""
    for field in ("repeats", "matmul_size", "step_batch_size", "tiny_batch_size", "epoch_steps", "seeds",
                  "seed_batch_size", "seed_steps", "seed_epochs", "curvature_input_dim", "curvature_examples",
                  "lanczos_steps", "curvature_repeats", "conv_batch_size", "conv_repeats", "cnn1d_length",
                  "cnn1d_batch_size", "cnn1d_steps", "landscape_grid", "landscape_input_dim", "trace_probes",
                  "landscape_examples",
                  "landscape_points_per_chunk", "landscape_loop_points", "landscape_repeats", "ntk_examples",
                  "ntk_outputs", "ntk_input_dim", "ntk_repeats", "peer_examples", "peer_probes", "peer_repeats",
                  "peer_batch_size", "peer_seeds", "peer_conv_steps", "profile_scan_length", "forced_devices",
                  "devices_examples", "devices_width", "regions_resolution", "width_sweep_examples",
                  "width_sweep_input_dim", "width_sweep_steps", "width_sweep_seeds"):
        common.require(int(config[field]) > 0, field, "a positive integer", config[field])
    for field in ("regions_widths", "width_sweep_widths"):
        common.require(len(config[field]) > 0 and min(config[field]) > 0, field, "positive widths", config[field])
    common.require(int(config.landscape_loop_points) <= int(config.landscape_grid) ** 2, "landscape_loop_points",
                   "at most landscape_grid ** 2", config.landscape_loop_points)
    common.require(int(config.landscape_chunk_size) >= 0, "landscape_chunk_size",
                   "a non-negative integer (0: all examples in one pass)", config.landscape_chunk_size)
    common.require(len(config.conv_image_shape) == 3 and min(config.conv_image_shape) > 0, "conv_image_shape",
                   "a positive (height, width, channels)", config.conv_image_shape)
    common.require((int(config.resnet_depth) - 2) % 6 == 0 and int(config.resnet_depth) >= 8, "resnet_depth",
                   "6n + 2 with n >= 1 (8, 14, 20, ...)", config.resnet_depth)
