"""Loss landscapes: directions, 1-D interpolation, 2-D surfaces and mode connectivity.

Every tool is a function of ``apply_fn(params, x)``, ``params`` and ``batch = (x_Nx..., y_N...)``
(the data set) and returns the data-set means of the loss ``loss_name`` (and, for
classification, the accuracy), accumulated over chunks of ``chunk_size`` examples
(:func:`jaxdl.train.evaluate`). A grid of points is one compiled program, reused by a second
call on the same model and shapes.

- directions (Li et al. 2018, "Visualizing the loss landscape of neural nets"):
  :func:`random_direction` (filter-, layer- or model-normalised), :func:`normalize_direction`,
  :func:`orthogonalize`, :func:`filter_norms`;
- evaluation: :func:`evaluate_params`; BatchNorm statistics frozen in ``apply_fn`` or recomputed
  at every point (:class:`BatchStats`, :func:`recompute_batch_stats`);
- 1-D (Goodfellow, Vinyals & Saxe 2015): :func:`interpolate`, :func:`interpolate_direction`,
  :func:`interpolation_alphas`;
- 2-D (Li et al. 2018): :func:`surface`, values of shape ``(len(ys), len(xs))``, resumable from
  an ``.npz`` file, points sharded over all devices;
- :func:`filter_normalized_sharpness`: the rise of the loss along filter-normalised random
  directions (Li et al. 2018), blind to the rescalings of Dinh et al. 2017;
- mode connectivity (Garipov et al. 2018): :func:`bezier_coefficients`,
  :func:`polychain_coefficients`, :func:`curve_coefficients`, :func:`curve_point`,
  :func:`init_bend`, :func:`fit_curve`, :func:`curve_metrics`, :func:`line_metrics`, and the
  path summaries :func:`barrier` and :func:`largest_rise`;
- trajectories (Li et al. 2018, section 7): :func:`trajectory_plane`, the top two principal
  directions of a run's iterates, their explained variance and the iterates' coordinates;
- convexity (Li et al. 2018, section 6): :func:`convexity_map`, the extreme Hessian eigenvalues
  and |lambda_min / lambda_max| at every point of a plane, and :func:`convexity_fraction`.

Only ``params`` are ever perturbed; model state is either closed over by ``apply_fn`` or, with
``BatchStats``, recomputed at each point.
"""
from jaxdl.analysis.landscape.connectivity import (CURVES, barrier, bezier_coefficients, curve_coefficients, curve_metrics,
                                          curve_point, fit_curve, init_bend, largest_rise, line_metrics,
                                          polychain_coefficients)
from jaxdl.analysis.landscape.directions import (NORMALIZATIONS, filter_norms, normalize_direction, orthogonalize,
                                        random_direction)
from jaxdl.analysis.landscape.evaluate import (BatchStats, evaluate_params, interpolate, interpolate_direction,
                                      interpolation_alphas, recompute_batch_stats)
from jaxdl.analysis.landscape.sharpness import filter_normalized_sharpness
from jaxdl.analysis.landscape.surfaces import POINTS_PER_CHUNK, surface
from jaxdl.analysis.landscape.trajectories import TrajectoryPlane, trajectory_plane
from jaxdl.analysis.landscape.convexity import convexity_fraction, convexity_map

__all__ = [
    "NORMALIZATIONS", "filter_norms", "normalize_direction", "orthogonalize", "random_direction",
    "BatchStats", "evaluate_params", "interpolate", "interpolate_direction", "interpolation_alphas",
    "recompute_batch_stats", "POINTS_PER_CHUNK", "surface", "filter_normalized_sharpness",
    "CURVES", "barrier", "bezier_coefficients", "curve_coefficients", "curve_metrics", "curve_point", "fit_curve",
    "init_bend", "largest_rise", "line_metrics", "polychain_coefficients",
    "TrajectoryPlane", "trajectory_plane", "convexity_fraction", "convexity_map",
]
