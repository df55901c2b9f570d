"""Autoscaling and multi-node trials on one machine, through the real commands.

`RAY_FAKE_CLUSTER=1 ray start --head --autoscaling-config=cluster/local.yaml` starts a head with
one CPU and `slmray_head`, and Ray's `fake_multinode` provider, which starts each node the
autoscaler asks for as a raylet process on this machine: 2-CPU `cpu_worker` nodes, none at the
start.  Then `python -m slmray.tune --address ... --cluster-config cluster/local.yaml` sweeps a
grid of a 2-worker and a 4-worker trial.  The trial drivers sit on the head (`slmray_head`), and
the head's remaining 0.99 CPU holds no worker, so the autoscaler adds one node for the first
trial and a second for the 4-worker one, whose gloo group then spans both nodes.  Its losses must
be one process's on the same global batch (`python -m slmray.train`, as tests/test_distributed.py
runs it).  With 4 steps, a group whose gradients were not all-reduced is off by 2e-3 (relative)
at the last one, 100 times the tolerance (measured by replacing DDP with a bare wrapper under torchrun).

The fake provider runs here, so `ray.cluster_utils.AutoscalingCluster` (the same provider behind
a test API) is not needed.  Two things keep this cluster apart from other Rays on the machine:
- its own temp dir, GCS port and token (`RAY_AUTH_TOKEN`, so neither ~/.ray/auth_token nor its
  absence matters); the provider joins its nodes to port 6379 unless its `gcs_address` says
  otherwise, so the head runs from a copy of local.yaml that sets it;
- teardown by process, not `ray stop`: `ray stop` has no scope (it stops every Ray process of this
  user on the machine, another test's local Ray included).  The head's `ray start --block` runs in a
  session of its own and stops its processes on SIGTERM; the fake nodes, which the autoscaler
  started and nothing stops, are in that session too and are terminated with it.

About 2 minutes on 2 cores (116 s measured, idle), 10 s of it teardown and 5 to 8 s the single-process reference.
"""

import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import yaml

from slmray.results.table import read_table
from slmray.sweep.space import load_space

from tests.conftest import run_cli
from tests.test_distributed import _losses

pytestmark = pytest.mark.ray

LOCAL_YAML = Path(__file__).resolve().parent.parent / "cluster" / "local.yaml"
HEAD_NODE_ID = "f" * 51 + "00000"
"""The fake provider's fixed id for the head; the nodes it launches count up from it."""

NODES = """
import json, sys, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print(json.dumps([{"id": n["NodeID"], "resources": n["Resources"]} for n in ray.nodes() if n["Alive"]]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


class FakeCluster:
    """A head from cluster/local.yaml with the fake provider, started and stopped by this test alone."""

    def __init__(self):
        import ray.util

        # short: Ray's unix sockets live under it, and their paths may not pass 107 characters
        self.root = Path(tempfile.mkdtemp(prefix="slmray-fake-", dir="/tmp"))
        self.address = f"{ray.util.get_node_ip_address()}:{_free_port()}"
        config = yaml.safe_load(LOCAL_YAML.read_text())
        config["provider"]["gcs_address"] = self.address
        (self.root / "local.yaml").write_text(yaml.safe_dump(config))
        # for the head and every client of this cluster
        self.env = {
            **os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
        }
        self.env.pop("RAY_ADDRESS", None)
        self.log = open(self.root / "head.log", "w")
        head = config["available_node_types"][config["head_node_type"]]["resources"]
        self.head = subprocess.Popen(
            [
                sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",  # `ray start` of this Python
                f"--port={self.address.rsplit(':', 1)[1]}", f"--temp-dir={self.root / 'ray'}",
                f"--num-cpus={head['CPU']}", f"--resources={json.dumps({k: v for k, v in head.items() if k != 'CPU'})}",
                "--object-store-memory=100000000", "--include-dashboard=false", "--dashboard-agent-listen-port=0",
                f"--autoscaling-config={self.root / 'local.yaml'}",
            ],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            # without a drain timeout of 0, the head waits up to 30 s on SIGTERM for a drain
            env={**self.env, "RAY_FAKE_CLUSTER": "1", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
                 "AUTOSCALER_UPDATE_INTERVAL_S": "1"},  # Ray checks the demand every 5 s by default
        )

    def wait_started(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.head.poll() is not None:
                raise AssertionError(f"ray start exited {self.head.returncode}:\n{self.head_log()}")
            if "Ray runtime started" in self.head_log():
                return
            time.sleep(0.5)
        raise AssertionError(f"the head did not start in {timeout} s:\n{self.head_log()}")

    def head_log(self) -> str:
        return (self.root / "head.log").read_text()

    def monitor_log(self) -> str:
        """The autoscaler's log: its decisions appear as `:event_summary:` lines."""
        return (self.root / "ray" / "session_latest" / "logs" / "monitor.log").read_text()

    def nodes(self) -> list[dict]:
        """The live nodes, as `ray.nodes()` in a client of this cluster sees them."""
        out = run_cli("-c", NODES, self.address, timeout=120, env=self.env)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    def workers(self) -> list[dict]:
        return [n for n in self.nodes() if n["id"] != HEAD_NODE_ID]

    def stop(self) -> None:
        """SIGTERM the head (it stops its own processes), then SIGKILL whatever is left of its session: the
        fake nodes, whose raylets take about 30 s over a SIGTERM once the GCS is gone."""
        sid = self.head.pid
        if self.head.poll() is None:
            self.head.send_signal(signal.SIGTERM)
            try:
                self.head.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.head.kill()
                self.head.wait()
        left = [p for p in psutil.process_iter() if _session(p) == sid]
        for p in left:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(left, timeout=10)
        assert not alive, f"still running after SIGKILL: {alive}"
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _single_process_losses(space_file: Path, num_gpus: int) -> list[float]:
    """The trial's own TrainConfig, trained by one process with the trial's whole global batch."""
    space = load_space(str(space_file))
    trial = next(t for t in space.trials() if t.num_gpus == num_gpus)
    cfg = space.train_config(trial, device="cpu")
    same = ("attention", "seq_len", "steps", "warmup_steps", "repeats", "grad_accum",
            "lr", "lr_warmup_steps", "seed", "data")
    flags = [arg for name in same for arg in (f"--{name.replace('_', '-')}", str(getattr(cfg, name)))]
    # after test_distributed's COMMON flags, so these win (argparse keeps the last)
    batch = str(cfg.per_device_batch * num_gpus)
    return _losses(run_cli, "--model", trial.model, "--per-device-batch", batch, *flags)


def _session(p: psutil.Process) -> int | None:
    try:
        return os.getsid(p.pid)
    except OSError:
        return None


@pytest.fixture
def fake_cluster():
    cluster = FakeCluster()
    try:
        cluster.wait_started()
        yield cluster
    finally:
        cluster.stop()
    assert not [p for p in psutil.process_iter() if _session(p) == cluster.head.pid], "processes left running"


def test_sweep_scales_from_zero_to_two_nodes_and_a_trial_spans_them(fake_cluster, tmp_path):
    assert fake_cluster.workers() == [], "the cluster must start with the head alone"
    space = tmp_path / "space.py"
    space.write_text(
        "from slmray.sweep.space import SearchSpace\n"
        "SPACE = SearchSpace(model=['tiny'], per_device_batch=[2], num_gpus=[2, 4], attention=['sdpa'],\n"
        "                    strategy=['ddp'], seq_len=32, steps=4, warmup_steps=1, device='cpu')\n"
    )
    out = run_cli(
        "-m", "slmray.tune", str(space), "--address", fake_cluster.address, "--cluster-config", str(LOCAL_YAML),
        "--storage", str(tmp_path / "s"), "--name", "scale", timeout=300, env=fake_cluster.env,
    )
    log = f"{out.stdout[-3000:]}\n{out.stderr[-3000:]}\nautoscaler:\n{fake_cluster.monitor_log()[-3000:]}"
    assert out.returncode == 0, log
    assert "2/2 done: 2 ok" in out.stdout, log

    # The autoscaler added the nodes (one per trial), and they are still up: idle_timeout_minutes is 1.
    added = re.findall(r":event_summary:Adding (\d+) node\(s\) of type cpu_worker", fake_cluster.monitor_log())
    assert sum(map(int, added)) == 2, log
    workers = fake_cluster.workers()
    assert len(workers) == 2, workers
    for node in workers:
        assert node["resources"]["CPU"] == 2 and "slmray_head" not in node["resources"]

    rows = {r["num_gpus"]: r for r in read_table(str(tmp_path / "s/scale/results.parquet")).to_pylist()}
    assert sorted(rows) == [2, 4]
    for n, row in rows.items():
        assert row["status"] == "ok", row["error"]
        assert row["gpu_type"] == "cpu" and row["num_gpus"] == n
        assert row["tokens_seen"] == 2 * 32 * n * 5 and row["tokens_per_s"] > 0  # warm-up step included
        # random tokens: an untrained model's loss is about ln(vocabulary), and the global loss is finite
        assert len(row["losses"]) == 5 and all(abs(loss - math.log(512)) < 1.0 for loss in row["losses"]), row["losses"]
    # 4 one-CPU workers cannot fit on a 2-CPU node: the trial's gloo group spans two Ray nodes
    assert rows[4]["num_nodes"] == 2
    assert rows[2]["num_nodes"] == 1  # packed onto one node: num_nodes counts nodes, not workers
    # and across the two nodes it computes what one process computes on the same 8 rows a step
    assert rows[4]["losses"] == pytest.approx(_single_process_losses(space, 4), rel=2e-5)
