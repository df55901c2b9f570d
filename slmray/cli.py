"""What every `python -m slmray.X` command line shares: help that shows each default once.

Kept free of heavy imports (torch, Ray, pyarrow, pandas, matplotlib): a command builds its
parser and answers `--help` or a bad flag before it imports what the work needs.
"""

from __future__ import annotations

import argparse


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
