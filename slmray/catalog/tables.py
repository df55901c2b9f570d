"""Every CSV slmray reads (gpus.csv, instances.csv, prices.csv, a user's price file) through one
reader: pyarrow's CSV reader parses (header, quoting) and converts each column to the type it fills
(`str`, `int`, `float`, or `float | None` where an empty cell is None); bad input is one line naming
the file and the field: `gpus.csv: memory_gb: row 3: 'x' is not a number`.

pyarrow is already how slmray reads and writes its tables; its import (about 0.1 s) is the one
`--help` of `python -m slmray.tune` pays, for the price profiles it lists from prices.csv.
"""

from __future__ import annotations

import dataclasses
import io
import re
import types
import typing
from typing import Any, Collection, Mapping, TypeVar

import pyarrow as pa
import pyarrow.csv as pacsv

from slmray.errors import UserError, first_line

T = TypeVar("T")
ARROW_TYPES = {int: pa.int64(), float: pa.float64()}
WORDS = {int: "an integer", float: "a number"}


class CsvError(UserError):
    """A CSV file that does not match its columns: `<file>: <field>: <what is wrong>`."""


def _base(hint: Any) -> tuple[type, bool]:
    """A column's type and whether an empty cell is None (`float | None`)."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        (base,) = [a for a in args if a is not type(None)]
        return base, True
    return hint, False


def read_rows(
    source: Any, columns: Mapping[str, Any], *, optional: Collection[str] = (), name: str | None = None
) -> list[dict[str, Any]]:
    """The rows of a CSV file as dicts, each column converted to its type in `columns`.

    `source` is a Path, an importlib.resources file or the file's bytes (then give `name`);
    a column in `optional` may be missing from the file (its cells read as empty)."""
    name = name or getattr(source, "name", str(source))
    try:
        data = source if isinstance(source, bytes) else source.read_bytes()
        table = _read(data, {c: ARROW_TYPES.get(_base(h)[0], pa.string()) for c, h in columns.items()})
    except pa.ArrowInvalid as exc:
        raise CsvError(f"{name}: {_conversion_error(exc, data, columns)}") from None
    except OSError as exc:
        raise CsvError(f"{name}: {first_line(exc)}") from None
    header = table.column_names
    for column in columns:
        if column not in header and column not in optional:
            raise CsvError(f"{name}: {column}: no such column (the header has {', '.join(header)})")
    for column in header:
        if column not in columns:
            raise CsvError(f"{name}: {column}: not a known column ({', '.join(columns)})")
    values = {}
    for column, hint in columns.items():
        base, may_be_empty = _base(hint)
        cells = table.column(column).to_pylist() if column in header else ["" if base is str else None] * table.num_rows
        if None in cells and not may_be_empty:
            raise CsvError(f"{name}: {column}: row {cells.index(None) + 1}: empty, needs {WORDS[base]}")
        values[column] = cells
    return [dict(zip(values, row)) for row in zip(*values.values())]


def _read(data: bytes, types: Mapping[str, pa.DataType]) -> pa.Table:
    # no pyarrow.compute here: its first call imports pandas (half a second of every --help)
    options = pacsv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=False)  # "nan" is NaN
    # no reader threads: for tables this small they buy nothing, and pyarrow's thread pool left
    # running aborted 3 in 40 runs of `python -m slmray.train` at exit ("terminate called without
    # an active exception"; 0 in 40 with these options, and with the standard library's reader)
    return pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(use_threads=False), convert_options=options)


def _conversion_error(exc: pa.ArrowInvalid, data: bytes, columns: Mapping[str, Any]) -> str:
    """pyarrow's parse or conversion error as `[<field>: ]row <n>: <what is wrong>` (its `Row #` counts
    the header as row 1; ours counts data rows)."""
    message = first_line(exc).removeprefix("CSV parse error: ")
    cell = re.match(r"In CSV column #(\d+): Row #(\d+): CSV conversion error to \w+: invalid value '(.*)'", message)
    if cell:
        column = _read(data, {c: pa.string() for c in columns}).column_names[int(cell.group(1))]
        return f"{column}: row {int(cell.group(2)) - 1}: {cell.group(3)!r} is not {WORDS[_base(columns[column])[0]]}"
    row = re.match(r"Row #(\d+): (.*)", message)
    if row:
        return f"row {int(row.group(1)) - 1}: {row.group(2)[0].lower()}{row.group(2)[1:]}"
    return message[0].lower() + message[1:]


def read_records(path: Any, cls: type[T]) -> tuple[T, ...]:
    """The rows of the CSV file `path` as `cls` objects: a column per field of the dataclass
    `cls`, typed as the field is annotated."""
    hints = typing.get_type_hints(cls)
    columns = {f.name: hints[f.name] for f in dataclasses.fields(cls)}
    return tuple(cls(**row) for row in read_rows(path, columns))
