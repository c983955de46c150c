"""Writes nt_reference.json: neural-tangents' infinite-width kernels for the architectures that
tests/test_ntk_layers.py holds jaxdl.analysis.ntk's layer algebra to.

neural-tangents 0.6.5 imports names that current JAX no longer exports, so this runs in its own
environment (Python 3.11: jax and jaxlib 0.4.23, neural-tangents 0.6.5, numpy < 2), never in the
test suite:

    python tests/data/nt_reference.py > tests/data/nt_reference.json

Each case is a list of layers, [name, keyword arguments] with neural-tangents' names
(``W_std``, ``b_std``, ``out_chan``...); ``Residual`` holds its branch as such a list. Inputs are
drawn with ``numpy.random.default_rng(seed)``: x1 (4, *shape) and x2 (3, *shape), float64.
"""
import json
import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

import neural_tangents as nt  # noqa: E402
from neural_tangents import stax  # noqa: E402

DENSE = dict(W_std=1.5, b_std=0.1)
CASES = {
    "dense_relu": ((5,), [["Dense", dict(out_dim=16, **DENSE)], ["Relu", {}], ["Dense", dict(out_dim=1, **DENSE)]]),
    "dense_erf_standard": ((5,), [["Dense", dict(out_dim=16, W_std=1.3, b_std=0.2, parameterization="standard")],
                                  ["Erf", {}],
                                  ["Dense", dict(out_dim=8, W_std=1.3, b_std=0.2, parameterization="standard")],
                                  ["Erf", {}],
                                  ["Dense", dict(out_dim=1, W_std=1.3, b_std=0.2, parameterization="standard")]]),
    "dense_no_bias_identity": ((5,), [["Dense", dict(out_dim=16, W_std=1.2, b_std=None)], ["Identity", {}],
                                      ["Dense", dict(out_dim=1, W_std=1.2, b_std=None)]]),
    "conv1d_same_gap": ((6, 2), [["Conv", dict(out_chan=8, filter_shape=[3], padding="SAME", **DENSE)], ["Relu", {}],
                                 ["Conv", dict(out_chan=8, filter_shape=[3], padding="SAME", **DENSE)], ["Relu", {}],
                                 ["GlobalAvgPool", {}], ["Dense", dict(out_dim=1, **DENSE)]]),
    "conv1d_valid_strided_flatten": ((7, 2), [["Conv", dict(out_chan=8, filter_shape=[3], strides=[2], padding="VALID",
                                                            **DENSE)], ["Relu", {}], ["Flatten", {}],
                                              ["Dense", dict(out_dim=1, **DENSE)]]),
    "conv2d_same_gap": ((4, 4, 2), [["Conv", dict(out_chan=8, filter_shape=[3, 3], padding="SAME", **DENSE)],
                                    ["Relu", {}],
                                    ["Conv", dict(out_chan=8, filter_shape=[3, 3], padding="SAME", **DENSE)],
                                    ["Relu", {}], ["GlobalAvgPool", {}], ["Dense", dict(out_dim=1, **DENSE)]]),
    "conv2d_valid_erf_flatten": ((4, 5, 2), [["Conv", dict(out_chan=8, filter_shape=[2, 2], padding="VALID", **DENSE)],
                                             ["Erf", {}], ["Flatten", {}], ["Dense", dict(out_dim=1, **DENSE)]]),
    "conv2d_strided_same_avgpool": ((5, 5, 2), [["Conv", dict(out_chan=8, filter_shape=[3, 3], strides=[2, 2],
                                                              padding="SAME", **DENSE)], ["Relu", {}],
                                                ["AvgPool", dict(window_shape=[2, 2], strides=[1, 1], padding="SAME")],
                                                ["Flatten", {}], ["Dense", dict(out_dim=1, **DENSE)]]),
    "conv1d_avgpool_valid_gap": ((8, 3), [["Conv", dict(out_chan=8, filter_shape=[3], padding="SAME", **DENSE)],
                                          ["Relu", {}],
                                          ["AvgPool", dict(window_shape=[3], strides=[2], padding="VALID")],
                                          ["GlobalAvgPool", {}], ["Dense", dict(out_dim=1, **DENSE)]]),
    "residual_layernorm": ((4, 4, 2), [["Conv", dict(out_chan=8, filter_shape=[3, 3], padding="SAME", **DENSE)],
                                       ["Residual", [["Relu", {}], ["Conv", dict(out_chan=8, filter_shape=[3, 3],
                                                                                 padding="SAME", **DENSE)]]],
                                       ["LayerNorm", dict(axis=[1, 2, 3])], ["Relu", {}], ["GlobalAvgPool", {}],
                                       ["Dense", dict(out_dim=1, **DENSE)]]),
    "layernorm_channels": ((6, 2), [["Conv", dict(out_chan=8, filter_shape=[3], padding="SAME", **DENSE)],
                                    ["LayerNorm", dict(axis=-1)], ["Erf", {}], ["Flatten", {}],
                                    ["Dense", dict(out_dim=4, **DENSE)], ["LayerNorm", dict(axis=-1)], ["Relu", {}],
                                    ["Dense", dict(out_dim=1, **DENSE)]]),
    "conv2d_standard": ((4, 4, 3), [["Conv", dict(out_chan=8, filter_shape=[3, 3], padding="SAME", W_std=1.4,
                                                  b_std=0.3, parameterization="standard")], ["Relu", {}],
                                    ["AvgPool", dict(window_shape=[2, 2], strides=[2, 2], padding="VALID")],
                                    ["Flatten", {}],
                                    ["Dense", dict(out_dim=1, W_std=1.4, b_std=0.3, parameterization="standard")]]),
    "dense_on_positions": ((5, 3), [["Dense", dict(out_dim=8, **DENSE)], ["Relu", {}],
                                    ["Conv", dict(out_chan=8, filter_shape=[2], padding="VALID", **DENSE)],
                                    ["Relu", {}], ["GlobalAvgPool", {}], ["Dense", dict(out_dim=1, **DENSE)]]),
}


def build(layers):
    out = []
    for name, kwargs in layers:
        if name == "Residual":
            out.append(stax.serial(stax.FanOut(2), stax.parallel(stax.Identity(), build(kwargs)), stax.FanInSum()))
            continue
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
        out.append(getattr(stax, name)(**kwargs))
    return stax.serial(*out)


PREDICTIONS = {"case": "conv1d_same_gap", "seed": 100, "train": 6, "test": 3, "outputs": 2, "diag_reg": 1e-3,
               "times": [None, 0.5, 20.0]}


def predictions():
    """gradient_descent_mse_ensemble's test mean and covariance for one architecture, both gets."""
    spec = PREDICTIONS
    shape, layers = CASES[spec["case"]]
    rng = np.random.default_rng(spec["seed"])
    x_train, x_test = rng.standard_normal((spec["train"], *shape)), rng.standard_normal((spec["test"], *shape))
    y_train = rng.standard_normal((spec["train"], spec["outputs"]))
    predict_fn = nt.predict.gradient_descent_mse_ensemble(build(layers)[2], x_train, y_train,
                                                          diag_reg=spec["diag_reg"])
    out = []
    for t in spec["times"]:
        for get in ("nngp", "ntk"):
            mean, cov = predict_fn(t=t, x_test=x_test, get=get, compute_cov=True)
            out.append({"t": t, "get": get, "mean": np.asarray(mean).tolist(), "cov": np.asarray(cov).tolist()})
    return {**spec, "values": out}


def main():
    cases = {}
    for seed, (name, (shape, layers)) in enumerate(CASES.items()):
        rng = np.random.default_rng(seed)
        x1, x2 = rng.standard_normal((4, *shape)), rng.standard_normal((3, *shape))
        kernel_fn = build(layers)[2]
        pair, own = kernel_fn(x1, x2, ("nngp", "ntk")), kernel_fn(x1, None, ("nngp", "ntk"))
        cases[name] = {"seed": seed, "shape": list(shape), "layers": layers,
                       "nngp": np.asarray(pair.nngp).tolist(), "ntk": np.asarray(pair.ntk).tolist(),
                       "nngp_x1": np.asarray(own.nngp).tolist(), "ntk_x1": np.asarray(own.ntk).tolist()}
    json.dump({"neural_tangents": nt.__version__, "jax": jax.__version__, "cases": cases,
               "predictions": predictions()}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
