"""Each internal in `slmray.private_apis` still does what slmray relies on: a test per item that
fails the day Ray, torch or Optuna change it; and no module but that one reaches a private Ray
name (nor the other internals it guards)."""

import ast
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from slmray import private_apis

ROOT = Path(__file__).resolve().parents[1]
GUARDED = {"ENV_VARS_TO_PROPAGATE", "SIGUSR1", "_local_tensor", "_ot_study", "_dynamo", "placement_group_table", "_sleep",
           "_local_tuner", "print_to_stdstream"}
"""Names of the internals `private_apis` guards (or replaced), as attributes or subscripts."""


def _python_files():
    for folder in ("slmray", "benchmarks", "tests"):
        yield from (ROOT / folder).rglob("*.py")


def _private_uses(path: Path) -> list[str]:
    """Imports of a private Ray (or torch) module and uses of a guarded name, in code (not prose)."""
    found = []
    tree = ast.parse(path.read_text())
    subscripted = {id(n.slice) for n in ast.walk(tree) if isinstance(n, ast.Subscript)}
    for node in ast.walk(tree):
        modules = []
        if isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        for m in modules:
            parts = m.split(".")
            if parts[0] in ("ray", "torch") and any(p.startswith("_") and not p.startswith("__") for p in parts):
                found.append(f"import {m}")
            if parts[0] == "ray" and "class_cache" in parts:
                found.append(f"import {m}")
        if isinstance(node, ast.Attribute) and node.attr in GUARDED:
            found.append(f".{node.attr}")
        if isinstance(node, ast.Constant) and node.value in GUARDED and id(node) in subscripted:
            found.append(f"[{node.value!r}]")
    return found


def test_no_module_but_private_apis_reaches_a_private_ray_or_torch_internal():
    offenders = {}
    for path in _python_files():
        if path.name in ("private_apis.py", "test_private_apis.py"):
            continue
        uses = _private_uses(path)
        if uses:
            offenders[str(path.relative_to(ROOT))] = uses
    assert not offenders, offenders


def test_the_check_finds_what_it_forbids(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from ray.autoscaler._private import util\nimport torch._dynamo\nx.weight._local_tensor\n"
                     "state['_ot_study']\nfrom ray.tune.execution import class_cache\n")
    assert sorted(_private_uses(probe)) == sorted([
        "import ray.autoscaler._private", "import ray.autoscaler._private.util", "import torch._dynamo",
        "._local_tensor", "['_ot_study']", "import ray.tune.execution.class_cache"])


# -- the credential filter and the graceful stop, on a local Ray: one Tune run for both ----------

@pytest.mark.ray
def test_aws_keys_stay_out_of_a_trials_runtime_env_and_sigusr1_stops_tune_gracefully(tmp_path, monkeypatch):
    import ray
    from ray import tune

    from slmray.sweep.driver import SECRET_VARIABLES

    for name in SECRET_VARIABLES:
        monkeypatch.setenv(name, f"canary-{name}")
    monkeypatch.setenv("RAY_CHDIR_TO_TRIAL_DIR", "0")  # Tune propagates it the same way: proof the env was read
    monkeypatch.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    marker = tmp_path / "running"

    def trial(config):  # defined here: Ray pickles it by value (the workers cannot import this test module)
        """Report what Tune put in this trial's runtime environment, then run until stopped."""
        import pathlib
        import time

        import ray
        from ray import tune

        env_vars = dict((ray.get_runtime_context().runtime_env or {}).get("env_vars") or {})
        tune.report({"env_vars": ",".join(sorted(env_vars)), "done_waiting": 0})
        pathlib.Path(config["marker"]).write_text("running")
        time.sleep(120)
        tune.report({"env_vars": "", "done_waiting": 1})

    seen_by_us = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: seen_by_us.append(1))  # Tune's handler must replace it
    ray.init(address="local", num_cpus=1, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             object_store_memory=100 * 1024**2)
    undo = private_apis.withhold_from_trials(SECRET_VARIABLES)

    def stop_once_running():
        deadline = time.time() + 90
        while not marker.exists() and time.time() < deadline:
            time.sleep(0.2)
        private_apis.stop_tune_gracefully()

    stopper = threading.Thread(target=stop_once_running, daemon=True)
    try:
        stopper.start()
        started = time.time()
        tuner = tune.Tuner(trial, param_space={"marker": str(marker)},
                           run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), name="t", verbose=0))
        results = tuner.fit()
        took = time.time() - started
    finally:
        undo()
        ray.shutdown()
        signal.signal(signal.SIGUSR1, previous)
    assert not seen_by_us, "SIGUSR1 reached the test's handler: Tune no longer listens on it"
    assert marker.exists() and took < 100  # stopped, not run to the trial's end
    [result] = list(results)
    assert result.metrics["done_waiting"] == 0
    env_vars = set(result.metrics["env_vars"].split(","))
    assert "RAY_CHDIR_TO_TRIAL_DIR" in env_vars
    assert not env_vars & set(SECRET_VARIABLES), env_vars


def test_withhold_from_trials_edits_what_tune_propagates_and_undoes_it():
    from slmray.sweep.driver import SECRET_VARIABLES

    undo = private_apis.withhold_from_trials(SECRET_VARIABLES)
    try:
        from ray.tune.execution import class_cache  # noqa: the guarded name, read here to check the edit

        assert not set(class_cache.ENV_VARS_TO_PROPAGATE) & set(SECRET_VARIABLES)
        assert "RAY_CHDIR_TO_TRIAL_DIR" in class_cache.ENV_VARS_TO_PROPAGATE
    finally:
        undo()
    assert set(SECRET_VARIABLES) <= set(class_cache.ENV_VARS_TO_PROPAGATE)  # Tune still copies them by default


# -- the cluster launcher's checks ---------------------------------------------------------------

def test_ray_cluster_launcher_fills_defaults_and_validates():
    util = private_apis.ray_cluster_launcher()
    cfg = util.prepare_config({"cluster_name": "c", "provider": {"type": "aws", "region": "us-east-1"}})
    assert cfg["available_node_types"] and cfg["head_node_type"] in cfg["available_node_types"]
    util.validate_config(cfg)
    with pytest.raises(Exception):
        util.validate_config({**cfg, "head_node_type": "no-such-type"})
    cfg = {"max_workers": 2, "head_node_type": "h", "available_node_types": {"h": {}, "w": {"resources": {}}}}
    util.fill_node_type_min_max_workers(cfg)
    assert [t["max_workers"] for t in cfg["available_node_types"].values()] == [0, 2]  # the head, then the global


# -- the trainer's ------------------------------------------------------------------------------

class _Counted(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear, self.calls = torch.nn.Linear(4, 4), 0

    def forward(self, x):
        self.calls += 1
        return torch.relu(self.linear(x))


def test_checkpoint_wrapper_recomputes_the_forward_in_backward():
    block = _Counted()
    wrapped = private_apis.checkpoint_wrapper(block)
    x = torch.randn(2, 4, requires_grad=True)
    out = wrapped(x)
    assert torch.equal(out, block.forward(x)) and block.calls == 2
    out.sum().backward()
    assert block.calls == 3  # the forward ran again in backward: its activations were not kept
    assert x.grad is not None and block.linear.weight.grad is not None
    assert set(wrapped.state_dict()) == {"linear.weight", "linear.bias"}  # the wrapper adds no name to the weights


def test_release_unwaited_collectives_does_nothing_without_nccl():
    assert not dist.is_initialized()
    private_apis.release_unwaited_collectives()  # no group, no GPU: returns at once


class _TwoLinear(torch.nn.Module):
    """A block of two 16 MiB fp32 weights: more than DDP's 25 MiB bucket, so DDP's buckets split it."""

    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(2048, 2048), torch.nn.Linear(2048, 2048)

    def forward(self, x):
        return self.b(torch.relu(self.a(x)))


@pytest.mark.dist
def test_ddp_graph_splitting_splits_a_compiled_block_at_ddps_buckets_only_when_on():
    """torch.compile hands its backend one graph per DDP bucket while splitting is on (torch's
    default), the block's one graph while it is off."""
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:29541", rank=0, world_size=1)
    try:
        graphs = {}
        for enabled in (True, False):
            torch.compiler.reset()
            compiled = []

            def backend(gm, example_inputs):
                compiled.append(gm)
                return gm.forward

            block = _TwoLinear()
            block.compile(backend=backend)
            model = torch.nn.parallel.DistributedDataParallel(block)
            with private_apis.ddp_graph_splitting(enabled):
                model(torch.randn(4, 2048)).sum().backward()
            assert block.a.weight.grad is not None
            graphs[enabled] = len(compiled)
        assert graphs == {True: 2, False: 1}
    finally:
        torch.compiler.reset()
        dist.destroy_process_group()


@pytest.mark.dist
@pytest.mark.skipif(not torch.cuda.is_available(), reason="NCCL needs a GPU")
def test_nccl_holds_an_unwaited_collectives_tensor_until_released():
    """What `release_unwaited_collectives` relies on: NCCL keeps a tensor of a collective nobody
    waited on after its last reference is gone, and frees it after the watchdog saw it finish."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29533")
    torch.cuda.set_device(0)
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=torch.device("cuda", 0))
    try:
        size, before = 256 * 2**20, torch.cuda.memory_allocated()
        x = torch.ones(size // 4, device="cuda")
        dist.all_reduce(x, async_op=True)  # as DDP's gradient buckets: nobody waits
        torch.cuda.synchronize()
        del x
        time.sleep(1.0)  # the watchdog has seen it finish: still held until NCCL's next call
        assert torch.cuda.memory_allocated() - before >= size
        private_apis.release_unwaited_collectives()
        assert torch.cuda.memory_allocated() - before < size // 2  # the barrier's few bytes stay
    finally:
        dist.destroy_process_group()


# -- the run config a restored Tuner fits with ---------------------------------------------------

class _Holds:
    """A callback that holds a directory, as the sweep's recorder does."""

    def __init__(self, where: str):
        self.where = where


def _nothing(config):
    pass


def test_restored_run_config_is_the_one_unpickled_with_its_callbacks_and_the_new_path(tmp_path):
    import shutil

    from ray import tune

    tune.Tuner(_nothing, run_config=tune.RunConfig(name="x", storage_path=str(tmp_path / "a"), callbacks=[_Holds("a")]))
    shutil.copytree(tmp_path / "a" / "x", tmp_path / "b" / "x")
    restored = tune.Tuner.restore(str(tmp_path / "b" / "x"), trainable=_nothing)
    run_config = private_apis.restored_run_config(restored)
    assert (run_config.storage_path, run_config.name) == (str(tmp_path / "b"), "x")
    assert [type(c).__name__ for c in run_config.callbacks] == ["_Holds"] and run_config.callbacks[0].where == "a"
    run_config.callbacks = [_Holds("b")]
    assert private_apis.restored_run_config(restored).callbacks[0].where == "b"


# -- Optuna's study inside Ray's searcher (tests) -------------------------------------------------

def test_optuna_study_is_read_from_the_searcher_and_from_its_saved_state(tmp_path):
    import pickle

    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(metric="loss", mode="min", seed=0)
    searcher.set_search_properties(None, None, {"x": tune.uniform(0, 1)})
    config = searcher.suggest("t0")
    searcher.on_trial_complete("t0", {"loss": 0.5, **config})
    study = private_apis.optuna_study(searcher)
    assert isinstance(study, optuna.Study) and [t.values for t in study.trials] == [[0.5]]
    searcher.save(str(tmp_path / "state.pkl"))
    state = pickle.loads((tmp_path / "state.pkl").read_bytes())
    assert [t.values for t in private_apis.optuna_study(state).trials] == [[0.5]]


def test_torch_dispatch_mode_sees_the_ops_a_call_dispatches():
    seen = []

    class Recorder(private_apis.torch_dispatch_mode()):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            seen.append(func.overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    with Recorder():
        torch.ones(2).add(1).mul(3)
    assert seen[-2:] == ["add", "mul"]


def test_gpu_spin_is_torchs_busy_wait_kernel():
    assert callable(torch.cuda._sleep)  # exists in CPU builds too; spins only where CUDA runs
    if torch.cuda.is_available():
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        private_apis.gpu_spin(int(1e8))
        end.record()
        end.synchronize()
        assert start.elapsed_time(end) > 0.01


def test_ray_errors_sent_to_the_driver_go_to_the_log_not_the_console(monkeypatch, capsys):
    import logging

    from ray._private import worker

    monkeypatch.setattr(worker, "print_to_stdstream", worker.print_to_stdstream)  # put back after the test
    message = {"lines": ["Raylet is terminated. Termination is unexpected."], "pid": "raylet", "ip": "10.0.0.1",
               "is_err": True, "job": "01000000", "actor_name": "", "task_name": ""}
    worker.print_to_stdstream(dict(message), ignore_prefix=False)
    assert "Raylet is terminated" in capsys.readouterr().err  # what Ray's error thread does today
    private_apis.keep_ray_errors_off_the_console()
    ray_logger = logging.getLogger("ray")
    monkeypatch.setattr(ray_logger, "level", logging.ERROR)  # as the sweep sets it without --verbose
    logged: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = logged.append
    ray_logger.addHandler(handler)
    try:
        worker.print_to_stdstream(dict(message), ignore_prefix=False)
        assert not logged and "Raylet" not in capsys.readouterr().err  # below the sweep's level: not shown
        ray_logger.setLevel(logging.DEBUG)
        worker.print_to_stdstream(dict(message), ignore_prefix=False)
    finally:
        ray_logger.removeHandler(handler)
    assert [r.getMessage() for r in logged] == ["Raylet is terminated. Termination is unexpected."]
