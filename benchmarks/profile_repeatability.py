"""Two GPU profiles of one GPU type, row by row: how far a repeat moves each benchmark's time
(the noise a profile-based prediction inherits).

    python benchmarks/profile_repeatability.py slmray/catalog/profiles/H100-80GB.csv \
        benchmarks/results/profile/profile_h100_repeat.csv --out benchmarks/results/profile/repeatability_h100.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

KEY = ["benchmark", "variant", "m", "n", "k"]


def compare(first: str, second: str) -> str:
    a, b = (pd.read_csv(p, comment="#") for p in (first, second))
    rows = a.merge(b, on=KEY, suffixes=("_first", "_second"))
    rows["change %"] = 100 * (rows["seconds_second"] / rows["seconds_first"] - 1)
    lines = [f"# Profile repeatability: `{Path(first).name}` against `{Path(second).name}`", "",
             f"Made by `python benchmarks/profile_repeatability.py {first} {second}`: {len(rows)} rows in both "
             f"({len(a)} and {len(b)} rows).", "",
             "| benchmark | variant | rows | median abs change % | 90th percentile % | rows over 25% |",
             "| --- | --- | --- | --- | --- | --- |"]
    for (bench, variant), g in rows.groupby(["benchmark", "variant"]):
        d = g["change %"].abs()
        lines.append(f"| {bench} | {variant} | {len(g)} | {d.median():.2f} | {d.quantile(0.9):.1f} | {(d > 25).sum()} |")
    worst = rows.reindex(rows["change %"].abs().sort_values(ascending=False).index).head(10)
    lines += ["", "Largest changes:", "", "| benchmark | variant | m | n | k | first s | second s | change % |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r.benchmark} | {r.variant} | {r.m} | {r.n} | {r.k} | {r.seconds_first:.3g} | {r.seconds_second:.3g} | "
              f"{change:+.0f} |" for r, change in zip(worst.itertuples(), worst["change %"])]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description="Two GPU profiles of one GPU type compared row by row.")
    p.add_argument("first")
    p.add_argument("second")
    p.add_argument("--out", default=None, help="write the Markdown here (default: print it)")
    args = p.parse_args()
    text = compare(args.first, args.second)
    if args.out:
        Path(args.out).write_text(text)
        print(f"wrote {args.out}")
    else:
        print(text)


if __name__ == "__main__":
    main()
