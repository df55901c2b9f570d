"""What the GPU profile buys the estimate, on rows its constants were not fitted on.

    python benchmarks/profile_accuracy.py          # writes benchmarks/results/estimate/profile_accuracy.md
    python benchmarks/profile_accuracy.py --out -  # print only

Every split refits the constants (`calibrate_estimate.fit`) on the rows outside it and predicts the
one-GPU bf16 rows inside it twice: with the profiles the catalog ships (`after`) and with them
ignored, the datasheet and the priors of `slmray.predict.kernels` alone (`before`).  The same fit
serves both: its datasheet constants are fitted with every profile ignored, its two profiled scales
on the training rows of profiled GPU types (1, the profile as measured, where there are none).
Only GPU types with a profile can differ; today that is the H100 (the H200 has none).

Splits: leave one GPU type out (fit on the other GPU types' rows), leave one model out (fit on the
other models' rows, all GPU types), and within each the small steps on their own (at most
`SMALL_TOKENS` tokens per device and micro-batch).  Errors: predicted over measured tokens/s, minus
one (positive: predicted faster).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

import numpy as np
import pandas as pd

from calibrate_estimate import RESULTS_DIR, committed_tables, fit, load_measured
from estimate_accuracy import markdown_table, predict
from leave_one_gpu_out import SMALL_TOKENS
from slmray.catalog.gpus import spec_for
from slmray.catalog.profiles import profile_for
from slmray.predict.estimate import CALIBRATION, Calibration

def _predict_both(test: pd.DataFrame, train: pd.DataFrame, start: Calibration = CALIBRATION) -> pd.DataFrame:
    """The ok one-GPU bf16 rows of `test` with `before` and `after` errors, constants fitted on `train`."""
    test = test[(test["status"] == "ok") & (test["num_gpus"] == 1) & (test["precision"] == "bf16")]
    cal = fit(train, start)
    out = test[["table", "model", "attention", "compile", "per_device_batch", "seq_len", "gpu_type", "tokens_per_s"]].copy()
    for name, use in (("before", False), ("after", True)):
        out[name] = predict(test, cal, use_profile=use)["predicted_tokens_per_s"] / test["tokens_per_s"] - 1
    return out


def held_out(df: pd.DataFrame, start: Calibration = CALIBRATION) -> pd.DataFrame:
    """Every one-GPU bf16 ok row predicted once per split kind: `gpu` (its GPU type left out) and
    `model` (its model left out)."""
    parts = []
    for gpu in sorted(df["gpu_type"].unique()):
        parts.append(_predict_both(df[df["gpu_type"] == gpu], df[df["gpu_type"] != gpu], start).assign(split="gpu"))
    for model in sorted(df["model"].unique()):
        parts.append(_predict_both(df[df["model"] == model], df[df["model"] != model], start).assign(split="model"))
    out = pd.concat(parts, ignore_index=True)
    out["small"] = out["per_device_batch"] * out["seq_len"] <= SMALL_TOKENS
    return out


def _stats(e: pd.Series) -> dict[str, float]:
    return {"median abs err %": 100 * float(np.median(e.abs())), "worst abs err %": 100 * float(e.abs().max()),
            "median err %": 100 * float(np.median(e))}


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """One line per (split, GPU type, all rows or small steps): before and after side by side."""
    lines = []
    names = {"gpu": "leave its GPU type out", "model": "leave its model out"}
    for (split, gpu), g in rows.groupby(["split", "gpu_type"]):
        profiled = profile_for(spec_for(gpu).gpu) is not None
        for which, part in (("all", g), (f"<= {SMALL_TOKENS} tokens", g[g["small"]])):
            if not len(part):
                continue
            line = {"split": names[split], "predict": gpu + ("" if profiled else " (no profile)"), "rows": which, "n": len(part)}
            for name in ("before", "after"):
                line.update({f"{name}: {k}": v for k, v in _stats(part[name]).items()})
            lines.append(line)
    return pd.DataFrame(lines)


WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def weight_grid(df: pd.DataFrame) -> pd.DataFrame:
    """The profiled GPU types' held-out errors (`after`) at each `Calibration.profile_weight` of
    WEIGHTS: 0 keeps only the profile's per-kernel and host costs, 1 its GEMM and attention times."""
    lines = []
    for w in WEIGHTS:
        t = summary(held_out(df, dataclasses.replace(CALIBRATION, profile_weight=w)))
        t = t[[profile_for(spec_for(g.split(" ")[0]).gpu) is not None for g in t["predict"]]]
        line = {"profile_weight": w}
        for r in t.to_dict("records"):
            key = f"{r['split'].split()[2]} out, {r['rows']}: median / worst %"
            line[key] = f"{r['after: median abs err %']:.1f} / {r['after: worst abs err %']:.1f}"
        lines.append(line)
    return pd.DataFrame(lines)


def report(rows: pd.DataFrame, table: pd.DataFrame, grid: pd.DataFrame) -> str:
    profiled = rows[[profile_for(spec_for(g).gpu) is not None for g in rows["gpu_type"]]]
    detail = profiled.assign(
        before=[f"{100 * v:+.1f}" for v in profiled["before"]], after=[f"{100 * v:+.1f}" for v in profiled["after"]],
        tokens_per_s=[f"{v:,.0f}" for v in profiled["tokens_per_s"]],
    ).rename(columns={"before": "before err %", "after": "after err %", "per_device_batch": "batch", "seq_len": "seq"})
    return "\n\n".join([
        "# What the GPU profile buys the estimate, held out",
        "Made by `python benchmarks/profile_accuracy.py` from every committed table in `benchmarks/results` "
        "(one-GPU bf16 ok rows). Each split refits the constants on the rows outside it; `before`: the profile "
        "ignored (datasheet and priors), `after`: the shipped profiles. Only the H100 has a profile "
        "(`slmray/catalog/profiles/H100-80GB.csv`); H200 rows are identical before and after and shown as a check. "
        "Errors are predicted over measured tokens/s minus one (positive: predicted faster).",
        markdown_table(table.assign(**{c: [f"{v:+.1f}" if c.endswith("median err %") else f"{v:.1f}" for v in table[c]]
                                       for c in table.columns if "%" in c})),
        "## The profile's weight\n\n`after` errors (median / worst absolute %) of the profiled GPU types at each "
        "`Calibration.profile_weight` (the share of the profile's GEMM and attention times, the rest from the "
        f"datasheet path; the committed one is {CALIBRATION.profile_weight:g}). The weight was chosen on these same "
        "held-out rows, so its own figures flatter it a little.\n\n" + markdown_table(grid),
        "## H100 rows\n\n" + markdown_table(detail[["split", "table", "model", "attention", "compile", "batch", "seq",
                                                   "tokens_per_s", "before err %", "after err %"]]),
    ]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(RESULTS_DIR, "estimate", "profile_accuracy.md"), help="Markdown to write, - for none")
    args = p.parse_args(argv)
    df = load_measured(committed_tables())
    rows = held_out(df)
    table = summary(rows)
    print(table.round(1).to_string(index=False))
    grid = weight_grid(df)
    print(grid.to_string(index=False))
    if args.out != "-":
        with open(args.out, "w") as f:
            f.write(report(rows, table, grid))
        print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
