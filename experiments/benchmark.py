"""Benchmarks: each tool's time beside its FLOP floor and beside the naive loop, in one run.

The floor is the tool's FLOPs divided by this machine's matmul rate, which is measured at the
start of the same run, so the ratios compare like with like on any device. The helpers live in
:mod:`experiments.benchmarks`. Rows:

- train step: one jitted step of an MLP 784-512-512-10 at batch 128 against its floor
  (3x the forward matmul FLOPs: forward, backward to activations, backward to weights);
- conv train steps: one jitted SGD step of a ConvNet (conv 32-64, max pooling, dense 128) and
  of a ResNet-20 (BatchNorm in train mode) on CIFAR-shaped 32x32x3 inputs at batch 128, each
  against 3x its eval-mode forward FLOPs as XLA's cost analysis counts them;
- scanned epoch: an epoch as one ``lax.scan`` against a Python loop of jitted steps, for a
  tiny (overhead-bound), a small (MNIST-1D) and the large MLP: the scan removes the per-step
  dispatch, so its gain shrinks as the step's own compute grows;
- conv implementation: a scanned 40-step epoch of the MNIST-1D CNN (Greydanus 2020) with
  patch (im2col) convolutions against the same with XLA's convolutions;
- regulariser: a train step with Smith et al.'s explicit SGD regulariser (the batch cut into
  minibatches, their gradients vmapped and differentiated again) against the plain step;
- seeds: 16 seeds in one ``fit_seeds`` call against 16 ``fit`` calls, end to end, first (the
  calls compile: the vmapped programs, or the single-seed programs once for all 16 fits) and
  again (nothing compiles); and the warm vmapped epoch against the warm single-seed epoch run
  once per seed.

- curvature: one full-data Hessian-vector product against one full-data gradient of the same
  MLP (about 100k parameters, 5000 examples); the top Hessian eigenvalue by 30 Lanczos steps as
  one compiled program against a Python loop of jitted HVPs with the Lanczos bookkeeping in
  NumPy, and against the HVP floor (steps x one HVP's time);
- sharpness tracking: full-batch descent with the top Hessian eigenvalue measured every k steps
  inside the compiled loop (warm-started Lanczos) against the same loop stopping every k steps
  for a separate ``hessian_top_eigenvalues`` call (cold-started, as many Lanczos steps), at the
  size of sharp_flat's edge-of-stability runs and for a small network measured every 5 steps;
- landscape: a 51 x 51 loss surface (Li et al. 2018) of an MLP 40-100-100-10 on 5000 examples
  as one ``landscape.surface`` call, against its floor (2601 forward passes' matmul FLOPs) and
  against a Python loop over grid points of a jitted per-point loss (as the reference PyTorch
  code does), the loop timed on a subset of the points and scaled to the whole grid;
- empirical NTK: the (N, N) kernel (mean over the O outputs) of an MLP 128-2048-2048-2048-8 and
  of a CNN (conv 16-32) on N = 16 inputs with O = 8 outputs (neural-tangents' benchmark
  network; Novak et al. 2022), by structured derivatives, NTK-vector products and the Jacobian
  contraction, each against the FLOP floor ((1 + O) forward passes: the forward pass and one
  backward pass per output, which every method needs) and against the contraction.
- devices: each sharded phase on 8 forced CPU devices against 1 (overhead and equality).
- linear regions: the exact partition of a random ReLU MLP 2-32-32-32 on a plane against a dense
  grid sampler (regions found per second; the sampler misses the smallest regions).
- width sweep: MLPs of 7 widths (2..128) x 2 seeds trained by full-batch Adam as one masked
  ``width_sweep.fit_widths`` call against one ``fit_seeds`` call per width, first (one compile
  against one per width) and again (warm; the masked program computes len(widths) x max(widths)
  hidden units against sum(widths)).

With the peers installed (``pip install -e ".[peers]"``) a peer section follows
(:mod:`experiments.benchmarks.peers`): the same MLP in PyTorch with jaxdl's weights, PyHessian's
eigenvalues and trace, loss-landscapes' ``random_plane`` and a PyTorch loop over grid points,
PyTorch train steps and ``torch.func``'s empirical NTK, each beside jaxdl; without them it is
one line saying how to enable it.

Targets (2 CPU cores): step <= 2x floor; scan >= 1.5x faster per step (tiny MLP); seeds in one
vmapped fit at least as fast as a loop of fits, both warm; regularised step <= 4x plain; HVP <=
3x gradient; Lanczos >= 1.5x faster than the loop; surface <= 3x floor and at least as fast as
the loop; in-loop sharpness tracking at least as fast as host calls (small network); the MLP's NTK by
structured derivatives >= 30x faster than the contraction (neural-tangents reports about 70x),
every NTK method within 1e-5 of the contraction. The conv steps, the conv implementations, the
compute-bound tracking row and the other NTK rows are reported only. Peer section: trace >= 1.5x
PyHessian's, top-1 and top-3 eigenvalues >= 2x, the surface no slower than the fastest peer and
equal to the PyTorch loop's values, an Adam step of an epoch >= 1.5x PyTorch's.
"""
from __future__ import annotations

import sys

import jax
import ml_collections

from experiments import common
from experiments.benchmarks import peers
from experiments.benchmarks.analysis import bench_curvature, bench_landscape, bench_ntk, bench_sharpness_tracking
from experiments.benchmarks.devices import bench_devices
from experiments.benchmarks.regions import regions_rows
from experiments.benchmarks.width_sweep import bench_width_sweep
from experiments.benchmarks.timing import (compiled_flops, measure_matmul_rate, mlp_forward_flops, net_name,
                                           synthetic_data, time_call, time_interleaved)
from experiments.benchmarks.training import (bench_conv_implementations, bench_conv_step, bench_epoch,
                                             bench_regularized_step, bench_seed_fits, bench_seed_programs, bench_step)
from jaxdl import io
from jaxdl.models import get_model

# The helpers lived here before experiments.benchmarks; they stay importable from this module.
__all__ = ["NAME", "DESCRIPTION", "get_config", "run", "claims", "main", "time_call", "time_interleaved",
           "measure_matmul_rate", "mlp_forward_flops", "compiled_flops", "synthetic_data", "bench_step",
           "bench_conv_step", "bench_epoch", "bench_conv_implementations", "bench_seed_fits", "bench_seed_programs",
           "bench_curvature", "bench_landscape"]

NAME = "benchmark"
DESCRIPTION = ("train-step (MLP, ConvNet, ResNet), scanned-epoch, conv-implementation, vmapped-seed, "
               "curvature (HVP, Lanczos), loss-surface and empirical-NTK timings against FLOP floors and naive loops")


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


def _validate(config):
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


def _training_rows(config, rate):
    """Rows and result entries of the training benches (steps, epochs, conv implementations, seeds)."""
    step_seconds, step_floor = bench_step(config, rate)
    cnn = get_model("cnn2d", channels=tuple(config.conv_channels), kernel_size=3, pool="max", dense_widths=(128,),
                    num_outputs=10)
    cnn_seconds, cnn_floor, cnn_flops = bench_conv_step(config, cnn, rate)
    resnet_seconds, resnet_floor, resnet_flops = bench_conv_step(config, get_model("resnet", depth=config.resnet_depth,
                                                                                   num_outputs=10), rate)
    tiny_scan, tiny_loop = bench_epoch(config, config.tiny_widths, config.tiny_input_dim, config.tiny_batch_size)
    small_scan, small_loop = bench_epoch(config, config.seed_widths, config.seed_input_dim, config.seed_batch_size)
    large_scan, large_loop = bench_epoch(config, config.step_widths, config.step_input_dim, config.step_batch_size)
    patches_seconds, xla_seconds = bench_conv_implementations(config)
    fits = bench_seed_fits(config)
    programs_vmapped, programs_sequential = bench_seed_programs(config)
    regularized_step, plain_step = bench_regularized_step(config)
    tiny = net_name(config.tiny_input_dim, config.tiny_widths)
    small = net_name(config.seed_input_dim, config.seed_widths)
    large = net_name(config.step_input_dim, config.step_widths)
    images = f"{'x'.join(map(str, config.conv_image_shape))} inputs, batch {config.conv_batch_size}"
    cnn1d = "-".join(map(str, config.cnn1d_channels))
    rows = [
        [f"train step, MLP {large}, batch {config.step_batch_size}", step_seconds * 1e3, "FLOP floor",
         step_floor * 1e3, step_seconds / step_floor, "<= 2x floor"],
        [f"train step, CNN conv {'-'.join(map(str, config.conv_channels))} + dense 128, {images} "
         f"({cnn_flops / 1e9:.3g} GFLOP forward)", cnn_seconds * 1e3, "FLOP floor (3x XLA forward FLOPs)",
         cnn_floor * 1e3, cnn_seconds / cnn_floor, "(ratio to floor)"],
        [f"train step, ResNet-{config.resnet_depth} (BatchNorm, train mode), {images} "
         f"({resnet_flops / 1e9:.3g} GFLOP forward)", resnet_seconds * 1e3, "FLOP floor (3x XLA forward FLOPs)",
         resnet_floor * 1e3, resnet_seconds / resnet_floor, "(ratio to floor)"],
        [f"scanned epoch per step, MLP {tiny}, batch {config.tiny_batch_size}", tiny_scan * 1e3,
         "Python loop", tiny_loop * 1e3, tiny_loop / tiny_scan, ">= 1.5x faster"],
        [f"scanned epoch per step, MLP {small}, batch {config.seed_batch_size}", small_scan * 1e3,
         "Python loop", small_loop * 1e3, small_loop / small_scan, ""],
        [f"scanned epoch per step, MLP {large}, batch {config.step_batch_size}", large_scan * 1e3,
         "Python loop", large_loop * 1e3, large_loop / large_scan, "(compute-bound)"],
        [f"scanned epoch ({config.cnn1d_steps} steps), MNIST-1D CNN {cnn1d}, batch {config.cnn1d_batch_size}, "
         "patch convs", patches_seconds * 1e3, "XLA convs", xla_seconds * 1e3, xla_seconds / patches_seconds,
         "(reported)"],
        [f"{config.seeds} seeds, one fit_seeds vs {config.seeds} fit calls ({config.seed_epochs} epochs), first calls",
         fits["vmapped_first"] * 1e3, "sequential fits (compiled once)", fits["sequential_first"] * 1e3,
         fits["sequential_first"] / fits["vmapped_first"], "(with compilation)"],
        [f"{config.seeds} seeds, one fit_seeds vs {config.seeds} fit calls ({config.seed_epochs} epochs), again",
         fits["vmapped_again"] * 1e3, "sequential fits", fits["sequential_again"] * 1e3,
         fits["sequential_again"] / fits["vmapped_again"], ">= 1x"],
        [f"{config.seeds} seeds, warm epoch programs", programs_vmapped * 1e3, "sequential programs",
         programs_sequential * 1e3, programs_sequential / programs_vmapped, "(no compile)"],
        [f"train step with the explicit SGD regulariser, MLP {small}, batch {config.regularizer_batch_size} in "
         f"{config.regularizer_num_batches} minibatches", regularized_step * 1e3, "plain step, same batch",
         plain_step * 1e3, regularized_step / plain_step, "<= 4x plain"],
    ]
    result = {
        "step_over_floor": step_seconds / step_floor,
        "cnn_step_over_floor": cnn_seconds / cnn_floor,
        "resnet_step_over_floor": resnet_seconds / resnet_floor,
        "scan_speedup": tiny_loop / tiny_scan,
        "scan_speedup_small": small_loop / small_scan,
        "scan_speedup_large": large_loop / large_scan,
        "patch_conv_speedup": xla_seconds / patches_seconds,
        "vmap_fit_speedup": fits["sequential_again"] / fits["vmapped_again"],
        "vmap_fit_speedup_first": fits["sequential_first"] / fits["vmapped_first"],
        "vmap_program_speedup": programs_sequential / programs_vmapped,
        "regularized_step_over_plain": regularized_step / plain_step,
        "seeds": int(config.seeds),
    }
    return rows, result


def _ntk_rows(config, kernels):
    """Rows of the empirical-NTK bench: each method against the floor and the Jacobian contraction."""
    images = "x".join(map(str, config.ntk_image_shape))
    names = {"mlp": f"MLP {'-'.join(map(str, (config.ntk_input_dim, *config.ntk_mlp_widths, config.ntk_outputs)))}",
             "cnn": f"CNN conv {'-'.join(map(str, config.ntk_cnn_channels))} on {images}"}
    rows = []
    for name, times in kernels.items():
        size = (f"empirical NTK, {names[name]} ({times['num_params']} params), N = {config.ntk_examples}, "
                f"O = {config.ntk_outputs}")
        for method in ("structured", "ntvp", "jacobian"):
            rows.append([f"{size}, {method}", times[method] * 1e3, "FLOP floor ((1 + O) x forward)",
                         times["floor"] * 1e3, times[method] / times["floor"], "(ratio to floor)"])
        for method in ("structured", "ntvp"):
            target = ">= 30x faster" if (name, method) == ("mlp", "structured") else "(reported)"
            rows.append([f"{size}, {method}", times[method] * 1e3, "Jacobian contraction",
                         times["jacobian"] * 1e3, times["jacobian"] / times[method], target])
    return rows


def _analysis_rows(config, rate):
    """Rows and result entries of the analysis benches (HVP, Lanczos, loss surface)."""
    times = bench_curvature(config)
    hvp_seconds, gradient_seconds = times["hvp"], times["gradient"]
    lanczos_seconds, lanczos_loop = times["lanczos"], times["lanczos_loop"]
    hvp_floor = config.lanczos_steps * hvp_seconds
    curvature_size = (f"MLP {net_name(config.curvature_input_dim, config.curvature_widths)} "
                      f"({times['num_params']} params), {config.curvature_examples} examples")
    surface = bench_landscape(config, rate)
    tracking = {size: bench_sharpness_tracking(config, config[f"tracking{infix}widths"],
                                               config[f"tracking{infix}examples"], config[f"tracking{infix}every"])
                for size, infix in (("large", "_"), ("small", "_small_"))}
    kernels = bench_ntk(config, rate)
    grid = f"{config.landscape_grid} x {config.landscape_grid}"
    surface_size = (f"loss surface {grid}, MLP {net_name(config.landscape_input_dim, config.landscape_widths)}, "
                    f"{config.landscape_examples} examples")
    loop_label = (f"Python loop of jitted per-point losses (timed on {surface['loop_points']} points, "
                  f"scaled to {surface['num_points']})")
    rows = [
        [f"HVP, {curvature_size}", hvp_seconds * 1e3, "gradient", gradient_seconds * 1e3,
         hvp_seconds / gradient_seconds, "<= 3x gradient"],
        [f"Lanczos top eigenvalue, {config.lanczos_steps} steps, {curvature_size}", lanczos_seconds * 1e3,
         "Python loop of jitted HVPs", lanczos_loop * 1e3, lanczos_loop / lanczos_seconds, ">= 1.5x faster"],
        [f"Lanczos top eigenvalue, {config.lanczos_steps} steps, {curvature_size}", lanczos_seconds * 1e3,
         f"HVP floor ({config.lanczos_steps} x HVP)", hvp_floor * 1e3, lanczos_seconds / hvp_floor,
         "(ratio to floor)"],
        *[[f"Hutchinson trace, {config.trace_probes} probes {label}, {curvature_size}", times[key] * 1e3,
           f"HVP floor ({config.trace_probes} x HVP)", times["trace_floor"] * 1e3,
           times[key] / times["trace_floor"], target]
          for key, label, target in (("trace_auto", "(default: one at a time on a CPU)", "<= 1.1x floor"),
                                     ("trace_chunk8", "8 at a time", "(reported)"),
                                     ("trace_all", "all at once (vmap)", "(reported)"))],
        [surface_size, surface["surface"] * 1e3, f"FLOP floor ({surface['num_points']} forward passes)",
         surface["floor"] * 1e3, surface["surface"] / surface["floor"], "<= 3x floor"],
        [surface_size, surface["surface"] * 1e3, loop_label, surface["loop"] * 1e3,
         surface["loop"] / surface["surface"], ">= 1x faster"],
        *[[f"full-batch GD, {config.tracking_steps} steps, tanh MLP "
           f"{net_name(config.tracking_input_dim, config[f'tracking{infix}widths'])}, "
           f"{config[f'tracking{infix}examples']} examples, top eigenvalue every {config[f'tracking{infix}every']} steps "
           f"({config.tracking_lanczos_steps} Lanczos steps) inside the compiled loop",
           tracking[size]["in_program"] * 1e3,
           f"the same with {tracking[size]['measurements']} separate host calls", tracking[size]["host_calls"] * 1e3,
           tracking[size]["host_calls"] / tracking[size]["in_program"], target]
          for size, infix, target in (("large", "_", "(compute-bound)"), ("small", "_small_", ">= 1x faster"))],
        *_ntk_rows(config, kernels),
    ]
    result = {
        "hvp_over_gradient": hvp_seconds / gradient_seconds,
        "trace_over_floor": times["trace_auto"] / times["trace_floor"],
        "lanczos_speedup": lanczos_loop / lanczos_seconds,
        "lanczos_over_hvp_floor": lanczos_seconds / hvp_floor,
        "lanczos_eigenvalue": times["eigenvalue"],
        "lanczos_loop_eigenvalue": times["loop_eigenvalue"],
        "surface_over_floor": surface["surface"] / surface["floor"],
        "surface_speedup": surface["loop"] / surface["surface"],
        "surface_centre_loss": surface["centre_loss"],
        "surface_loop_centre_loss": surface["loop_centre_loss"],
        "tracking_speedup": tracking["small"]["host_calls"] / tracking["small"]["in_program"],
        "tracking_speedup_large": tracking["large"]["host_calls"] / tracking["large"]["in_program"],
        "tracking_eigenvalues": (tracking["large"]["in_program_eigenvalue"], tracking["large"]["host_eigenvalue"]),
        "ntk_structured_speedup": kernels["mlp"]["jacobian"] / kernels["mlp"]["structured"],
        "ntk_structured_over_floor": kernels["mlp"]["structured"] / kernels["mlp"]["floor"],
        "ntk_cnn_structured_speedup": kernels["cnn"]["jacobian"] / kernels["cnn"]["structured"],
        "ntk_agreement": max(kernels["mlp"]["agreement"], kernels["cnn"]["agreement"]),
        "ntk_mlp": (f"MLP with hidden widths {'-'.join(map(str, config.ntk_mlp_widths))} (N = {config.ntk_examples}, "
                    f"O = {config.ntk_outputs})"),
    }
    return rows, result


def _device_rows(config):
    """Rows and result entries of the sharded phases on 1 and ``config.forced_devices`` forced CPU
    devices (:func:`experiments.benchmarks.devices.bench_devices`)."""
    timed = bench_devices(config)
    many = config.forced_devices
    size = (f"MLP {net_name(40, (config.devices_width, config.devices_width))}, "
            f"{config.devices_examples} examples")
    labels = {"fit": "fit, 2 epochs, batch 64 over 'data'",
              "fit_seeds": f"fit_seeds, {many} seeds over 'seeds'",
              "top_eigenvalues": "top 2 Hessian eigenvalues (20 Lanczos steps), data over 'data'",
              "trace": "Hutchinson trace, 16 probes, data over 'data'",
              "surface": "loss surface 9 x 9, points over 'points'"}
    rows = [[f"{label}, {size}, on {many} forced CPU devices", timed[phase]["seconds"][1] * 1e3, "1 device",
             timed[phase]["seconds"][0] * 1e3, timed[phase]["seconds"][1] / timed[phase]["seconds"][0],
             f"max rel. difference {timed[phase]['difference']:.1e}"] for phase, label in labels.items()]
    return rows, {"forced_devices": timed["devices"],
                  "forced_device_difference": max(timed[phase]["difference"] for phase in labels)}


def run(config, run_dir: io.RunDir) -> dict:
    _validate(config)
    device = jax.devices()[0]
    rate = measure_matmul_rate(config.matmul_size, config.repeats)
    training_rows, training = _training_rows(config, rate)
    analysis_rows, analysis = _analysis_rows(config, rate)
    device_rows, device_result = _device_rows(config)
    region_rows, region_result = regions_rows(config)
    sweep_rows, sweep_result = bench_width_sweep(config)
    table = common.format_table(["row", "ms", "reference", "reference ms", "ratio", "target"],
                                training_rows + analysis_rows + device_rows + region_rows + sweep_rows,
                                float_format="{:.3g}")
    peer_table, peer_result = peers.table(config, peers.peer_section(config, rate))
    header = (f"device: {device.platform} ({device.device_kind}), {jax.device_count()} device(s); "
              f"matmul rate {rate / 1e9:.1f} GFLOP/s at {config.matmul_size}^3 float32")
    print(header)
    return {"tables": {"benchmark": header + "\n\n" + table, "peers": peer_table}, "figures": [],
            "matmul_gflops": rate / 1e9, **training, **analysis, **device_result, **region_result,
            **sweep_result, **peer_result}


def claims(result: dict) -> list:
    return peers.claims(result) + [
        common.Claim.at_most("design target", "an MLP train step runs within 2x of its FLOP floor",
                             result["step_over_floor"], 2.0, "{:.2f}x"),
        common.Claim.at_least("design target", "a scanned epoch of an overhead-bound (tiny) MLP is >= 1.5x "
                              "faster per step than a Python loop of jitted steps", result["scan_speedup"], 1.5, "{:.2f}x"),
        common.Claim.at_least("design target", f"{result['seeds']} seeds in one vmapped fit are at least as fast as "
                              f"{result['seeds']} fit calls (both compiled already)", result["vmap_fit_speedup"], 1.0,
                              "{:.2f}x"),
        common.Claim.at_most("design target", "a train step with the explicit SGD regulariser (minibatch gradients "
                             "vmapped, differentiated again) costs <= 4x a plain step on the same batch",
                             result["regularized_step_over_plain"], 4.0, "{:.2f}x"),
        common.Claim.at_most("design target", "a full-data Hessian-vector product (forward-over-reverse) costs "
                             "<= 3x a full-data gradient", result["hvp_over_gradient"], 3.0, "{:.2f}x"),
        common.Claim.at_most("design target", "Hutchinson's trace (default probe batching) costs <= 1.1x its "
                             "Hessian-vector products done one after another", result["trace_over_floor"], 1.1,
                             "{:.2f}x"),
        common.Claim.at_least("design target", "Lanczos as one compiled program is >= 1.5x faster than a Python "
                              "loop of jitted HVPs", result["lanczos_speedup"], 1.5, "{:.2f}x"),
        common.Claim.at_most("design target", "a 2-D loss surface (one compiled surface call) runs within 3x of "
                             "its FLOP floor (grid points x forward matmul FLOPs)", result["surface_over_floor"], 3.0,
                             "{:.2f}x"),
        common.Claim.at_least("design target", "a 2-D loss surface is at least as fast as a Python loop over grid "
                              "points of a jitted per-point loss", result["surface_speedup"], 1.0, "{:.2f}x"),
        common.Claim.at_least("design target", "sharpness tracked inside the compiled training loop is at least as "
                              "fast as the same measurements by separate host calls (small network, measured every 5 "
                              "steps)", result["tracking_speedup"], 1.0, "{:.2f}x"),
        common.Claim.at_least("Novak et al. 2022 (about 70x in neural-tangents)", f"the empirical NTK of an "
                              f"{result['ntk_mlp']} by structured derivatives is >= 30x faster than the Jacobian "
                              "contraction", result["ntk_structured_speedup"], 30.0, "{:.1f}x"),
        common.Claim.at_most("design target", f"every sharded phase (fit, fit_seeds, eigenvalues, trace, surface) on "
                             f"{result['forced_devices'][1]} forced CPU devices gives the numbers of 1 device (largest "
                             "relative difference, float32)", result["forced_device_difference"], 1e-4, "{:.1e}"),
        common.Claim.at_most("design target", "every NTK method agrees with the Jacobian contraction (largest "
                             "difference relative to the kernel's largest entry, float32)", result["ntk_agreement"],
                             1e-5, "{:.1e}"),
    ]


def main(argv=None):
    return common.experiment_main(sys.modules[__name__], argv)


if __name__ == "__main__":
    main()
