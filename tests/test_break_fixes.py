"""What the break test of 2026-12-05 found (benchmarks/results/break_test/), each at its class."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from slmray.errors import ConfigError

LLAMA = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 256, "max_position_embeddings": 128}


def test_a_config_json_with_a_byte_order_mark_is_read(tmp_path):
    from slmray.train.hf_config import load

    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(LLAMA).encode())  # as Windows editors save UTF-8
    assert load(str(path)).d_model == 64


@pytest.mark.parametrize("key", ["tie_word_embeddings", "mlp_bias", "attention_bias"])
@pytest.mark.parametrize("value", ["yes", "false", 1])
def test_a_config_json_switch_that_is_not_true_or_false_is_refused(tmp_path, key, value):
    from slmray.train.hf_config import load

    path = tmp_path / "config.json"
    path.write_text(json.dumps({**LLAMA, key: value}))
    with pytest.raises(ConfigError, match=f"config.json: {key}: must be true or false, got {value!r}"):
        load(str(path))


def test_a_stdlib_cache_that_cannot_be_written_is_one_line_naming_the_variable(monkeypatch):
    from slmray.data.sources import stdlib_corpus

    monkeypatch.setenv("SLMRAY_CACHE", "/proc/slmray-cache")  # a folder no user can make
    with pytest.raises(ConfigError, match=r"cannot build its corpus in /proc/slmray-cache .*set SLMRAY_CACHE"):
        stdlib_corpus()


def test_a_folder_given_as_a_table_says_so_and_names_the_sweeps_table(tmp_path):
    from slmray.results.table import RESULTS_FILE, ResultsError, read_table

    with pytest.raises(ResultsError, match=r"is a folder, not a table$"):
        read_table(str(tmp_path))
    (tmp_path / RESULTS_FILE).write_bytes(b"")
    with pytest.raises(ResultsError, match=f"its sweep's table is {tmp_path / RESULTS_FILE}"):
        read_table(str(tmp_path))


def test_prepare_refuses_an_existing_out_before_it_reads_the_inputs(tmp_path):
    from slmray.data.sources import ByteTokenizer, prepare

    (tmp_path / "shards").mkdir()
    (tmp_path / "in.bin").write_bytes(bytes(range(256)))  # read, it would be refused as no text
    with pytest.raises(ConfigError, match="out: .* already exists"):
        prepare([str(tmp_path / "in.bin")], str(tmp_path / "shards"), ByteTokenizer())


def test_ctrl_c_in_any_command_is_one_line_and_exit_130(capsys):
    from slmray.cli import exits_2_on_user_error

    @exits_2_on_user_error
    def main():
        raise KeyboardInterrupt

    assert main() == 130
    assert capsys.readouterr().err == "interrupted\n"


@pytest.mark.subprocess
def test_ctrl_c_during_data_prepare_leaves_nothing_and_says_so(tmp_path):
    (tmp_path / "big.txt").write_text("hello world " * 6_000_000)
    child = textwrap.dedent(f"""
        import os, signal, sys, threading
        from slmray.data.cli import main
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()  # Ctrl-C while it tokenises
        sys.exit(main(["prepare", {str(tmp_path / "big.txt")!r}, "--out", {str(tmp_path / "shards")!r}]))
    """)
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert out.returncode == 130, out.stderr
    assert out.stderr == "interrupted: nothing was written\n"
    assert sorted(os.listdir(tmp_path)) == ["big.txt"]  # no shards, no staging folder


def test_python_m_slmray_names_the_commands(cli):
    out = cli("-m", "slmray")
    assert out.returncode == 2
    assert len(out.stderr.splitlines()) == 1 and "python -m slmray.{tune,train,analysis" in out.stderr
    asked = cli("-m", "slmray", "--help")  # asked for, the same line is the answer
    assert (asked.returncode, asked.stderr) == (0, "") and asked.stdout == out.stderr.removeprefix("error: ")
