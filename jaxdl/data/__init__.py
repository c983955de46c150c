"""Data sets as NumPy arrays: the :class:`Dataset` record, ``load(name, **options)`` and its registry
(:mod:`jaxdl.data.registry`).

Embedded sets need no network and are deterministic given ``seed``
(:mod:`jaxdl.data.embedded`): ``digits``, ``mnist1d``, ``moons``, ``spirals``, ``teacher``,
``poly``, and the adding problem ``adding`` (:mod:`jaxdl.data.sequences`). File sets ``mnist``,
``fashion_mnist`` and ``cifar10`` (:mod:`jaxdl.data.files`) are read from a local folder by
:mod:`jaxdl.data.readers` and downloaded only with ``download=True``.
The graph task :func:`degree_graphs` (:mod:`jaxdl.data.graphs`) is built by its own function,
because standardising a packed graph would scramble its adjacency.
:func:`corrupt_labels` (:mod:`jaxdl.data.corruption`) replaces a fraction of a set's training labels
by random classes (Zhang et al. 2017's random labels; label noise).
:func:`process_shard` and :func:`spread_over_processes` (:mod:`jaxdl.data.processes`) let each
process of a distributed run hold only its rows of a set.
:func:`make_tasks` (:mod:`jaxdl.data.tasks`) cuts a set into a continual-learning task sequence:
permuted input features (:func:`permuted_tasks`) or classes in groups (:func:`class_split_tasks`).

Conventions: x is float32; classification y is int32 of shape (N,) with ``num_classes`` set;
regression y is float32 of shape (N, d_out) with ``num_classes=None``. Images are NHWC.
"""
from jaxdl.data.corruption import corrupt_labels, replace_labels
from jaxdl.data.dataset import Dataset, classification, standardize, streams, validation_split
from jaxdl.data.embedded import poly_true_function
from jaxdl.data.graphs import degree_graphs, degree_threshold, permute_graph_nodes, random_graphs
from jaxdl.data.processes import process_shard, spread_over_processes
from jaxdl.data.registry import LOADERS, RAW_BY_DEFAULT, get_loader, load
from jaxdl.data.sequences import ADDING_MEAN_PREDICTION_MSE, adding_problem
from jaxdl.data.tasks import TASK_SPLITS, class_split_tasks, make_tasks, permuted_tasks

__all__ = ["ADDING_MEAN_PREDICTION_MSE", "adding_problem", "class_split_tasks", "classification",
           "corrupt_labels", "Dataset", "degree_graphs", "degree_threshold", "get_loader", "load", "LOADERS",
           "make_tasks", "permute_graph_nodes", "permuted_tasks", "poly_true_function",
           "process_shard", "random_graphs", "spread_over_processes",
           "RAW_BY_DEFAULT", "replace_labels", "standardize", "streams", "TASK_SPLITS", "validation_split"]
