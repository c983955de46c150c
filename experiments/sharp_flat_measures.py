"""Measurements and tables of :mod:`experiments.sharp_flat`: every sharpness measure of one
solution, and the summaries its claims read."""
from __future__ import annotations

import numpy as np

from experiments import common
from jaxdl import curvature, landscape, losses, tree

SCALAR_MEASURES = ("top_eigenvalue", "trace", "filter_normalized_sharpness")


def _epsilon_key(epsilon: float, subspace: bool = False) -> str:
    return f"epsilon_sharpness_{epsilon:.0e}" + ("_subspace" if subspace else "")


def measure_sharpness(config, apply_fn, params, batch, key, epsilons=None, subspace: bool = True) -> dict:
    """Every sharpness measure of the solution ``params`` on ``batch`` (the training set):

    - ``top_eigenvalue``: Lanczos, ``config.lanczos_steps`` steps;
    - ``trace`` and ``trace_standard_error``: Hutchinson, ``config.trace_probes`` probes;
    - ``epsilon_sharpness_<eps>`` (and ``..._subspace`` in a random ``config.subspace_dim``-
      dimensional subspace): Keskar et al.'s metric, L-BFGS-B for ``config.lbfgs_iterations``;
    - ``filter_normalized_sharpness``: the mean rise of the loss over ``|a| <= config.filter_radius``
      along ``config.filter_directions`` filter-normalised directions (Li et al. 2018).

    The same ``key`` for every solution: the same probes, starts, subspace and directions.
    """
    loss_fn = losses.make_loss_fn(apply_fn)
    chunk = int(config.chunk_size)
    out = {"top_eigenvalue": float(curvature.hessian_top_eigenvalues(
        loss_fn, params, batch, num_steps=min(int(config.lanczos_steps), tree.count(params)), key=key,
        chunk_size=chunk).eigenvalues[0])}
    trace = curvature.hessian_trace(loss_fn, params, batch, num_probes=int(config.trace_probes), key=key,
                                    chunk_size=chunk)
    out.update(trace=float(trace.estimate), trace_standard_error=float(trace.standard_error))
    for epsilon in (config.epsilons if epsilons is None else epsilons):
        for in_subspace in ((False, True) if subspace else (False,)):
            value = curvature.epsilon_sharpness(loss_fn, params, batch, float(epsilon),
                                                subspace=int(config.subspace_dim) if in_subspace else None,
                                                max_iterations=int(config.lbfgs_iterations), key=key, chunk_size=chunk)
            out[_epsilon_key(epsilon, in_subspace)] = float(value.value)
    out["filter_normalized_sharpness"] = landscape.filter_normalized_sharpness(
        apply_fn, params, batch, key, radius=float(config.filter_radius), num_directions=int(config.filter_directions),
        num_points=int(config.filter_points), chunk_size=chunk)["value"]
    return out


def _mean(rows, name) -> float:
    return float(np.mean([row[name] for row in rows]))


def _mean_std(rows, name, fmt="{:.3g}") -> str:
    values = np.asarray([row[name] for row in rows])
    return (fmt + " +- " + fmt).format(values.mean(), values.std())


def _measure_columns(config, subspace=True):
    columns = ["top_eigenvalue", "trace"]
    for epsilon in config.epsilons:
        columns += [_epsilon_key(epsilon)] + ([_epsilon_key(epsilon, True)] if subspace else [])
    return columns + ["filter_normalized_sharpness"]


def _solutions_table(config, groups: dict) -> str:
    """One row per (label, rows of seeds): metrics and measures as mean +- std over seeds."""
    columns = _measure_columns(config)
    headers = ["solutions", "train loss", "test accuracy"] + [c.replace("_", " ") for c in columns]
    table = [[label, _mean_std(rows, "train_loss"), _mean_std(rows, "test_accuracy", "{:.3f}")]
             + [_mean_std(rows, c) for c in columns] for label, rows in groups.items()]
    return common.format_table(headers, table)


def _edge_of_stability_numbers(runs: dict) -> dict:
    numbers = {}
    for eta, run in runs.items():
        sharpness, loss = np.asarray(run["sharpness"]), np.asarray(run["loss"], np.float64)
        thirds = np.array_split(loss, 3)
        numbers[eta] = {
            "threshold": 2.0 / eta, "initial_sharpness": float(sharpness[0]), "max_sharpness": float(sharpness.max()),
            "median_last_third": float(np.median(sharpness[2 * len(sharpness) // 3:])),
            "loss_by_third": [float(t.mean()) for t in thirds],
            "rising_fraction": float(np.mean(np.diff(loss) > 0)),
        }
        numbers[eta]["ratio"] = numbers[eta]["median_last_third"] / numbers[eta]["threshold"]
    return numbers


def summarize(config, solutions: dict, reparam: dict, sam: dict, eos_runs: dict) -> dict:
    """``{'tables': {...}, 'numbers': {...}}`` from the four phases."""
    tables = {"batch size": _solutions_table(config, {f"{task} {regime} (batch {config.tasks[task][size + '_batch']})":
                                                      solutions[task][regime]
                                                      for task in solutions  # in the phase's order
                                                      for regime, size in (("SB", "small"), ("LB", "large"))})}
    batch_size = {}
    for task in config.claim_tasks:
        sb, lb = solutions[task]["SB"], solutions[task]["LB"]
        batch_size[task] = {"eigenvalue_ratio": _mean(lb, "top_eigenvalue") / _mean(sb, "top_eigenvalue"),
                            "epsilon_ratio": (_mean(lb, _epsilon_key(config.epsilons[0]))
                                              / max(_mean(sb, _epsilon_key(config.epsilons[0])), 1e-12)),
                            "test_accuracy_gap": _mean(sb, "test_accuracy") - _mean(lb, "test_accuracy")}

    rows = reparam["rows"]
    columns = ["alpha", "max_relative_output_change", "top_eigenvalue", "trace", "trace_standard_error",
               "blockwise_trace", "predicted_trace", _epsilon_key(config.epsilons[0]), "filter_normalized_sharpness"]
    tables["reparametrization"] = common.format_table([c.replace("_", " ") for c in columns],
                                                      [[row[c] for c in columns] for row in rows])
    eigenvalues = [row["top_eigenvalue"] for row in rows]
    reparametrization = {
        "max_output_change": max(row["max_relative_output_change"] for row in rows),
        "eigenvalue_span": max(eigenvalues) / max(min(eigenvalues), 1e-12),
        "trace_prediction_error": max(abs(row["blockwise_trace"] - row["predicted_trace"]) / abs(row["predicted_trace"])
                                      for row in rows),
        "filter_sharpness_span": (max(row["filter_normalized_sharpness"] for row in rows)
                                  / max(min(row["filter_normalized_sharpness"] for row in rows), 1e-12)),
    }
    tables["sam"] = _solutions_table(config, {f"{config.sam_task} {config.optimizer}": sam["base"],
                                              f"{config.sam_task} SAM (rho {config.sam_rho:g})": sam["sam"]})
    sam_numbers = {"top_eigenvalue": _mean(sam["sam"], "top_eigenvalue"),
                   "base_top_eigenvalue": _mean(sam["base"], "top_eigenvalue"),
                   "test_accuracy_difference": _mean(sam["sam"], "test_accuracy") - _mean(sam["base"], "test_accuracy")}
    eos = _edge_of_stability_numbers(eos_runs)
    tables["edge of stability"] = common.format_table(
        ["eta", "2 / eta", "sharpness at step 0", "max sharpness", "median sharpness, last third", "ratio to 2 / eta",
         "mean loss by third of training", "fraction of steps where the loss rose"],
        [[f"{eta:g}", n["threshold"], n["initial_sharpness"], n["max_sharpness"], n["median_last_third"], n["ratio"],
          ", ".join(f"{v:.3g}" for v in n["loss_by_third"]), n["rising_fraction"]] for eta, n in eos.items()])
    numbers = {"batch_size": batch_size, "reparametrization": reparametrization, "sam": sam_numbers,
               "edge_of_stability": {f"{k:g}": v for k, v in eos.items()}}
    return {"tables": tables, "numbers": numbers}


def edge_of_stability_claims(eos: dict) -> list:
    """Cohen et al. 2021's claims from :func:`summarize`'s edge-of-stability numbers."""
    etas = sorted(eos, key=float)
    smallest = eos[etas[0]]
    out = [common.Claim.at_most(
        "Cohen et al. 2021", f"at the smallest step size ({etas[0]}) the sharpness stays below 2/eta "
        "(max sharpness / (2/eta))", smallest["max_sharpness"] / smallest["threshold"], 1.0, "{:.3f}")]
    for eta in etas[1:]:
        n = eos[eta]
        out.append(common.Claim.check(
            "Cohen et al. 2021", f"eta = {eta}: after progressive sharpening the sharpness hovers at 2/eta (median "
            "over the last third / (2/eta))", "1 +- 0.10", n["ratio"], lambda r: abs(r - 1) <= 0.10, "{:.3f}"))
        out.append(common.Claim.check(
            "Cohen et al. 2021", f"eta = {eta}: the loss keeps falling over the long run (mean by third of training) "
            "while rising on some steps (fraction of rising steps)", "falling thirds; > 0",
            (n["loss_by_third"], n["rising_fraction"]),
            lambda v: v[0][0] > v[0][1] > v[0][2] and v[1] > 0, "{0[0][0]:.3g} > {0[0][1]:.3g} > {0[0][2]:.3g}; {0[1]:.2f}"))
    return out
