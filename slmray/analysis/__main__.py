"""python -m slmray.analysis RESULTS... [--out DIR] [--objective max:COL ...] [--prices PROFILE] ...

Reads results tables (local or s3://), optionally re-prices every trial from its measured
tokens/s, and writes report.md, report.html and the PNG plots into DIR.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from slmray.analysis.costs import DERIVED_COLUMNS, LOSS_SOURCES, add_cost_metrics, price_trials
from slmray.analysis.pareto import ObjectiveError, parse_objective
from slmray.analysis.report import write_report
from slmray.analysis.table import load_results
from slmray.prices import PriceBook, PriceError, parse_price_overrides, profiles
from slmray.results import SCHEMA, ResultsError
from slmray.storage import StorageError

DEFAULT_OBJECTIVES = ("max:tokens_per_s", "min:usd_per_btok")
OBJECTIVE_COLUMNS = (*(f.name for f in SCHEMA if f.type in ("double", "int64")), *DERIVED_COLUMNS)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m slmray.analysis",
        description="Analyse slmray results tables and write a report (Markdown, HTML, PNG plots).",
    )
    p.add_argument("results", nargs="+", help="results tables (.parquet), local paths or s3:// URIs")
    p.add_argument("--out", default="analysis-report", help="folder for report.md, report.html and the plots")
    p.add_argument(
        "--objective", action="append", default=None,
        help="max:COLUMN or min:COLUMN, repeatable; the first ranks the recommendation "
        f"(default: {' '.join(DEFAULT_OBJECTIVES)})",
    )
    p.add_argument("--prices", choices=profiles(), default=None, help="re-price every trial with this profile")
    p.add_argument("--price-file", default=None, help="CSV (gpu,usd_per_gpu_hour[,source]) or JSON of per-GPU prices")
    p.add_argument("--price", action="append", default=[], metavar="GPU=USD", help="price of one GPU-hour, repeatable")
    p.add_argument("--loss-per-token", choices=LOSS_SOURCES, default=LOSS_SOURCES[0],
                   help="source of Loss/Token in loss per dollar: the Chinchilla law or the trial's loss curve")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    notes = []
    try:
        objectives = [parse_objective(o, OBJECTIVE_COLUMNS) for o in args.objective or DEFAULT_OBJECTIVES]
        repricing = args.prices or args.price_file or args.price
        book = PriceBook.load(args.prices or "local", args.price_file, parse_price_overrides(args.price)) if repricing else None
        df = load_results(args.results)
    except (ObjectiveError, PriceError, ResultsError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if book is not None:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = price_trials(df, book)
        overrides = f" and {len(args.price)} override(s)" if args.price else ""
        notes.append(f"Re-priced with the {book.profile!r} profile{overrides}.")
        if book.profile == "paper":
            notes.append("The paper profile's prices are relative (A100-40GB GPU-hour = 1), so '$' reads 'A100-40GB-hours'.")
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
            notes.append(str(w.message))
    df = add_cost_metrics(df, args.loss_per_token)
    report = write_report(df, args.out, objectives, args.results, notes, args.loss_per_token)
    print(f"wrote {report.markdown}, {report.html} and {len(report.figures)} plots")
    if not report.recommendations.empty:
        column = report.recommendations.columns[2]  # the objective the recommendation ranked by
        for _, r in report.recommendations.iterrows():
            print(f"  {r['model']}: {r['best']} ({column} {r[column]:,.4g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
