"""The run directory: config, metrics, results, figures and report, all written atomically.

A run directory holds

    config.json     the full configuration of the run
    metrics.jsonl   one JSON object per logged step, flushed as it is made
    results.npz     named NumPy arrays (never pickled)
    <name>.png      figures
    report.md       a human-readable report

Every whole-file write goes to a temporary file in the same folder and is then moved into place
with `os.replace`, so a reader never sees a half-written file.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "to_builtin", "save_json", "load_json",
           "MetricsLogger", "TaggedLogger", "read_metrics", "save_npz", "load_npz", "RunDir", "markdown_sections",
           "write_report"]

PathLike = str | os.PathLike


@contextlib.contextmanager
def atomic_path(path: PathLike, suffix: str = ".tmp") -> Iterator[str]:
    """Context manager: yields a temporary path beside `path` to write to.

    On a clean exit the temporary file replaces `path`; on an error it is removed and `path`
    is left untouched. `suffix` lets writers that choose a format by extension (`np.savez`,
    `Figure.savefig`) see the right one.

    The temporary file lives in the same folder so that `os.replace` is a rename on one file
    system, which is atomic.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=folder)
    os.close(fd)
    try:
        # mkstemp makes the file private (0600); the final file gets ordinary permissions.
        os.chmod(tmp, 0o644)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Writes `data` to `path` atomically (temporary file in the same folder, then rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: PathLike, text: str) -> None:
    """Writes `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_builtin(obj: Any) -> Any:
    """Converts NumPy / JAX scalars and arrays (also nested in dicts, lists, tuples) to Python.

    Non-finite floats are kept as Python floats (`json` writes them as NaN / Infinity).
    """
    if isinstance(obj, Mapping):
        return {str(k): to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_builtin(v) for v in obj]
    if isinstance(obj, (str, bool, int, float)) or obj is None:
        return obj
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) or hasattr(obj, "__array__"):
        # jax.Array and other array-likes go through NumPy; a 0-d array becomes a scalar.
        return np.asarray(obj).tolist()
    if hasattr(obj, "to_dict"):  # ml_collections.ConfigDict
        return to_builtin(obj.to_dict())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"save_json: cannot convert object of type {type(obj).__name__} to JSON")


def save_json(path: PathLike, obj: Any) -> None:
    """Writes `obj` as JSON (indent 2, sorted keys) atomically, converting NumPy / JAX values."""
    text = json.dumps(to_builtin(obj), indent=2, sort_keys=True)
    atomic_write_text(path, text + "\n")


def load_json(path: PathLike) -> Any:
    """Reads a JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _drop_partial_last_line(path: str, chunk_size: int = 1 << 16) -> None:
    """Truncates `path` after its last newline (nothing to do when it ends with one)."""
    with open(path, "rb+") as f:
        end = f.seek(0, os.SEEK_END)
        position = end
        while position > 0:
            start = max(0, position - chunk_size)
            f.seek(start)
            chunk = f.read(position - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                cut = start + newline + 1
                break
            position = start
        else:
            cut = 0
        if cut != end:
            f.truncate(cut)


class MetricsLogger:
    """Appends one JSON line per `log` call to a metrics file, flushed each time (and fsynced
    on close: a killed process loses nothing it logged, a lost machine at most the OS buffer).

    An interrupted run keeps every line it logged; at worst the last line is truncated, which
    `read_metrics` skips. A logger opened on such a file (a resumed run) first cuts the
    truncated line off, so that its own lines stay parseable.
    """

    def __init__(self, path: PathLike):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        if os.path.exists(self.path):
            _drop_partial_last_line(self.path)
        self._file = open(self.path, "a", encoding="utf-8")

    def log(self, step: int, **metrics: Any) -> None:
        """Appends `{"step": step, **metrics}` as one line."""
        if "step" in metrics:
            raise ValueError("MetricsLogger.log: 'step' is passed positionally, not as a metric")
        record = {"step": int(step), **to_builtin(metrics)}
        self._file.write(json.dumps(record, sort_keys=True) + "\n")
        self._file.flush()

    def with_tags(self, **tags: Any) -> "TaggedLogger":
        """A view that adds `tags` (e.g. `run="spirals/mlp"`) to every line it logs."""
        return TaggedLogger(self, tags)

    def close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()

    def __enter__(self) -> MetricsLogger:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class TaggedLogger:
    """`log(step, **metrics)` into a `MetricsLogger` with fixed extra fields (several fits of one
    experiment share one metrics.jsonl and stay distinguishable)."""

    def __init__(self, logger: MetricsLogger, tags: dict[str, Any]):
        self._logger, self._tags = logger, dict(tags)

    def log(self, step: int, **metrics: Any) -> None:
        self._logger.log(step, **self._tags, **metrics)


def read_metrics(path: PathLike) -> list[dict]:
    """Reads a metrics.jsonl file; a truncated (unparseable) last line is skipped.

    A corrupt line anywhere else raises `ValueError` naming the line number.
    """
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as error:
            if number == len(lines):
                break  # An interrupted write leaves at most the last line cut short.
            raise ValueError(f"{path}: corrupt metrics line {number}: {error}") from None
    return records


def save_npz(path: PathLike, **arrays: Any) -> None:
    """Saves named arrays to an .npz file atomically; object arrays are refused."""
    converted = {}
    for name, value in arrays.items():
        array = np.asarray(value)
        if array.dtype == object:
            raise TypeError(f"save_npz: array {name!r} has dtype object, which would need pickle")
        converted[name] = array
    with atomic_path(path, suffix=".npz") as tmp:
        # A path ending in .npz stops np.savez from appending its own suffix.
        np.savez(tmp, **converted)


def load_npz(path: PathLike) -> dict[str, np.ndarray]:
    """Loads every array of an .npz file; never unpickles (`allow_pickle=False`)."""
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


class RunDir:
    """A run directory with fixed file names; the folder is created on construction."""

    def __init__(self, root: PathLike):
        self.root = os.fspath(root)
        os.makedirs(self.root, exist_ok=True)

    @property
    def config_path(self) -> str:
        return os.path.join(self.root, "config.json")

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.root, "metrics.jsonl")

    @property
    def results_path(self) -> str:
        return os.path.join(self.root, "results.npz")

    @property
    def report_path(self) -> str:
        return os.path.join(self.root, "report.md")

    def figure_path(self, name: str) -> str:
        """Path of the PNG figure `name` (without extension) in this run directory."""
        return os.path.join(self.root, f"{name}.png")

    def save_config(self, config: Any) -> None:
        """Saves a `ConfigDict` (through `.to_dict()`) or a plain dict as config.json."""
        if hasattr(config, "to_dict"):
            config = config.to_dict()
        save_json(self.config_path, config)

    def load_config(self) -> dict:
        return load_json(self.config_path)

    def save_results(self, **arrays: Any) -> None:
        save_npz(self.results_path, **arrays)

    def load_results(self) -> dict[str, np.ndarray]:
        return load_npz(self.results_path)

    def logger(self) -> MetricsLogger:
        """A `MetricsLogger` appending to this run's metrics.jsonl."""
        return MetricsLogger(self.metrics_path)

    def __repr__(self) -> str:
        return f"RunDir({self.root!r})"


def _format_value(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    return str(value)


def markdown_sections(sections: Mapping[str, Any] | Iterable[tuple[str, Any]], level: int = 2) -> str:
    """Renders `(heading, body)` pairs as markdown with headings of the given level.

    A body that is a mapping becomes a bullet list of `key: value`; anything else is
    converted with `str`.
    """
    items = sections.items() if isinstance(sections, Mapping) else sections
    parts = []
    for heading, body in items:
        if isinstance(body, Mapping):
            body = "\n".join(f"- `{k}`: {_format_value(v)}" for k, v in body.items())
        parts += ["#" * level + f" {heading}", "", str(body).rstrip(), ""]
    return "\n".join(parts)


def write_report(
    path: PathLike,
    title: str,
    sections: Mapping[str, Any] | Iterable[tuple[str, Any]],
) -> str:
    """Writes a markdown report (`# title`, then one `##` section per item) atomically.

    Args:
      path: the .md file to write.
      title: the top-level heading.
      sections: ordered `(heading, body)` pairs or a dict of them (see `markdown_sections`).

    Returns:
      The text written.
    """
    text = f"# {title}\n\n" + markdown_sections(sections, level=2)
    atomic_write_text(path, text)
    return text
