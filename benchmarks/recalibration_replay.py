"""Replay the committed tables in trial order: does refitting the estimator's correction as trials
finish (`slmray.predict.calibration.Recalibrator`, what the sweep does) improve the tokens/s predicted
before each trial, and is it ever worse than no correction?

    python benchmarks/recalibration_replay.py              # writes benchmarks/results/estimate/recalibration_replay.md
    python benchmarks/recalibration_replay.py --out -      # print only

Each committed table (`calibrate_estimate.committed_tables`: the sweeps in `started_at` order, the
trainer table in the order it ran) is one sweep on one GPU type, replayed on its own.  Before each
trial: the estimator's prediction with the committed constants (uncorrected); that prediction times
the single factor the sweep used to refit (the geometric mean of measured / predicted over the earlier
ok trials, from the first one on: the correction this one replaced); and times the correction
`Recalibrator` fits on the earlier ok trials (a regime residual, used only where it beats no
correction by leave-one-out, never on or for a step the host sets).  Then the trial is observed.  Reported per table and over all: median
and worst |predicted / measured - 1| over the ok trials.
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np
import pandas as pd

from slmray.predict.calibration import Recalibrator, Regime

from calibrate_estimate import RESULTS_DIR, committed_tables, load_measured
from estimate_accuracy import markdown_table, predict

WORSE = 0.05
"""A trial the correction made worse: its |error| grew by more than this (5 percentage points)."""
METHODS = {"uncorrected": "no correction", "factor": "single factor (before)", "regime": "Recalibrator (now)"}


def load(paths: list[str]) -> list[pd.DataFrame]:
    """Each table's rows in the order its trials ran, with the estimator's prediction recomputed now."""
    df = predict(load_measured(paths))
    out = []
    for _, g in df.groupby("table", sort=True):
        out.append(g.sort_values("started_at", kind="stable").reset_index(drop=True) if g["started_at"].notna().all() else
                   g.reset_index(drop=True))
    return out


def replay(df: pd.DataFrame, recal: Recalibrator | None = None) -> pd.DataFrame:
    """Per trial in order: the uncorrected prediction, the single factor's and the Recalibrator's,
    each made before the trial, and what the Recalibrator applied (kind, rows; none where it had no
    fit or its fit does not cover the trial's regime)."""
    recal = recal or Recalibrator()
    logs: list[float] = []  # log(measured / predicted) of the earlier ok trials: the single factor's fit
    factor, regime, kind, rows = [], [], [], []
    for r in df.to_dict("records"):
        p = float(r["predicted_tokens_per_s"])
        factor.append(p * math.exp(sum(logs) / len(logs)) if logs else p)
        c, own = recal.correction(r["gpu_type"]), Regime.of(r, r["host_share"])
        regime.append(c.apply(p, own))
        applied = c.rows and c.covers(own)
        kind.append(c.kind if applied else "none")
        rows.append(c.rows if applied else 0)
        row = {**r, "predicted_tokens_per_s_uncorrected": p, "predicted_host_share": r["host_share"]}
        if recal.observe(row):
            logs.append(math.log(float(r["tokens_per_s"]) / p))
    return df.assign(uncorrected=df["predicted_tokens_per_s"].astype(float), factor=factor, regime=regime,
                     kind=kind, rows=rows)


def errors(r: pd.DataFrame, column: str) -> pd.Series:
    ok = r[r["status"] == "ok"]
    return (ok[column] / ok["tokens_per_s"] - 1).abs()


def summary_line(name: str, r: pd.DataFrame) -> dict:
    line = {"table": name, "gpu": ", ".join(sorted(r["gpu_type"].unique())), "trials": len(r), "ok": int((r["status"] == "ok").sum())}
    for column, label in METHODS.items():
        e = errors(r, column)
        line[f"{label}: median / worst %"] = f"{100 * e.median():.1f} / {100 * e.max():.1f}"
    raw = errors(r, "uncorrected")
    for column, label in (("factor", "before"), ("regime", "now")):
        e = errors(r, column)
        line[f"{label}: worse than none?"] = "yes" if e.median() > raw.median() + 1e-12 or e.max() > raw.max() + 1e-12 else "no"
        line[f"{label}: trials {100 * WORSE:.0f}+ points worse"] = int((e > raw + WORSE).sum())
    return line


def trial_table(r: pd.DataFrame) -> pd.DataFrame:
    def pct(pred, meas):
        return "-" if not np.isfinite(meas) else f"{100 * (pred / meas - 1):+.1f}%"

    measured = r["tokens_per_s"].astype(float)
    return pd.DataFrame({
        "#": range(1, len(r) + 1), "model": r["model"], "attention": r["attention"], "compile": r["compile"],
        "precision": r["precision"], "backend": r["backend"], "batch": r["per_device_batch"], "seq": r["seq_len"],
        "status": r["status"], "measured tokens/s": [f"{v:,.0f}" if np.isfinite(v) else "-" for v in measured],
        "uncorrected": [pct(p, m) for p, m in zip(r["uncorrected"], measured)],
        "single factor": [pct(p, m) for p, m in zip(r["factor"], measured)],
        "Recalibrator": [pct(p, m) for p, m in zip(r["regime"], measured)],
        "applied (ok trials)": [f"{k} ({n})" if n else "none" for k, n in zip(r["kind"], r["rows"])],
    })


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("tables", nargs="*", help="tables to replay (default: every committed one, calibrate_estimate.committed_tables)")
    p.add_argument("--out", default=os.path.join(RESULTS_DIR, "estimate", "recalibration_replay.md"), help="Markdown to write, - for none")
    args = p.parse_args(argv)
    replays = [(g["table"].iloc[0], replay(g)) for g in load(args.tables or committed_tables())]
    summary = pd.DataFrame([summary_line(name, r) for name, r in replays]
                           + [summary_line("all tables (each replayed on its own)", pd.concat([r for _, r in replays]))])
    print(summary.to_string(index=False))
    if args.out != "-":
        sections = [
            "# Online recalibration, replayed on the committed tables",
            "Made by `python benchmarks/recalibration_replay.py`. Each committed table is one sweep on one GPU type, "
            "replayed on its own in the order its trials ran (`started_at`; the trainer table in file order). Before "
            "each trial, three predictions of its tokens/s: the estimator's with the committed constants (no "
            "correction); that times the single factor the sweep refitted before (geometric mean of measured / "
            "predicted over the earlier ok trials, from the first on); and that times the correction "
            "`slmray.predict.calibration.Recalibrator` fits on the earlier ok trials (a ridge residual in log space on "
            "log tokens per micro-step, eager attention and compile, shrunk toward none, used only where its "
            "leave-one-out error beats no correction, so never before two ok trials; a step the estimate puts at "
            "`HOST_BOUND_SHARE` host or more is neither fitted on nor corrected: its speed is the lent host's). Errors are |predicted / "
            "measured - 1| over the ok trials; in the trial tables signed (positive: predicted faster). 'worse than "
            "none': a larger median or worst error than no correction on that table; 'trials 5+ points worse': ok "
            "trials whose |error| the correction grew by more than 5 percentage points.",
            "## Tokens/s error of the predictions made before each trial\n\n" + markdown_table(summary),
            *(f"## Trials: {name}\n\n" + markdown_table(trial_table(r)) for name, r in replays),
        ]
        with open(args.out, "w") as f:
            f.write("\n\n".join(sections) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
