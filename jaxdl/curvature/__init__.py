"""Curvature of the loss: Hessian-vector products, spectra, traces and sharpness.

Every tool works on any ``loss(params, batch) -> scalar`` (a mean over the batch), any pytree
``params`` and a pytree ``data`` with a leading example axis; full-data quantities are
size-weighted means over chunks of ``chunk_size`` examples. Each public function is one
compiled program (pass the same ``loss`` object on every call to reuse it).

- products: :func:`hvp` (Pearlmutter 1994), :func:`gauss_newton_vp` (Schraudolph 2002), their
  flat operators :func:`hessian_matvec`, :func:`gauss_newton_matvec`, and :func:`chunked_mean`;
- eigenpairs: :func:`hessian_top_eigenvalues` (Lanczos with full reorthogonalisation, top or
  bottom k), :func:`hessian_power_iteration` (with deflation, for comparison), the generic
  :func:`lanczos`;
- :func:`hessian_trace` (Hutchinson 1989) and :func:`hessian_spectral_density` (stochastic
  Lanczos quadrature, Ghorbani et al. 2019);
- sharpness: :func:`epsilon_sharpness` (Keskar et al. 2017) and :func:`ball_sharpness`
  (Dinh et al. 2017).
"""
from jaxdl.curvature.hvp import (chunked_mean, gauss_newton_matvec, gauss_newton_vp, hessian_matvec, hvp,
                                 num_examples)
from jaxdl.curvature.eigen import (Eigenpairs, LanczosResult, PowerIteration, hessian_power_iteration,
                                     hessian_top_eigenvalues, lanczos, ritz_pairs, tridiagonal)
from jaxdl.curvature.sharpness import Sharpness, ball_sharpness, epsilon_sharpness
from jaxdl.curvature.stochastic import SpectralDensity, TraceEstimate, hessian_spectral_density, hessian_trace

__all__ = [
    "chunked_mean", "gauss_newton_matvec", "gauss_newton_vp", "hessian_matvec", "hvp", "num_examples",
    "Eigenpairs", "LanczosResult", "PowerIteration", "hessian_power_iteration", "hessian_top_eigenvalues",
    "lanczos", "ritz_pairs", "tridiagonal",
    "Sharpness", "ball_sharpness", "epsilon_sharpness",
    "SpectralDensity", "TraceEstimate", "hessian_spectral_density", "hessian_trace",
]
