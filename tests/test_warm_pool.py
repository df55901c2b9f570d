"""The warm pool on a local Ray, driven directly (CPU workers, gloo groups): the groups it starts
with, the first configuration held until they are all up, and idle groups giving their cores to
a shape that waits.  The sweeps in test_tune.py run it through the command."""

import pytest
import ray

from slmray.sweep.warm import start_pool
from slmray.sweep.warm_scheduler import GroupSpec
from slmray.train.config import TrainConfig
from slmray.train.presets import get_model

pytestmark = pytest.mark.ray

TINY = TrainConfig(model=get_model("tiny"), seq_len=32, steps=2, warmup_steps=1, per_device_batch=2, device="cpu",
                   strategy="ddp")


def group(workers: int, tmp_path) -> GroupSpec:
    return GroupSpec(num_workers=workers, use_gpu=False, accelerator_type=None, cpus_per_worker=1.0,
                     storage_path=str(tmp_path / "train"), max_groups=1, max_failures=0)


def run_job(pool, key: str, trial_id: str) -> dict:
    ray.get(pool.submit.remote(key, trial_id, TINY.to_dict()))
    # an idle group that kept its cores would hold this past the timeout (the pool's idle_s is 600 s)
    return ray.get(pool.result.remote(trial_id), timeout=180)


def test_groups_start_together_serve_once_all_are_up_and_give_cores_to_a_waiting_shape(tmp_path):
    ray.init(address="local", num_cpus=4, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        specs = {s.key: s for s in (group(1, tmp_path), group(2, tmp_path), group(3, tmp_path))}
        # 4 CPUs, 0.5 kept for the trials: the 1- and 2-worker groups start, the 3-worker one does not fit
        pool = start_pool(specs, ["1xcpu", "2xcpu", "3xcpu"], reserve={"CPU": 0.5}, resources={}, idle_s=600)
        a, b = run_job(pool, "1xcpu", "a"), run_job(pool, "2xcpu", "b")
        c = run_job(pool, "3xcpu", "c")  # fits only once both idle groups have ended
        events = ray.get(pool.history.remote())
    finally:
        ray.shutdown()
    for outcome in (a, b, c):
        assert outcome.get("result", {}).get("status") == "ok", outcome
        assert (outcome["warm"], outcome["group_trials"]) == (False, 1)
    order = [(what, gid.split("-")[0]) for _, what, gid in events]
    took_a = order.index(("took a", "1xcpu"))
    assert order[:2] == [("started", "1xcpu"), ("started", "2xcpu")]
    assert {("up", "1xcpu"), ("up", "2xcpu")} <= set(order[:took_a])  # nothing measured while a group started
    assert ("started", "3xcpu") not in order[:took_a]
    up_3 = order.index(("up", "3xcpu"))
    assert {("ended", "1xcpu"), ("ended", "2xcpu")} <= set(order[:up_3])
    assert [e for e in order if e[0] == "started"] == [("started", "1xcpu"), ("started", "2xcpu"), ("started", "3xcpu")]
