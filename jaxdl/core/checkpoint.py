"""Checkpoints through Orbax: save a pytree per epoch, restore the latest.

Orbax writes arrays in its own format (TensorStore/OCDBT), never pickles, and commits
each step atomically, so an interrupted save leaves the previous checkpoint usable.
"""
from __future__ import annotations

import os
from typing import Any

import jax
import orbax.checkpoint as ocp

__all__ = ["Checkpointer"]


class Checkpointer:
    """Keep the last ``max_to_keep`` checkpoints of a pytree in ``directory``."""

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 2):
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        """The latest saved step, or None when the folder holds no checkpoint."""
        return self._manager.latest_step()

    def save(self, step: int, tree: Any) -> None:
        """Save ``tree`` at ``step`` and wait until it is committed to disk."""
        self._manager.save(step, args=ocp.args.StandardSave(tree))
        self._manager.wait_until_finished()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """Restore the checkpoint at ``step`` (default latest) into the structure of ``like``."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

    def close(self) -> None:
        self._manager.close()
