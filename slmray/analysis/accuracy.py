"""Predicted against measured: the estimate `slmray.predict.estimate` recorded in each row before the
trial ran (`predicted_peak_mem_gb`, `predicted_oom`, `predicted_tokens_per_s`), next to what
the trial measured.

Only ok and oom trials are judged (a failed or pruned trial says nothing about memory or
speed).  OOM is right when `predicted_oom` equals `status == "oom"`.  Memory and tokens/s
errors count ok trials only: an OOM trial's peak is where it failed, and it has no tokens/s.
Errors are relative, predicted / measured - 1; MdAPE is the median of their absolute values,
in percent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from slmray.analysis.table import model_order

PREDICTED = {"peak_mem_gb": "predicted_peak_mem_gb", "tokens_per_s": "predicted_tokens_per_s"}
"""Measured column -> the prediction of it."""


def judged(df: pd.DataFrame) -> pd.DataFrame:
    """The ok and oom trials that carry an OOM prediction."""
    return df[df["status"].isin(("ok", "oom")) & df["predicted_oom"].notna()]


def has_predictions(df: pd.DataFrame) -> bool:
    return not judged(df).empty


def relative_error(measured, predicted) -> np.ndarray:
    """predicted / measured - 1; NaN where either is missing or the measurement is not positive."""
    m = np.asarray(measured, dtype=float)
    return np.asarray(predicted, dtype=float) / np.where(m > 0, m, np.nan) - 1


def median_abs_pct_error(measured, predicted) -> float:
    err = np.abs(relative_error(measured, predicted))
    err = err[np.isfinite(err)]
    return float(np.median(err) * 100) if len(err) else float("nan")


def summarise(df: pd.DataFrame) -> dict[str, float]:
    """rows judged, ok trials, share of OOM right, memory and tokens/s MdAPE (ok trials)."""
    rows = judged(df)
    ok = rows[rows["status"] == "ok"]
    right = rows["predicted_oom"].astype(bool) == (rows["status"] == "oom")
    return {
        "rows": len(rows), "ok": len(ok), "oom_accuracy": float(right.mean()) if len(rows) else float("nan"),
        "memory_mdape": median_abs_pct_error(ok["peak_mem_gb"], ok["predicted_peak_mem_gb"]),
        "tokens_mdape": median_abs_pct_error(ok["tokens_per_s"], ok["predicted_tokens_per_s"]),
    }


def percent(value: float, digits: int) -> str:
    """`value` (already in percent) as text, - where it is unknown."""
    return f"{value:.{digits}f}%" if np.isfinite(value) else "-"


def accuracy_table(df: pd.DataFrame) -> pd.DataFrame:
    """`summarise` per model, smallest first (and per GPU type, where the table has several), and
    over all trials; the largest memory error too."""
    rows = judged(df)
    types = sorted(rows["gpu_type"].dropna().unique()) if "gpu_type" in rows else []
    per_type = len(types) > 1
    groups = [({"model": m}, rows[rows["model"] == m]) for m in model_order(rows)]
    if per_type:
        groups = [({**key, "gpu_type": t}, part[part["gpu_type"] == t]) for key, part in groups for t in types]
    total = {"model": "all", **({"gpu_type": "all"} if per_type else {})}
    groups = [(key, part) for key, part in groups if len(part)] + [(total, rows)]
    lines = []
    for key, part in groups:
        ok = part[part["status"] == "ok"]
        worst = np.abs(relative_error(ok["peak_mem_gb"], ok["predicted_peak_mem_gb"]))
        s = summarise(part)
        lines.append({
            **key, "trials": s["rows"], "ok": s["ok"], "OOM right": percent(100 * s["oom_accuracy"], 0),
            "memory MdAPE": percent(s["memory_mdape"], 2),
            "memory worst": percent(100 * np.nanmax(worst), 1) if np.isfinite(worst).any() else "-",
            "tokens/s MdAPE": percent(s["tokens_mdape"], 1),
        })
    return pd.DataFrame(lines)


def oom_confusion(df: pd.DataFrame) -> pd.DataFrame:
    """Counts of predicted against actual out-of-memory, over the judged trials."""
    rows = judged(df)
    predicted = rows["predicted_oom"].astype(bool)
    actual = rows["status"] == "oom"
    return pd.DataFrame({
        "prediction": ["out of memory", "fits"],
        "ran out of memory": [int((predicted & actual).sum()), int((~predicted & actual).sum())],
        "ran ok": [int((predicted & ~actual).sum()), int((~predicted & ~actual).sum())],
    })
