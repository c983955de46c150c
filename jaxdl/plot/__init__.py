"""Matplotlib figures, one function per kind of figure.

Every function builds and returns a :class:`matplotlib.figure.Figure` without pyplot (so the
backend is never switched, notebooks keep inline figures, and nothing accumulates in pyplot's
global state); given `path`, it also saves the figure there atomically. :func:`subplots` and
:func:`colormap` are the two building blocks, for figures of your own.
"""
from jaxdl.plot.base import bar_chart, colormap, line_plot, loglog_panels, panels, save_figure, subplots
from jaxdl.plot.continual import accuracy_matrix, task_curves
from jaxdl.plot.planes import contour_surface, decision_boundaries, decision_boundary, trajectories_2d
from jaxdl.plot.regions import linear_regions
from jaxdl.plot.studies import (edge_of_stability, function_ensembles, parametric_plot, spectral_densities,
                                 spectral_density)

__all__ = ["accuracy_matrix", "bar_chart", "contour_surface", "decision_boundaries", "decision_boundary",
           "edge_of_stability", "function_ensembles", "line_plot", "linear_regions", "loglog_panels",
           "panels", "parametric_plot", "save_figure", "spectral_densities", "spectral_density", "task_curves",
           "trajectories_2d",
           "colormap", "subplots"]
