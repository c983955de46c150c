"""Argument checks: the one home of "is this a positive integer?" and its kin.

Every public entry point validates its arguments here, so that one kind of mistake always gets
one kind of error, worded one way:

- a bad VALUE for an argument or field the function knows (wrong type, out of range, not one
  of the choices, a pytree of the wrong structure): ``ValueError``, reading
  ``"<name> must be <what was expected>, got <value>"``;
- an unknown NAME of an option or hyper-parameter (a keyword the function does not take):
  ``TypeError``, as Python itself raises for an unexpected keyword argument, listing the
  accepted names;
- a loss that turned non-finite during training: ``FloatingPointError`` naming the step.

Counting conventions: booleans are not integers (``True`` is not a count), NumPy integers are;
floats are accepted where a number is expected, NaN never is.
"""
from __future__ import annotations

import numbers
from collections.abc import Collection, Iterable
from typing import Any

import jax
import numpy as np

__all__ = ["fail", "is_integer", "is_number", "integer", "number", "one_of", "known_options", "same_structure",
           "raise_if_not_finite"]

PyTree = Any


def fail(name: str, value: Any, expected: str):
    """Raise ``ValueError("<name> must be <expected>, got <value!r>")``."""
    raise ValueError(f"{name} must be {expected}, got {value!r}")


def is_integer(value: Any) -> bool:
    """True for Python and NumPy integers, False for booleans (of either kind) and the rest."""
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value: Any) -> bool:
    """True for real, non-NaN Python or NumPy scalars (0-d arrays included), False for booleans."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or np.ndim(value) != 0:
        return False
    if not isinstance(value, numbers.Real) and not np.issubdtype(np.asarray(value).dtype, np.number):
        return False
    try:
        return not np.isnan(float(value))
    except (TypeError, ValueError):
        return False


def integer(name: str, value: Any, *, minimum: int = 1, maximum: int | None = None, maximum_name: str | None = None,
            allow_none: bool = False) -> int | None:
    """``value`` as an ``int`` if it is an integer in ``[minimum, maximum]`` (None passes with
    ``allow_none``), else ``ValueError`` naming ``name``. ``maximum_name`` says what bounds it
    (e.g. ``'the number of parameters P'``)."""
    if value is None and allow_none:
        return None
    if minimum == 1:
        expected = "a positive integer"
    else:
        expected = f"an integer >= {minimum}"
    if allow_none:
        expected += " or None"
    if not is_integer(value) or value < minimum:
        fail(name, value, expected)
    if maximum is not None and value > maximum:
        bound = f"{maximum_name}={maximum}" if maximum_name else str(maximum)
        raise ValueError(f"{name}={value} exceeds {bound}")
    return int(value)


def number(name: str, value: Any, *, minimum: float | None = 0.0, inclusive: bool = False, maximum: float | None = None,
           finite: bool = True, allow_none: bool = False) -> float | None:
    """``value`` as a ``float`` if it is a real number above ``minimum`` (at or above it with
    ``inclusive``; no bound with ``minimum=None``) and at most ``maximum``; else ``ValueError``
    naming ``name``. The default is "a positive number"."""
    if value is None and allow_none:
        return None
    if minimum is None:
        expected = "a finite number" if finite else "a number"
    elif minimum == 0 and not inclusive:
        expected = "a positive number"
    else:
        expected = f"a number {'>=' if inclusive else '>'} {minimum:g}"
    if maximum is not None:
        expected += f" and <= {maximum:g}"
    if allow_none:
        expected += " or None"
    if not is_number(value):
        fail(name, value, expected)
    value = float(value)
    too_low = minimum is not None and (value < minimum if inclusive else value <= minimum)
    if too_low or (maximum is not None and value > maximum) or (finite and not np.isfinite(value)):
        fail(name, value, expected)
    return value


def one_of(name: str, value: Any, choices: Collection) -> Any:
    """``value`` if it is one of ``choices``, else ``ValueError`` naming ``name`` and listing them."""
    try:
        known = value in choices
    except TypeError:  # an unhashable value is not a choice
        known = False
    if not known:
        fail(name, value, f"one of {list(choices)}")
    return value


def known_options(what: str, given: Iterable[str], accepted: Iterable[str]) -> None:
    """``TypeError`` naming the options of ``given`` that ``what`` does not accept, and listing
    those it does."""
    accepted = list(accepted)
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise TypeError(f"{what} has no option {', '.join(map(repr, unknown))}; it accepts {accepted}")


def same_structure(name: str, value: PyTree, reference: PyTree, reference_name: str = "params") -> None:
    """``ValueError`` naming ``name`` unless ``value`` has the tree structure and leaf shapes of
    ``reference``."""
    if jax.tree.structure(value) != jax.tree.structure(reference):
        raise ValueError(f"{name} must have the structure of {reference_name}: {jax.tree.structure(value)} "
                         f"!= {jax.tree.structure(reference)}")
    for a, b in zip(jax.tree.leaves(value), jax.tree.leaves(reference)):
        if np.shape(a) != np.shape(b):
            raise ValueError(f"{name} has a leaf of shape {np.shape(a)} where {reference_name} has {np.shape(b)}")


def raise_if_not_finite(losses, *, what: str, first_step: int, epoch: int, seeds=None, hint: str) -> None:
    """``FloatingPointError`` at the first non-finite entry of ``losses`` (shape ``(S,)``, or
    ``(K, S)`` for K seeds), naming the step ``first_step + s``, the epoch and the seed."""
    losses = np.asarray(losses)
    bad = ~np.isfinite(losses)
    if not bad.any():
        return
    where = np.argwhere(bad)[0]
    seed_text = f" for seed {seeds[int(where[0])]}" if seeds is not None and losses.ndim > 1 else ""
    raise FloatingPointError(f"{what} became non-finite ({losses[tuple(where)]}) at step {first_step + int(where[-1])} "
                             f"(epoch {epoch}){seed_text}; {hint}")
