"""First contact with every command: `--help` imports nothing heavy, and every
option says what it is and shows its default once."""

import argparse
import json
import subprocess
import sys

import pytest

from slmray.analysis.__main__ import DEFAULT_TOKENS_PER_PARAM
from slmray.analysis.__main__ import build_parser as analysis_parser
from slmray.data.cli import SHARD_TOKENS_HELP
from slmray.data.cli import build_parser as data_parser
from slmray.recommend import build_parser as recommend_parser
from slmray.train.cli import build_parser as train_parser
from slmray.tune import build_parser as tune_parser

HEAVY = ("torch", "ray", "matplotlib", "pandas")
"""Each takes half a second to seconds to import; --help needs none of them.  (pyarrow, a tenth
of a second, may load: the CSV reader of the price profiles `python -m slmray.tune --help` lists.)"""

COMMANDS = [
    ("slmray.train", ["--help"]), ("slmray.train", ["--list-models"]),
    ("slmray.data", ["--help"]), ("slmray.data", ["prepare", "--help"]), ("slmray.data", ["stdlib", "--help"]),
    ("slmray.analysis", ["--help"]), ("slmray.cluster", ["--help"]), ("slmray.cluster", ["validate", "--help"]),
    ("slmray.tune", ["--help"]), ("slmray.recommend", ["--help"]),
]

# `python -m MODULE ARGS` as runpy runs it, then the modules it left imported
_PROBE = """
import json, runpy, sys
module, args = sys.argv[1], json.loads(sys.argv[2])
sys.argv = [module, *args]
try:
    runpy.run_module(module, run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
sys.stdout.flush()
print("\\nIMPORTED", json.dumps(sorted(m for m in {heavy} if m in sys.modules)), "EXIT", code)
"""


@pytest.mark.subprocess  # a fresh interpreter's sys.modules
@pytest.mark.parametrize("module, args", COMMANDS, ids=[" ".join([m, *a]) for m, a in COMMANDS])
def test_help_imports_no_heavy_module(module, args):
    out = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), module, json.dumps(args)],
                         capture_output=True, text=True, timeout=120)
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("IMPORTED"), out.stdout + out.stderr
    assert last == "IMPORTED [] EXIT 0", f"{module} {' '.join(args)}: {last}"
    assert "usage:" in out.stdout or "model" in out.stdout


def _parsers(parser: argparse.ArgumentParser, name: str):
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub, subparser in action.choices.items():
                yield from _parsers(subparser, f"{name} {sub}")


@pytest.mark.parametrize("name, parser", [
    *_parsers(train_parser(), "train"), *_parsers(data_parser(), "data"), *_parsers(analysis_parser(), "analysis"),
    *_parsers(tune_parser(), "tune"), *_parsers(recommend_parser(), "recommend"),
])
def test_every_option_says_what_it_is_and_shows_its_default_once(name, parser):
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        flag = "/".join(action.option_strings) or action.dest
        assert action.help and len(action.help) > 10, f"{name} {flag}: no help text"
        text = formatter._expand_help(action)
        assert text.count("default") <= 1, f"{name} {flag}: {text}"
        assert "(default: None)" not in text and "(default: False)" not in text, f"{name} {flag}: {text}"
        takes_value = action.nargs != 0
        one_of_required = any(g.required and action in g._group_actions for g in parser._mutually_exclusive_groups)
        if action.option_strings and takes_value and not action.required and not one_of_required:
            assert text.count("(default: ") == 1, f"{name} {flag}: no default shown: {text}"
    page = parser.format_help()
    assert "(default: None)" not in page and "(default: False)" not in page and "(default: []" not in page


def test_cluster_help_shows_defaults_once(capsys):
    from slmray.cluster.files import main

    for args in (["--help"], ["validate", "--help"]):
        with pytest.raises(SystemExit) as exit_:
            main(args)
        assert exit_.value.code == 0
        page = capsys.readouterr().out
        assert "(default: None)" not in page and page.count("(default: every *.yaml in cluster/)") == (args != ["--help"])


def test_constants_spelled_out_for_a_light_help_agree():
    from slmray.planning import assumptions

    assert DEFAULT_TOKENS_PER_PARAM == assumptions.DEFAULT_TOKENS_PER_PARAM
    from slmray.data import sources as data

    assert f"(default: {data.SHARD_TOKENS:,})" in SHARD_TOKENS_HELP


def _one_error_line(err: str, start: str) -> None:
    assert err.count("\n") == 1 and err.startswith(start), err
    assert "Traceback" not in err and "usage:" not in err


@pytest.mark.parametrize("module, args, start", [
    ("slmray.train", ["--steps", "abc"], "error: argument --steps: invalid int value: 'abc'"),
    ("slmray.train", ["--bogus"], "error: unrecognized arguments: --bogus"),
    ("slmray.data", [], "error: the following arguments are required: {prepare,stdlib}"),
    ("slmray.data", ["prepare", "x.txt"], "error: the following arguments are required: --out"),
    ("slmray.analysis", [], "error: the following arguments are required: results"),
    ("slmray.analysis", ["t.parquet", "--prices", "cheap"], "error: argument --prices: invalid choice"),
    ("slmray.cluster", ["frob"], "error: argument command: invalid choice: 'frob'"),
])
def test_a_bad_command_line_is_one_line_and_exit_2(module, args, start, capsys):
    entry = {"slmray.analysis": "slmray.analysis.__main__", "slmray.train": "slmray.train.cli", "slmray.data": "slmray.data.cli",
             "slmray.cluster": "slmray.cluster.files"}
    main = __import__(entry.get(module, module), fromlist=["main"]).main
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    _one_error_line(err, start)
    assert "--help lists the options" in err


def test_folders_that_cannot_be_written_are_one_line(tmp_path, capsys):
    from slmray.analysis.__main__ import main as analysis
    from slmray.data.cli import main as data

    from analysis_fixtures import H100_SWEEP

    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    assert data(["stdlib", "--cache-dir", str(a_file / "cache")]) == 2
    _one_error_line(capsys.readouterr().err, f"error: --cache-dir {a_file / 'cache'}: cannot write there (")
    assert analysis([str(H100_SWEEP), "--out", str(a_file)]) == 2
    _one_error_line(capsys.readouterr().err, f"error: --out {a_file}: cannot write the report there (")
