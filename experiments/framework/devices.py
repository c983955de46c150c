"""Device-aware defaults: config sizes that use the devices a run finds.

An experiment module declares which of its config fields depend on the devices, as a dict from
the dotted field name to its kind::

    DEVICE_FIELDS = {"seeds": "seeds", "adding.num_seeds": "seeds", "chunk_size": "examples_per_chunk"}

and :func:`resolve_device_defaults` (pure: a new config and the changes, in words) sizes those
fields for ``num_devices`` devices (of a ``platform``, 'cpu', 'gpu' or 'tpu', named in the
changes; the library's own chunk defaults pick by backend). The runner (``experiments.framework.runner``)
calls it, through :func:`for_run`, after ``jax.distributed.initialize`` and before the
experiment's ``run``, when the run is device-aware: by default for ``--size full`` only,
otherwise as ``--config.device_aware=true|false`` says. The quick and default sizes therefore
run the same config on any machine; a full run on 8 TPU cores
trains 8 seeds where its config asks for 5.

The rules, one per kind, each for D devices:

- ``seeds`` -- a seed count (an int K) is rounded UP to a multiple of D, so that ``fit_seeds``
  (and every program built on ``jaxdl.core.meshes.seeds_mesh``) trains the seeds side by side, K / D on each
  device, instead of leaving devices idle or splitting small batches (5 seeds on 8 devices
  become 8, 9 become 16). A tuple of seeds is extended with consecutive seeds after its largest
  to such a length: ``(0, 1)`` on 8 devices becomes ``(0, 1, ..., 7)``.
- ``examples_per_chunk`` -- an evaluation chunk size (examples of a data set evaluated at once,
  the ``chunk_size`` of the curvature tools, which split each chunk's examples over the
  devices) is multiplied by D, so each device keeps the per-device chunk the config was tuned
  for. None (all at once) stays None.
- ``points_per_chunk`` -- grid points evaluated together (a loss surface, whose points are split
  over the devices) is multiplied by D, as an examples chunk is: each device keeps the points
  (and so the memory) per chunk the config was tuned for; a full-size ResNet surface at 64
  points per device would not fit a Colab TPU core. None and 'auto' (which picks by backend,
  :func:`jaxdl.analysis.landscape.surface`) stay as they are.

Declare a field only where the experiment spreads that work over the devices: a seed count
looped over in Python, or a chunk evaluated on one device, would only grow. TRAINING batch
sizes are never changed: they are part of the science (small against large batches in
``sharp_flat``, the learning rate to batch size ratio in ``implicit_regularization``), so a run
on 8 devices trains with the batch its config names, split over the devices that divide it.

A field given on the command line (``--config.<field>=value``, passed as ``overridden``) is
never changed, nor is any field below an overridden one. With one CPU device nothing changes.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import ml_collections

from experiments.framework.config import field_value, set_field
from jaxdl.core import checks

KINDS = ("seeds", "examples_per_chunk", "points_per_chunk")


class DeviceDefaults(NamedTuple):
    """What the runner did to a config: the config ``run`` got, the changes in words, whether
    the run was device-aware, and the devices it sized for (None when it was not)."""

    config: ml_collections.ConfigDict
    changes: tuple[str, ...]
    device_aware: bool
    num_devices: int | None = None
    platform: str | None = None

    def line(self) -> str:
        """One line for the console and the report."""
        if not self.device_aware:
            return "device-aware defaults: off"
        if not self.changes:
            return f"device-aware defaults: no change ({_devices_text(self.num_devices, self.platform)})"
        return f"device-aware defaults: {'; '.join(self.changes)}"


def _devices_text(num_devices: int, platform: str) -> str:
    return f"{num_devices} {platform} device{'' if num_devices == 1 else 's'}"


# ----------------------------------------------------------------------------- fields


def check_fields(config: ml_collections.ConfigDict, fields: Mapping[str, str]) -> None:
    """Raises ``ValueError`` naming the field unless every key of ``fields`` (an experiment's
    ``DEVICE_FIELDS``) is a field of ``config`` and every value one of ``KINDS``."""
    if not isinstance(fields, Mapping):
        checks.fail("DEVICE_FIELDS", fields, "a dict of dotted config field -> kind")
    for field, kind in fields.items():
        if kind not in KINDS:
            checks.fail(f"DEVICE_FIELDS[{field!r}]", kind, f"one of {', '.join(KINDS)}")
        try:
            value = field_value(config, field)
        except LookupError:
            raise ValueError(f"DEVICE_FIELDS names {field!r}, which is not a field of the config") from None
        if isinstance(value, ml_collections.ConfigDict):
            checks.fail(f"DEVICE_FIELDS[{field!r}]", field, "a leaf field of the config, not a group")


def _is_overridden(field: str, overridden: Sequence[str]) -> bool:
    return any(field == name or field.startswith(name + ".") for name in overridden)


# ----------------------------------------------------------------------------- the rules


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _seeds(name: str, value: Any, num_devices: int) -> Any:
    if isinstance(value, (tuple, list)):
        if not value or not all(checks.is_integer(seed) and seed >= 0 for seed in value):
            checks.fail(name, value, "a seed count or a non-empty tuple of non-negative integer seeds")
        extra = _round_up(len(value), num_devices) - len(value)
        return tuple(value) + tuple(range(max(value) + 1, max(value) + 1 + extra))
    return _round_up(checks.integer(name, value), num_devices)


def _examples_per_chunk(name: str, value: Any, num_devices: int) -> Any:
    value = checks.integer(name, value, allow_none=True)
    return None if value is None else value * num_devices


def _points_per_chunk(name: str, value: Any, num_devices: int) -> Any:
    if value == "auto":
        return value
    return _examples_per_chunk(name, value, num_devices)


_RULES = {"seeds": _seeds, "examples_per_chunk": _examples_per_chunk, "points_per_chunk": _points_per_chunk}


def resolve_device_defaults(config: ml_collections.ConfigDict, fields: Mapping[str, str], *, num_devices: int,
                            platform: str, overridden: Sequence[str] = ()
                            ) -> tuple[ml_collections.ConfigDict, list[str]]:
    """``config`` with its device-dependent ``fields`` sized for ``num_devices`` devices of
    ``platform``, by the rules of this module's docstring.

    Args:
      config: an experiment's config; not changed (a copy is returned).
      fields: dotted field name -> kind, one of ``KINDS`` (an experiment's ``DEVICE_FIELDS``).
      num_devices: D, the devices the run sees (every process's, in a distributed run).
      platform: 'cpu', 'gpu', 'tpu' (case ignored), named in the changes; the rules depend on the
        count only.
      overridden: dotted names given on the command line; they, and the fields below them,
        keep their values.

    Returns:
      ``(resolved config, changes)``; each change reads like "seeds: 5 -> 8 (8 tpu devices)".

    Raises:
      ValueError: naming the field, for a field missing from ``config``, an unknown kind, a
        value the kind cannot take, or a bad ``num_devices`` or ``platform``.
    """
    num_devices = checks.integer("num_devices", num_devices)
    if not isinstance(platform, str) or not platform:
        checks.fail("platform", platform, "a platform name such as 'cpu', 'gpu' or 'tpu'")
    platform = platform.lower()
    check_fields(config, fields)
    resolved = copy.deepcopy(config)
    devices = _devices_text(num_devices, platform)
    changes = []
    for field, kind in fields.items():
        if _is_overridden(field, overridden):
            continue
        value = field_value(config, field)
        new = _RULES[kind](f"config.{field}", value, num_devices)
        if new != value:
            set_field(resolved, field, new)
            changes.append(f"{field}: {value!r} -> {new!r} ({devices})")
    return resolved, changes


# ----------------------------------------------------------------------------- in a run


def for_run(module: Any, config: ml_collections.ConfigDict, *, device_aware: bool,
            overridden: Sequence[str] = ()) -> DeviceDefaults:
    """What the runner does before ``module.run``: checks ``module.DEVICE_FIELDS`` (empty if the
    module declares none) against ``config`` and, when ``device_aware``, resolves them for
    ``jax.device_count()`` devices of ``jax.default_backend()``. Call it after
    ``jax.distributed.initialize``: the devices are not looked at before, nor at all when the run
    is not device-aware."""
    fields = getattr(module, "DEVICE_FIELDS", {})
    check_fields(config, fields)
    if not device_aware:
        return DeviceDefaults(config, (), False)
    num_devices, platform = jax.device_count(), jax.default_backend()
    resolved, changes = resolve_device_defaults(config, fields, num_devices=num_devices, platform=platform,
                                                overridden=overridden)
    return DeviceDefaults(resolved, tuple(changes), True, num_devices, platform.lower())


def with_device_section(sections: list[tuple[str, str]], devices: DeviceDefaults) -> list[tuple[str, str]]:
    """A report's ``sections`` with a "Devices" section (``devices.line()``) after its "Config"
    section, when the run was device-aware; unchanged otherwise."""
    if not devices.device_aware:
        return sections
    names = [name for name, _ in sections]
    at = names.index("Config") + 1 if "Config" in names else len(sections)
    return [*sections[:at], ("Devices", devices.line()), *sections[at:]]
