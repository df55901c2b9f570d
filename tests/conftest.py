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
