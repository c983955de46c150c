"""Benchmarks: each tool's time beside its FLOP floor and beside the naive loop, in one run.

The floor is the tool's FLOPs divided by this machine's matmul rate, which is measured at the
start of the same run, so the ratios compare like with like on any device. The helpers are this
package's modules: timers, the matmul rate, FLOP counts and synthetic data in
:mod:`~experiments.benchmark.timing`; the training benches in :mod:`~experiments.benchmark.training`;
the analysis benches in :mod:`~experiments.benchmark.analysis`; the peers in
:mod:`~experiments.benchmark.peers`. Rows:

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
- spectral density: SLQ (Ghorbani et al. 2019) with R runs of S steps on the same MLP against
  the same R x S products as a Python loop (the Lanczos loop's code, then the quadrature and the
  broadening in NumPy) and against the HVP floor (R x S x one HVP's time); and on an MLP small
  enough to diagonalise, SLQ at its defaults (4 runs x 30 steps) against the dense spectrum
  (``jax.hessian`` and ``eigvalsh``), with SLQ's errors: the first two spectral moments (in
  standard errors of the random starts too), the top eigenvalue, and the Wasserstein-1 distance
  (the L1 distance between the CDFs) of the broadened density to the eigenvalues;
- sharpness tracking: full-batch descent with the top Hessian eigenvalue measured every k steps
  inside the compiled loop (warm-started Lanczos) against the same loop stopping every k steps
  for a separate ``hessian_top_eigenvalues`` call (cold-started, as many Lanczos steps), at the
  size of sharp_flat's edge-of-stability runs and for a small network measured every 5 steps;
- landscape: a 51 x 51 loss surface (Li et al. 2018) of an MLP 40-100-100-10 on 5000 examples
  as one ``landscape.surface`` call, against its floor (2601 forward passes' matmul FLOPs) and
  against a Python loop over grid points of a jitted per-point loss (as the reference PyTorch
  code does), the loop timed on a subset of the points and scaled to the whole grid; an 11 x 11
  convexity map (10 Lanczos steps per point on an MLP 40-32-32-10, 1000 examples) as one
  ``landscape.convexity_map`` call against a Python loop of a jitted per-point Lanczos run; the
  CNTK with global average pooling of 128 random 8 x 8 x 3 images (``ntk.serial(...).kernels`` in
  blocks) against a NumPy loop over pairs of positions, with its block's memory;
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
(:mod:`experiments.benchmark.peers`): the same MLP in PyTorch with jaxdl's weights, PyHessian's
eigenvalues and trace, loss-landscapes' ``random_plane`` and a PyTorch loop over grid points,
PyTorch train steps and ``torch.func``'s empirical NTK, each beside jaxdl; without them it is
one line saying how to enable it.

Targets (2 CPU cores): step <= 2x floor; scan >= 1.5x faster per step (tiny MLP); seeds in one
vmapped fit at least as fast as a loop of fits, both warm; regularised step <= 4x plain; HVP <=
3x gradient; Lanczos >= 1.5x faster than the loop; the SLQ density <= 1.1x its HVP floor, its
top node within 1e-3 of the dense top eigenvalue and its two moments within 3 standard errors
of the dense ones; surface <= 3x floor and at least as fast as the loop; in-loop sharpness
tracking at least as fast as host calls (small network); the MLP's NTK by structured
derivatives >= 30x faster than the contraction (neural-tangents reports about 70x), every NTK
method within 1e-5 of the contraction. The conv steps, the conv implementations, the
compute-bound tracking row and the other NTK rows are reported only. Peer section: trace >= 1.5x
PyHessian's, top-1 and top-3 eigenvalues >= 2x, the surface and the line no slower than the
fastest peer, within 1.3x of their FLOP floor and 1.1x of their matmuls alone (the profile) and
equal to the PyTorch loop's values, an Adam step of an epoch >= 1.5x PyTorch's.
"""
from __future__ import annotations


import jax

from experiments import framework as fw
from experiments.benchmark import peer_report, peers
from experiments.benchmark.analysis import (bench_cntk, bench_convexity, bench_curvature, bench_density, bench_landscape,
                                            bench_ntk, bench_sharpness_tracking)
from experiments.benchmark.config import FIELDS, SIZES, get_config
from experiments.benchmark.devices import bench_devices
from experiments.benchmark.regions import regions_rows
from experiments.benchmark.width_sweep import bench_width_sweep
from experiments.benchmark.timing import (compiled_flops, measure_matmul_rate, mlp_forward_flops, net_name,
                                           synthetic_data, time_call, time_interleaved)
from experiments.benchmark.peer_report import target
from experiments.benchmark.training import (bench_conv_implementations, bench_conv_step, bench_epoch,
                                            bench_nnx_step, bench_regularized_step, bench_seed_fits,
                                            bench_seed_programs, bench_step)
from jaxdl.models import get_model

# The helpers most often timed by hand, importable from the package itself.
__all__ = ["NAME", "DESCRIPTION", "get_config", "SIZES", "FIELDS", "run", "claims", "main", "time_call",
           "time_interleaved",
           "measure_matmul_rate", "mlp_forward_flops", "compiled_flops", "synthetic_data", "bench_step",
           "bench_conv_step", "bench_epoch", "bench_conv_implementations", "bench_seed_fits", "bench_seed_programs",
           "bench_curvature", "bench_density", "bench_landscape", "bench_convexity"]

NAME = "benchmark"
DESCRIPTION = ("train-step (MLP, ConvNet, ResNet), scanned-epoch, conv-implementation, vmapped-seed, "
               "curvature (HVP, Lanczos, SLQ density), loss-surface, convexity-map and empirical-NTK timings against FLOP floors "
               "and naive loops")


def _training_rows(config, rate):
    """Rows and result entries of the training benches (steps, epochs, conv implementations, seeds)."""
    step_seconds, step_floor = bench_step(config, rate)
    nnx_seconds, linen_seconds = bench_nnx_step(config)
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
        [f"train step, the same MLP as an NNX module (models.from_nnx), batch {config.step_batch_size}",
         nnx_seconds * 1e3, "the zoo's Linen MLP", linen_seconds * 1e3, nnx_seconds / linen_seconds, "(reported)"],
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
        "nnx_step_over_linen": nnx_seconds / linen_seconds,
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


def _density_accuracy(spectrum) -> str:
    return (f"rel. error: mean {spectrum['moment1_error']:.1e} ({spectrum['moment1_z']:.1f} s.e.), mean square "
            f"{spectrum['moment2_error']:.1e} ({spectrum['moment2_z']:.1f} s.e.), top {spectrum['top_error']:.1e}; "
            f"W1 / range {spectrum['wasserstein_over_range']:.1e}")


def _analysis_rows(config, rate):
    """Rows and result entries of the analysis benches (HVP, Lanczos, SLQ density, loss surface, ...)."""
    times = bench_curvature(config)
    hvp_seconds, gradient_seconds = times["hvp"], times["gradient"]
    lanczos_seconds, lanczos_loop = times["lanczos"], times["lanczos_loop"]
    hvp_floor = config.lanczos_steps * hvp_seconds
    curvature_size = (f"MLP {net_name(config.curvature_input_dim, config.curvature_widths)} "
                      f"({times['num_params']} params), {config.curvature_examples} examples")
    density_products = config.density_runs * config.density_steps
    spectrum = bench_density(config)
    surface = bench_landscape(config, rate)
    convexity = bench_convexity(config)
    tracking = {size: bench_sharpness_tracking(config, config[f"tracking{infix}widths"],
                                               config[f"tracking{infix}examples"], config[f"tracking{infix}every"])
                for size, infix in (("large", "_"), ("small", "_small_"))}
    kernels = bench_ntk(config, rate)
    cntk = bench_cntk(config)
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
        [f"spectral density (SLQ), {config.density_runs} runs x {config.density_steps} steps, {curvature_size}",
         times["density"] * 1e3, f"HVP floor ({density_products} x HVP)", times["density_floor"] * 1e3,
         times["density"] / times["density_floor"], "<= 1.1x floor"],
        [f"spectral density (SLQ), {config.density_runs} runs x {config.density_steps} steps, {curvature_size}",
         times["density"] * 1e3, "Python loop of jitted HVPs (Lanczos, quadrature, broadening in NumPy)",
         times["density_loop"] * 1e3, times["density_loop"] / times["density"], "(reported)"],
        [f"spectral density (SLQ), {config.density_accuracy_runs} runs x {config.density_accuracy_steps} steps, "
         f"MLP {net_name(config.density_input_dim, config.density_widths)} ({spectrum['num_params']} params), "
         f"{config.density_examples} examples", spectrum["slq"] * 1e3,
         "dense spectrum (jax.hessian, eigvalsh)", spectrum["dense"] * 1e3, spectrum["dense"] / spectrum["slq"],
         _density_accuracy(spectrum)],
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
        [f"convexity map {config.convexity_grid} x {config.convexity_grid} ({convexity['map_points_per_second']:.0f} "
         f"points/s), {config.convexity_steps} Lanczos steps per point, MLP "
         f"{net_name(config.convexity_input_dim, config.convexity_widths)}, {config.convexity_examples} examples",
         convexity["map"] * 1e3, f"Python loop of jitted per-point Lanczos runs ({convexity['loop_points_per_second']:.0f} "
         f"points/s; timed on {convexity['loop_points']} points, scaled to {convexity['num_points']})",
         convexity["loop"] * 1e3, convexity["loop"] / convexity["map"], ">= 1x faster"],
        *[[f"full-batch GD, {config.tracking_steps} steps, tanh MLP "
           f"{net_name(config.tracking_input_dim, config[f'tracking{infix}widths'])}, "
           f"{config[f'tracking{infix}examples']} examples, top eigenvalue every {config[f'tracking{infix}every']} steps "
           f"({config.tracking_lanczos_steps} Lanczos steps) inside the compiled loop",
           tracking[size]["in_program"] * 1e3,
           f"the same with {tracking[size]['measurements']} separate host calls", tracking[size]["host_calls"] * 1e3,
           tracking[size]["host_calls"] / tracking[size]["in_program"], target]
          for size, infix, target in (("large", "_", "(compute-bound)"), ("small", "_small_", ">= 1x faster"))],
        *_ntk_rows(config, kernels),
        [f"CNTK-GAP (two 3 x 3 convolutions), {config.cntk_examples} random "
         f"{'x'.join(map(str, config.cntk_image_shape))} images, blocks of {config.cntk_chunk_size} "
         f"({cntk['block_bytes'] / 2 ** 20:.0f} MiB per kernel block)", cntk["kernels"] * 1e3,
         f"NumPy loop over pairs of positions (timed on {config.cntk_loop_examples} images, scaled by pairs)",
         cntk["loop"] * 1e3, cntk["loop"] / cntk["kernels"], "(reported)"],
    ]
    result = {
        "hvp_over_gradient": hvp_seconds / gradient_seconds,
        "trace_over_floor": times["trace_auto"] / times["trace_floor"],
        "lanczos_speedup": lanczos_loop / lanczos_seconds,
        "lanczos_over_hvp_floor": lanczos_seconds / hvp_floor,
        "lanczos_eigenvalue": times["eigenvalue"],
        "lanczos_loop_eigenvalue": times["loop_eigenvalue"],
        "density_over_hvp_floor": times["density"] / times["density_floor"],
        "density_speedup": times["density_loop"] / times["density"],
        "density_dense_speedup": spectrum["dense"] / spectrum["slq"],
        **{f"density_{name}": spectrum[name] for name in ("moment1", "moment2", "top", "moment1_error",
                                                          "moment2_error", "top_error", "moment1_z", "moment2_z",
                                                          "wasserstein_over_range")},
        "surface_over_floor": surface["surface"] / surface["floor"],
        "surface_speedup": surface["loop"] / surface["surface"],
        "surface_centre_loss": surface["centre_loss"],
        "surface_loop_centre_loss": surface["loop_centre_loss"],
        "convexity_speedup": convexity["loop"] / convexity["map"],
        "convexity_points_per_second": convexity["map_points_per_second"],
        "convexity_agreement": convexity["agreement"],
        "tracking_speedup": tracking["small"]["host_calls"] / tracking["small"]["in_program"],
        "tracking_speedup_large": tracking["large"]["host_calls"] / tracking["large"]["in_program"],
        "tracking_eigenvalues": (tracking["large"]["in_program_eigenvalue"], tracking["large"]["host_eigenvalue"]),
        "ntk_structured_speedup": kernels["mlp"]["jacobian"] / kernels["mlp"]["structured"],
        "ntk_structured_over_floor": kernels["mlp"]["structured"] / kernels["mlp"]["floor"],
        "ntk_cnn_structured_speedup": kernels["cnn"]["jacobian"] / kernels["cnn"]["structured"],
        "ntk_agreement": max(kernels["mlp"]["agreement"], kernels["cnn"]["agreement"]),
        "cntk_speedup": cntk["loop"] / cntk["kernels"],
        "cntk_block_bytes": cntk["block_bytes"],
        "cntk_agreement": cntk["agreement"],
        "ntk_mlp": (f"MLP with hidden widths {'-'.join(map(str, config.ntk_mlp_widths))} (N = {config.ntk_examples}, "
                    f"O = {config.ntk_outputs})"),
    }
    return rows, result


def _device_rows(config):
    """Rows and result entries of the sharded phases on 1 and ``config.forced_devices`` forced CPU
    devices (:func:`experiments.benchmark.devices.bench_devices`)."""
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


def benchmark_phase(config) -> fw.Phase:
    """Every row, the peer section, and the design targets with whether this run met them."""
    device = jax.devices()[0]
    rate = measure_matmul_rate(config.matmul_size, config.repeats)
    training_rows, training = _training_rows(config, rate)
    analysis_rows, analysis = _analysis_rows(config, rate)
    device_rows, device_result = _device_rows(config)
    region_rows, region_result = regions_rows(config)
    sweep_rows, sweep_result = bench_width_sweep(config)
    table = fw.format_table(["row", "ms", "reference", "reference ms", "ratio", "target"],
                            training_rows + analysis_rows + device_rows + region_rows + sweep_rows,
                            float_format="{:.3g}")
    peer_table, peer_result = peer_report.table(config, peers.peer_section(config, rate))
    header = (f"device: {device.platform} ({device.device_kind}), {jax.device_count()} device(s); "
              f"matmul rate {rate / 1e9:.1f} GFLOP/s at {config.matmul_size}^3 float32")
    print(header)
    numbers = {"matmul_gflops": rate / 1e9, **training, **analysis, **device_result, **region_result,
               **sweep_result, **peer_result}
    rows = _targets(numbers) + peer_report.targets(numbers)
    return fw.Phase(tables={"benchmark": header + "\n\n" + table, "peers": peer_table,
                            "design targets (timings: this machine, this load)": fw.format_table(
                                ["Source", "Target", "Threshold", "Measured", "Met"], rows)},
                    numbers=numbers)


def run(config, ctx) -> None:
    ctx.phase("benchmark", benchmark_phase, config)


def _targets(result: dict) -> list[list]:
    """The design targets of the main section (the README's Benchmarks section states them)."""
    return [
        target("an MLP train step runs within 2x of its FLOP floor", result["step_over_floor"], 2.0, above=False),
        target("a scanned epoch of an overhead-bound (tiny) MLP is >= 1.5x faster per step than a Python loop of "
               "jitted steps", result["scan_speedup"], 1.5, above=True),
        target(f"{result['seeds']} seeds in one vmapped fit are at least as fast as {result['seeds']} fit calls (both "
               "compiled already)", result["vmap_fit_speedup"], 1.0, above=True),
        target("a train step with the explicit SGD regulariser (minibatch gradients vmapped, differentiated again) "
               "costs <= 4x a plain step on the same batch", result["regularized_step_over_plain"], 4.0, above=False),
        target("a full-data Hessian-vector product (forward-over-reverse) costs <= 3x a full-data gradient",
               result["hvp_over_gradient"], 3.0, above=False),
        target("Hutchinson's trace (default probe batching) costs <= 1.1x its Hessian-vector products done one "
               "after another", result["trace_over_floor"], 1.1, above=False),
        target("Lanczos as one compiled program is >= 1.5x faster than a Python loop of jitted HVPs",
               result["lanczos_speedup"], 1.5, above=True),
        target("the SLQ spectral density (R runs x S steps) costs <= 1.1x its Hessian-vector products done one after "
               "another (R x S x one HVP)", result["density_over_hvp_floor"], 1.1, above=False),
        target("the SLQ spectral density's largest node is within 1e-3 (relative) of the dense Hessian's top "
               "eigenvalue (small MLP)", result["density_top_error"], 1e-3, above=False, fmt="{:.1e}"),
        target("the SLQ spectral density's first two moments are within 3 standard errors (of its random starts) of "
               "the dense spectrum's (small MLP)", max(result["density_moment1_z"], result["density_moment2_z"]), 3.0,
               above=False, fmt="{:.1f}"),
        target("a 2-D loss surface (one compiled surface call) runs within 3x of its FLOP floor (grid points x "
               "forward matmul FLOPs)", result["surface_over_floor"], 3.0, above=False),
        target("a 2-D loss surface is at least as fast as a Python loop over grid points of a jitted per-point loss",
               result["surface_speedup"], 1.0, above=True),
        target("a convexity map (one compiled call, a Lanczos run per point) is at least as fast per point as a "
               "Python loop of jitted per-point Lanczos runs", result["convexity_speedup"], 1.0, above=True),
        target("sharpness tracked inside the compiled training loop is at least as fast as the same measurements by "
               "separate host calls (small network, measured every 5 steps)", result["tracking_speedup"], 1.0,
               above=True),
        target(f"the empirical NTK of an {result['ntk_mlp']} by structured derivatives is >= 30x faster than the "
               "Jacobian contraction", result["ntk_structured_speedup"], 30.0, above=True, fmt="{:.1f}x",
               source="Novak et al. 2022 (about 70x in neural-tangents)"),
    ]


def claims(config, numbers) -> list:
    """The benchmark makes no claim; its checks are agreements that only a bug can break."""
    return peer_report.checks(numbers) + [
        fw.Check.at_most("sharded_equals_one_device", "design", f"every sharded phase (fit, fit_seeds, eigenvalues, "
                         f"trace, surface) on {numbers['forced_devices'][1]} forced CPU devices gives the numbers of "
                         "1 device (largest relative difference, float32)", numbers["forced_device_difference"], 1e-4,
                         "{:.1e}"),
        fw.Check.at_most("convexity_map_equals_loop", "design", "the convexity map's extreme eigenvalues equal the "
                         "per-point loop's on the looped points (largest difference relative to the top eigenvalue, "
                         "float32)", numbers["convexity_agreement"], 1e-4, "{:.1e}"),
        fw.Check.at_most("cntk_equals_numpy_loop", "design", "the layer algebra's CNTK-GAP equals the NumPy loop "
                         "over positions (largest difference relative to the largest entry, float32 against float64)",
                         numbers["cntk_agreement"], 1e-5, "{:.1e}"),
        fw.Check.at_most("ntk_methods_agree", "design", "every NTK method agrees with the Jacobian contraction "
                         "(largest difference relative to the kernel's largest entry, float32)",
                         numbers["ntk_agreement"], 1e-5, "{:.1e}"),
    ]


main = fw.entry_point(__name__)


if __name__ == "__main__":
    main()
