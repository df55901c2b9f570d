"""What every command shares: a user's mistake is a `UserError`, printed on one line with exit 2 by
one wrapper; the price flags declared once and read back into a PriceBook one way; the run
planner's command only the command line.  No devices, no Ray."""

import argparse
import ast
import importlib
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from slmray.catalog.prices import LOCAL, PriceBook, PriceError
from slmray.cli import add_price_arguments, exits_2_on_user_error, parser, price_book, priced_tables
from slmray.errors import ConfigError, UserError
from slmray.planning.assumptions import PlanError, default_assumptions
from slmray.predict.overheads import COMPILE_S, GROUP_START_S

PACKAGE = Path(__file__).resolve().parents[1] / "slmray"
NOT_A_USER_ERROR = {"SweepError": "a sweep that could not start (exit 2) or stopped on an unexpected error (exit 1): "
                                  "it carries its own exit status, which `slmray.tune` returns",
                    "TimeLimitError": "a multi-process trial past its --trial-timeout: an outcome the launcher "
                                      "records as the trial's failure, not the user's input"}
COMMANDS = ("slmray.train.cli", "slmray.data.cli", "slmray.cluster.files", "slmray.analysis.__main__", "slmray.tune",
            "slmray.recommend")


def _error_classes() -> list[tuple[str, str, list[str]]]:
    """(module, class, its bases as written) of every class slmray defines whose name ends in Error,
    read from the source."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                found.append((module, node.name, [ast.unparse(b) for b in node.bases]))
    return sorted(found)


def test_every_error_a_user_can_cause_derives_from_user_error():
    classes = _error_classes()
    assert len(classes) >= 10  # ConfigError, CsvError, PriceError, SpaceError, StorageError, ResultsError, ...
    for module, name, bases in classes:
        if name in NOT_A_USER_ERROR:  # read, not imported: slmray.sweep.driver loads Ray Tune (seconds)
            assert bases == ["RuntimeError"], f"{module}.{name}: {NOT_A_USER_ERROR[name]}"
            continue
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, UserError), f"{module}.{name} is not a slmray.errors.UserError"
        assert issubclass(cls, ValueError), f"{module}.{name}: callers catch it as a ValueError"
    from slmray.sweep.lock import LockHeld

    assert issubclass(LockHeld, UserError)  # a sweep another driver runs: the user's to sort out


def test_a_user_error_is_one_line_on_stderr_and_exit_2(capsys):
    @exits_2_on_user_error
    def main(argv=None):
        if argv == ["bad"]:
            raise PriceError("--price 'H100': expected GPU=USD per GPU-hour")
        if argv == ["broken"]:
            raise KeyError("a bug")
        return 3 if argv else 0

    assert main(["bad"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "error: --price 'H100': expected GPU=USD per GPU-hour\n"
    assert main([]) == 0 and main(["other"]) == 3  # its own exit statuses pass through
    with pytest.raises(KeyError):  # not a user's mistake: a traceback, as before
        main(["broken"])
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("module", COMMANDS)
def test_every_command_answers_user_errors_through_the_one_wrapper(module):
    main = importlib.import_module(module).main
    assert getattr(main, "__wrapped__", None) is not None, f"{module}.main is not wrapped by exits_2_on_user_error"
    tree = ast.parse(Path(importlib.import_module(module).__file__).read_text())
    user_errors = ("UserError", "ConfigError", "PriceError", "ResultsError", "StorageError", "SpaceError", "ClusterError",
                   "ObjectiveError", "PlanError", "CsvError")
    for handler in (n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler)):  # no copy of the wrapper left
        caught = ast.unparse(handler.type) if handler.type else ""
        returns_2 = any(isinstance(n, ast.Return) and ast.unparse(n.value or ast.Constant(None)) == "2"
                        for n in ast.walk(handler))
        assert not (returns_2 and any(e in caught for e in user_errors)), (
            f"{module} line {handler.lineno}: catches {caught} and returns 2 itself")


@pytest.mark.subprocess  # a fresh interpreter, its stdout a pipe
@pytest.mark.parametrize("command", [
    ["slmray.recommend", "{sweep}", "--model", "llama-1b", "--tokens", "1e9"],
    ["slmray.tune", "search_spaces/smoke.py", "--dry-run"],
])
def test_output_into_a_reader_that_stopped_ends_quietly(command):
    """`| head`: the reader is gone before the command writes; it ends with a shell's SIGPIPE status,
    no traceback and no `Exception ignored` as Python exits."""
    sweep = str(Path(__file__).parents[1] / "benchmarks/results/sweeps/sweep_h100x1.parquet")
    argv = [sys.executable, "-m", *(a.format(sweep=sweep) for a in command)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=Path(__file__).parents[1])
    proc.stdout.close()  # before the command has imported what it needs, let alone written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err


def test_a_broken_pipe_that_is_not_stdouts_stays_a_traceback():
    """Only stdout's reader going away ends a command quietly; a worker's or a socket's pipe is a fault."""
    @exits_2_on_user_error
    def main() -> int:
        raise BrokenPipeError("a worker's pipe")

    with pytest.raises(BrokenPipeError, match="a worker's pipe"):
        main()


def _prices(*argv: str, **kwargs) -> argparse.Namespace:
    p = parser("prog")
    add_price_arguments(p, "whatever", **kwargs)
    return p.parse_args(list(argv))


def test_price_book_reads_the_flags_back():
    assert price_book(_prices()) is None  # no flag, no default profile: the recorded prices stand
    assert price_book(_prices(), "aws").profile == "aws"
    book = price_book(_prices("--price", "H100-80GB=3.5", "--price", "cpu=0.25"))
    assert book.profile == LOCAL and book.lookup("H100-80GB").usd_per_gpu_hour == 3.5
    assert book.lookup("cpu").source == "override"
    aws = price_book(_prices("--prices", "aws", "--price", "H100-80GB=1.0"), "gcp")
    assert aws.profile == "aws" and aws.lookup("H100-80GB").usd_per_gpu_hour == 1.0
    assert math.isfinite(aws.lookup("H200").usd_per_gpu_hour)  # the rest of the profile stays
    with pytest.raises(PriceError, match="profile 'moon' is not one of local, aws"):
        price_book(_prices("--prices", "moon"))
    with pytest.raises(PriceError, match="--price 'H100': expected GPU=USD"):
        price_book(_prices("--price", "H100"))


def test_a_price_without_a_profile_applies_over_the_recorded_prices():
    """Where a command's prices default to those its tables recorded, --price and --price-file change
    the GPUs they name and leave the others as recorded (not at `local`'s 0); a profile replaces them."""
    recorded = PriceBook.load("aws")
    book = price_book(_prices("--price", "H100-80GB=3"), recorded=recorded)
    assert book.lookup("H100-80GB").usd_per_gpu_hour == 3.0 and book.lookup("H200") == recorded.lookup("H200")
    assert price_book(_prices(), recorded=recorded) is None  # nothing given: the recorded prices stand as they are
    gcp = price_book(_prices("--prices", "gcp", "--price", "H100-80GB=3"), recorded=recorded)
    assert gcp.profile == "gcp" and gcp.lookup("A100-40GB") != recorded.lookup("A100-40GB")
    per_gpu = price_book(_prices("--price", "H100-80GB=3", "--per-gpu-pricing"), recorded=recorded)
    assert per_gpu.per_gpu and not recorded.per_gpu and per_gpu.lookup("H200") == recorded.lookup("H200")


def test_priced_tables_reprices_what_the_flags_name():
    """A profile re-prices every trial; --price alone the trials of the GPU it names (per GPU), the
    others as recorded; no flag: the rows as they are, planned at the prices they recorded."""
    from analysis_fixtures import H100_SWEEP, H200_SWEEP

    from slmray.planning.run import recorded_prices
    from slmray.results.table import load_results

    df = load_results([str(H100_SWEEP), str(H200_SWEEP)])
    recorded = recorded_prices(df)
    columns = ["price_per_hour_usd", "price_source", "cost_usd", "tokens_per_usd"]
    same, book, note = priced_tables(_prices(), df, recorded)
    assert same is df and note is None and book is recorded
    priced, book, note = priced_tables(_prices("--price", "H100-80GB=3"), df, recorded)
    h100 = priced["gpu_type"] == "H100-80GB"
    assert book.given == {"H100-80GB"} and note.startswith("Re-priced the trials on H100-80GB with 1 override(s)")
    assert (priced.loc[h100, "price_per_hour_usd"] == 3.0 * priced.loc[h100, "num_gpus"]).all()
    assert (priced.loc[h100, "price_source"] == "override").all()
    pd.testing.assert_frame_equal(priced.loc[~h100, columns], df.loc[~h100, columns])
    everything, book, note = priced_tables(_prices("--prices", "gcp", "--price", "H100-80GB=3"), df, recorded)
    assert note == "Re-priced with the 'gcp' profile and 1 override(s)."
    assert not everything.loc[~h100, "price_source"].equals(df.loc[~h100, "price_source"])  # the H200's too


def test_profile_choices_refuse_an_unknown_profile_while_parsing(capsys):
    with pytest.raises(SystemExit) as exit_:
        _prices("--prices", "moon", profile_choices=True)
    assert exit_.value.code == 2 and "argument --prices: invalid choice: 'moon'" in capsys.readouterr().err
    assert _prices("--prices", "aws", profile_choices=True).prices == "aws"


def test_every_command_that_prices_declares_the_same_flags():
    from slmray.analysis.__main__ import build_parser as analysis
    from slmray.recommend import build_parser as recommend
    from slmray.tune import build_parser as tune

    def flags(p: argparse.ArgumentParser) -> dict:
        return {a.dest: (a.option_strings, a.metavar, a.default, a.help.split(" (default")[0])
                for a in p._actions if a.dest in ("prices", "price_file", "price")}

    shapes = [flags(p()) for p in (tune, analysis, recommend)]
    assert set(shapes[0]) == {"prices", "price_file", "price"}
    for shape in shapes[1:]:
        assert {k: v[:3] for k, v in shape.items()} == {k: v[:3] for k, v in shapes[0].items()}
        assert shape["price"] == shapes[0]["price"] and shape["price_file"] == shapes[0]["price_file"]


def test_the_run_assumptions_fall_back_on_the_measured_group_start():
    frame = pd.DataFrame({"status": ["ok", "oom"], "time_to_first_step_s": [None, 7.0]})
    a = default_assumptions(frame)
    assert a.startup_s == GROUP_START_S and a.compile_s == max(COMPILE_S.values())
    assert default_assumptions(frame.assign(time_to_first_step_s=[30.0, 7.0])).startup_s == 30.0
    with pytest.raises(PlanError, match="--startup-s: must be a non-negative number, got -1"):
        default_assumptions(frame, startup_s=-1.0)
    with pytest.raises(PlanError, match="--checkpoint-gb-s: must be positive, got 0"):
        default_assumptions(frame, checkpoint_gb_s=0)
    assert issubclass(PlanError, UserError) and not issubclass(PlanError, ConfigError)


def test_the_planning_command_is_only_its_command_line():
    from slmray import recommend

    source = Path(recommend.__file__).read_text()
    assert len(source.splitlines()) < 120
    assert "def plan_run" not in source and "def render" not in source  # the planning is slmray.planning's
