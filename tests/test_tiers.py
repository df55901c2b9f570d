"""The tiers of conftest.py: a `unit` test cannot spawn a process, start Ray or a process group."""

import os
import subprocess
import sys

import pytest


def test_a_unit_test_that_spawns_fails():
    with pytest.raises(AssertionError, match="is marked unit but spawns a process"):
        subprocess.run([sys.executable, "-c", "pass"])
    with pytest.raises(AssertionError, match="is marked unit but forks"):
        os.fork()


def test_a_unit_test_that_starts_a_process_group_fails():
    import torch.distributed as dist

    with pytest.raises(AssertionError, match="is marked unit but starts a process group"):
        dist.init_process_group("gloo", init_method="tcp://127.0.0.1:1", rank=0, world_size=1)


def test_ray_init_in_a_unit_test_fails(monkeypatch):
    import ray

    assert "ray" in sys.modules
    with pytest.raises(AssertionError, match="is marked unit but"):
        ray.init(address="local", num_cpus=1, include_dashboard=False)


def test_tests_that_spawn_are_not_unit(request):
    assert request.node.get_closest_marker("unit") is not None
    for item in request.session.items:
        if "cli" in item.fixturenames or "smoke_sweep" in item.fixturenames:
            assert item.get_closest_marker("unit") is None and item.get_closest_marker("subprocess"), item.nodeid
        if "s3_server" in item.fixturenames:
            assert item.get_closest_marker("unit") is None and item.get_closest_marker("s3"), item.nodeid


def test_every_ray_test_is_in_the_one_xdist_group(request):
    """Two local Rays at once on 2 cores would slow both and could starve a sweep's trials: under
    pytest-xdist the Ray tests share one worker, one after another."""
    ray_tests = [item for item in request.session.items if item.get_closest_marker("ray")]
    if not ray_tests:
        pytest.skip("no Ray test was collected in this run")
    for item in ray_tests:
        assert [m.args for m in item.iter_markers("xdist_group")] == [("ray",)], item.nodeid
    assert not any(item.get_closest_marker("xdist_group") for item in request.session.items
                   if not item.get_closest_marker("ray"))
