"""python -m slmray.analysis RESULTS... [--out DIR] [--objective max:COL ...] [--prices PROFILE] ...

Reads results tables (local or s3://), optionally re-prices every trial from its measured
tokens/s, and writes report.md, report.html and the PNG plots into DIR.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from slmray.catalog.prices import unit_note
from slmray.cli import add_price_arguments, exits_2_on_user_error, priced_tables
from slmray.cli import parser as new_parser
from slmray.errors import UserError

DEFAULT_OBJECTIVES = ("max:tokens_per_s", "min:usd_per_btok")
DEFAULT_TOKENS_PER_PARAM = 20.0
"""`slmray.planning.assumptions.DEFAULT_TOKENS_PER_PARAM`, spelled out so that --help imports no pandas
(tests/test_cli_help.py checks they agree)."""


def build_parser() -> argparse.ArgumentParser:
    p = new_parser("python -m slmray.analysis",
                   "Analyse slmray results tables and write a report (Markdown, HTML, PNG plots).")
    p.add_argument("results", nargs="+", help="results tables (.parquet), local paths or s3:// URIs")
    p.add_argument("--out", default="analysis-report", help="folder for report.md, report.html and the plots")
    p.add_argument(
        "--objective", action="append", default=None, metavar="max:COLUMN|min:COLUMN",
        help="an objective, repeatable; the decision ranks by them in order, the next breaking ties within the "
        f"run-to-run spread (default: {' and '.join(DEFAULT_OBJECTIVES)})",
    )
    # a profile is checked as the flags are parsed, before the tables are read (argparse's `invalid choice`)
    add_price_arguments(p, "the prices the sweep recorded; a profile re-prices every trial", profile_choices=True)
    p.add_argument("--tokens-per-param", type=float, default=DEFAULT_TOKENS_PER_PARAM, metavar="R",
                   help="the run the decision prices: R tokens per model parameter (20 is Chinchilla's compute-optimal "
                        f"ratio) (default: {DEFAULT_TOKENS_PER_PARAM:g})")
    return p


@exits_2_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.out.strip():
        raise UserError("--out: must name a folder for the report (got an empty path)")
    if not 0 < args.tokens_per_param < float("inf"):
        raise UserError(f"--tokens-per-param: must be a positive number of tokens per parameter "
                        f"(got {args.tokens_per_param:g})")
    # after parsing: pandas, pyarrow and matplotlib take about a second to import, which --help need not wait for
    from pandas import isna as pd_isna

    from slmray.analysis.costs import DERIVED_COLUMNS, add_cost_metrics
    from slmray.analysis.report import cell, write_report
    from slmray.analysis.table import load_results
    from slmray.core.objective import Objective
    from slmray.core.schema import NUMERIC_COLUMNS
    from slmray.planning.run import recorded_prices
    from slmray.results.table import ResultsWarning

    objective_columns = (*NUMERIC_COLUMNS, *DERIVED_COLUMNS)
    notes = []
    objectives = [Objective.parse(o, objective_columns) for o in args.objective or DEFAULT_OBJECTIVES]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResultsWarning)
        df = load_results(args.results)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
        notes.append(str(w.message))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        df, book, repriced = priced_tables(args, df, recorded_prices(df))
    if repriced:
        notes.append(repriced)
        if unit_note(book.profile) and args.prices:
            notes.append(unit_note(book.profile))
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
        notes.append(str(w.message))
    df = add_cost_metrics(df)
    try:
        report = write_report(df, args.out, objectives, args.results, notes, args.tokens_per_param, book)
    except OSError as exc:  # --out is a file, or a folder that cannot be made
        print(f"error: --out {args.out}: cannot write the report there ({exc.strerror or exc})", file=sys.stderr)
        return 2
    print(f"wrote {report.markdown}, {report.html} and {len(report.figures)} plots")
    for _, r in report.recommendations.iterrows():
        if "tokens/s" not in r or pd_isna(r["tokens/s"]):
            print(f"  {r['model']}: {r['pick']}")
            continue
        # 16,456, not 1.646e+04
        print(f"  {r['model']}: {r['pick']} ({cell(r['tokens/s'])} tokens/s, run ${cell(r['run $'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
