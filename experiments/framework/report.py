"""Tables and reports: markdown tables, the claims and checks tables, one experiment's
report and its part of the tour's report.

Everything here renders an outcome (the dict a run saves as outcome.json, see
`experiments.framework.runner`), so that a finished run and one resumed from disk read alike.
"""
from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import Any

from experiments.framework.claims import INCONCLUSIVE, NOT_HELD, VERDICTS


def _cell(value: Any, float_format: str) -> str:
    if getattr(value, "ndim", None) == 0:  # NumPy and JAX scalars print like Python ones.
        value = value.item()
    if isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral):
        value = float_format.format(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def format_table(headers_or_rows: Sequence[str] | Sequence[Mapping[str, Any]],
                 rows: Sequence[Sequence[Any]] | None = None, float_format: str = "{:.4g}") -> str:
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
                raise ValueError(f"format_table: row {number} has {len(row)} cells for {len(headers)} headers")
    header_texts = [_cell(h, float_format) for h in headers]
    cell_texts = [[_cell(value, float_format) for value in row] for row in cells]
    widths = [max([len(h), 3] + [len(row[i]) for row in cell_texts]) for i, h in enumerate(header_texts)]

    def line(texts):
        return "| " + " | ".join(t.ljust(w) for t, w in zip(texts, widths)) + " |"

    lines = [line(header_texts), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    return "\n".join(lines + [line(row) for row in cell_texts])


def format_margin(margin: float | None) -> str:
    if margin is None or (isinstance(margin, float) and math.isnan(margin)):
        return "-"
    return f"{margin:+.1f}"


def _verdict_text(verdict: str) -> str:
    return {NOT_HELD: "NOT HELD", INCONCLUSIVE: "inconclusive"}.get(verdict, verdict)


def claims_table(claims: Sequence[Mapping[str, Any]]) -> str:
    """Paper | Claim | Threshold | Measured (mean +- SE, n) | Rule | Margin | Verdict, from claim
    dicts (`Claim.to_dict()`)."""
    rows = [[c["paper"], c["statement"], c["threshold"], c["measured"], c["rule"],
             format_margin(c["margin"]), _verdict_text(c["verdict"])] for c in claims]
    return format_table(["Paper", "Claim", "Threshold", "Measured", "Rule", "Margin (SE)", "Verdict"], rows)


def checks_table(checks: Sequence[Mapping[str, Any]]) -> str:
    """Source | Check | Expected | Measured | Passed, from check dicts (`Check.to_dict()`)."""
    rows = [[c["source"], c["statement"], c["expected"], c["measured"], "yes" if c["passed"] else "FAILED"]
            for c in checks]
    return format_table(["Source", "Check", "Expected", "Measured", "Passed"], rows)


def verdict_line(summary: Mapping[str, Any]) -> str:
    """'3 held, 1 not held, 0 inconclusive of 4 claims; 5/5 checks passed; smallest margin +2.4 (key)'."""
    counts = ", ".join(f"{summary[v]} {v}" for v in VERDICTS)
    text = f"{counts} of {summary['claims']} claims; {summary['checks_passed']}/{summary['checks']} checks passed"
    if summary["smallest_margin_key"] is not None:
        text += f"; smallest margin {format_margin(summary['smallest_margin'])} ({summary['smallest_margin_key']})"
    return text


def _figure_links(figures: Sequence[str], prefix: str) -> str:
    links = []
    for figure in figures:
        stem = os.path.splitext(os.path.basename(figure))[0]
        links.append(f"![{stem}]({(prefix + figure).replace(os.sep, '/')})")
    return "\n\n".join(links)


def sections(outcome: Mapping[str, Any], link_prefix: str = "") -> list[tuple[str, str]]:
    """The markdown sections of one experiment's report. Figure paths in the outcome are relative
    to its run directory; `link_prefix` is the run directory relative to the report's folder."""
    out = [("Description", outcome["description"])]
    config_text = "\n".join(f"{k} = {v!r}" for k, v in outcome["config"].items())
    out.append(("Config", f"```\n{config_text}\n```"))
    if outcome.get("devices"):
        out.append(("Devices", outcome["devices"]))
    for name, table in outcome["tables"].items():
        table = str(table).strip()
        # A plain-text table only keeps its alignment inside a code block.
        out.append((f"Table: {name}", table if table.startswith("|") else f"```\n{table}\n```"))
    if outcome["figures"]:
        out.append(("Figures", _figure_links(outcome["figures"], link_prefix)))
    out.append(("Claims", claims_table(outcome["claims"]) if outcome["claims"] else "(no claims)"))
    if outcome["checks"]:
        out.append(("Checks", checks_table(outcome["checks"])))
    out.append(("Verdicts", verdict_line(outcome["summary"])))
    timing = format_table(["phase", "seconds"], list(outcome["phase_seconds"].items()), float_format="{:.1f}")
    out.append(("Timing", f"{timing}\n\nwall time {outcome['wall_time_s']:.1f} s"))
    return out
