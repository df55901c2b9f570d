"""The package's data tables (`gpus.csv`, `instances.csv`) read into frozen dataclasses.

One reader for them all: the standard library's `csv` parses the file (header, quoting; not
pyarrow, whose import every `--help` would pay: the price profiles it lists come from
prices.csv), each column is typed from the dataclass field it fills (`str`, `int`, `float`, or `float | None` where an empty cell
is None), and bad input is one line naming the file and the field:
`gpus.csv: memory_gb: row 3: 'x' is not a number`.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import types
import typing
from typing import Any, Mapping, TypeVar

from slmray.config import first_line

T = TypeVar("T")
WORDS = {int: "an integer", float: "a number"}


class CsvError(ValueError):
    """A data table that does not match its columns: `<file>: <field>: <what is wrong>`."""


def _base(hint: Any) -> tuple[type, bool]:
    """A column's type and whether an empty cell is None (`float | None`)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        (base,) = [a for a in args if a is not type(None)]
        return base, True
    return hint, False


def read_rows(path: Any, columns: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rows of the CSV file `path` (a Path or an importlib.resources file) as dicts, each
    column converted to its type in `columns` ({name: str | int | float | float | None})."""
    name = getattr(path, "name", str(path))
    try:
        reader = csv.DictReader(io.StringIO(path.read_text()))
        header = list(reader.fieldnames or [])
        raw = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CsvError(f"{name}: {first_line(exc)}") from None
    for column in columns:
        if column not in header:
            raise CsvError(f"{name}: {column}: no such column (the header has {', '.join(header)})")
    for column in header:
        if column not in columns:
            raise CsvError(f"{name}: {column}: not a known column ({', '.join(columns)})")
    rows = []
    for number, cells in enumerate(raw, start=1):
        if None in cells or None in cells.values():
            raise CsvError(f"{name}: row {number}: {len(header)} columns expected, got "
                           f"{len(header) - list(cells.values()).count(None) + len(cells.get(None, []))}")
        row = {}
        for column, hint in columns.items():
            base, optional = _base(hint)
            text = cells[column]
            if base is str:
                row[column] = text
            elif text == "":
                if not optional:
                    raise CsvError(f"{name}: {column}: row {number}: empty, needs {WORDS[base]}")
                row[column] = None
            else:
                try:
                    row[column] = base(text)
                except ValueError:
                    raise CsvError(f"{name}: {column}: row {number}: {text!r} is not {WORDS[base]}") from None
        rows.append(row)
    return rows


def read_records(path: Any, cls: type[T]) -> tuple[T, ...]:
    """The rows of the CSV file `path` as `cls` objects: a column per field of the dataclass
    `cls`, typed as the field is annotated."""
    hints = typing.get_type_hints(cls)
    columns = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return tuple(cls(**row) for row in read_rows(path, columns))
