"""Tables, numbers and claims of :mod:`experiments.implicit_regularization`."""
from __future__ import annotations

import numpy as np

from experiments import common


def _best(accuracy: dict) -> tuple[float, float]:
    finite = {lr: a for lr, a in accuracy.items() if np.isfinite(a)}
    lr = max(finite, key=finite.get)
    return lr, finite[lr]


def summarize(config, errors: dict, sweep: dict, regularizer: dict, noise: dict) -> dict:
    """``{'tables', 'numbers'}`` from the four phases of the experiment."""
    tables, numbers = {}, {}
    rows = []
    for name, p in errors["problems"].items():
        for method, flows, steps in (("GD", p["gd"], p["gd_steps"]), ("mean SGD", p["sgd"], p["sgd_rates"])):
            for flow, values in flows.items():
                slope = (p["slopes_gd"] if method == "GD" else p["slopes_sgd"])[flow]
                rows.append([name, method, f"flow on {flow}", ", ".join(f"{v:.2e}" for v in values), f"{slope:.3f}"])
    tables["backward error"] = common.format_table(
        ["problem", "iterate", "compared with", "distance at each step size (largest first)", "log-log slope"], rows)
    numbers["backward_error"] = {
        name: {"slope_gd_c": p["slopes_gd"]["C"], "slope_gd_cgd": p["slopes_gd"]["C_GD"],
               "slope_sgd_csgd": p["slopes_sgd"]["C_SGD"],
               "csgd_closer": bool(np.all(np.asarray(p["sgd"]["C_SGD"]) < np.asarray(p["sgd"]["C_GD"]))),
               "identity_error": p["identity_error"]} for name, p in errors["problems"].items()}

    sweep_rows = [[name, regime] + [accuracy.get(float(lr), np.nan) for lr in config.learning_rates]
                  for name, regimes in sweep["accuracy"].items() for regime, accuracy in regimes.items()]
    tables["test accuracy against learning rate"] = common.format_table(
        ["data set", "regime"] + [f"lr {lr:g}" for lr in config.learning_rates], sweep_rows, float_format="{:.3f}")

    runs = regularizer["runs"]  # in the phase's order
    tables["explicit regulariser"] = common.format_table(
        ["run", "learning rate", "train loss", "test accuracy", "(eps/4) mean_k ||grad C_k||^2 at the end"],
        [[label, r["learning_rate"], r["train_loss"], r["test_accuracy"],
          regularizer["eps"] / 4 * r["gradient_norms"][-1] if len(r["gradient_norms"]) else np.nan]
         for label, r in runs.items()], float_format="{:.4g}")
    small = runs["small batch"]["test_accuracy"]

    def closed(regime):
        """Fraction of the gap to the small batch that the regulariser closes (NaN if it diverged)."""
        regularized = runs.get(f"{regime} + regulariser", {"test_accuracy": float("nan")})["test_accuracy"]
        gap = small - runs[regime]["test_accuracy"]
        return (regularized - runs[regime]["test_accuracy"]) / gap if gap > 0 else float("nan")

    numbers["regularizer"] = {
        "small_batch_accuracy": small,
        "full_batch_gap": small - _best(sweep["accuracy"][config.regularizer_dataset]["full batch"])[1],
        "large_batch_gap": small - runs["large batch"]["test_accuracy"],
        "large_batch_closed": closed("large batch"), "full_batch_closed": closed("full batch"),
    }
    tables["noise"] = common.format_table(
        ["noise at equal learning rate and steps (reported: Fort et al. 2021 at CPU scale)", "test accuracy"],
        [[k, v] for k, v in noise.items()], float_format="{:.3f}")
    numbers["noise"] = noise
    return {"tables": tables, "numbers": numbers}


def claims_from_numbers(result: dict) -> list:
    out = []
    for name, n in result["backward_error"].items():
        out.append(common.Claim.check(
            "Barrett & Dherin 2021", f"{name}: GD with step h stays O(h) from the flow on C and O(h^2) from the flow "
            "on C_GD = C + (h/4)||grad C||^2 (log-log slopes)", "1 +- 0.15; 2 +- 0.15",
            (n["slope_gd_c"], n["slope_gd_cgd"]), lambda v: abs(v[0] - 1) <= 0.15 and abs(v[1] - 2) <= 0.15,
            "{0[0]:.3f}; {0[1]:.3f}"))
        out.append(common.Claim.check(
            "Smith et al. 2021", f"{name}: the mean SGD iterate after an epoch follows the flow on C_SGD to O(eps^3) "
            "(slope), closer than the flow on C_GD at every eps", ">= 2.8; closer",
            (n["slope_sgd_csgd"], n["csgd_closer"]),
            lambda v: v[0] >= 2.8 and v[1], "{0[0]:.3f}; {0[1]}"))
        out.append(common.Claim.at_most(
            "Smith et al. 2021", f"{name}: C_SGD = C_GD + (eps/4m) sum_k ||grad C_k - grad C||^2 (relative error, "
            "float64)", n["identity_error"], 1e-10, "{:.1e}"))
    r = result["regularizer"]
    out.append(common.Claim.at_least(
        "Smith et al. 2021", "at fixed epochs small-batch SGD beats full-batch GD in test accuracy (gap, each at its "
        "best swept learning rate but the small batch at the regulariser's)", r["full_batch_gap"], 0.0, "{:.3f}"))
    out.append(common.Claim.at_least(
        "Smith et al. 2021", "the explicit regulariser at the small batch's learning rate and size closes at least "
        "half of the large-batch gap (fraction closed)", r["large_batch_closed"], 0.5, "{:.2f}"))
    return out
