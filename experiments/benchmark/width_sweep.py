"""The width-sweep row: MLPs of several widths as one masked, vmapped program against a loop of fits.

:func:`jaxdl.course.width_sweep.fit_widths` pads every width to the largest and masks the extra units, so
the whole sweep (widths x seeds) is one compiled program; the loop a user would otherwise write calls
:func:`jaxdl.train.fit_seeds` once per width (seeds vmapped), compiling one program per width. Both
train the same one-hidden-layer MLPs (full-batch Adam, cross-entropy) on the same synthetic data.
"""
from __future__ import annotations

import time

import jax

from experiments.benchmark.timing import net_name, synthetic_data
from jaxdl import train
from jaxdl.course import width_sweep
from jaxdl.train import optim
from jaxdl.models import get_model


def _sweep_calls(config):
    """``(vmapped, loop)``: calls that train every width of ``config.width_sweep_widths`` for every
    seed, as one :func:`jaxdl.course.width_sweep.fit_widths` call and as one ``fit_seeds`` call per width."""
    widths, seeds = tuple(config.width_sweep_widths), list(range(config.width_sweep_seeds))
    data = synthetic_data(config.width_sweep_examples, config.width_sweep_input_dim, 10, config.seed)
    tx = optim.get_optimizer("adam", 1e-3)
    steps = config.width_sweep_steps
    kwargs = dict(epochs=steps, batch_size=None, epochs_per_call=steps, eval_every=steps, progress=False)

    def vmapped():
        jax.block_until_ready(width_sweep.fit_widths(data, tx, widths=widths, seeds=seeds, **kwargs).state.params)

    def loop():
        for width in widths:
            model = get_model("mlp", widths=(width,), num_outputs=10)
            jax.block_until_ready(train.fit_seeds(model, data, tx, seeds=seeds, **kwargs).state.params)

    return vmapped, loop


def bench_width_sweep(config):
    """Rows and result entries: seconds of the vmapped sweep and of the loop, end to end as a user
    sees them, first (both compile: one program against one per width) and again (nothing
    compiles). The padded program computes ``len(widths) * max(widths)`` hidden units where the loop
    computes ``sum(widths)``; their ratio is reported as the padding overhead."""
    vmapped, loop = _sweep_calls(config)
    seconds = {}
    for label in ("first", "again"):
        for name, fn in (("vmapped", vmapped), ("loop", loop)):
            start = time.perf_counter()
            fn()
            seconds[f"{name}_{label}"] = time.perf_counter() - start
    widths = tuple(config.width_sweep_widths)
    padding = len(widths) * max(widths) / sum(widths)
    size = (f"width sweep {widths[0]}..{widths[-1]} ({len(widths)} widths) x {config.width_sweep_seeds} seeds, MLP "
            f"{net_name(config.width_sweep_input_dim, ('H',))}, {config.width_sweep_examples} examples, "
            f"{config.width_sweep_steps} full-batch Adam steps, one masked fit_widths call (padding {padding:.1f}x "
            "the units)")
    rows = [[f"{size}, first calls", seconds["vmapped_first"] * 1e3, f"{len(widths)} fit_seeds calls (one compile "
             "per width)", seconds["loop_first"] * 1e3, seconds["loop_first"] / seconds["vmapped_first"],
             "(with compilation)"],
            [f"{size}, again", seconds["vmapped_again"] * 1e3, f"{len(widths)} fit_seeds calls",
             seconds["loop_again"] * 1e3, seconds["loop_again"] / seconds["vmapped_again"], "(reported)"]]
    return rows, {"width_sweep_speedup_first": seconds["loop_first"] / seconds["vmapped_first"],
                  "width_sweep_speedup_again": seconds["loop_again"] / seconds["vmapped_again"],
                  "width_sweep_padding": padding}
