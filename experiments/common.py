"""The experiment framework: claims, tables, the command line and the run directory.

An experiment is a module `experiments/<name>.py` that defines

    NAME: str                  # the module name, e.g. "parametrization"
    DESCRIPTION: str           # one line
    get_config(size="default") -> ml_collections.ConfigDict   # sizes "quick", "default", "full"
    run(config, workdir) -> dict    # must hold "tables": {name: str} and "figures": [paths]
    claims(result) -> list[Claim]
    main(argv=None)            # common.experiment_main(sys.modules[__name__], argv)

`experiment_main` parses `--size`, `--workdir` and `--config.<field>=value`, runs the
experiment, prints its tables and claim table, and writes config.json, report.md and
claims.json into the run directory.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import math
import numbers
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from types import ModuleType
from typing import Any

import ml_collections

from jaxdl import io

SIZES = ("quick", "default", "full")


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


# ----------------------------------------------------------------------------- config


def check_size(size: str) -> None:
    """Raises `ValueError` unless `size` is one of `SIZES` (for `get_config`)."""
    if size not in SIZES:
        raise ValueError(f"size {size!r} is not one of {', '.join(SIZES)}")


def require(condition: Any, field: str, expected: str, value: Any) -> None:
    """Config validation in `run`: raises `ValueError` naming the field unless `condition`.

    Example: `require(config.lr > 0, "lr", "a positive learning rate", config.lr)`.
    """
    if not condition:
        raise ValueError(f"config.{field}: expected {expected}, got {value!r}")


def flatten_config(config: ml_collections.ConfigDict, prefix: str = "") -> dict[str, Any]:
    """Dotted field name -> value for every leaf of a (nested) ConfigDict."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, ml_collections.ConfigDict) and len(value):
            flat.update(flatten_config(value, prefix + key + "."))
        else:
            flat[prefix + key] = value
    return flat


def _convert_scalar(text: str, like: Any, field: str) -> Any:
    """Parses `text` as a value of the same type as `like`."""
    if isinstance(like, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f"--config.{field}: expected a bool (true/false/1/0), got {text!r}")
    if isinstance(like, int):
        try:
            return int(text)
        except ValueError:
            pass
        try:  # "1e3" is a natural way to write a step count.
            as_float = float(text)
        except ValueError:
            as_float = math.nan
        if as_float.is_integer():
            return int(as_float)
        raise ValueError(f"--config.{field}: expected an int, got {text!r}")
    if isinstance(like, float):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"--config.{field}: expected a float, got {text!r}") from None
    if isinstance(like, str):
        return text
    try:  # Fields whose default is None (or another type) take a Python literal.
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def convert_override(text: str, current: Any, field: str) -> Any:
    """Converts the command-line `text` to the type of the field's current value.

    bool accepts true/false/1/0; int, float and str parse as such; a tuple or list takes a
    comma-separated list (elements typed like the current first element) or a Python
    literal; a None field takes a Python literal, else the raw string.
    """
    if isinstance(current, (tuple, list)):
        stripped = text.strip()
        if stripped[:1] in ("(", "["):
            try:
                items = ast.literal_eval(stripped)
            except (ValueError, SyntaxError):
                raise ValueError(f"--config.{field}: cannot parse {text!r} as a sequence") from None
            if not isinstance(items, (tuple, list)):
                items = (items,)
        else:
            parts = [p.strip() for p in stripped.split(",")]
            parts = [p for p in parts if p]
            like = current[0] if len(current) else None
            items = [_convert_scalar(p, like, field) for p in parts]
        return type(current)(items)
    return _convert_scalar(text, current, field)


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Sequence[tuple[str, str]]
) -> ml_collections.ConfigDict:
    """Sets each dotted `(field, text)` on `config` (in place), converting the text's type.

    Raises:
      ValueError: a field that is not in the config (the message lists the known fields), or
        a value that does not parse as the field's type.
    """
    known = flatten_config(config)
    for field, text in overrides:
        if field not in known:
            groups = {name.rsplit(".", 1)[0] for name in known if "." in name}
            hint = (f" ({field!r} is a group; set one of its fields)" if field in groups else "")
            raise ValueError(f"unknown config field {field!r}{hint}; known fields: "
                           + ", ".join(known))
        *parents, leaf = field.split(".")
        node = config
        for parent in parents:
            node = node[parent]
        node[leaf] = convert_override(text, known[field], field)
        known[field] = node[leaf]
    return config


def _split_config_args(argv: Sequence[str], parser: argparse.ArgumentParser):
    """Separates `--config.<field>=value` / `--config.<field> value` from other arguments."""
    overrides, rest = [], []
    tokens = iter(argv)
    for token in tokens:
        if not token.startswith("--config."):
            rest.append(token)
            continue
        field, has_value, value = token[len("--config."):].partition("=")
        if not has_value:
            value = next(tokens, None)
            if value is None:
                parser.error(f"argument {token}: expected a value")
        if not field:
            parser.error(f"empty config field name in {token!r}")
        overrides.append((field, value))
    return overrides, rest


def _config_listing(config: ml_collections.ConfigDict, size: str) -> str:
    lines = [f"config fields (size {size!r}; override with --config.<field>=value):"]
    lines += [f"  {name} = {value!r}" for name, value in flatten_config(config).items()]
    return "\n".join(lines)


def parse_args(module: ModuleType, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses an experiment's command line.

    Returns:
      A namespace with `size`, `workdir` and `config` (the ConfigDict for the size, with the
      `--config.<field>` overrides applied). Bad input exits through `argparse` with a message.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    prog = f"python -m experiments.{module.NAME}"
    default_workdir = os.path.join("runs", module.NAME)

    # The size must be known before the full parser, whose --help lists that size's config.
    size_parser = argparse.ArgumentParser(prog=prog, add_help=False)
    size_parser.add_argument("--size", choices=SIZES, default="default")
    overrides, rest = _split_config_args(argv, size_parser)
    known, _ = size_parser.parse_known_args(rest)
    config = module.get_config(known.size)

    parser = argparse.ArgumentParser(
        prog=prog,
        description=module.DESCRIPTION,
        epilog=_config_listing(config, known.size),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--size", choices=SIZES, default="default",
                        help="config size: quick (seconds), default (minutes on a CPU), "
                             "full (the papers' scale)")
    parser.add_argument("--workdir", default=default_workdir,
                        help=f"run directory (default: {default_workdir})")
    args = parser.parse_args(rest)
    try:
        args.config = apply_overrides(config, overrides)
    except (ValueError, TypeError) as error:
        parser.error(str(error))
    return args


# ----------------------------------------------------------------------------- running


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
        links = []
        for figure in map(os.fspath, result["figures"]):
            if not os.path.exists(figure):
                figure = os.path.join(workdir, figure)
            relative = os.path.relpath(figure, report_dir)
            stem = os.path.splitext(os.path.basename(relative))[0]
            links.append(f"![{stem}]({relative.replace(os.sep, '/')})")
        sections.append(("Figures", "\n\n".join(links)))
    sections.append(("Claims", claims_table(claims) if claims else "(no claims)"))
    if wall_time_s is not None:
        sections.append(("Timing", f"wall time {wall_time_s:.1f} s"))
    return sections


def _check_result(module: ModuleType, result: Any) -> None:
    if not isinstance(result, Mapping):
        raise TypeError(f"{module.NAME}.run must return a dict, got {type(result).__name__}")
    if not isinstance(result.get("tables"), Mapping):
        raise TypeError(f"{module.NAME}.run result needs 'tables': a dict of name -> table text")
    if not isinstance(result.get("figures"), (list, tuple)):
        raise TypeError(f"{module.NAME}.run result needs 'figures': a list of figure paths")


def run_experiment(module: ModuleType, config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Runs one experiment into `workdir` and writes its run directory.

    Writes config.json (before running, so that an interrupted run records what it ran),
    report.md and claims.json; prints the tables, the claim table and the wall time.

    Returns:
      `module.run`'s result plus "claims" (list of Claim), "wall_time_s" and "report".
    """
    run_dir = io.RunDir(workdir)
    run_dir.save_config(config)
    start = time.perf_counter()
    result = module.run(config, run_dir.root)
    _check_result(module, result)
    claims = list(module.claims(result))
    if not all(isinstance(claim, Claim) for claim in claims):
        raise TypeError(f"{module.NAME}.claims must return Claim objects, got {claims!r}")
    wall_time_s = time.perf_counter() - start

    for name, table in result["tables"].items():
        print(f"\n{name}\n{table}")
    print(f"\nClaims\n{claims_table(claims) if claims else '(no claims)'}")
    sections = report_sections(module, config, result, claims, run_dir.root, run_dir.root,
                               wall_time_s)
    io.write_report(run_dir.report_path, module.NAME, sections)
    io.save_json(os.path.join(run_dir.root, "claims.json"), [c.to_dict() for c in claims])
    held = sum(c.held for c in claims)
    print(f"\n{module.NAME}: {held}/{len(claims)} claims held; wall time {wall_time_s:.1f} s; "
          f"report {run_dir.report_path}")
    return {**result, "claims": claims, "wall_time_s": wall_time_s,
            "report": run_dir.report_path}


def experiment_main(module: ModuleType, argv: Sequence[str] | None = None) -> dict:
    """The command line of one experiment: parse arguments, run, report."""
    args = parse_args(module, argv)
    print(f"{module.NAME} ({args.size}): {module.DESCRIPTION}\nworkdir {args.workdir}")
    return run_experiment(module, args.config, args.workdir)
