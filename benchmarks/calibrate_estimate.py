"""Fit the constants of `slmray.predict.estimate.CALIBRATION` to the committed GPU tables, and print them.

    python benchmarks/calibrate_estimate.py                 # every table in benchmarks/results/*/
    python benchmarks/calibrate_estimate.py TABLE [TABLE ...]

Reads every committed measurement table: trainer CSVs (`benchmarks/trainer_throughput.py`'s
columns) and results-schema Parquet files (`slmray.results.table`).  Only the calibration rows
(`CALIBRATION_ROWS`) are fitted; the rest are held out for `estimate_accuracy.py`.

The fit, in order:
1. memory overhead: median of measured minus predicted peak memory (ok rows);
2. bytes per attention score that compiled eager attention keeps: median of what is left per
   score element on those rows;
3. usable share of GPU memory: the largest peak any run reached (OOM runs record where they
   failed) over the GPU's nominal memory;
4. step-time efficiencies: predicted step time is linear in their inverses, so a least-squares
   fit of measured step times (weighted for relative error) gives them, with the HBM efficiency
   held at its assumed value (three models cannot tell it apart from the activation passes).
   A term no calibration row exercises keeps its committed value.  Every profile is ignored in
   this fit (the datasheet path, what a GPU type without a profile gets); then, with the other
   constants fixed, the profiled GEMM and attention scales are fitted on the rows of profiled
   GPU types, at the committed `profile_weight` (chosen on held-out rows by
   `heldout_accuracy.py`, not fitted here).
5. the device rate of compiled fused attention under a data-parallel wrapper (`fit_parallel_compiled`,
   on the rows of `PARALLEL_RATE_ROWS`: the median miss of its steps of more than
   `interval.SMALL_TOKENS` tokens, which the device sets), then, on the rows of
   `COMPILED_HOST_ROWS` (a sweep's DDP trials), the compiled block's host time
   (`fit_compiled_host`, on the compiled small steps: a one-dimensional search, the device's
   constants fixed);
6. a device rate for each GPU type without bf16 calibration rows (`fit_gpu_rates`, on the bf16 rows
   of `GPU_RATE_ROWS`: the median miss);
7. FP8 (`fit_fp8`, on the FP8 rows of `FP8_CALIBRATION_ROWS` only, everything above fixed): the
   bytes an FP8 Linear's input keeps, as the median of what the measured peaks leave; then the FP8
   GEMM efficiencies of both recipes, by least squares of the step time the bf16 terms do not
   explain, with the bytes per cast element held at their assumed value (two models' four rows
   cannot tell the casts apart from the GEMMs: fitted too, they came out at an impossible >100%
   rowwise efficiency).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import math
import os
import sys

import numpy as np
import pandas as pd

from slmray.catalog.gpus import canonical_gpu, spec_for
from slmray.errors import ConfigError
from slmray.predict.estimate import (
    CALIBRATION,
    GIB,
    Calibration,
    _fp8_inputs,
    attention_time_s,
    compute_time_s,
    estimate,
    gpu_profile,
    memory_breakdown,
    step_work,
)
from slmray.predict.interval import SMALL_TOKENS
from slmray.predict.kernels import matmul_terms
from slmray.train.config import ROW_DEFAULTS, TrainConfig, is_fp8
from slmray.train.presets import PRESETS

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
CALIBRATION_ROWS = {"trainer_throughput_h100.csv": ("llama-100m", "llama-500m", "pythia-1b")}
"""Table file name -> models whose rows are fitted.  One small and one mid-size LLaMA (the latter
with llama-500m's misaligned MLP width, so the slow-GEMM efficiency is identified) and one Pythia;
llama-1b, llama-2b and pythia-160m stay out to measure the error on unseen configurations."""
FP8_CALIBRATION_ROWS = {"sweep_h200x1_precision.parquet": ("llama-1b", "llama-100m")}
"""Table -> models whose FP8 rows fit the FP8 constants (their bf16 rows stay held out): llama-1b,
every Linear of its blocks in FP8, and llama-100m, the smallest; llama-500m and -2b (MLP in bf16),
pythia-410m and llama-1b at sequence 2048 are held out."""
COMPILED_HOST_ROWS = {"h100x1_small_batch_compiled.parquet": ("llama-100m", "llama-500m", "llama-1b", "llama-2b", "pythia-410m")}
"""Table -> models whose compiled small steps fit `compiled_block_host_s`: the whole compiled
small-batch grid (the steps the host sets, chiefly llama-100m's and pythia-410m's at batch 4 and 8,
weigh in).  Its steps the device sets fit nothing: they ran with the q/k/v split that made compiled
SDPA 6-8% slower (`results/trainer/README.md`).  The held-out sets (`search_spaces/*_heldout*.py`)
stay out."""
PARALLEL_RATE_ROWS = {"h100x1_fused_ddp.parquet": ("llama-100m", "llama-500m", "llama-1b", "llama-2b", "pythia-410m")}
"""Table -> models whose compiled DDP rows fit `parallel_compiled_fused_rate` (steps of more than
`interval.SMALL_TOKENS` tokens a micro-step with fused attention): the grid's twelve such
configurations measured again with the mended trainer (`search_spaces/h100x1_fused_ddp.py`)."""
GPU_RATE_ROWS = ("sweep_h200x1.parquet", "sweep_h200x1_precision.parquet", "sweep_h200x1_checkpointing.parquet",
                 "sweep_h200x1_seq_len.parquet")
"""Tables whose bf16 rows fit `gpu_rates` for their GPU types without calibration rows (the H200):
its four sweeps before the small-batch grid, which stays held out (measured after the fit)."""
HELD_OUT_TABLES = ("h200x1_small_batch.parquet", "h200x1_small_batch_compiled.parquet", "h200x1_heldout.parquet",
                   "h100x1_heldout_b.parquet", "h200x1_heldout_b.parquet", "h100x1_heldout_r1.parquet",
                   "h100x1_heldout_r2.parquet")
"""Tables measured after the constants and kept out of every fit and of the interval widths
(`heldout_accuracy.py`), so the dry run against them (`dry_run_accuracy.py`) is held out whole: the
H200's small-batch grids and the issue's bar sets (`search_spaces/h200x1_heldout.py`,
`h100x1_heldout_b.py`, their dry-run plans committed before they ran) and two short repeats of the
first H100 set's first configurations on another lent H100 (`h100x1_heldout_r1/r2`).  The first H100 bar set
(`h100x1_heldout.parquet`) was looked at before the last fit: it sets widths, and is fitted on by none."""

RECORDED = ("peak_mem_gb", "oom", "tokens_per_s")
TRAINER_COLUMNS = ("model", "attention", "compile", "per_device_batch", "seq_len", "status", "tokens_per_s", "peak_mem_gb")
COLUMNS = (
    "table", "model", "attention", "strategy", "compile", "activation_checkpointing", "precision", "per_device_batch", "seq_len",
    "grad_accum", "num_gpus", "gpu_type", "loss_kernel", "backend", "status", "tokens_per_s", "peak_mem_gb", "wall_s", "startup_s",
    "step_time_median_s", "price_per_hour_usd", "tokens_per_usd", *(f"recorded_{c}" for c in RECORDED), "started_at",
)
"""`recorded_*`: the prediction a sweep stored in the row before the trial ran (NaN in trainer CSVs);
`started_at`: when a sweep's trial started (NaT in trainer CSVs, whose rows are in the order they ran)."""


def committed_tables(results_dir: str = RESULTS_DIR) -> list[str]:
    """Trainer CSVs and results Parquet files in the topic folders of `results_dir` (not their
    `history/`), sorted by file name.

    A Parquet file beside a trainer CSV of the same name is that CSV rewritten for the analysis
    (`trainer_throughput.py --from-csv`): its rows are read once, from the CSV, which is what
    `CALIBRATION_ROWS` names.  The `warm_trials_*` tables are left out: they repeat configurations
    of `sweep_h200x1.parquet` to compare the sweep's two trial paths, and would count them twice.
    """
    paths = sorted(glob.glob(os.path.join(results_dir, "*", "*.csv")) + glob.glob(os.path.join(results_dir, "*", "*.parquet")),
                   key=os.path.basename)
    paths = [p for p in paths if not os.path.basename(p).startswith("warm_trials_")]
    csvs = [p for p in paths if p.endswith(".csv") and set(TRAINER_COLUMNS) <= set(pd.read_csv(p, nrows=0).columns)]
    converted = {os.path.splitext(p)[0] + ".parquet" for p in csvs}
    return [p for p in paths if p in csvs or (p.endswith(".parquet") and p not in converted)]


def _read_one(path: str) -> pd.DataFrame:
    if path.endswith(".parquet"):
        from slmray.results.table import read_table

        df = read_table(path).to_pandas()
        # a sweep that corrected its estimates (slmray.predict.calibration) also recorded the estimator's own
        df["predicted_tokens_per_s"] = df["predicted_tokens_per_s_uncorrected"].fillna(df["predicted_tokens_per_s"])
        df = df.rename(columns={f"predicted_{c}": f"recorded_{c}" for c in RECORDED})
    else:
        df = pd.read_csv(path)
        df["gpu_type"] = df["device"].map(canonical_gpu)
        df["strategy"] = df.get("strategy", "single")
        df["num_gpus"] = df.get("num_gpus", 1)
        df["compile"] = df["compile"].astype(str).str.lower() == "true"
    defaults = {**ROW_DEFAULTS, "wall_s": math.nan, "startup_s": math.nan, "step_time_median_s": math.nan,
                "price_per_hour_usd": math.nan, "tokens_per_usd": math.nan, **{f"recorded_{c}": math.nan for c in RECORDED},
                "started_at": pd.NaT}
    for name, value in defaults.items():
        df[name] = df[name].fillna(value) if name in df.columns else value
    df["table"] = os.path.basename(path)
    return df[list(COLUMNS)]


def load_measured(paths: list[str]) -> pd.DataFrame:
    """One frame of the ok/oom rows of `paths` on a GPU of gpus.csv, whose model is a preset
    (a custom shape cannot be rebuilt from a row)."""
    df = pd.concat([_read_one(p) for p in paths], ignore_index=True)
    known_gpu = df["gpu_type"].map(lambda g: isinstance(g, str) and spec_for(g) is not None)
    df = df[df["status"].isin(("ok", "oom")) & df["model"].isin(list(PRESETS)) & known_gpu]
    df = df.astype({"per_device_batch": int, "seq_len": int, "grad_accum": int, "num_gpus": int})
    df = df.astype({"compile": bool, "activation_checkpointing": bool})
    df["calibration"] = [
        m in (FP8_CALIBRATION_ROWS if is_fp8(p) else CALIBRATION_ROWS).get(t, ())
        for t, m, p in zip(df["table"], df["model"], df["precision"])
    ]
    df["host_calibration"] = [m in COMPILED_HOST_ROWS.get(t, ()) for t, m in zip(df["table"], df["model"])]
    df["parallel_calibration"] = [m in PARALLEL_RATE_ROWS.get(t, ()) for t, m in zip(df["table"], df["model"])]
    df["rate_calibration"] = df["table"].isin(GPU_RATE_ROWS)
    return df.reset_index(drop=True)


def trial_config(row) -> TrainConfig:
    """The TrainConfig a table row ran (a frame's row or `itertuples` tuple; `TrainConfig.from_row`
    fills the nulls of tables from before a column)."""
    return TrainConfig.from_row(row._asdict() if hasattr(row, "_asdict") else row, PRESETS[row.model])


def _predicted_gib(df: pd.DataFrame, cal: Calibration) -> np.ndarray:
    return np.array([
        sum(memory_breakdown(trial_config(r), r.num_gpus, on_gpu=True, cal=cal).values()) / GIB
        for r in df.itertuples()
    ])


def _score_elements(df: pd.DataFrame) -> np.ndarray:
    """Attention-score elements per device and micro-batch, summed over layers."""
    return np.array([
        r.per_device_batch * r.seq_len * PRESETS[r.model].n_layer * PRESETS[r.model].n_head * r.seq_len
        for r in df.itertuples()
    ], dtype=float)


def fit_memory(df: pd.DataFrame, cal: Calibration) -> Calibration:
    ok = df[df["status"] == "ok"]
    compiled_eager = ok["compile"] & (ok["attention"] == "eager")
    rest = ok[~compiled_eager]
    zero = dataclasses.replace(cal, overhead_gib=0.0)
    if len(rest):
        cal = dataclasses.replace(cal, overhead_gib=float(np.median(rest["peak_mem_gb"] - _predicted_gib(rest, zero))))
    ce = ok[compiled_eager]
    if len(ce):
        without = dataclasses.replace(cal, compiled_eager_score_bytes=0.0)
        left = (ce["peak_mem_gb"].to_numpy() - _predicted_gib(ce, without)) * GIB / _score_elements(ce)
        cal = dataclasses.replace(cal, compiled_eager_score_bytes=float(np.median(left)))
    return dataclasses.replace(cal, usable_memory_fraction=_usable_share(df, cal))


def _usable_share(df: pd.DataFrame, cal: Calibration) -> float:
    """The most memory any run got allocated (an OOM run's peak is where it failed), over nominal.

    Every measured peak is a lower bound of what the allocator can reach, and the largest is the
    tightest; the physics above places configurations on either side of it.
    """
    measured = df.dropna(subset=["peak_mem_gb"])
    if measured.empty:
        return cal.usable_memory_fraction
    nominal = np.array([spec_for(g).memory_gb for g in measured["gpu_type"]])
    return float(np.max(measured["peak_mem_gb"].to_numpy() / nominal))


TIME_TERMS = ("matmul", "misaligned", "attention", "activations", "compiled_activations", "profiled_matmul", "profiled_attention")


def time_features(df: pd.DataFrame, cal: Calibration, use_profile: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per row: seconds of each TIME_TERMS term at 100% efficiency and one HBM pass (the profiled
    terms as the GPU profile measured them; 0 with `use_profile=False`), and the seconds of the
    terms no constant here scales: the fixed-efficiency HBM traffic (loss, scores, optimizer), the
    kernels' fixed cost and the host's excess (at the committed constants)."""
    terms, fixed = [], []
    for r in df.itertuples():
        spec = spec_for(r.gpu_type)
        work = step_work(trial_config(r), r.num_gpus, cal)
        profile = gpu_profile(spec) if use_profile else None
        peak, bw = spec.peak_bf16_tflops * 1e12, spec.hbm_tb_s * 1e12
        mm = matmul_terms(work.gemms, peak, spec.sms, profile)
        attention, attention_profiled = attention_time_s(work, spec, profile)
        act = work.activation_bytes / bw
        terms.append([
            mm["aligned"], mm["misaligned"], attention,
            0.0 if work.compiled else act, act if work.compiled else 0.0, mm["profiled"], attention_profiled,
        ])
        times = compute_time_s(work, spec, cal, profile)
        fixed.append(work.hbm_bytes / (bw * cal.hbm_efficiency) + times["kernels"] + times["host"])
    return np.array(terms), np.array(fixed)


def measured_step_s(df: pd.DataFrame) -> np.ndarray:
    tokens = df["per_device_batch"] * df["seq_len"] * df["grad_accum"] * df["num_gpus"]
    return (tokens / df["tokens_per_s"]).to_numpy(dtype=float)


def fit_time(df: pd.DataFrame, cal: Calibration) -> Calibration:
    """The datasheet path's constants, fitted with every profile ignored (what a GPU type without
    one is predicted with), then the two profiled scales on the rows of profiled GPU types."""
    return fit_profiled(df, _fit_terms(df, cal, use_profile=False))


def fit_profiled(df: pd.DataFrame, cal: Calibration) -> Calibration:
    """`profiled_matmul_scale` and `profiled_attention_scale` on the ok one-GPU rows of `df` whose
    GPU type has a profile, every other constant as `cal` has it.  Fitted jointly with the
    activation passes, the profile's GEMM scale came out at 0.38 (a GEMM in a step three times
    faster than alone): the passes took the time over, so they stay the datasheet fit's."""
    ok = df[(df["status"] == "ok") & (df["num_gpus"] == 1)]
    ok = ok[[gpu_profile(spec_for(g)) is not None for g in ok["gpu_type"]]]
    if not len(ok):  # no row of a profiled GPU type: the profile as measured, not scales fitted elsewhere
        return dataclasses.replace(cal, profiled_matmul_scale=1.0, profiled_attention_scale=1.0)
    x, fixed = time_features(ok, cal)
    sheet, _ = time_features(ok, cal, use_profile=False)
    passes = np.array([cal.activation_passes, cal.compiled_activation_passes]) / cal.hbm_efficiency
    c = np.array([1 / cal.matmul_efficiency, 1 / cal.misaligned_matmul_efficiency, 1 / cal.attention_efficiency])
    w = cal.profile_weight  # the blend with the datasheet path (Calibration.profile_weight)
    rest = fixed + (w * x[:, :3] + (1 - w) * sheet[:, :3]) @ c + x[:, 3:5] @ passes
    x, y = w * x[:, 5:], measured_step_s(ok)
    coef = np.array([cal.profiled_matmul_scale, cal.profiled_attention_scale])
    used = np.flatnonzero(np.abs(x).sum(axis=0) > 0)
    if len(ok) >= len(used) and len(used):
        fitted, *_ = np.linalg.lstsq(x[:, used] / y[:, None], (y - rest) / y, rcond=None)
        if (fitted <= 0).any():
            bad = [TIME_TERMS[5 + i] for i, f in zip(used, fitted) if f <= 0]
            raise SystemExit(f"error: the calibration rows give a non-positive coefficient for {', '.join(bad)}")
        coef[used] = fitted
    return dataclasses.replace(cal, profiled_matmul_scale=coef[0], profiled_attention_scale=coef[1])


def _fit_terms(df: pd.DataFrame, cal: Calibration, use_profile: bool) -> Calibration:
    ok = df[(df["status"] == "ok") & (df["num_gpus"] == 1)]  # multi-GPU rows wait for a fit of the links
    x, fixed = time_features(ok, cal, use_profile)
    y = measured_step_s(ok)
    h = cal.hbm_efficiency
    coef = np.array([
        1 / cal.matmul_efficiency, 1 / cal.misaligned_matmul_efficiency, 1 / cal.attention_efficiency,
        cal.activation_passes / h, cal.compiled_activation_passes / h,
        cal.profiled_matmul_scale, cal.profiled_attention_scale,
    ])
    used = np.flatnonzero(np.abs(x).sum(axis=0) > 0)
    if len(ok) >= len(used) and len(used):
        w = 1 / y
        fitted, *_ = np.linalg.lstsq(x[:, used] * w[:, None], (y - fixed) * w, rcond=None)
        if (fitted <= 0).any():
            bad = [TIME_TERMS[i] for i, f in zip(used, fitted) if f <= 0]
            raise SystemExit(f"error: the calibration rows give a non-positive coefficient for {', '.join(bad)}")
        coef[used] = fitted
    return dataclasses.replace(
        cal, matmul_efficiency=1 / coef[0], misaligned_matmul_efficiency=1 / coef[1], attention_efficiency=1 / coef[2],
        activation_passes=coef[3] * h, compiled_activation_passes=coef[4] * h,
        profiled_matmul_scale=coef[5], profiled_attention_scale=coef[6],
    )


def fit_fp8(df: pd.DataFrame, cal: Calibration) -> Calibration:
    """The FP8 constants fitted to the ok FP8 rows of `df`, the bf16 ones as `cal` has them."""
    ok = df[(df["status"] == "ok") & df["precision"].map(is_fp8) & (df["num_gpus"] == 1)]
    if not len(ok):
        return cal
    # memory: with no saving (2 bytes kept per input element), what the measured peak leaves
    inputs = np.array([
        r.per_device_batch * r.seq_len * PRESETS[r.model].n_layer * _fp8_inputs(trial_config(r)) for r in ok.itertuples()
    ], dtype=float)
    unsaved = _predicted_gib(ok, dataclasses.replace(cal, fp8_saved_input_bytes=2.0))
    compiled = ok["compile"].to_numpy(bool) & (inputs > 0)
    if compiled.any():
        saved = 2.0 - (unsaved - ok["peak_mem_gb"].to_numpy())[compiled] * GIB / inputs[compiled]
        cal = dataclasses.replace(cal, fp8_saved_input_bytes=float(np.median(saved)))
    # time: the bf16 terms at the committed constants, the FP8 ones fitted
    x, rest = [], []
    for r in ok.itertuples():
        spec = spec_for(r.gpu_type)
        work = step_work(trial_config(r), r.num_gpus, cal)
        times = compute_time_s(work, spec, cal)
        rest.append(sum(v for k, v in times.items() if not k.startswith("fp8_")))
        peak8, bw = spec.peak_fp8_tflops * 1e12, spec.hbm_tb_s * 1e12 * cal.hbm_efficiency
        rest[-1] += work.fp8_cast_elements * cal.fp8_cast_bytes / bw
        x.append([work.fp8_matmul_flops / peak8, work.fp8_rowwise_matmul_flops / peak8])
    x, y = np.array(x), measured_step_s(ok)
    coef = np.array([1 / cal.fp8_matmul_efficiency, 1 / cal.fp8_rowwise_matmul_efficiency])
    used = np.flatnonzero(np.abs(x).sum(axis=0) > 0)
    if len(ok) >= len(used):
        w = 1 / y
        fitted, *_ = np.linalg.lstsq(x[:, used] * w[:, None], (y - np.array(rest)) * w, rcond=None)
        if (fitted <= 0).any():
            names = np.array(["fp8_matmul", "fp8_rowwise_matmul"])[used][fitted <= 0]
            raise SystemExit(f"error: the FP8 calibration rows give a non-positive coefficient for {', '.join(names)}")
        coef[used] = fitted
    return dataclasses.replace(cal, fp8_matmul_efficiency=1 / coef[0], fp8_rowwise_matmul_efficiency=1 / coef[1])


HOST_GRID_S = np.geomspace(1e-4, 2e-2, 241)
"""The compiled block's host seconds tried (0.1-20 ms, 2.2% apart)."""


def _ok_one_gpu_bf16(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & (df["num_gpus"] == 1) & ~df["precision"].map(is_fp8)]


def _compiled_small(df: pd.DataFrame) -> pd.Series:
    """Compiled steps of at most `interval.SMALL_TOKENS` tokens a micro-step: the host sets them."""
    return df["compile"] & (df["per_device_batch"] * df["seq_len"] <= SMALL_TOKENS)


def fit_compiled_host(df: pd.DataFrame, cal: Calibration) -> Calibration:
    """`compiled_block_host_s` from the ok one-GPU bf16 compiled small steps of `df` (at most
    `interval.SMALL_TOKENS` tokens a micro-step): the value of `HOST_GRID_S` with the least mean
    |log(predicted / measured)|, the rest of `cal` fixed; `cal` as it is where `df` has none.
    A one-dimensional search, not least squares: the host term enters a step as max(host, device)."""
    ok = _ok_one_gpu_bf16(df)
    small = ok[_compiled_small(ok)]
    if small.empty:
        return cal
    configs = [(trial_config(r), r.gpu_type) for r in small.itertuples()]
    measured = np.log(small["tokens_per_s"].to_numpy(dtype=float))

    def loss(block_s: float) -> float:
        trial = dataclasses.replace(cal, compiled_block_host_s=float(block_s))
        predicted = [estimate(c, g, 1, calibration=trial).tokens_per_s for c, g in configs]
        return float(np.mean(np.abs(np.log(predicted) - measured)))

    return dataclasses.replace(cal, compiled_block_host_s=float(min(HOST_GRID_S, key=loss)))


def _parallel_compiled_fused(df: pd.DataFrame) -> pd.Series:
    """Compiled steps with fused attention under a data-parallel wrapper: `parallel_compiled_fused_rate`'s."""
    return df["compile"] & (df["strategy"] != "single") & ~df["attention"].isin(("eager", "sdpa-math"))


def _parallel_compiled_fused_regular(df: pd.DataFrame) -> pd.DataFrame:
    """The ok one-GPU bf16 `parallel_calibration` rows of `_parallel_compiled_fused` of more than
    `interval.SMALL_TOKENS` tokens a micro-step (the device sets them, not the host); no other
    table's, since those ran with the slow q/k/v split (`PARALLEL_RATE_ROWS`)."""
    ok = _ok_one_gpu_bf16(df)
    return ok[ok["parallel_calibration"] & _parallel_compiled_fused(ok) & ~_compiled_small(ok)]


def fit_parallel_compiled(df: pd.DataFrame, cal: Calibration) -> Calibration:
    """`parallel_compiled_fused_rate` from `_parallel_compiled_fused_regular(df)`: the median of measured over
    predicted tokens/s with the rate at 1 (the rest of `cal` fixed); `cal` as it is where `df` has none."""
    rows = _parallel_compiled_fused_regular(df)
    if rows.empty:
        return cal
    plain = dataclasses.replace(cal, parallel_compiled_fused_rate=1.0)
    predicted = np.array([estimate(trial_config(r), r.gpu_type, 1, calibration=plain).tokens_per_s for r in rows.itertuples()])
    rate = float(np.exp(np.median(np.log(rows["tokens_per_s"].to_numpy(float) / predicted))))
    return dataclasses.replace(cal, parallel_compiled_fused_rate=round(rate, 4))


def fit_gpu_rates(df: pd.DataFrame, cal: Calibration, uncalibrated: set[str]) -> Calibration:
    """`gpu_rates` of the GPU types in `uncalibrated` from the ok one-GPU bf16 rows of `df`: the
    median of measured over predicted tokens/s (the rest of `cal` fixed); the others' factors
    dropped, so a GPU type is never corrected by its own calibration rows."""
    ok = _ok_one_gpu_bf16(df)
    ok = ok[ok["gpu_type"].isin(uncalibrated)]
    plain = dataclasses.replace(cal, gpu_rates=())
    rates = []
    for gpu, rows in sorted(ok.groupby("gpu_type"), key=lambda item: item[0]):
        predicted = np.array([estimate(trial_config(r), gpu, 1, calibration=plain).tokens_per_s for r in rows.itertuples()])
        rates.append((gpu, round(float(np.exp(np.median(np.log(rows["tokens_per_s"].to_numpy(float) / predicted)))), 4)))
    return dataclasses.replace(cal, gpu_rates=tuple(rates))


def fit(df: pd.DataFrame, start: Calibration = CALIBRATION, host_rows: pd.DataFrame | None = None,
        rate_rows: pd.DataFrame | None = None) -> Calibration:
    """Constants fitted to the rows of `df` (all of them: select the calibration rows first).
    The bf16 constants from its bf16 rows (the device's from those but compiled small steps, which
    the host sets: a linear fit would take their host time for the device's, and compiled fused
    attention under DDP or FSDP, whose rate is fitted next), then from `host_rows` (default `df`)
    the rate of compiled fused attention under DDP or FSDP (its device-bound `parallel_calibration`
    steps) and the compiled block's host time (its compiled small steps), then a rate for each GPU
    type of `rate_rows` (default `df`) without a bf16 calibration row, then the FP8
    constants from its FP8 rows.  Each step uses only what the ones before it fitted (FP8 rows feel
    the host and their GPU type's rate; the bf16 fits never read an FP8 constant), so the result
    does not hang on the constants it started from."""
    start = dataclasses.replace(start, gpu_rates=())  # a rate to start from would bend the device's fit
    bf16 = df[~df["precision"].map(is_fp8)]
    device = bf16[~_compiled_small(bf16) & ~_parallel_compiled_fused(bf16)]  # the latter: the rate's rows
    host_rows = df if host_rows is None else host_rows
    cal = fit_compiled_host(host_rows, fit_parallel_compiled(host_rows, fit_time(device, fit_memory(bf16, start))))
    rate_rows = df if rate_rows is None else rate_rows
    return fit_fp8(df, fit_gpu_rates(rate_rows, cal, uncalibrated_gpus(pd.concat([df, rate_rows]))))


def uncalibrated_gpus(df: pd.DataFrame) -> set[str]:
    """The GPU types of `df` none of whose bf16 rows is a calibration row: those a rate is fitted for."""
    bf16 = df[~df["precision"].map(is_fp8)]
    return set(df["gpu_type"]) - set(bf16.loc[bf16["calibration"], "gpu_type"])


def fit_committed(df: pd.DataFrame, start: Calibration = CALIBRATION) -> Calibration:
    """The committed constants from `load_measured`'s rows: `fit` on the calibration rows, the
    rate of compiled fused attention inside DDP on `PARALLEL_RATE_ROWS`, the compiled block's host
    time on `COMPILED_HOST_ROWS`, `gpu_rates` on `GPU_RATE_ROWS`."""
    host_rows = df[df["host_calibration"] | df["parallel_calibration"]]
    return fit(df[df["calibration"]], start, host_rows=host_rows, rate_rows=df[df["rate_calibration"]])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="*", help="tables to read (default: every committed one in benchmarks/results/*/)")
    args = p.parse_args(argv)
    try:
        df = load_measured(args.tables or committed_tables())
    except (OSError, ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cal_rows = df[df["calibration"]]
    print(f"calibration rows: {len(cal_rows)} of {len(df)}", file=sys.stderr)
    for (table, model), g in cal_rows.groupby(["table", "model"]):
        print(f"  {table}: {model} ({len(g)} rows)", file=sys.stderr)
    for flag, what in (("parallel_calibration", "compiled fused attention inside DDP"),
                       ("host_calibration", "the compiled block's host time")):
        for (table, model), g in df[df[flag]].groupby(["table", "model"]):
            print(f"  {table}: {model} ({len(g)} rows, {what})", file=sys.stderr)
    fitted = fit_committed(df)
    print("CALIBRATION = Calibration(")
    for f in dataclasses.fields(fitted):
        value = getattr(fitted, f.name)
        print(f"    {f.name}={value:.4g}," if isinstance(value, float) else f"    {f.name}={value!r},")
    print(")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
