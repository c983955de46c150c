"""Matplotlib figures (Agg backend), one function per kind of figure.

Every function returns the `Figure`; given `path`, it also saves the figure there atomically
and closes it, so that long experiments do not accumulate open figures.
"""
from jaxdl.plot.base import bar_chart, line_plot, loglog_panels, panels, save_figure
from jaxdl.plot.continual import accuracy_matrix, task_curves
from jaxdl.plot.planes import contour_surface, decision_boundaries, decision_boundary, trajectories_2d
from jaxdl.plot.regions import linear_regions
from jaxdl.plot.studies import edge_of_stability, function_ensembles, parametric_plot, spectral_density

__all__ = ["accuracy_matrix", "bar_chart", "contour_surface", "decision_boundaries", "decision_boundary",
           "edge_of_stability", "function_ensembles", "line_plot", "linear_regions", "loglog_panels",
           "panels", "parametric_plot", "save_figure", "spectral_density", "task_curves", "trajectories_2d"]
