"""Tokens/s error of the estimate on a GPU type whose rows it was not fitted on: the constants of
`calibrate_estimate.fit` refitted on every ok row of one GPU type, each row of the other predicted.

    python benchmarks/leave_one_gpu_out.py      # prints the table

Per direction (fit on the H200, predict the H100, and back), all one-GPU rows and the small steps
on their own (at most `SMALL_TOKENS` tokens per device and micro-batch): rows, median and worst
absolute error, median signed error (positive: predicted faster than measured).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from calibrate_estimate import committed_tables, fit, load_measured
from estimate_accuracy import predict

SMALL_TOKENS = 8192


def errors(df: pd.DataFrame) -> pd.DataFrame:
    gpus = sorted(df["gpu_type"].unique())
    lines = []
    for held in gpus:
        train, test = df[df["gpu_type"] != held], df[df["gpu_type"] == held]
        predicted = predict(test, fit(train))
        ok = predicted[(predicted["status"] == "ok") & (predicted["num_gpus"] == 1)]
        err = ok["predicted_tokens_per_s"] / ok["tokens_per_s"] - 1
        small = ok["per_device_batch"] * ok["seq_len"] <= SMALL_TOKENS
        for split, e in (("all", err), (f"<= {SMALL_TOKENS} tokens", err[small])):
            lines.append({
                "fit on": ", ".join(g for g in gpus if g != held), "predict": held, "rows": split, "n": len(e),
                "median |err| %": round(100 * float(np.median(e.abs())), 1) if len(e) else np.nan,
                "worst |err| %": round(100 * float(e.abs().max()), 1) if len(e) else np.nan,
                "median err %": round(100 * float(np.median(e)), 1) if len(e) else np.nan,
            })
    return pd.DataFrame(lines)


def main() -> int:
    df = load_measured(committed_tables())
    print(errors(df).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
