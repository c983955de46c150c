"""Neural tangent kernels: empirical, analytic and linearised (Jacot, Gabriel & Hongler 2018).

Functions of ``apply_fn(params, x)``, ``params`` and inputs, like the rest of the analysis
layer, for any model: a Flax Linen model through :func:`jaxdl.train.make_apply_fn`, a bare
function, or a Flax NNX model split into graph and state (``apply_fn = lambda state, x:
nnx.merge(graph, state)(x)``).

- empirical (:mod:`jaxdl.analysis.ntk.empirical`): :func:`empirical_ntk` by Jacobian contraction,
  NTK-vector products or structured derivatives (Novak et al. 2022), in blocks;
  :func:`ntk_vector_product`, matrix-free; :func:`ntk_top_eigenvalues`; :func:`monte_carlo_kernels`,
  the empirical kernels of any Flax module averaged over random initialisations;
- analytic (:mod:`jaxdl.analysis.ntk.analytic`): :func:`mlp_kernels`, the NNGP kernel and the NTK of an
  infinitely wide fully connected network (relu, erf, identity; NTK or standard
  parameterisation);
- infinite (:mod:`jaxdl.analysis.ntk.infinite`): a layer algebra with kernels, ``serial`` of
  :func:`Dense`, :func:`Conv` (1-D, 2-D), :class:`AvgPool`, :class:`GlobalAvgPool`,
  :class:`Flatten`, :class:`LayerNorm`, :class:`Residual` and the activations :func:`Relu`,
  :func:`Erf`, :func:`Identity`, :func:`Elementwise`: ``net.kernels(x1, x2)`` (the NNGP kernel and
  the NTK, CNTK included; neural-tangents' conventions and values) and ``net.module()`` (the
  finite network);
- predictions (:mod:`jaxdl.analysis.ntk.predictions`): :func:`gradient_descent_mse_predictions`, the
  outputs of gradient flow on the MSE in the kernel regime at any time, and
  :func:`linearize`, the linearised network.
"""
from jaxdl.analysis.ntk.analytic import mlp_kernels
from jaxdl.analysis.ntk.empirical import (METHODS, choose_method, empirical_ntk, monte_carlo_kernels, ntk_top_eigenvalues,
                                         ntk_vector_product)
from jaxdl.analysis.ntk.infinite import (AvgPool, Conv, Dense, Elementwise, Erf, Flatten, GlobalAvgPool, Identity,
                                         LayerNorm, Network, Relu, Residual, serial)
from jaxdl.analysis.ntk.predictions import Linearized, gp_predictions, gradient_descent_mse_predictions, linearize

__all__ = ["AvgPool", "Conv", "Dense", "Elementwise", "Erf", "Flatten", "GlobalAvgPool", "Identity", "LayerNorm",
           "METHODS", "Linearized", "Network", "Relu", "Residual", "choose_method", "empirical_ntk", "gp_predictions",
           "gradient_descent_mse_predictions", "linearize", "mlp_kernels", "monte_carlo_kernels",
           "ntk_top_eigenvalues", "ntk_vector_product", "serial"]
