"""The results table: one Arrow schema, one row per trial, Parquet on a local path or s3://.

Writes are atomic: a table is written beside its final name and moved into place, so a
reader never sees half a file (on S3 the object appears whole when the move's copy ends).
"""

from __future__ import annotations

import datetime
import math
import warnings
from typing import TYPE_CHECKING, Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from slmray.core.defaults import ROW_DEFAULTS
from slmray.core.schema import COLUMNS, SCHEMA, STATUSES, TIMESTAMP_COLUMNS  # noqa: F401  (re-exported)
from slmray.errors import UserError
from slmray.results.storage import exists, filesystem, join, write_atomically

if TYPE_CHECKING:
    import pandas as pd

RESULTS_FILE = "results.parquet"
REQUIRED_COLUMNS = (
    "model", "per_device_batch", "num_gpus", "attention", "strategy", "gpu_type", "tokens_per_s", "mfu", "peak_mem_gb",
    "final_loss", "price_per_hour_usd", "cost_usd", "tokens_per_usd", "status",
)


MEASURED_COLUMNS = ("tokens_per_s", "mfu", "peak_mem_gb", "price_per_hour_usd", "cost_usd", "tokens_per_usd")
"""Required numbers that are never negative nor infinite in a table the sweep wrote."""


class ResultsError(UserError):
    """A results path or table that cannot be used; the message names it."""


class ResultsWarning(UserWarning):
    """Something about the tables read that the reader should be told of (a CLI prints it on a line)."""


def to_table(rows: Iterable[dict[str, Any]]) -> pa.Table:
    """Rows (dicts keyed by column; missing columns are null) as a table of `SCHEMA`."""
    rows = list(rows)
    for row in rows:
        extra = set(row) - set(COLUMNS)
        if extra:
            raise ResultsError(f"results row: unknown column {sorted(extra)[0]!r}")
        status = row.get("status")
        if status not in STATUSES:
            raise ResultsError(f"results row: status {status!r} is not one of {', '.join(STATUSES)}")
    return pa.Table.from_pylist([{c: _cell(c, row.get(c)) for c in COLUMNS} for row in rows], schema=SCHEMA)


def _cell(column: str, value: Any) -> Any:
    """NaN is stored as null (not measured); epoch seconds become UTC timestamps."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if column in TIMESTAMP_COLUMNS and isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    return value


def write_table(table: pa.Table, uri: str) -> None:
    """Write `table` to `uri` (a .parquet path) atomically."""
    write_atomically(uri, lambda fs, staging: pq.write_table(table, staging, filesystem=fs))


def _same_kind(have: pa.DataType, want: pa.DataType) -> bool:
    """Whether a column stored as `have` may be read as `want`: numbers as numbers, text as text,
    times as times (a cast would turn the strings "123" into a number, silently)."""
    t = pa.types
    if t.is_dictionary(have):  # pandas categoricals: judged by what they hold
        have = have.value_type
    if have == want or t.is_null(have):
        return True
    if t.is_list(want) or t.is_large_list(want):
        return (t.is_list(have) or t.is_large_list(have)) and _same_kind(have.value_type, want.value_type)
    kinds = (lambda x: t.is_integer(x) or t.is_floating(x), lambda x: t.is_string(x) or t.is_large_string(x),
             t.is_timestamp, t.is_boolean)
    return any(kind(have) and kind(want) for kind in kinds)


def read_table(uri: str) -> pa.Table:
    """A results table, checked against the schema's required columns and its columns' types."""
    if not exists(uri):
        raise ResultsError(f"results: no such table {uri}")
    fs, path = filesystem(uri)
    if fs.get_file_info(path).type == pafs.FileType.Directory:  # pyarrow would read it as an empty dataset
        inside = join(uri, RESULTS_FILE)
        raise ResultsError(f"results: {uri} is a folder, not a table" +
                           (f"; its sweep's table is {inside}" if exists(inside) else ""))
    try:
        table = pq.read_table(path, filesystem=fs)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ResultsError(f"results: {uri} is not a Parquet table ({exc})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise ResultsError(f"results: {uri} lacks the column {missing[0]!r}")
    for name in table.column_names:
        if name in COLUMNS and not _same_kind(table.schema.field(name).type, SCHEMA.field(name).type):
            have, want = table.schema.field(name).type, SCHEMA.field(name).type
            raise ResultsError(f"results: {uri}: column {name!r} holds {have}, not {want}")
    # tables from older versions gain the newer columns as nulls
    for name in COLUMNS:
        if name not in table.column_names:
            table = table.append_column(SCHEMA.field(name), pa.nulls(len(table), SCHEMA.field(name).type))
    try:
        table = table.select(list(COLUMNS)).cast(SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:  # e.g. 1e30 into an int64
        raise ResultsError(f"results: {uri}: {str(exc).splitlines()[0]}") from None
    _check_values(table, uri)
    return table


def _check_values(table: pa.Table, uri: str) -> None:
    """Values no sweep writes: an unknown status, a row without a model, a negative or infinite
    measurement.  Analysing them as if valid would rank a broken row first."""
    unknown = pc.filter(table["status"], pc.invert(pc.fill_null(pc.is_in(table["status"], pa.array(STATUSES)), False)))
    if len(unknown):
        raise ResultsError(f"results: {uri}: status {unknown[0].as_py()!r} is not one of {', '.join(STATUSES)}")
    if table["model"].null_count:
        raise ResultsError(f"results: {uri}: {table['model'].null_count} row(s) have no model")
    for name in MEASURED_COLUMNS:
        values = pc.drop_null(table[name]).cast(pa.float64())
        bad = pc.filter(values, pc.or_(pc.less(values, 0), pc.is_inf(values)))
        if len(bad):
            raise ResultsError(f"results: {uri}: column {name!r} holds {bad[0].as_py()}, not a measurement")


def read_tables(uris: Iterable[str]) -> pa.Table:
    """The tables as one, each trial once: a table named twice, or two copies of one sweep, hold
    the same (sweep_id, trial_id) rows, which would count every trial twice (a `ResultsWarning`
    says how many were dropped)."""
    uris = list(dict.fromkeys(uris))
    table = pa.concat_tables([read_table(u) for u in uris])
    ids = table.select(["sweep_id", "trial_id"]).to_pylist()
    seen: set[tuple[str, str]] = set()
    keep = []
    for row in ids:
        key = (row["sweep_id"], row["trial_id"])
        keep.append(None in key or key not in seen)
        seen.add(key)
    dropped = keep.count(False)
    if dropped:
        warnings.warn(f"results: {dropped} row(s) repeat a trial (same sweep_id and trial_id) of another table "
                      "or of the same one; each trial is counted once", ResultsWarning, stacklevel=2)
        table = table.filter(pa.array(keep))
    return table


def to_frame(table: pa.Table) -> "pd.DataFrame":
    """A table of `SCHEMA` as a pandas DataFrame (the one conversion from Arrow), with `ROW_DEFAULTS`
    in the nulls of columns older tables lack, so an old row and a new one of the same setting compare."""
    frame = table.to_pandas().reset_index(drop=True)
    for name, value in ROW_DEFAULTS.items():
        if name in frame.columns and frame[name].isna().any():
            frame[name] = frame[name].astype(object).where(frame[name].notna(), value).infer_objects()
    return frame


def load_results(uris: str | Iterable[str]) -> "pd.DataFrame":
    """Read one or more results tables (local or s3://) into one DataFrame: what the analysis and
    the planner read."""
    return to_frame(read_tables([uris] if isinstance(uris, str) else list(uris)))
