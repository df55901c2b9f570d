"""The estimate's tokens/s on rows its constants never saw, its 80% interval's coverage, and the
interval widths the estimator ships (`slmray/predict/interval_widths.csv`).

    python benchmarks/heldout_accuracy.py          # writes benchmarks/results/estimate/heldout_accuracy.md
                                                   # and slmray/predict/interval_widths.csv
    python benchmarks/heldout_accuracy.py --out -  # print only

Every ok one-GPU row of the committed tables is predicted twice, each time by constants refitted
(`calibrate_estimate.fit`) on rows that exclude it:
- `gpu unmeasured`: leave its GPU type out (fit on the H200, predict the H100, and back);
- `gpu measured`: leave its model out (fit on the other models' rows, every GPU type).
The FP8 constants start from their stated priors (`Calibration`'s defaults), not the committed ones
fitted on H200 FP8 rows, and the compiled block's host time and the GPU types' rates unfitted, so an FP8 row, a compiled
small step or an H200 row is never predicted by constants fitted on it.  Small steps (at
most `interval.SMALL_TOKENS` tokens per device and micro-step) are also reported on their own.

The interval's width per (split, class of comparable rows, `interval.row_class`, and the host-bound
rows of every class, `interval.HOST_BOUND`) is the 80th
percentile of |log(predicted / measured)| of these held-out predictions, or of the committed
constants' own predictions of the rows they were not fitted on (`shipped`: what a dry run predicts,
its bias included) where those are wider, written to the CSV.  Its
coverage is measured without its own rows: each row's interval takes the width measured on the other
folds (the other models for `gpu measured`, the other GPU type for `gpu unmeasured`).

Also what the GPU profile buys (`before`: the profile ignored, datasheet and priors; `after`: the
shipped profiles) and the held-out error at each `Calibration.profile_weight` (this replaces
`profile_accuracy.py` and `leave_one_gpu_out.py`).  Errors: predicted over measured tokens/s, minus
one (positive: predicted faster).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import math
import os
import sys

import numpy as np
import pandas as pd

from calibrate_estimate import HELD_OUT_TABLES, RESULTS_DIR, committed_tables, fit, load_measured, trial_config
from estimate_accuracy import markdown_table, predict
from slmray.catalog.gpus import spec_for
from slmray.catalog.profiles import profile_for
from slmray.predict.estimate import CALIBRATION, Calibration
from slmray.predict.interval import (
    CLASSES, COVERAGE, FEW_ROWS_WIDTH, HOST_BOUND, HOST_BOUND_SHARE, MIN_ROWS, SMALL_TOKENS, SPLITS, WIDTHS_CSV, Width, row_class,
    row_width,
)

FP8_PRIORS = {f.name: f.default for f in dataclasses.fields(Calibration) if f.name.startswith("fp8_")}
START = dataclasses.replace(CALIBRATION, **FP8_PRIORS, compiled_block_host_s=0.0, parallel_compiled_fused_rate=1.0, gpu_rates=())
"""The committed constants with the FP8 ones at their stated priors, the compiled block's host time,
the rate of compiled fused attention under a data-parallel wrapper and the GPU types' rates
unfitted (see the module docstring)."""
NAMES = {"gpu unmeasured": "leave its GPU type out", "gpu measured": "leave its model out"}


def _one_gpu_ok(df: pd.DataFrame) -> pd.DataFrame:
    return df[(df["status"] == "ok") & (df["num_gpus"] == 1)]


def _predict_fold(test: pd.DataFrame, train: pd.DataFrame, start: Calibration) -> pd.DataFrame:
    test = _one_gpu_ok(test)
    cal = fit(train, start)
    out = test[["table", "model", "attention", "compile", "precision", "backend", "per_device_batch", "seq_len",
                "gpu_type", "tokens_per_s"]].copy()
    predicted = predict(test, cal)
    out["predicted"], out["host_share"] = predicted["predicted_tokens_per_s"], predicted["host_share"]
    out["before"] = predict(test, cal, use_profile=False)["predicted_tokens_per_s"] / test["tokens_per_s"] - 1
    out["class"] = [row_class(trial_config(r)) for r in test.itertuples()]
    return out


def held_out(df: pd.DataFrame, start: Calibration = START) -> pd.DataFrame:
    """Every ok one-GPU row predicted once per split, with its fold (the GPU type or model left out);
    the rows of `HELD_OUT_TABLES` are predicted, never fitted on."""
    parts = []
    train = df[~df["table"].isin(HELD_OUT_TABLES)]
    for gpu in sorted(df["gpu_type"].unique()):
        part = _predict_fold(df[df["gpu_type"] == gpu], train[train["gpu_type"] != gpu], start)
        parts.append(part.assign(split="gpu unmeasured", fold=gpu))
    for model in sorted(df["model"].unique()):
        part = _predict_fold(df[df["model"] == model], train[train["model"] != model], start)
        parts.append(part.assign(split="gpu measured", fold=model))
    out = pd.concat(parts, ignore_index=True)
    out["err"] = out["predicted"] / out["tokens_per_s"] - 1
    out["after"] = out["err"]
    out["log_err"] = np.abs(np.log(out["predicted"] / out["tokens_per_s"]))
    out["tokens"] = out["per_device_batch"] * out["seq_len"]
    out["small"] = out["tokens"] <= SMALL_TOKENS
    return out


def shipped(df: pd.DataFrame) -> pd.DataFrame:
    """Every ok one-GPU row the committed constants were not fitted on (no `calibration`,
    `host_calibration`, `parallel_calibration` or `rate_calibration`), predicted by them: the errors a dry run makes, its bias included, which
    the refits of `held_out` (fitted on every other row, sweeps too) do not have."""
    test = _one_gpu_ok(df[~(df["calibration"] | df["host_calibration"] | df["parallel_calibration"] | df["rate_calibration"])])
    out = test[["table", "model", "attention", "compile", "precision", "backend", "per_device_batch", "seq_len",
                "gpu_type", "tokens_per_s"]].copy()
    predicted = predict(test, CALIBRATION)
    out["predicted"], out["host_share"] = predicted["predicted_tokens_per_s"], predicted["host_share"]
    out["class"] = [row_class(trial_config(r)) for r in test.itertuples()]
    out["log_err"] = np.abs(np.log(out["predicted"] / out["tokens_per_s"]))
    out["tokens"] = out["per_device_batch"] * out["seq_len"]
    return out


def _of(rows: pd.DataFrame, cls: str) -> pd.Series:
    """The rows whose errors set `cls`'s width: its own, or for `HOST_BOUND` the host-bound rows of every class."""
    return rows["host_share"] >= HOST_BOUND_SHARE if cls == HOST_BOUND else rows["class"] == cls


def width_table(rows: pd.DataFrame, shipped_rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """(split, class) -> rows, width, the micro-step tokens and the GPU types they cover.  The
    width: exp of the 80th percentile of |log error| of the split's held-out refits, or of the
    shipped constants' errors (`shipped`) where those are wider and number at least `MIN_ROWS`
    (a GPU type or a model without rows is no better known than the rows the constants missed);
    `rows`, the tokens and the GPU types are those of whichever set the width."""
    lines = []
    for split in SPLITS:
        for cls in (*CLASSES, HOST_BOUND):
            part = rows[(rows["split"] == split) & _of(rows, cls)]
            if not len(part):
                continue
            width = math.exp(float(np.quantile(part["log_err"], COVERAGE)))
            covered = part
            if shipped_rows is not None:
                own = shipped_rows[_of(shipped_rows, cls)]
                own_width = math.exp(float(np.quantile(own["log_err"], COVERAGE))) if len(own) >= MIN_ROWS else 0.0
                if own_width > width:
                    width, covered = own_width, own
            lines.append({"split": split, "class": cls, "rows": len(covered), "width": round(width, 4),
                          "min_tokens": int(covered["tokens"].min()), "max_tokens": int(covered["tokens"].max()),
                          "gpu_types": ";".join(sorted(covered["gpu_type"].unique()))})
    return pd.DataFrame(lines)


def as_widths(table: pd.DataFrame) -> dict[tuple[str, str], Width]:
    """A `width_table` as `slmray.predict.interval` reads its CSV."""
    return {(r["split"], r["class"]): Width(r["split"], r["class"], int(r["rows"]), float(r["width"]), int(r["min_tokens"]),
                                            int(r["max_tokens"]), tuple(r["gpu_types"].split(";")))
            for r in table.to_dict("records")}


FOLD_COLUMN = {"gpu unmeasured": "gpu_type", "gpu measured": "model"}
"""What a split's fold leaves out, in the shipped constants' rows too."""


def cross_validated_widths(rows: pd.DataFrame, shipped_rows: pd.DataFrame | None = None) -> pd.Series:
    """Each row's interval width measured without its fold (see the module docstring): neither its
    refits' rows nor the shipped constants' rows of its model (or GPU type) set it."""
    out = pd.Series(np.nan, index=rows.index)
    for (split, fold), part in rows.groupby(["split", "fold"]):
        others = None if shipped_rows is None else shipped_rows[shipped_rows[FOLD_COLUMN[split]] != fold]
        table = as_widths(width_table(rows[(rows["split"] == split) & (rows["fold"] != fold)], others))
        out[part.index] = [math.exp(row_width(split, c, h, t, table)[1])
                           for c, h, t in zip(part["class"], part["host_share"], part["tokens"])]
    return out


def _stats(part: pd.DataFrame) -> dict:
    e = part["err"]
    inside = (np.log(part["predicted"] / part["tokens_per_s"]).abs() <= np.log(part["cv_width"]) + 1e-12)
    return {"n": len(part), "median abs err %": 100 * float(e.abs().median()), "worst abs err %": 100 * float(e.abs().max()),
            "median err %": 100 * float(e.median()), "in 80% interval": f"{100 * inside.mean():.0f}%"}


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per named split: each GPU type predicted by the other, each model left out (per GPU
    type), small steps on their own, and every split together."""
    lines = []
    for split in ("gpu unmeasured", "gpu measured"):
        for gpu, g in rows[rows["split"] == split].groupby("gpu_type"):
            fit_on = ", ".join(sorted(set(rows["gpu_type"]) - {gpu})) if split == "gpu unmeasured" else "every GPU type, other models"
            for which, part in (("all", g), (f"<= {SMALL_TOKENS} tokens", g[g["small"]])):
                if len(part):
                    lines.append({"split": NAMES[split], "fit on": fit_on, "predict": gpu, "rows": which, **_stats(part)})
    for split in ("gpu unmeasured", "gpu measured"):
        g = rows[rows["split"] == split]
        lines.append({"split": NAMES[split], "fit on": "-", "predict": "all", "rows": "all", **_stats(g)})
        lines.append({"split": NAMES[split], "fit on": "-", "predict": "all", "rows": f"<= {SMALL_TOKENS} tokens",
                      **_stats(g[g["small"]])})
    return pd.DataFrame(lines)


def class_summary(rows: pd.DataFrame) -> pd.DataFrame:
    lines = []
    for (split, cls), part in rows.groupby(["split", "class"]):
        lines.append({"split": NAMES[split], "class": cls, **_stats(part)})
    for split, g in rows.groupby("split"):
        lines.append({"split": NAMES[split], "class": f"{HOST_BOUND} (any class)", **_stats(g[_of(g, HOST_BOUND)])})
    return pd.DataFrame(lines)


WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def profile_lines(rows: pd.DataFrame) -> pd.DataFrame:
    """The profiled GPU types' bf16 rows, profile ignored (`before`) and shipped (`after`)."""
    lines = []
    profiled = rows["gpu_type"].map(lambda g: profile_for(spec_for(g).gpu) is not None)
    part = rows[(rows["precision"] == "bf16") & profiled]
    for (split, gpu), g in part.groupby(["split", "gpu_type"]):
        for which, p in (("all", g), (f"<= {SMALL_TOKENS} tokens", g[g["small"]])):
            line = {"split": NAMES[split], "predict": gpu, "rows": which, "n": len(p)}
            for name in ("before", "after"):
                line[f"{name}: median / worst abs err %"] = (f"{100 * p[name].abs().median():.1f} / "
                                                             f"{100 * p[name].abs().max():.1f}")
            lines.append(line)
    return pd.DataFrame(lines)


def weight_grid(df: pd.DataFrame) -> pd.DataFrame:
    """The profiled GPU types' held-out bf16 errors at each `Calibration.profile_weight` of WEIGHTS."""
    lines = []
    for w in WEIGHTS:
        rows = held_out(df, dataclasses.replace(START, profile_weight=w))
        line = {"profile_weight": w}
        for r in profile_lines(rows).to_dict("records"):
            line[f"{r['split'].split()[2]} out, {r['rows']}: median / worst %"] = r["after: median / worst abs err %"]
        lines.append(line)
    return pd.DataFrame(lines)


def widths_csv(table: pd.DataFrame) -> str:
    buf = io.StringIO()
    table.to_csv(buf, index=False, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    return buf.getvalue()


def _fmt(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{c: [f"{v:+.1f}" if c == "median err %" else f"{v:.1f}" for v in frame[c]]
                           for c in frame.columns if c.endswith("%") and frame[c].dtype.kind == "f"})


def report(rows: pd.DataFrame, table: pd.DataFrame, widths: pd.DataFrame, grid: pd.DataFrame) -> str:
    detail = rows.assign(err=[f"{100 * v:+.1f}" for v in rows["err"]], tokens_per_s=[f"{v:,.0f}" for v in rows["tokens_per_s"]],
                         cv_width=[f"x{v:.3f}" for v in rows["cv_width"]], host_share=[f"{v:.0%}" for v in rows["host_share"]],
                         split=rows["split"].map(NAMES))
    return "\n\n".join([
        "# The estimate held out: leave one GPU type out, leave one model out, small steps; interval coverage",
        "Made by `python benchmarks/heldout_accuracy.py` from every committed table in `benchmarks/results` (ok "
        "one-GPU rows: H100 and H200, compiled and not, native and Transformers, bf16 and FP8). Each split refits the "
        "constants (`benchmarks/calibrate_estimate.py`'s fit) on the rows outside it; the FP8 constants start from "
        "their stated priors and the compiled block's host time and the GPU types' rates unfitted, so no row is predicted by constants fitted on it. Errors: predicted over measured "
        "tokens/s minus one (positive: predicted faster). 'in 80% interval': the share of rows inside the interval "
        "whose width was measured without the row's own fold (the other models, or the other GPU type), so the "
        "coverage is held out too. The cross-GPU ratio against published figures (A100, multi-GPU): "
        "`multi_gpu_anchors.md` (estmulti helper's; not repeated here).",
        "## Held-out tokens/s error and interval coverage\n\n" + markdown_table(_fmt(table)),
        "## By class of comparable rows\n\n" + markdown_table(_fmt(class_summary(rows))),
        "## Interval widths shipped (`slmray/predict/interval_widths.csv`)\n\nThe 80th percentile of |log(predicted / "
        "measured)| of all the held-out predictions of each split and class, or of the committed constants' predictions "
        "of the rows they were not fitted on where wider (`rows`, tokens and GPU types: of whichever set it; "
        f"the rows of {', '.join(HELD_OUT_TABLES)} set none); `slmray.predict.interval`: `gpu measured` "
        "for a GPU type these rows ran on, `gpu unmeasured` for another; stated priors widen it beyond: more than one "
        f"GPU, a micro-step outside the measured tokens, a GPU type with neither rows nor profile). A class under "
        f"{MIN_ROWS} rows takes the widest width of its split, and at least x{FEW_ROWS_WIDTH:g}. `{HOST_BOUND}`: the rows of "
        f"every class whose predicted step is at least {HOST_BOUND_SHARE:.0%} the host's excess (`host` below); such a row "
        "takes this width where wider than its class's.\n\n" + markdown_table(widths),
        "## What the GPU profile buys (bf16 rows of profiled GPU types)\n\n`before`: the profile ignored (datasheet "
        "and the priors of `slmray.predict.kernels`); `after`: the shipped profile. Only the H100 has one.\n\n"
        + markdown_table(profile_lines(rows)),
        "## The profile's weight\n\n`after` errors (median / worst absolute %) of the profiled GPU types at each "
        "`Calibration.profile_weight` (the share of the profile's GEMM and attention times, the rest from the "
        f"datasheet path; the committed one is {CALIBRATION.profile_weight:g}). The weight was chosen on held-out rows "
        "like these, so its own figures flatter it a little.\n\n" + markdown_table(grid),
        "## Rows\n\n" + markdown_table(detail[["split", "table", "model", "attention", "compile", "precision", "backend",
                                               "per_device_batch", "seq_len", "gpu_type", "class", "host_share", "tokens_per_s",
                                               "err", "cv_width"]].rename(columns={"per_device_batch": "batch", "seq_len": "seq",
                                                                           "host_share": "host",
                                                                           "err": "err %", "cv_width": "interval width"})),
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(RESULTS_DIR, "estimate", "heldout_accuracy.md"), help="Markdown to write, - for none")
    p.add_argument("--widths", default=WIDTHS_CSV, help="interval widths CSV to write (with --out), - for none")
    args = p.parse_args(argv)
    df = load_measured(committed_tables())
    rows = held_out(df)
    dry = shipped(df)
    rows["cv_width"] = cross_validated_widths(rows, dry)
    table = summary(rows)
    widths = width_table(rows[~rows["table"].isin(HELD_OUT_TABLES)], dry[~dry["table"].isin(HELD_OUT_TABLES)])
    print(_fmt(table).to_string(index=False))
    print(widths.to_string(index=False))
    if args.out != "-":
        grid = weight_grid(df)
        with open(args.out, "w") as f:
            f.write(report(rows, table, widths, grid))
        print(f"\nwrote {args.out}")
        if args.widths != "-":
            with open(args.widths, "w") as f:
                f.write(widths_csv(widths))
            print(f"wrote {args.widths}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
