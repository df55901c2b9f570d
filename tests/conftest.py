"""Shared fixtures.  Tiers, cheapest first: pure logic; 2-process gloo groups; a local Ray."""

import os
import subprocess
import sys
import tempfile

import pytest

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("SLMRAY_CACHE", tempfile.mkdtemp(prefix="slmray-cache-"))  # inherited by subprocesses


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command-line entry point of this Python, as a user would."""
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture(scope="session")
def smoke_sweep(tmp_path_factory):
    """The README's first command: search_spaces/smoke.py on this machine's CPU."""
    storage = tmp_path_factory.mktemp("sweeps")
    out = run_cli("-m", "slmray.tune", "search_spaces/smoke.py", "--storage", str(storage), "--name", "smoke", timeout=900)
    return out, storage / "smoke"


@pytest.fixture
def s3_server():
    """A real S3-compatible server (moto's server mode) on 127.0.0.1, with a bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
    }
    boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                 aws_secret_access_key="testing", region_name="us-east-1").create_bucket(Bucket="slmray-test")
    yield env
    server.stop()




# -- tiers ---------------------------------------------------------------------------------------
# `python -m pytest -m unit` is the fast tier.  Marks are given here from the fixtures a test uses
# (and its module's `pytestmark` / its own decorators where no fixture tells): a test that starts a
# Ray is `ray`, one on the S3 server `s3`, one under torchrun or in a process group `dist`, one that
# runs the notebook `notebook`, and one that spawns an interpreter `subprocess`; a test with none of
# these is `unit`, and `_unit_tests_stay_in_process` below fails it if it spawns, starts Ray or a
# process group after all.
TIERS = ("dist", "ray", "s3", "notebook", "subprocess")
FIXTURE_MARKS = {
    "cli": ("subprocess",),  # run_cli: a real interpreter
    "smoke_sweep": ("ray", "subprocess"),  # python -m slmray.tune, which starts its own local Ray
    "fake_cluster": ("ray", "subprocess"),  # tests/test_autoscaling.py: `ray start` and a fake provider
    "s3_server": ("s3",),  # moto's server on 127.0.0.1
}


def pytest_configure(config):
    config.addinivalue_line("markers", "subprocess: spawns a Python interpreter (a CLI run as a user would, a lock holder)")
    _op_counts(config, keep=False)


def pytest_unconfigure(config):
    _op_counts(config, keep=True)


def _op_counts(config, keep: bool) -> None:
    """The estimator's op counts (`slmray.predict.opcount`, tens of seconds to make for every model the
    tests estimate) carried from one session's fresh SLMRAY_CACHE to the next through pytest's cache
    folder.  Safe to share: each count's key holds torch's and transformers' versions and a digest of
    the code that dispatches the ops, so none is read by code it was not counted on."""
    if hasattr(config, "workerinput") or getattr(config, "cache", None) is None:  # xdist's controller only
        return
    from pathlib import Path

    from slmray.predict.opcount import CACHE_FILE

    session, kept = Path(os.environ["SLMRAY_CACHE"]) / CACHE_FILE, config.cache.mkdir("slmray") / CACHE_FILE
    source, target = (session, kept) if keep else (kept, session)
    if source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())


def pytest_itemcollected(item):
    # as each test is collected, before any collection_modifyitems hook: pytest-xdist's reads the
    # xdist_group marks there, and -m selects on the tiers
    for fixture in getattr(item, "fixturenames", ()):
        for name in FIXTURE_MARKS.get(fixture, ()):
            if item.get_closest_marker(name) is None:
                item.add_marker(name)
    tiers = [name for name in TIERS if item.get_closest_marker(name) is not None]
    if item.get_closest_marker("unit") is not None and tiers:
        raise pytest.UsageError(f"{item.nodeid} is marked unit and also {', '.join(tiers)}")
    if not tiers:
        item.add_marker("unit")
    if "ray" in tiers:  # under pytest-xdist, one worker runs the Ray tests one after another
        item.add_marker(pytest.mark.xdist_group("ray"))


class SpawnInUnitTest(AssertionError):
    """A `unit` test spawned a process, started Ray or a process group: mark it (see TIERS) instead."""


@pytest.fixture(autouse=True)
def _unit_tests_stay_in_process(request, monkeypatch):
    if request.node.get_closest_marker("unit") is None:
        yield
        return

    def refuse(what):
        def refused(*args, **kwargs):
            raise SpawnInUnitTest(f"{request.node.nodeid} is marked unit but {what}; give it the mark of its tier")
        return refused

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("spawns a process (subprocess.Popen)"))
    monkeypatch.setattr(os, "fork", refuse("forks (os.fork)"))
    monkeypatch.setattr(os, "posix_spawn", refuse("spawns a process (os.posix_spawn)"))
    import ray  # once a session, about 0.3 s: ray.init(address=...) joins a cluster without spawning
    import torch.distributed as dist

    monkeypatch.setattr(ray, "init", refuse("starts Ray (ray.init)"))
    monkeypatch.setattr(dist, "init_process_group", refuse("starts a process group (init_process_group)"))
    yield


def call_main(capsys, main, *args: str) -> subprocess.CompletedProcess:
    """`python -m MODULE ARGS` in this process: `main(ARGS)`'s return (or SystemExit) code and its output."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return subprocess.CompletedProcess(["main", *args], code, out.out, out.err)

