"""The results row's schema: one Arrow schema, one row per trial, the columns' meanings beside them.

Below the sweep (which writes rows), the space (whose objectives name columns) and the analysis
(which reads them); `slmray.results.table` stores and reads tables of it.
"""

from __future__ import annotations

import pyarrow as pa

STATUSES = ("ok", "oom", "failed", "pruned")

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
        pa.field("loss_kernel", pa.string()),  # standard, chunked, liger, cce; null in tables from before it (standard)
        pa.field("backend", pa.string()),  # native, transformers; null in tables from before it (native)
        pa.field("grad_accum", pa.int64()),
        pa.field("steps", pa.int64()),
        pa.field("warmup_steps", pa.int64()),
        pa.field("repeats", pa.int64()),
        pa.field("data", pa.string()),
        # what the space asked for: a GPU type, or null for any GPU the cluster has (and on the CPU)
        pa.field("requested_gpu_type", pa.string()),
        # hardware: what the trial ran on, as detected where it ran; where it did not run (pruned, or
        # failed before its workers reported), what it was planned to run on (null: not known)
        pa.field("gpu_type", pa.string()),
        pa.field("device_name", pa.string()),
        pa.field("num_nodes", pa.int64()),
        # measurements (slmray.train.loop.TrainResult)
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
        # how the trial ran (slmray.sweep.warm): on a worker group that had served trials before it, and how
        # many that group had served, this one included; null where each trial had a group of its own
        pa.field("warm", pa.bool_()),
        pa.field("group_trials", pa.int64()),
        # cost
        pa.field("price_per_hour_usd", pa.float64()),
        pa.field("price_source", pa.string()),
        pa.field("cost_usd", pa.float64()),
        pa.field("tokens_per_usd", pa.float64()),
        # prediction made before the trial ran (slmray.predict.estimate)
        pa.field("predicted_peak_mem_gb", pa.float64()),
        pa.field("predicted_oom", pa.bool_()),
        pa.field("predicted_tokens_per_s", pa.float64()),  # the one used: corrected where a correction was
        # the estimator's own, before the GPU type's correction (slmray.predict.calibration: a regime residual
        # refitted on the sweep's earlier ok trials); equal to predicted_tokens_per_s where correction_rows is 0
        pa.field("predicted_tokens_per_s_uncorrected", pa.float64()),
        # bounds of predicted_tokens_per_s (slmray.predict.interval), corrected alike
        pa.field("predicted_tokens_per_s_low", pa.float64()),
        pa.field("predicted_tokens_per_s_high", pa.float64()),
        # the share of the predicted step the host's dispatch adds beyond the device's work (Estimate.host_share):
        # at slmray.predict.interval.HOST_BOUND_SHARE or more the step is the host's, and no correction fits on it
        pa.field("predicted_host_share", pa.float64()),
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
TIMESTAMP_COLUMNS = tuple(f.name for f in SCHEMA if pa.types.is_timestamp(f.type))
NUMERIC_COLUMNS = tuple(f.name for f in SCHEMA if f.type in (pa.float64(), pa.int64()))
"""Columns an objective may name (the analysis adds its derived ones)."""
