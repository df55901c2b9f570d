"""What every `python -m slmray.X` command line shares: help that shows each default once, a user
error as one line and exit status 2, and the price flags.

Kept free of heavy imports (torch, Ray, pyarrow, pandas, matplotlib): a command builds its
parser and answers `--help` or a bad flag before it imports what the work needs.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import select
import sys
import warnings
from typing import TYPE_CHECKING, Callable

from slmray.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

    from slmray.catalog.prices import PriceBook


class HelpFormatter(argparse.HelpFormatter):
    """Appends `(default: X)` to an option that takes a value, unless its help already says
    where the default comes from (`(default: the preset's)`) or it has none to show.

    argparse's `ArgumentDefaultsHelpFormatter` appends it to every option, so a help that
    explains its default reads it twice, a flag reads `(default: False)` and an option
    without a fixed default `(default: None)`.  A flag (no value) says `(default: off)` in its
    own help where that is worth saying.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        takes_value = action.nargs != 0
        if (not action.option_strings or not takes_value or "(default" in text
                or action.default in (None, argparse.SUPPRESS)):
            return text
        return f"{text} (default: %(default)s)"


class ArgumentParser(argparse.ArgumentParser):
    """A bad command line is one line, `error: ...`, exit status 2, like every other user error
    of slmray's commands (argparse prints the whole usage first: 18 lines for python -m slmray.train)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} ({self.prog} --help lists the options)\n")


def parser(prog: str, description: str | None = None, **kwargs) -> ArgumentParser:
    """An `ArgumentParser` with `HelpFormatter`."""
    return ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter, **kwargs)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (`--top 0` printed nothing and crashed)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def seconds(text: str) -> float:
    """An argparse type: a finite number of seconds, 0 or more (0: no limit, where the option says so)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds, 0 or more, got {text}")
    return value


def _reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports an error on its end)."""
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll, or stdout is not a file
        return False


def exits_2_on_user_error(main: Callable[..., int]) -> Callable[..., int]:
    """`main` with any `UserError` it raises printed as `error: <message>` on stderr, exit status 2,
    and Ctrl-C as `interrupted`, exit status 130 (a shell's for SIGINT), where `main` does not say
    more itself.  Output piped into a reader that stopped (`| head`) ends the command quietly,
    exit status 141 (a shell's for SIGPIPE).  The one place a command turns a user's mistake into
    its answer; anything else stays a traceback."""

    @functools.wraps(main)
    def wrapped(*args, **kwargs) -> int:
        try:
            code = main(*args, **kwargs)
            sys.stdout.flush()  # a reader that stopped is found here, not as Python exits
            return code
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except BrokenPipeError:
            if not _reader_gone():
                raise  # another pipe (a worker's, a socket's): not the reader's doing
            # what stdout still buffers would fail again as Python exits: send it nowhere
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 141

    return wrapped


def add_price_arguments(p: argparse.ArgumentParser, default: str, *, profile_choices: bool = False) -> None:
    """--prices, --price-file and --price, as every command that prices GPU-hours takes them
    (`price_book` reads them back).  `default` says what prices apply without them.  An unknown
    profile is refused by `PriceBook.load` with the list of profiles; `profile_choices` makes it
    argparse's `invalid choice` instead, before anything is read (`python -m slmray.analysis`)."""
    from slmray.catalog.prices import profiles  # a CSV read: no torch, no Ray, no pandas

    names = profiles()
    p.add_argument("--prices", default=None, choices=names if profile_choices else None, metavar="PROFILE",
                   help=f"price profile: {', '.join(names)} (default: {default})")
    p.add_argument("--price-file", default=None,
                   help="CSV (gpu,usd_per_gpu_hour[,source]) or JSON of per-GPU prices, over the profile's (default: none)")
    p.add_argument("--price", action="append", default=[], metavar="GPU=USD",
                   help="USD per GPU-hour, e.g. H100-80GB=3.1, over the profile's and the file's; repeatable "
                        "(default: none)")
    p.add_argument("--per-gpu-pricing", action="store_true",
                   help="charge the GPUs used at the cheapest GPU-hour, as when sharing nodes; by default an option "
                        "pays for the whole instances that hold it, idle GPUs included (per-GPU prices: the local "
                        "and paper profiles, --price-file, --price)")


def price_book(args: argparse.Namespace, profile: str | None = None, recorded: PriceBook | None = None) -> PriceBook | None:
    """The prices `add_price_arguments`' flags ask for: the --prices profile (else `profile`), then
    the --price-file, then each --price, per GPU with --per-gpu-pricing.  Without a profile the
    file and overrides apply over `recorded` (the prices a results table recorded: a --price for one
    GPU type leaves the others as they were), else over `local`.  None where no flag was given and
    no `profile` (the recorded prices stand).  A bad profile, file or override is a PriceError."""
    from slmray.catalog.prices import LOCAL, PriceBook, PriceError, PriceWarning, parse_price_overrides

    if not (profile or args.prices or args.price_file or args.price):
        if args.per_gpu_pricing:
            raise PriceError("--per-gpu-pricing: prices from a profile per GPU; give --prices PROFILE (the prices the "
                             "tables recorded stand without it)")
        return None
    with warnings.catch_warnings(record=True) as caught:  # a GPU the catalog does not know: said on a line
        warnings.simplefilter("always", PriceWarning)
        overrides = parse_price_overrides(args.price)
        if recorded is not None and not (args.prices or profile):
            book = recorded.overridden(args.price_file, overrides, per_gpu=args.per_gpu_pricing or None)
        else:
            book = PriceBook.load(args.prices or profile or LOCAL, args.price_file, overrides, per_gpu=args.per_gpu_pricing)
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return book


def priced_tables(args: argparse.Namespace, df: pd.DataFrame, recorded: PriceBook) -> tuple[pd.DataFrame, PriceBook, str | None]:
    """A results frame priced as `add_price_arguments`' flags ask, the book a plan of it is priced
    at, and a line saying what was re-priced (None: nothing).  A --prices profile re-prices every
    trial; --price or --price-file alone only the trials of the GPUs they name, the others keeping
    what they recorded; no flag leaves `df` as recorded and plans at `recorded` (the prices it
    recorded: `slmray.planning.run.recorded_prices`).  A trial the book has no price for warns
    (`PriceWarning`) and gets empty costs."""
    from slmray.core.costs import price_trials

    book = price_book(args, recorded=recorded)
    if book is None:
        return df, recorded, None
    given = [f"{len(args.price)} override(s)"] * bool(args.price) + [f"the price file {args.price_file}"] * bool(args.price_file)
    if args.prices:
        return price_trials(df, book), book, f"Re-priced with {' and '.join([f'the {book.profile!r} profile', *given])}."
    note = f"Re-priced the trials on {', '.join(sorted(book.given))} with {' and '.join(given)}; the others keep their recorded prices."
    return price_trials(df, book, book.given), book, note
