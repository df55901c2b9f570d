"""python -m slmray.recommend RESULTS... --model M [M...] (--tokens D | --tokens-per-param R) [--json] ...

From measurements to a decision: which GPU type, how many GPUs and which configuration train
model M on D tokens by a deadline or within a budget, how long it takes and what it costs: the
decision first (per model: the pick, why, how sure, the runner-up), the detail after; `--json` for
scripts (JSON alone on stdout).  This module is the command line: parse, build, plan, print.  The planning is
`slmray.planning` (options and their tokens/s, measured or predicted; the run's hours and dollars;
the answer in words); pandas and the estimator load after parsing, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings

from slmray.cli import add_price_arguments, exits_2_on_user_error, parser, positive_int, priced_tables
from slmray.planning.assumptions import DEFAULT_TOKENS_PER_PARAM, PlanError, default_assumptions
from slmray.planning.rank import add_rank_arguments

SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


def parse_tokens(text: str) -> float:
    """`2.6e10`, `26B`, `500M` -> tokens."""
    t = text.strip().lower()
    scale = SUFFIXES.get(t[-1:], 1.0) if t else 1.0
    try:
        return float(t[:-1] if scale != 1.0 else t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of tokens: {text!r} (e.g. 2.6e10 or 26B)") from None


def build_parser() -> argparse.ArgumentParser:
    p = parser(
        "python -m slmray.recommend",
        "Plan a training run of D tokens from results tables: which GPU type, how many GPUs, which "
        "configuration, how long and what it costs; the cheapest within a deadline, the fastest within a budget.",
    )
    p.add_argument("results", nargs="+", help="results tables (.parquet), local paths or s3:// URIs")
    p.add_argument("--model", required=True, nargs="+",
                   help="the models to plan: a preset (python -m slmray.train --list-models), or a config.json "
                        "path or hub id; one the tables did not run is planned from the estimator alone (predicted)")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--tokens", type=parse_tokens, help="training tokens D (2.6e10, 26B)")
    size.add_argument("--tokens-per-param", type=float, help=f"D as a multiple of the parameter count "
                      f"(Chinchilla: {DEFAULT_TOKENS_PER_PARAM:g})")
    p.add_argument("--deadline-hours", type=float, default=None, help="wall-clock hours the run must finish in (default: no deadline)")
    p.add_argument("--budget-usd", type=float, default=None, help="dollars the run may cost (default: no budget)")
    p.add_argument("--gpu-types", nargs="+", default=None,
                   help="GPU types to consider, in place of the tables' (name them too to keep them); a type no table "
                        "ran is predicted from its datasheet (default: the tables')")
    p.add_argument("--max-gpus", type=int, default=8, help="largest GPU count to consider: 1, 2, 4, ... and this one")
    p.add_argument("--seq-len", type=positive_int, default=None, help="plan this sequence length (default: the tables')")
    add_price_arguments(p, "the prices the tables recorded")
    add_rank_arguments(p)
    p.add_argument("--json", action="store_true", help="print the decisions as JSON on stdout (messages on stderr)")
    p.add_argument("--startup-s", type=float, default=None,
                   help="start-up seconds, counted once (default: the tables' median time to first step)")
    p.add_argument("--checkpoint-every-hours", type=float, default=1.0, help="hours between checkpoints; 0: none")
    p.add_argument("--checkpoint-gb-s", type=float, default=1.0, help="write bandwidth of a checkpoint save, GB/s")
    p.add_argument("--top", type=positive_int, default=15, help="rows of each table to print")
    return p


def tokens_from_args(args: argparse.Namespace, n_params: int) -> float:
    """D: --tokens, or --tokens-per-param times the model's parameters; a PlanError unless positive."""
    if args.tokens is not None:
        tokens = args.tokens
    elif not (math.isfinite(args.tokens_per_param) and args.tokens_per_param > 0):
        raise PlanError(f"--tokens-per-param: must be positive, got {args.tokens_per_param}")
    else:
        tokens = args.tokens_per_param * n_params
    if not (math.isfinite(tokens) and tokens > 0):
        raise PlanError(f"--tokens: must be a positive number of tokens, got {tokens:g}")
    return tokens


@exits_2_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # after parsing: pandas, pyarrow and the estimator load here
    from slmray.planning.export import as_json
    from slmray.planning.run import check_model, plan_run, recorded_prices
    from slmray.planning.text import render, render_summary
    from slmray.results.table import ResultsWarning, load_results

    models = [(name, check_model(name)) for name in dict.fromkeys(args.model)]
    sizes = [tokens_from_args(args, m.num_params) for _, m in models]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResultsWarning)
        df = load_results(args.results)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plan_run reports options without a price
        df, book, _ = priced_tables(args, df, recorded_prices(df))
    assumptions = default_assumptions(df, args.startup_s, args.checkpoint_every_hours, args.checkpoint_gb_s)
    decisions = [plan_run(df, name, tokens, book, assumptions, args.gpu_types, args.max_gpus, args.deadline_hours,
                          args.budget_usd, seq_len=args.seq_len, objectives=args.rank_by,
                          tolerance=args.tolerance) for (name, _), tokens in zip(models, sizes)]
    if args.json:
        print(json.dumps(as_json(decisions), indent=1, allow_nan=False))
        return 0
    print(render_summary(decisions))
    for d in decisions:
        print("\n" + render(d, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
