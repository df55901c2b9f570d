"""The results table: one Arrow schema, one row per trial, Parquet on a local path or s3://.

Writes are atomic: a table is written beside its final name and moved into place, so a
reader never sees half a file (on S3 the object appears whole when the move's copy ends).
"""

from __future__ import annotations

import datetime
import math
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from slmray.storage import exists, filesystem, write_atomically

STATUSES = ("ok", "oom", "failed", "pruned")
RESULTS_FILE = "results.parquet"

_ts = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema(
    [
        # identity
        pa.field("sweep_id", pa.string()),
        pa.field("trial_id", pa.string()),
        # configuration
        pa.field("model", pa.string()),
        pa.field("family", pa.string()),
        pa.field("n_params", pa.int64()),
        pa.field("per_device_batch", pa.int64()),
        pa.field("seq_len", pa.int64()),
        pa.field("num_gpus", pa.int64()),
        pa.field("attention", pa.string()),
        pa.field("strategy", pa.string()),
        pa.field("compile", pa.bool_()),
        pa.field("activation_checkpointing", pa.bool_()),
        pa.field("precision", pa.string()),  # bf16, fp8, fp8-rowwise; null in tables from before it (bf16)
        pa.field("grad_accum", pa.int64()),
        pa.field("steps", pa.int64()),
        pa.field("warmup_steps", pa.int64()),
        pa.field("repeats", pa.int64()),
        pa.field("data", pa.string()),
        pa.field("requested_gpu_type", pa.string()),
        # hardware, detected
        pa.field("gpu_type", pa.string()),
        pa.field("device_name", pa.string()),
        pa.field("num_nodes", pa.int64()),
        # measurements (slmray.train.TrainResult)
        pa.field("tokens_per_s", pa.float64()),
        pa.field("tokens_per_s_per_gpu", pa.float64()),
        pa.field("tokens_per_s_std", pa.float64()),
        pa.field("step_time_median_s", pa.float64()),
        pa.field("step_time_iqr_s", pa.float64()),
        pa.field("mfu", pa.float64()),
        pa.field("mfu_non_embedding", pa.float64()),
        pa.field("mfu_fp8", pa.float64()),  # FP8 rows: against the dense FP8 peak (mfu: against BF16)
        pa.field("fp8_linear_layers", pa.int64()),  # Linear layers that ran in FP8
        pa.field("flops_per_token", pa.float64()),
        pa.field("peak_mem_gb", pa.float64()),
        pa.field("peak_mem_reserved_gb", pa.float64()),
        pa.field("final_loss", pa.float64()),
        pa.field("losses", pa.list_(pa.float64())),
        pa.field("tokens_seen", pa.int64()),
        pa.field("startup_s", pa.float64()),
        pa.field("time_to_first_step_s", pa.float64()),
        # how the trial ran (slmray.warm): on a worker group that had served trials before it, and how
        # many that group had served, this one included; null where each trial had a group of its own
        pa.field("warm", pa.bool_()),
        pa.field("group_trials", pa.int64()),
        # cost
        pa.field("price_per_hour_usd", pa.float64()),
        pa.field("price_source", pa.string()),
        pa.field("cost_usd", pa.float64()),
        pa.field("tokens_per_usd", pa.float64()),
        # prediction made before the trial ran (slmray.estimate)
        pa.field("predicted_peak_mem_gb", pa.float64()),
        pa.field("predicted_oom", pa.bool_()),
        pa.field("predicted_tokens_per_s", pa.float64()),  # the one used: corrected where a correction was
        # the estimator's own, before the per-GPU-type correction (slmray.calibration) refitted on the
        # sweep's earlier ok trials; equal to predicted_tokens_per_s where correction_rows is 0
        pa.field("predicted_tokens_per_s_uncorrected", pa.float64()),
        pa.field("correction_rows", pa.int64()),  # ok trials that correction was fitted on; 0: none applied
        # outcome
        pa.field("status", pa.string()),
        pa.field("error", pa.string()),
        pa.field("started_at", _ts),
        pa.field("ended_at", _ts),
        pa.field("wall_s", pa.float64()),
        # versions
        pa.field("torch_version", pa.string()),
        pa.field("ray_version", pa.string()),
        pa.field("slmray_version", pa.string()),
    ]
)
COLUMNS = tuple(SCHEMA.names)
_TIMESTAMPS = {f.name for f in SCHEMA if pa.types.is_timestamp(f.type)}
REQUIRED_COLUMNS = (
    "model", "per_device_batch", "num_gpus", "attention", "strategy", "gpu_type", "tokens_per_s", "mfu", "peak_mem_gb",
    "final_loss", "price_per_hour_usd", "cost_usd", "tokens_per_usd", "status",
)


class ResultsError(ValueError):
    """A results path or table that cannot be used; the message names it."""


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
    if column in _TIMESTAMPS and isinstance(value, (int, float)):
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
        return table.select(list(COLUMNS)).cast(SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:  # e.g. 1e30 into an int64
        raise ResultsError(f"results: {uri}: {str(exc).splitlines()[0]}") from None


def read_tables(uris: Iterable[str]) -> pa.Table:
    return pa.concat_tables([read_table(u) for u in uris])
