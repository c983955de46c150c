"""Label corruption: a fraction of the training labels replaced by random classes.

Zhang, Bengio, Hardt, Recht & Vinyals 2017 ("Understanding deep learning requires rethinking
generalization") train on labels of which a fraction p was replaced by classes drawn uniformly at
random (p = 1: entirely random labels) and find that networks still fit the training set exactly,
while test accuracy falls to chance. The same knob is the label noise of double-descent studies.

Exactly ``round(fraction * N)`` training labels are replaced (Python's ``round``), the rest and
every test label are left as they are. For one seed the replaced examples of a smaller fraction are
a subset of those of a larger one, with the same new labels, so a curve over fractions varies only
in how much is corrupted.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from jaxdl.core import checks
from jaxdl.data.dataset import Dataset, streams

__all__ = ["REPLACEMENTS", "replace_labels", "corrupt_labels"]

REPLACEMENTS = ("uniform", "different")


def replace_labels(labels_N: np.ndarray, num_classes: int, fraction: float, seed: int = 0,
                   replacement: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """``(new_labels_N, replaced_N)``: ``labels_N`` with ``round(fraction * N)`` entries replaced.

    The replaced entries (``replaced_N``, a boolean mask with exactly that many True) are the first
    of a random permutation of the examples. ``replacement='uniform'`` (Zhang et al. 2017) draws the
    new label uniformly from all ``num_classes`` classes, so about 1 / num_classes of the replaced
    labels keep their class by chance; ``'different'`` draws it uniformly from the other
    ``num_classes - 1`` classes, so every replaced label changes.

    Raises ``ValueError`` naming ``fraction`` outside [0, 1], and naming the other arguments when
    they are invalid (labels not integers in [0, num_classes)).
    """
    fraction = checks.number("fraction", fraction, minimum=0.0, inclusive=True, maximum=1.0)
    num_classes = checks.integer("num_classes", num_classes, minimum=2)
    seed = checks.integer("seed", seed, minimum=0)
    checks.one_of("replacement", replacement, REPLACEMENTS)
    labels_N = np.asarray(labels_N)
    if labels_N.ndim != 1 or not np.issubdtype(labels_N.dtype, np.integer):
        checks.fail("labels", f"array of shape {labels_N.shape} and dtype {labels_N.dtype}",
                    "a 1-D array of integer class labels")
    if labels_N.size and (labels_N.min() < 0 or labels_N.max() >= num_classes):
        checks.fail("labels", f"values in [{labels_N.min()}, {labels_N.max()}]", f"classes in [0, {num_classes})")
    count = len(labels_N)
    subset_rng, label_rng = streams(seed, 2)
    # Every example gets its candidate label whether or not it is replaced, so that the draws of
    # one example do not depend on the fraction (nested corruptions across fractions).
    replaced_N = np.zeros(count, bool)
    replaced_N[subset_rng.permutation(count)[:round(fraction * count)]] = True
    if replacement == "uniform":
        candidates_N = label_rng.integers(0, num_classes, count)
    else:
        candidates_N = (labels_N + label_rng.integers(1, num_classes, count)) % num_classes
    new_labels_N = np.where(replaced_N, candidates_N, labels_N).astype(labels_N.dtype)
    return new_labels_N, replaced_N


def corrupt_labels(data: Dataset, fraction: float, seed: int = 0, replacement: str = "uniform") -> Dataset:
    """``data`` with ``round(fraction * N_train)`` training labels replaced by random classes
    (:func:`replace_labels`; ``'uniform'`` as in Zhang et al. 2017, or ``'different'``); x and the
    test set are unchanged. ``fraction=1`` gives entirely random training labels.

    Raises ``ValueError`` naming ``fraction`` outside [0, 1], or ``data`` for a regression set.
    """
    if data.num_classes is None:
        checks.fail("data", f"regression data set {data.name!r}", "a classification data set (num_classes set)")
    y_train, _ = replace_labels(data.y_train, data.num_classes, fraction, seed, replacement)
    return dataclasses.replace(data, y_train=y_train)
