"""Curvature of the loss: Hessian-vector products, spectra, traces and sharpness.

Every tool works on any ``loss_fn(params, batch) -> scalar`` (a mean over the batch; build one
with :func:`jaxdl.train.losses.make_loss_fn`), any pytree ``params`` and a ``batch``: a pytree whose
leaves share a leading example axis (the data set the curvature is measured on). Full-data
quantities are size-weighted means over chunks of ``chunk_size`` examples
(:func:`jaxdl.core.batching.dataset_mean`). Each public function is one compiled program, reused by a
second call on the same model and shapes (:mod:`jaxdl.core.compiled`).

- products: :func:`hvp` (Pearlmutter 1994), :func:`gauss_newton_vp` (Schraudolph 2002) and
  their flat operators :func:`hessian_matvec` (with the gradient:
  :func:`gradient_and_hessian_matvec`), :func:`gauss_newton_matvec`; the quadratic
  form :func:`hessian_quadratic_form` (forward-over-forward);
- eigenpairs: :func:`hessian_top_eigenvalues` and :func:`hessian_bottom_eigenvalues` (Lanczos
  with full reorthogonalisation, the k largest or smallest, a fixed number of steps or to a
  relative tolerance on the eigenvalues estimated from the Ritz residuals, then
  3 or 6 steps more (:func:`default_extra_steps`); the top eigenvalue started along the gradient,
  :func:`start_vector`), :func:`gauss_newton_top_eigenvalues` (the same on the Gauss-Newton
  matrix), :func:`hessian_power_iteration` (with deflation, for comparison), and
  :class:`SharpnessProbe`, the top eigenvalue tracked inside a compiled training loop
  (warm-started Lanczos); the Lanczos recurrence itself is :mod:`jaxdl.core.linalg`'s;
- :func:`hessian_trace` (Hutchinson 1989), :func:`hessian_spectral_density` and
  :func:`gauss_newton_spectral_density` (stochastic Lanczos quadrature, Ghorbani et al. 2019);
- reading a spectrum: :func:`spectral_mass` and :func:`spectral_index` (the fraction of
  eigenvalues below, above or between thresholds from a density, with a standard error over
  its runs; the index of Dauphin et al. 2014), :func:`hessian_outliers` and
  :func:`gauss_newton_outliers` (the top eigenvalues and the outliers above their largest
  ratio, :func:`outlier_count`; Sagun et al. 2017, Papyan 2019), and
  :func:`hessian_gauss_newton_residual` (H, G and H - G in a subspace, Papyan 2019);
- sharpness: :func:`epsilon_sharpness` (Keskar et al. 2017) and :func:`ball_sharpness`
  (Dinh et al. 2017);
- generalisation measures (:mod:`~jaxdl.analysis.curvature.measures`, Jiang et al. 2020):
  :func:`adaptive_sharpness` (Kwon et al. 2021), :func:`pac_bayes_flatness` (plain and
  magnitude-aware), :func:`fisher_rao_norm`, :func:`path_norm`, :func:`spectral_norms`,
  :func:`parameter_norm`, :func:`distance_to_init` and :func:`output_margin`;
- reparametrisation (Dinh et al. 2017): :func:`alpha_scale` (T_a, the same function with
  another Hessian), :func:`alpha_scaling_blocks` and :func:`alpha_scaled_trace` (the trace
  it predicts from per-block traces, ``hessian_trace(..., where=mask)``).
"""
from jaxdl.analysis.curvature.hvp import (gauss_newton_matvec, gauss_newton_vp, gradient_and_hessian_matvec, hessian_matvec,
                                 hessian_quadratic_form, hvp)
from jaxdl.analysis.curvature.eigen import (EXTRA_STEPS, EXTRA_STEPS_ONE, Eigenpairs, PowerIteration, SharpnessProbe,
                                            gauss_newton_top_eigenvalues, hessian_bottom_eigenvalues,
                                            hessian_power_iteration, hessian_top_eigenvalues, start_vector)
from jaxdl.analysis.curvature.reparametrization import (alpha_scale, alpha_scaled_trace, alpha_scaling, alpha_scaling_blocks,
                                               layer_paths)
from jaxdl.analysis.curvature.sharpness import Sharpness, ball_sharpness, epsilon_sharpness
from jaxdl.analysis.curvature.measures import (PacBayesFlatness, adaptive_sharpness, distance_to_init, fisher_rao_norm,
                                               output_margin, pac_bayes_flatness, parameter_norm, path_norm,
                                               spectral_norms)
from jaxdl.analysis.curvature.stochastic import (PROBES_PER_CHUNK, SpectralDensity, TraceEstimate, default_probes_per_chunk,
                                        gauss_newton_spectral_density, hessian_spectral_density, hessian_trace)
from jaxdl.analysis.curvature.spectrum import (Outliers, SpectralMass, SubspaceResidual, gauss_newton_outliers,
                                               hessian_gauss_newton_residual, hessian_outliers, outlier_count,
                                               spectral_index, spectral_mass)

__all__ = [
    "gauss_newton_matvec", "gauss_newton_vp", "gradient_and_hessian_matvec", "hessian_matvec",
    "hessian_quadratic_form", "hvp",
    "EXTRA_STEPS", "EXTRA_STEPS_ONE", "default_extra_steps", "Eigenpairs", "PowerIteration", "SharpnessProbe", "gauss_newton_top_eigenvalues",
    "hessian_bottom_eigenvalues", "hessian_power_iteration", "hessian_top_eigenvalues",
    "start_vector",
    "Sharpness", "ball_sharpness", "epsilon_sharpness",
    "PacBayesFlatness", "adaptive_sharpness", "distance_to_init", "fisher_rao_norm", "output_margin",
    "pac_bayes_flatness", "parameter_norm", "path_norm", "spectral_norms",
    "alpha_scale", "alpha_scaled_trace", "alpha_scaling", "alpha_scaling_blocks", "layer_paths",
    "PROBES_PER_CHUNK", "SpectralDensity", "TraceEstimate", "default_probes_per_chunk", "gauss_newton_spectral_density",
    "hessian_spectral_density", "hessian_trace",
    "Outliers", "SpectralMass", "SubspaceResidual", "gauss_newton_outliers", "hessian_gauss_newton_residual",
    "hessian_outliers", "outlier_count", "spectral_index", "spectral_mass",
]
