"""The dry run's predictions against what a sweep then measured: the issue's bar, as a user meets it.

    python benchmarks/dry_run_accuracy.py search_spaces/h200x1.py \
        benchmarks/results/sweeps/sweep_h200x1.parquet [more space/table pairs] --out FILE.md
    python benchmarks/dry_run_accuracy.py benchmarks/results/heldout/h100x1_heldout_b_plan.csv \
        benchmarks/results/heldout/h100x1_heldout_b.parquet --out FILE.md   # a plan committed before its sweep

For each space, `python -m slmray.tune SPACE --dry-run --no-prune --out plan.csv` runs in a fresh
storage (no rows: no correction, as a new user's first dry run); a `.csv` or `.parquet` in a space's place
is such a plan made earlier (the issue's bar sets: committed before their sweep ran, so the constants of
that day are judged, not today's).  Each planned trial is joined on
the configuration's identity (`CONFIG_KEYS`) to the ok rows the sweep of that space recorded (their
median where a configuration repeats).  Reported: predicted over measured tokens/s minus one per
row, the median and worst absolute error, and the share of measurements inside the dry run's
interval; and the trials the dry run called out of memory against what happened.  The committed
constants may have been fitted on some of these rows: a table named in `calibrate_estimate.py`'s or
`heldout_accuracy.py`'s inputs is in-sample, which the output says.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from slmray.train.config import CONFIG_KEYS

ROOT = Path(__file__).resolve().parents[1]


def planned(space: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "plan.csv"
        subprocess.run(
            [sys.executable, "-m", "slmray.tune", space, "--dry-run", "--no-prune", "--storage", tmp, "--out", str(out)],
            check=True, capture_output=True, text=True, cwd=ROOT,
        )
        return pd.read_csv(out)


def measured(table: str) -> pd.DataFrame:
    rows = pd.read_parquet(table)
    keys = [k for k in CONFIG_KEYS if k in rows.columns]
    ok = rows[rows["status"] == "ok"].groupby(keys, dropna=False)["tokens_per_s"].median().rename("measured")
    status = rows.groupby(keys, dropna=False)["status"].agg(lambda s: "ok" if (s == "ok").any() else s.iloc[-1])
    return pd.concat([ok, status], axis=1).reset_index()


def joined(space: str, table: str) -> pd.DataFrame:
    readers = {".csv": pd.read_csv, ".parquet": pd.read_parquet}
    plan = readers[Path(space).suffix](space) if Path(space).suffix in readers else planned(space)
    rows = measured(table)
    keys = [k for k in CONFIG_KEYS if k in rows.columns and k in plan.columns]
    for k in keys:  # the CSV reads None as NaN, booleans as bool: one type on both sides
        plan[k], rows[k] = plan[k].astype(str), rows[k].astype(str)
    both = plan.merge(rows, on=keys, how="inner")
    both["space"] = Path(space).stem
    return both


def _pct(x: float) -> str:
    return f"{100 * x:+.1f}"


def report(frames: list[pd.DataFrame]) -> str:
    d = pd.concat(frames, ignore_index=True)
    ok = d[d["status"] == "ok"].copy()
    ok["err"] = ok["predicted_tokens_per_s"] / ok["measured"] - 1
    ok["inside"] = (ok["measured"] >= ok["predicted_tokens_per_s_low"]) & (ok["measured"] <= ok["predicted_tokens_per_s_high"])
    lines = ["| space | compile | rows | median abs err % | worst abs err % | median err % | inside the interval |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    groups = [(s, c, g) for (s, c), g in ok.groupby(["space", "compile"])]
    groups += [(s, "both", g) for s, g in ok.groupby("space") if g["compile"].nunique() > 1] + [("all", "-", ok)]
    for space, compiled, g in groups:
        e = g["err"]
        lines.append(f"| {space} | {compiled} | {len(g)} | {100 * e.abs().median():.1f} | {100 * e.abs().max():.1f} | "
                     f"{_pct(e.median())} | {g['inside'].mean():.0%} |")
    oom = d.assign(predicted=d["predicted_oom"].astype(str) == "True", happened=d["status"] == "oom")
    lines += ["", f"Out of memory: predicted {int(oom['predicted'].sum())}, happened {int(oom['happened'].sum())}, "
              f"predicted and happened {int((oom['predicted'] & oom['happened']).sum())} "
              f"(of {len(d)} configurations joined; other statuses: "
              f"{', '.join(f'{k} {v}' for k, v in d['status'].value_counts().items() if k not in ('ok', 'oom')) or 'none'})."]
    lines += ["", "| space | model | attention | compile | precision | backend | batch | measured tok/s | predicted | interval | err % |",
              "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: | --- | ---: |"]
    for _, r in ok.sort_values(["space", "model", "attention", "precision", "backend", "per_device_batch"]).iterrows():
        lines.append(f"| {r['space']} | {r['model']} | {r['attention']} | {r['compile']} | {r['precision']} | "
                     f"{r['backend']} | {r['per_device_batch']} | "
                     f"{r['measured']:,.0f} | {r['predicted_tokens_per_s']:,.0f} | "
                     f"{r['predicted_tokens_per_s_low']:,.0f}-{r['predicted_tokens_per_s_high']:,.0f} | {_pct(r['err'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pairs", nargs="+", help="SPACE TABLE [SPACE TABLE ...]; a SPACE ending in .csv or .parquet is a committed dry-run plan")
    p.add_argument("--out", default="-", help="where the Markdown goes (default: stdout)")
    args = p.parse_args(argv)
    if len(args.pairs) % 2:
        p.error("pairs: give each space with its table (SPACE TABLE ...)")
    pairs = list(zip(args.pairs[::2], args.pairs[1::2]))
    try:
        body = report([joined(s, t) for s, t in pairs])
    except subprocess.CalledProcessError as e:  # the dry run refused the space: its own line
        lines = (e.stderr or "").strip().splitlines()
        print(f"dry_run_accuracy: {lines[-1] if lines else e}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError) as e:  # a table that is missing or not a results table
        print(f"dry_run_accuracy: {e}", file=sys.stderr)
        return 2
    made = "Made by `python benchmarks/dry_run_accuracy.py " + " ".join(args.pairs) + "`."
    text = f"# The dry run against the sweep it planned\n\n{made}\n\n{body}"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
