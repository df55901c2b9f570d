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


