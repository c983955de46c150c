"""Claims and tables, and the markdown sections of an experiment's report.

A `Claim` puts a published claim beside the number a run measured; `format_table` and
`claims_table` render rows as markdown tables (also readable as plain text); `report_sections`
assembles the sections of one experiment's report.md.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import ml_collections


@dataclasses.dataclass(frozen=True)
class Claim:
    """A published claim beside the number this run measured.

    Attributes:
      paper: short citation, e.g. "Greydanus 2020".
      claim: the published claim in words.
      expected: what the claim predicts for the measured number, e.g. ">= 0.97".
      measured: the measured number, formatted.
      held: whether the measurement agrees with the claim.
    """

    paper: str
    claim: str
    expected: str
    measured: str
    held: bool

    @classmethod
    def check(
        cls,
        paper: str,
        claim: str,
        expected: str,
        measured_value: Any,
        predicate: Callable[[Any], bool],
        fmt: str = "{:.3f}",
    ) -> Claim:
        """Builds a claim from a raw measurement and a predicate saying whether it held.

        A measurement that cannot be formatted with `fmt` is shown with `str`; a predicate
        that is true of a NaN is not trusted (the claim is marked as not held).
        """
        try:
            measured = fmt.format(measured_value)
        except (TypeError, ValueError):
            measured = str(measured_value)
        is_nan = isinstance(measured_value, numbers.Real) and math.isnan(measured_value)
        held = bool(predicate(measured_value)) and not is_nan
        return cls(paper=paper, claim=claim, expected=expected, measured=measured, held=held)

    @classmethod
    def at_least(cls, paper: str, claim: str, measured_value: float, threshold: float,
                 fmt: str = "{:.3f}") -> Claim:
        """The claim holds when `measured_value >= threshold`."""
        return cls.check(paper, claim, ">= " + fmt.format(threshold), float(measured_value),
                         lambda value: value >= threshold, fmt)

    @classmethod
    def at_most(cls, paper: str, claim: str, measured_value: float, threshold: float,
                fmt: str = "{:.3f}") -> Claim:
        """The claim holds when `measured_value <= threshold`."""
        return cls.check(paper, claim, "<= " + fmt.format(threshold), float(measured_value),
                         lambda value: value <= threshold, fmt)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- tables


def _cell(value: Any, float_format: str) -> str:
    if getattr(value, "ndim", None) == 0:  # NumPy and JAX scalars print like Python ones.
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        value = float_format.format(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def format_table(
    headers_or_rows: Sequence[str] | Sequence[Mapping[str, Any]],
    rows: Sequence[Sequence[Any]] | None = None,
    float_format: str = "{:.4g}",
) -> str:
    """A markdown table (also readable as plain text), columns padded to equal width.

    Call as `format_table(headers, rows)` with rows as sequences of cells, or as
    `format_table(dict_rows)` (headers are the keys in first-seen order; missing cells blank).
    Floats are formatted with `float_format`.
    """
    if rows is None:
        dict_rows = list(headers_or_rows)
        if not all(isinstance(row, Mapping) for row in dict_rows):
            raise ValueError("format_table: give (headers, rows) or a list of dict rows")
        headers = list(dict.fromkeys(key for row in dict_rows for key in row))
        cells = [[row.get(h, "") for h in headers] for row in dict_rows]
    else:
        headers, cells = list(headers_or_rows), [list(row) for row in rows]
        for number, row in enumerate(cells):
            if len(row) != len(headers):
                raise ValueError(
                    f"format_table: row {number} has {len(row)} cells for {len(headers)} headers")
    header_texts = [_cell(h, float_format) for h in headers]
    cell_texts = [[_cell(value, float_format) for value in row] for row in cells]
    widths = [max([len(h), 3] + [len(row[i]) for row in cell_texts])
              for i, h in enumerate(header_texts)]

    def line(texts):
        return "| " + " | ".join(t.ljust(w) for t, w in zip(texts, widths)) + " |"

    lines = [line(header_texts), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(lines + [line(row) for row in cell_texts])


def claims_table(claims: Sequence[Claim]) -> str:
    """Markdown table: Paper | Claim | Expected | Measured | Held (yes / NO)."""
    rows = [[c.paper, c.claim, c.expected, c.measured, "yes" if c.held else "NO"] for c in claims]
    return format_table(["Paper", "Claim", "Expected", "Measured", "Held"], rows)


# ----------------------------------------------------------------------------- the report


def flatten_config(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    """Dotted field name -> value for every leaf of a (nested) ConfigDict."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict) and len(value):
            flat.update(flatten_config(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


def _figure_links(figures: Sequence[Any], report_dir: str, workdir: str) -> str:
    links = []
    for figure in map(os.fspath, figures):
        if not os.path.exists(figure):
            figure = os.path.join(workdir, figure)
        relative = os.path.relpath(figure, report_dir)
        stem = os.path.splitext(os.path.basename(relative))[0]
        links.append(f"![{stem}]({relative.replace(os.sep, '/')})")
    return "\n\n".join(links)


def report_sections(
    module: ModuleType,
    config: ml_collections.ConfigDict,
    result: Mapping[str, Any],
    claims: Sequence[Claim],
    report_dir: str,
    workdir: str,
    wall_time_s: float | None = None,
) -> list[tuple[str, str]]:
    """The markdown sections of one experiment's report, figure links relative to `report_dir`.

    Figure paths in `result` are taken relative to the cwd if they exist there, else to `workdir`.
    """
    sections = [("Description", module.DESCRIPTION)]
    config_text = "\n".join(f"{k} = {v!r}" for k, v in flatten_config(config).items())
    sections.append(("Config", f"```\n{config_text}\n```"))
    for name, table in result["tables"].items():
        table = str(table).strip()
        # A plain-text table only keeps its alignment inside a code block.
        body = table if table.startswith("|") else f"```\n{table}\n```"
        sections.append((f"Table: {name}", body))
    if result["figures"]:
        sections.append(("Figures", _figure_links(result["figures"], report_dir, workdir)))
    sections.append(("Claims", claims_table(claims) if claims else "(no claims)"))
    if wall_time_s is not None:
        sections.append(("Timing", f"wall time {wall_time_s:.1f} s"))
    return sections


class PhaseTimer:
    """Runs an experiment's named phases, printing and recording the seconds of each:
    ``timer("sweep", sweep_phase, config)`` returns ``sweep_phase(config)``; ``timer.table()``
    is the markdown table of every phase's seconds."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str, fn: Callable, *args, **kwargs):
        start = time.perf_counter()
        result = fn(*args, **kwargs)
        self.seconds[name] = time.perf_counter() - start
        print(f"{name}: {self.seconds[name]:.1f} s", flush=True)
        return result

    def table(self) -> str:
        return format_table(["phase", "seconds"], list(self.seconds.items()), float_format="{:.1f}")
