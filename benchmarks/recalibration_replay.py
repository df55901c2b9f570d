"""Replay committed sweeps in trial order: does refitting the estimator's correction as trials
finish (`slmray.predict.calibration.Recalibrator`, what the sweep does) improve the tokens/s predicted
before each trial?

    python benchmarks/recalibration_replay.py              # writes benchmarks/results/estimate/recalibration_replay.md
    python benchmarks/recalibration_replay.py --out -      # print only

For each sweep (`started_at` order), before each trial: the prediction the table recorded
before it ran (uncorrected: these sweeps ran before corrections existed; checked against the
estimate recomputed with the committed constants), and the same times the correction fitted
on the sweep's earlier ok trials of its GPU type.  Then the trial is observed.  Reported: the
median absolute error over the ok trials, with and without recalibration; and, replaying both
sweeps as one sequence, with the pooled fallback (a GPU type without trials borrows the others').
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pandas as pd

from slmray.predict.calibration import Recalibrator
from slmray.predict.estimate import estimate
from slmray.results.table import read_table

from calibrate_estimate import RESULTS_DIR, trial_config

SWEEPS = ("sweep_h200x1.parquet", "sweep_h100x1.parquet")
READING = (
    "Reading (the committed sweeps): the H200 is a GPU no calibration row ran on, and the estimator, working from "
    "its datasheet, over-predicts it by about 9% throughout; one ok trial is enough for the correction to remove "
    "most of that bias, which halves the median error. The H100 is the GPU the committed constants were fitted "
    "on (benchmarks/calibrate_estimate.py, its trainer table): there the correction has little bias to remove, "
    "follows the noise of single trials, and the median error grows slightly. Sweeping both as one sequence (the "
    "H100 sweep ran first), the pooled fallback corrects the H200's first trial with the H100's factor, which "
    "lowers that GPU's worst error but not its median."
)


def load(paths: list[str]) -> pd.DataFrame:
    frames = [read_table(p).to_pandas().assign(table=os.path.basename(p)) for p in paths]
    df = pd.concat(frames, ignore_index=True).sort_values("started_at", kind="stable").reset_index(drop=True)
    for name, value in (("compile", False), ("activation_checkpointing", False), ("grad_accum", 1)):
        df[name] = df[name].fillna(value)
    return df


def replay(df: pd.DataFrame, recal: Recalibrator) -> pd.DataFrame:
    """Per trial in order: the uncorrected and the corrected prediction made before it."""
    uncorrected = df["predicted_tokens_per_s_uncorrected"].fillna(df["predicted_tokens_per_s"]).astype(float)
    corrected, factor, rows = [], [], []
    for i, r in df.iterrows():
        c = recal.correction(r["gpu_type"])
        corrected.append(c.apply(uncorrected[i]))
        factor.append(c.factor)
        rows.append(c.rows)
        recal.observe({**r.to_dict(), "predicted_tokens_per_s_uncorrected": uncorrected[i]})
    return df.assign(uncorrected=uncorrected, corrected=corrected, factor=factor, rows=rows)


def recomputed_gap(df: pd.DataFrame) -> float:
    """Largest relative gap between the recorded predictions and the estimate recomputed now."""
    now = np.array([estimate(trial_config(r), r.gpu_type, int(r.num_gpus)).tokens_per_s for r in df.itertuples()])
    return float(np.nanmax(np.abs(now / df["predicted_tokens_per_s"].to_numpy(dtype=float) - 1)))


def errors(r: pd.DataFrame, column: str) -> pd.Series:
    ok = r[r["status"] == "ok"]
    return (ok[column] / ok["tokens_per_s"] - 1).abs()


def summary_line(name: str, r: pd.DataFrame) -> dict:
    raw, fixed = errors(r, "uncorrected"), errors(r, "corrected")
    signed = r[r["status"] == "ok"]
    return {
        "replay": name, "trials": len(r), "ok": len(raw),
        "without: median |error|": f"{100 * raw.median():.1f}%",
        "with: median |error|": f"{100 * fixed.median():.1f}%",
        "without: median signed": f"{100 * (signed['uncorrected'] / signed['tokens_per_s'] - 1).median():+.1f}%",
        "with: median signed": f"{100 * (signed['corrected'] / signed['tokens_per_s'] - 1).median():+.1f}%",
        "without: worst": f"{100 * raw.max():.1f}%", "with: worst": f"{100 * fixed.max():.1f}%",
    }


def markdown_table(frame: pd.DataFrame) -> str:
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + " --- |" * len(frame.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def trial_table(r: pd.DataFrame) -> pd.DataFrame:
    def pct(pred, meas):
        return "-" if not np.isfinite(meas) else f"{100 * (pred / meas - 1):+.1f}%"

    return pd.DataFrame({
        "#": range(1, len(r) + 1), "table": r["table"], "gpu": r["gpu_type"], "model": r["model"],
        "attention": r["attention"], "batch": r["per_device_batch"], "status": r["status"],
        "measured tokens/s": [f"{v:,.0f}" if np.isfinite(v) else "-" for v in r["tokens_per_s"].astype(float)],
        "predicted, uncorrected": [f"{v:,.0f}" for v in r["uncorrected"]],
        "error": [pct(p, m) for p, m in zip(r["uncorrected"], r["tokens_per_s"].astype(float))],
        "correction (ok trials before)": [f"x{f:.3f} ({n})" if n else "none" for f, n in zip(r["factor"], r["rows"])],
        "predicted, recalibrated": [f"{v:,.0f}" for v in r["corrected"]],
        "error ": [pct(p, m) for p, m in zip(r["corrected"], r["tokens_per_s"].astype(float))],
    })


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="*", help=f"sweeps to replay (default: {', '.join(SWEEPS)} in benchmarks/results/sweeps)")
    p.add_argument("--out", default=os.path.join(RESULTS_DIR, "estimate", "recalibration_replay.md"), help="Markdown to write, - for none")
    args = p.parse_args(argv)
    paths = args.tables or [os.path.join(RESULTS_DIR, "sweeps", s) for s in SWEEPS]
    replays = [(os.path.basename(path), replay(load([path]), Recalibrator())) for path in paths]
    both = load(paths)
    if len(paths) > 1:
        replays.append(("all, one sequence", replay(both, Recalibrator())))
        replays.append(("all, one sequence, pooled fallback", replay(both, Recalibrator(pooled_fallback=True))))
    lines = []
    for name, r in replays:
        lines.append(summary_line(name, r))
        if name.startswith("all") and r["gpu_type"].nunique() > 1:
            lines += [summary_line(f"{name}: {gpu} trials", part) for gpu, part in r.groupby("gpu_type")]
    summary = pd.DataFrame(lines)
    gap = recomputed_gap(both)
    print(summary.to_string(index=False))
    print(f"recorded vs recomputed uncorrected predictions: at most {100 * gap:.2f}% apart")
    if args.out != "-":
        sections = [
            "# Online recalibration, replayed on the committed sweeps",
            "Made by `python benchmarks/recalibration_replay.py`. Each sweep is replayed in trial order (`started_at`). "
            "Before each trial: the tokens/s prediction the table recorded before the trial ran (the estimator's, "
            "uncorrected), and that prediction times the correction `slmray.predict.calibration.Recalibrator` had fitted on the "
            "sweep's earlier ok trials of the same GPU type (geometric mean of measured / predicted; none before the "
            "first ok trial). Errors are |predicted / measured - 1| over the ok trials; signed: positive is predicted "
            "faster than measured. 'pooled fallback': a GPU type without trials yet borrows the correction of all "
            f"earlier trials. The recorded predictions match the estimate recomputed with the committed constants to "
            f"{100 * gap:.2f}%.",
            "## Median tokens/s error of the predictions made before each trial\n\n" + markdown_table(summary),
            *([READING] if not args.tables else []),
            *(f"## Trials: {name}\n\n" + markdown_table(trial_table(r)) for name, r in replays[:len(paths)]),
        ]
        with open(args.out, "w") as f:
            f.write("\n\n".join(sections) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
