"""An experiment's config: sizes as data, and field checks by declaration.

An experiment module declares

    def get_config() -> ml_collections.ConfigDict      # the default size
    SIZES = {"quick": {"epochs": 2, "eos.steps": 60}, "full": {...}}   # overrides per size
    FIELDS = {"epochs": positive_int, "tasks.*.learning_rate": positive,
              "eos.steps": expect(lambda v, c: v % c.eos.steps_per_call == 0,
                                  "a multiple of eos.steps_per_call")}

`config_for(module, size)` builds a size's config: the default, then each dotted key of
`SIZES[size]` assigned in order (a dict value replaces the whole group). `validate(module,
config)` runs every declared check; a `*` in a field's name stands for every key of a group.
A failed check raises `ValueError("config.<field> must be <expected>, got <value>")`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import ml_collections

from jaxdl.core import checks, io

SIZES = ("quick", "default", "full")


def check_size(size: str) -> None:
    """Raises `ValueError` unless `size` is one of `SIZES`."""
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {', '.join(SIZES)}")


# ----------------------------------------------------------------------------- fields


def field_value(config: ml_collections.ConfigDict, field: str) -> Any:
    """The value of the dotted `field` in `config`; `LookupError` if the config has no such field."""
    node = config
    for name in field.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or name not in node:
            raise LookupError(field)
        node = node[name]
    return node


def set_field(config: ml_collections.ConfigDict, field: str, value: Any) -> None:
    """Assigns `value` to the dotted `field` (whose parent groups must exist); a dict value
    becomes a ConfigDict group."""
    *parents, name = field.split(".")
    node = config
    for parent in parents:
        node = node[parent]
    if isinstance(value, Mapping):
        value = ml_collections.ConfigDict(dict(value))
    with node.ignore_type():  # a size may change a field's type (None -> an int, a group -> another)
        node[name] = value


def flatten_config(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    """Dotted field name -> value for every leaf of a (nested) ConfigDict."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict) and len(value):
            flat.update(flatten_config(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


def config_hash(config: ml_collections.ConfigDict) -> str:
    """A stable digest of a config's values (for resuming: same config, same digest)."""
    text = json.dumps(io.to_builtin(config), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def config_for(module: ModuleType, size: str = "default") -> ml_collections.ConfigDict:
    """`module.get_config()` with `module.SIZES[size]`'s overrides applied.

    Raises:
      ValueError: an unknown size, or an override naming a field the default config lacks.
    """
    check_size(size)
    config = module.get_config()
    overrides = getattr(module, "SIZES", {}).get(size, {})
    for field, value in overrides.items():
        parent, _, name = field.rpartition(".")
        try:
            group = field_value(config, parent) if parent else config
        except LookupError:
            group = None
        if not isinstance(group, ml_collections.ConfigDict) or name not in group:
            raise ValueError(f"{module.NAME}.SIZES[{size!r}] sets {field!r}, which is not a field of get_config()")
        set_field(config, field, value)
    return config


# ----------------------------------------------------------------------------- checks


@dataclasses.dataclass(frozen=True)
class Expect:
    """A declared field check: `predicate(value)` (or `predicate(value, config)` when
    `uses_config`) must be true; `expected` says what in words. A predicate that raises
    counts as false."""

    predicate: Callable[..., Any]
    expected: str
    uses_config: bool = False

    def holds(self, value: Any, config: ml_collections.ConfigDict) -> bool:
        try:
            return bool(self.predicate(value, config) if self.uses_config else self.predicate(value))
        except (TypeError, ValueError, KeyError, AttributeError, ZeroDivisionError):
            return False


def expect(predicate: Callable[..., Any], expected: str, *, uses_config: bool = False) -> Expect:
    """A field check from a predicate and its words (see `Expect`)."""
    return Expect(predicate, expected, uses_config)


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (tuple, list))


positive_int = expect(lambda v: checks.is_integer(v) and v > 0, "a positive integer")
non_negative_int = expect(lambda v: checks.is_integer(v) and v >= 0, "a non-negative integer")
positive = expect(lambda v: checks.is_number(v) and 0 < v < float("inf"), "a positive number")
non_negative = expect(lambda v: checks.is_number(v) and 0 <= v < float("inf"), "a non-negative number")
probability = expect(lambda v: checks.is_number(v) and 0 <= v <= 1, "a number in [0, 1]")
positive_ints = expect(lambda v: _is_sequence(v) and len(v) > 0 and all(checks.is_integer(x) and x > 0 for x in v),
                       "a non-empty sequence of positive integers")
positives = expect(lambda v: _is_sequence(v) and len(v) > 0 and all(checks.is_number(x) and x > 0 for x in v),
                   "a non-empty sequence of positive numbers")
increasing = expect(lambda v: _is_sequence(v) and all(a < b for a, b in zip(v, v[1:])), "strictly increasing")


def one_of(*choices: Any) -> Expect:
    """The value is one of `choices`."""
    return expect(lambda v: v in choices, f"one of {list(choices)}")


def subset_of(*choices: Any) -> Expect:
    """The value is a non-empty sequence of names from `choices`."""
    return expect(lambda v: _is_sequence(v) and len(v) > 0 and set(v) <= set(choices),
                  f"a non-empty sequence of names among {list(choices)}")


def at_least(minimum: float) -> Expect:
    """A number >= `minimum`."""
    return expect(lambda v: checks.is_number(v) and v >= minimum, f"a number >= {minimum:g}")


def _matching_fields(config: ml_collections.ConfigDict, pattern: str) -> list[str]:
    """The dotted fields matching `pattern`, where a `*` part matches every key of a group."""
    fields = [""]
    for part in pattern.split("."):
        expanded = []
        for prefix in fields:
            node = field_value(config, prefix) if prefix else config
            if not isinstance(node, ml_collections.ConfigDict):
                continue
            names = list(node) if part == "*" else [part] if part in node else []
            expanded += [f"{prefix}.{name}" if prefix else name for name in names]
        fields = expanded
    return fields


def validate(module: ModuleType, config: ml_collections.ConfigDict) -> None:
    """Runs `module.FIELDS`' checks on `config`.

    Raises:
      ValueError: "config.<field> must be <expected>, got <value>" for the first field that
        fails; or naming a declared field that matches nothing in the config.
    """
    for pattern, declared in getattr(module, "FIELDS", {}).items():
        fields = _matching_fields(config, pattern)
        if not fields and "*" not in pattern:
            raise ValueError(f"{module.NAME}.FIELDS checks {pattern!r}, which is not a field of the config")
        for check in declared if isinstance(declared, tuple) else (declared,):
            for field in fields:
                value = field_value(config, field)
                if not check.holds(value, config):
                    checks.fail(f"config.{field}", value, check.expected)
