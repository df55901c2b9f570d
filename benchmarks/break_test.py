"""The break test: odd input to every entry point, as a new user or a reliability tester would give it.

    python benchmarks/break_test.py                  # run every case, print the table
    python benchmarks/break_test.py --only 12 40     # some cases
    python benchmarks/break_test.py --out benchmarks/results/break_test/break_test.md

Each case runs a command line in a fresh folder (its files made first: a space file, a config.json,
a price file, a table) with this checkout first on PYTHONPATH, and judges what came back: a user
error must be one line `error: ...` and exit 2, with no traceback; input that is fine must work.
None starts Ray except the cases marked `ray` (`--no-ray` leaves them out).  The table gives the
command, what was expected, what came back (exit status and the line that says it) and the verdict.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "benchmarks" / "results" / "sweeps" / "sweep_h100x1.parquet"
"""A committed results table of the old schema (before precision, loss kernel, backend): odd tables derive from it."""
PY = shlex.quote(sys.executable)


@dataclass
class Case:
    area: str
    command: str
    """A shell command run in the case's folder; `python` is this interpreter."""
    expect: str = "error"
    """error: one line `error: ...`, exit 2; ok: exit 0; or a description checked by `check`."""
    setup: Callable[[Path], None] | None = None
    check: Callable[[subprocess.CompletedProcess, Path], str | None] | None = None
    """None when the outcome is right, else what is wrong (beside the `expect` rule)."""
    env: dict[str, str | None] = field(default_factory=dict)
    """Changes to the environment; None removes a variable."""
    ray: bool = False
    timeout: float = 120
    signal_after: float | None = None
    """Send SIGINT this many seconds after the start (an interrupted run)."""


def write(name: str, text: str | bytes) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return make


def both(*makers: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(folder: Path) -> None:
        for m in makers:
            m(folder)
    return make


def space(body: str, name: str = "space.py") -> Callable[[Path], None]:
    return write(name, "from slmray.space import SearchSpace\n" + body)


def small_space(**changes: str) -> str:
    fields = {"model": "['tiny']", "per_device_batch": "[2]", "num_gpus": "[1]", "attention": "['sdpa']",
              "strategy": "['ddp']", "seq_len": "32", "steps": "2", "warmup_steps": "1", "data": "'synthetic'",
              "search": "'grid'", "objectives": "['max:tokens_per_s']", **changes}
    return "SPACE = SearchSpace(" + ", ".join(f"{k}={v}" for k, v in fields.items() if v is not None) + ")\n"


def table(name: str, change: Callable | None = None) -> Callable[[Path], None]:
    """The committed table, changed by `change(pyarrow.Table) -> pyarrow.Table`, written as `name`."""
    def make(folder: Path) -> None:
        import pyarrow.parquet as pq

        t = pq.read_table(TABLE)
        pq.write_table(change(t) if change else t, folder / name)
    return make


def set_column(name: str, values: Callable[[list], list], type_=None):
    def change(t):
        import pyarrow as pa

        return t.set_column(t.schema.get_field_index(name), name, pa.array(values(t.column(name).to_pylist()), type_))
    return change


def hf(config: dict | str) -> Callable[[Path], None]:
    import json

    return write("model/config.json", config if isinstance(config, str) else json.dumps(config))


LLAMA = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 256, "max_position_embeddings": 128}
TRAIN = f"{PY} -m slmray.train --seq-len 32 --steps 1 --warmup-steps 0"
TUNE = f"{PY} -m slmray.tune"
ANALYSIS = f"{PY} -m slmray.analysis"
RECOMMEND = f"{PY} -m slmray.recommend"
DATA = f"{PY} -m slmray.data"


def no_file(path: str) -> Callable:
    return lambda out, folder: f"{path} was written" if (folder / path).exists() else None


def runs_printed_analysis(out: subprocess.CompletedProcess, folder: Path) -> str | None:
    """The sweep's last line, `analyse it: python -m slmray.analysis ...`, run as printed."""
    line = next((l for l in out.stdout.splitlines() if l.startswith("analyse it: ")), None)
    if line is None:
        return "no `analyse it:` line"
    command = line.removeprefix("analyse it: ").replace("python ", f"{PY} ", 1)
    again = subprocess.run(command, shell=True, cwd=folder, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
    return None if again.returncode == 0 else f"the printed analysis command exits {again.returncode}"


def ray_left(out, folder) -> str | None:
    return None


CASES: list[Case] = [
    # -- python -m slmray.train ---------------------------------------------------------------
    Case("train", f"{TRAIN} --steps 0"),
    Case("train", f"{TRAIN} --per-device-batch -4"),
    Case("train", f"{TRAIN} --grad-accum 0"),
    Case("train", f"{TRAIN} --repeats 0"),
    Case("train", f"{TRAIN} --lr 0"),
    Case("train", f"{TRAIN} --seq-len 1000000"),
    Case("train", f"{TRAIN} --model llama-7b"),
    Case("train", f"{TRAIN} --n-layer 0"),
    Case("train", f"{TRAIN} --n-head 4 --n-kv-head 3"),
    Case("train", f"{TRAIN} --vocab-size 0"),
    Case("train", f"{TRAIN} --device cuda"),
    Case("train", f"{TRAIN} --precision fp16"),
    Case("train", f"{TRAIN} --strategy zero3"),
    Case("train", f"{TRAIN} --loss-kernel liger"),
    Case("train", f"{TRAIN} --data ./no-such-shards"),
    Case("train", f"{TRAIN} --model ./emptydir", setup=lambda f: (f / "emptydir").mkdir()),
    Case("train", f"{TRAIN} --steps 1.5"),
    Case("train", f"{TRAIN} --time-limit 0"),
    # -- config.json models (hf_config) ---------------------------------------------------------
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf("[1, 2, 3]")),
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf("")),
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf({**LLAMA, "model_type": "bert"})),
    Case("hf_config", f"{TRAIN} --model model/config.json",
         setup=hf({k: v for k, v in LLAMA.items() if k != "hidden_size"})),
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf({**LLAMA, "num_attention_heads": 0})),
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf({**LLAMA, "hidden_size": "64"})),
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf({**LLAMA, "vocab_size": -5})),
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf({**LLAMA, "num_key_value_heads": 3})),
    Case("hf_config", f"{TRAIN} --model model", expect="ok",
         setup=write("model/config.json", b"\xef\xbb\xbf" + __import__("json").dumps(LLAMA).encode())),
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf("{\"model_type\": \"llama\", ")),
    Case("hf_config", f"{TRAIN} --model model/config.json",
         setup=hf({**LLAMA, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}})),
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf({**LLAMA, "max_position_embeddings": 0})),
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf({**LLAMA, "tie_word_embeddings": "yes"})),
    Case("hf_config", f"{TRAIN} --model model/config.json", setup=hf({**LLAMA, "hidden_act": "relu"})),
    Case("hf_config", f"{TRAIN} --model SomeOrg/NoSuchModel-1", expect="error (offline: no hub)"),
    Case("entry", f"{PY} -m slmray", expect="one line naming the commands, exit 2"),
    # -- search-space files ---------------------------------------------------------------------
    Case("space", f"{TUNE} space.py --dry-run", setup=write("space.py", "SPACE = (\n")),
    Case("space", f"{TUNE} space.py --dry-run", setup=write("space.py", "X = 1\n")),
    Case("space", f"{TUNE} space.py --dry-run", setup=write("space.py", "SPACE = {'model': ['tiny']}\n")),
    Case("space", f"{TUNE} space.py --dry-run", setup=write("space.py", "1 / 0\n")),
    Case("space", f"{TUNE} space.py --dry-run", setup=write("space.py", "import no_such_module_here\n")),
    Case("space", f"{TUNE} space.py --dry-run", setup=write("space.py", b"SPACE = '\xff\xfe'\n")),
    Case("space", f"{TUNE} spacedir --dry-run", setup=lambda f: (f / "spacedir").mkdir()),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(model="[]"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(per_device_batch="[0]"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(strategy="['zero3']"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(objectives="['max:nonexistent']"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(objectives="['up:tokens_per_s']"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(search="'random'"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(num_gpus="[64]"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(steps="0"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(seq_len="'long'"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(model="['tiny', 'no-such-model']"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(attention="'sdpa'")), expect="ok"),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(max_concurrent="0"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(repeats="0"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(seed="-1"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(prices="'nosuch'"))),
    Case("space", f"{TUNE} space.py --dry-run", setup=space(small_space(gpu_type="['H100']"))),
    Case("space", f"{TUNE} space.py --dry-run",
         setup=space(small_space(per_device_batch="{'tiny': [2], 'llama-1b': [4]}"))),
    Case("space", f"{TUNE} space.py --storage st", setup=space(small_space(data="'./no-such-shards'")),
         check=no_file("st")),
    Case("space", f"{TUNE} 'my space ü.py' --dry-run", expect="ok", setup=space(small_space(), "my space ü.py")),
    # -- python -m slmray.tune's flags ----------------------------------------------------------
    Case("tune", f"{TUNE}"),
    Case("tune", f"{TUNE} space.py --dry-run --name {'a' * 129}", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --resume --name notasweep --storage st",
         setup=both(space(small_space()), lambda f: (f / "st" / "notasweep").mkdir(parents=True))),
    Case("tune", f"{TUNE} space.py --dry-run --storage s3://", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --dry-run --storage '~nosuchuser/sweeps'", expect="error, or the path as given",
         setup=space(small_space()), check=no_file("~nosuchuser")),
    Case("tune", f"{TUNE} space.py --dry-run --max-trials 0", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --dry-run --budget-usd -5", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --dry-run --name ../escape", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --resume --name never-ran --storage st", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --address 127.0.0.1:1", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --dry-run --cluster-config no-such.yaml", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --dry-run --price H100-80GB=abc", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --dry-run --price-file no-such.csv", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --dry-run --prices cheapest", setup=space(small_space())),
    Case("tune", f"{TUNE} space.py --dry-run --trial-timeout -1", setup=space(small_space())),
    # -- price files ------------------------------------------------------------------------------
    Case("prices", f"{TUNE} space.py --dry-run --price-file p.csv", setup=both(space(small_space()), write("p.csv", ""))),
    Case("prices", f"{TUNE} space.py --dry-run --price-file p.json",
         setup=both(space(small_space()), write("p.json", '{"H100-80GB": -2}'))),
    Case("prices", f"{TUNE} space.py --dry-run --price-file p.json",
         setup=both(space(small_space()), write("p.json", '[["H100-80GB", 2]]'))),
    Case("prices", f"{TUNE} space.py --dry-run --price-file p.json",
         setup=both(space(small_space()), write("p.json", '{"H100-80GB": NaN}'))),
    Case("prices", f"{TUNE} space.py --dry-run --price-file p.csv",
         setup=both(space(small_space()), write("p.csv", "H100-80GB,2\n"))),
    Case("prices", f"{TUNE} space.py --dry-run --price-file p.csv",
         setup=both(space(small_space()), write("p.csv", "gpu,usd_per_gpu_hour\nH100-80GB,2,extra,fields\n"))),
    Case("prices", f"{TUNE} space.py --dry-run --price-file p.csv", expect="ok (a BOM, as Windows editors write)",
         setup=both(space(small_space()), write("p.csv", b"\xef\xbb\xbfgpu,usd_per_gpu_hour\r\nH100-80GB,2\r\n"))),
    Case("prices", f"{TUNE} space.py --dry-run --price-file p.txt",
         setup=both(space(small_space()), write("p.txt", "H100-80GB=2\n"))),
    # -- results tables: python -m slmray.analysis and recommend --------------------------------
    Case("tables", f"{ANALYSIS} t.parquet --out rep", setup=write("t.parquet", b"")),
    Case("tables", f"{ANALYSIS} t.parquet --out rep", expect="error, or a report that says so",
         setup=table("t.parquet", lambda t: t.slice(0, 0))),
    Case("tables", f"{ANALYSIS} t.parquet --out rep", expect="error, or a report that says so",
         setup=table("t.parquet", set_column("status", lambda v: ["failed"] * len(v)))),
    Case("tables", f"{ANALYSIS} t.parquet --out rep", expect="ok", setup=table("t.parquet", lambda t: t.slice(0, 1))),
    Case("tables", f"{ANALYSIS} t.parquet --out rep", setup=table("t.parquet", lambda t: t.drop_columns(["tokens_per_s"]))),
    Case("tables", f"{ANALYSIS} t.parquet --out rep",
         setup=table("t.parquet", set_column("num_gpus", lambda v: [str(x) for x in v]))),
    Case("tables", f"{ANALYSIS} t.parquet --out rep", expect="ok",
         setup=table("t.parquet", lambda t: t.append_column("my_note", __import__("pyarrow").array(["x"] * t.num_rows)))),
    Case("tables", f"{ANALYSIS} t.parquet --out rep", expect="ok (the committed table, older schema)",
         setup=table("t.parquet")),
    Case("tables", f"{ANALYSIS} t.csv --out rep", setup=write("t.csv", "model,tokens_per_s\ntiny,1\n")),
    Case("tables", f"{ANALYSIS} tables --out rep", setup=lambda f: (f / "tables").mkdir()),
    Case("tables", f"{ANALYSIS} t.parquet --out rep --objective max:nonexistent", setup=table("t.parquet")),
    Case("tables", f"{ANALYSIS} t.parquet --out rep --objective sideways:tokens_per_s", setup=table("t.parquet")),
    Case("tables", f"{ANALYSIS} t.parquet --out afile", setup=both(table("t.parquet"), write("afile", "x"))),
    Case("tables", f"{ANALYSIS} t.parquet --out /proc/rep", setup=table("t.parquet")),
    Case("tables", f"{RECOMMEND} t.parquet --model llama-1b --tokens 1e9", expect="error, or a plan that says so",
         setup=table("t.parquet", lambda t: t.slice(0, 0))),
    Case("tables", f"{RECOMMEND} t.parquet --model llama-1b --tokens -1e9", setup=table("t.parquet")),
    Case("tables", f"{RECOMMEND} t.parquet --model llama-1b --tokens lots", setup=table("t.parquet")),
    Case("tables", f"{RECOMMEND} t.parquet --model no-such-model --tokens 1e9", setup=table("t.parquet")),
    Case("tables", f"{RECOMMEND} t.parquet --model llama-1b --tokens 1e9 --deadline-hours 0", setup=table("t.parquet")),
    Case("tables", f"{RECOMMEND} t.parquet --model llama-1b --tokens 1e9 --max-gpus 0", setup=table("t.parquet")),
    Case("tables", f"{ANALYSIS}"),
    Case("tables", f"{RECOMMEND} t.parquet --model llama-1b --tokens=-1e9", setup=table("t.parquet")),
    Case("tables", f"{RECOMMEND} t.parquet --model llama-1b --tokens 1e9", expect="error, or a plan that says so",
         setup=table("t.parquet", set_column("status", lambda v: ["failed"] * len(v)))),
    Case("tables", f"{ANALYSIS} t.parquet --out rep", expect="error, or a report",
         setup=table("t.parquet", set_column("tokens_per_s", lambda v: [None] * len(v), __import__("pyarrow").float64()))),
    Case("tables", f"{ANALYSIS} t.parquet --out rep",
         setup=table("t.parquet", set_column("losses", lambda v: ["1,2,3"] * len(v)))),
    Case("tables", f"{ANALYSIS} t.parquet --out rep --price H100-80GB=-1", setup=table("t.parquet")),
    # -- python -m slmray.data ------------------------------------------------------------------
    Case("data", f"{DATA}"),
    Case("data", f"{DATA} prepare empty --out shards", setup=lambda f: (f / "empty").mkdir(), check=no_file("shards")),
    Case("data", f"{DATA} prepare no-such-dir --out shards", check=no_file("shards")),
    Case("data", f"{DATA} prepare a.txt --out shards --shard-tokens 0", setup=write("a.txt", "hello " * 100),
         check=no_file("shards")),
    Case("data", f"{DATA} prepare a.txt --out shards --max-bytes -1", setup=write("a.txt", "hello " * 100),
         check=no_file("shards")),
    Case("data", f"{DATA} prepare a.txt --out shards", setup=both(write("a.txt", "hello " * 100), write("shards/x", "x"))),
    Case("data", f"{DATA} prepare a.bin --out shards", setup=write("a.bin", bytes(range(256)) * 64),
         check=no_file("shards")),
    Case("data", f"{DATA} prepare a.txt --out /proc/shards", setup=write("a.txt", "hello " * 100)),
    Case("data", f"{DATA} stdlib", env={"SLMRAY_CACHE": "/proc/slmray-cache"}),
    # -- python -m slmray.cluster, python -m slmray.predict.profile ----------------------------
    Case("cluster", f"{PY} -m slmray.cluster"),
    Case("cluster", f"{PY} -m slmray.cluster validate no-such.yaml"),
    Case("cluster", f"{PY} -m slmray.cluster validate c.yaml", setup=write("c.yaml", "")),
    Case("cluster", f"{PY} -m slmray.cluster validate c.yaml", setup=write("c.yaml", "- a\n- b\n")),
    Case("cluster", f"{PY} -m slmray.cluster validate c.yaml", setup=write("c.yaml", "key: [unclosed\n")),
    Case("cluster", f"{PY} -m slmray.cluster validate c.yaml", setup=write("c.yaml", b"\xef\xbb\xbfcluster_name: x\n")),
    Case("profile", f"{PY} -m slmray.predict.profile --quick --out -", expect="error: no GPU here"),
    # -- the environment ------------------------------------------------------------------------
    Case("environment", f"{TUNE} space.py --dry-run", expect="ok", setup=space(small_space()), env={"HOME": None}),
    Case("environment", f"{TRAIN}", expect="ok", env={"TMPDIR": "/no/such/tmp"}),
    Case("environment", f"cd /proc && {ANALYSIS} $OLDPWD/t.parquet", setup=table("t.parquet")),
    Case("environment", f"{TRAIN} --data stdlib", env={"SLMRAY_CACHE": "/proc/slmray-cache"}),
    Case("environment", f"{TUNE} space.py --dry-run --storage 'my sweeps/ünï cöde'", expect="ok",
         setup=space(small_space())),
    Case("storage", f"{TUNE} space.py --storage afile", setup=both(space(small_space()), write("afile", "x"))),
    Case("storage", f"{TUNE} space.py --storage /proc/sweeps", setup=space(small_space())),
    # -- runs that start Ray --------------------------------------------------------------------
    Case("storage", f"{TUNE} space.py --storage 'my sweeps/ünï cöde' --name s1", expect="ok, and its printed "
         "analysis command works", setup=space(small_space()), check=runs_printed_analysis, ray=True, timeout=600),
    Case("interrupted", f"{TUNE} space.py --storage st --name s2", expect="exit 130 and one line saying what ran",
         setup=space(small_space(steps="100000")), ray=True, timeout=600, signal_after=4),
    Case("interrupted", f"{DATA} prepare big.txt --out shards", expect="exit 130, no shards folder left",
         setup=write("big.txt", "hello world " * 12_000_000), signal_after=2, check=no_file("shards")),
]


def first_line(out: subprocess.CompletedProcess) -> str:
    lines = [l for l in (out.stderr + out.stdout).splitlines() if l.strip()]
    error = next((l for l in lines if l.startswith("error:")), None)
    return (error or (lines[-1] if lines else "(nothing)")).strip()


def judge(case: Case, out: subprocess.CompletedProcess, folder: Path) -> str:
    """'as expected', or what is wrong."""
    text = out.stdout + out.stderr
    if "Traceback (most recent call last)" in text:
        return "traceback"
    problems = []
    if case.expect.startswith("error"):
        if out.returncode == 0 and ", or " in case.expect:
            pass
        elif out.returncode != 2:
            problems.append(f"exit {out.returncode}, not 2")
        elif sum(l.startswith("error:") for l in out.stderr.splitlines()) != 1:
            problems.append("not one `error:` line")
    elif case.expect.startswith("one line naming"):
        if out.returncode != 2 or len(out.stderr.strip().splitlines()) != 1:
            problems.append(f"exit {out.returncode}, {len(out.stderr.strip().splitlines())} lines")
    elif case.expect.startswith("exit 130"):
        if out.returncode != 130:
            problems.append(f"exit {out.returncode}, not 130")
    elif out.returncode != 0:
        problems.append(f"exit {out.returncode}, not 0")
    if case.check:
        problem = case.check(out, folder)
        if problem:
            problems.append(problem)
    return "; ".join(problems) or "as expected"


def run_case(case: Case) -> tuple[subprocess.CompletedProcess, str, float]:
    with tempfile.TemporaryDirectory(prefix="slmray-break-") as tmp:
        folder = Path(tmp)
        if case.setup:
            case.setup(folder)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        for name, value in case.env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = value
        started = time.monotonic()
        # SIGINT as a terminal gives it: a shell without job control starts background commands with SIGINT
        # ignored, and an ignored signal stays ignored through exec (Python then installs no KeyboardInterrupt)
        proc = subprocess.Popen(case.command, shell=True, cwd=folder, env=env, text=True, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, executable="/bin/bash",
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            if case.signal_after is not None:
                try:
                    proc.wait(case.signal_after)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
            stdout, stderr = proc.communicate(timeout=case.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            stderr += f"\n(killed after {case.timeout:.0f} s)"
        out = subprocess.CompletedProcess(case.command, proc.returncode, stdout, stderr)
        verdict = judge(case, out, folder)
        # the folder's random name, as `$CASE`: the table reads the same from run to run
        out.stdout, out.stderr = stdout.replace(str(folder), "$CASE"), stderr.replace(str(folder), "$CASE")
        return out, verdict, time.monotonic() - started


def _cell(text: str, limit: int = 220) -> str:
    text = text.replace("|", "\\|").replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", type=int, nargs="*", help="case numbers to run (default: all)")
    p.add_argument("--no-ray", action="store_true", help="leave out the cases that start Ray")
    p.add_argument("--out", help="also write the table to this Markdown file")
    args = p.parse_args(argv)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    lines = [f"Break test of {commit} on {datetime.date.today()} (`python benchmarks/break_test.py`): "
             f"{len(CASES)} cases, `python` is this checkout's interpreter, each run in a fresh folder.", "",
             "| # | area | command | expected | observed | verdict |", "| --- | --- | --- | --- | --- | --- |"]
    failures = 0
    for number, case in enumerate(CASES, 1):
        if (args.only and number not in args.only) or (args.no_ray and case.ray):
            continue
        out, verdict, seconds = run_case(case)
        failures += verdict != "as expected"
        shown = case.command.replace(PY, "python")
        expected = "one line `error: ...`, exit 2" if case.expect == "error" else case.expect
        lines.append(f"| {number} | {case.area} | `{_cell(shown, 160)}` | {expected} | exit {out.returncode}: "
                     f"{_cell(first_line(out))} | "
                     f"{'ok' if verdict == 'as expected' else '**' + verdict + '**'} |")
        print(lines[-1], flush=True)
    lines += ["", f"{failures} of the cases run did not do what was expected."]
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    print(lines[-1])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
