"""One sweep trial: a Ray Tune function trainable that runs the training loop on `num_gpus`
workers and reports one results row, whatever happened.  It hands its configuration to the
sweep's warm pool (`slmray.sweep.warm`) and waits, importing no torch; with `--isolate-trials` it
runs a Ray Train `TorchTrainer` of its own.

Train V2 inside Tune, as Ray documents it: the trial function builds the trainer and calls
`fit()`, which hands back rank 0's result (`Result.return_value`).  Tune sees exactly one
report per trial, the row: the workers' own results are not forwarded (`TuneReportCallback`),
since they lack what the trial adds (cost, tokens per $, ...), and Tune checks a searcher's
metrics on every report it sees.  So any numeric column is an objective, and what the searcher
is told of a finished trial is the row's value.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import math
import time
from dataclasses import dataclass, field
from typing import Any

from slmray import __version__
from slmray.catalog.gpus import spec_for
from slmray.catalog.prices import PriceBook
from slmray.core import row as core_row
from slmray.predict.calibration import Correction
from slmray.results.storage import exists, join
from slmray.results.table import read_table
from slmray.sweep.capacity import Capacity
from slmray.sweep.plan import PlannedTrial, plan_trial
from slmray.sweep.failure import InfrastructureFailure, error_line, failure
from slmray.sweep.space import ResolvedTrial, SearchSpace, Trial
from slmray.sweep.warm_scheduler import INFRASTRUCTURE_STATUS


@dataclass(frozen=True)
class SweepSettings:
    """What every trial of one sweep shares (passed with `tune.with_parameters`)."""

    space: SearchSpace
    sweep_id: str
    sweep_dir: str
    """<storage>/<name>: Tune's experiment directory, the results table and the Train runs."""
    capacity: Capacity
    prices: PriceBook
    prune: bool
    cpus_per_worker: float = 1.0
    pool: Any = None
    """The sweep's `slmray.sweep.warm.WarmPool` actor; None runs each trial on a worker group of its
    own (`--isolate-trials`)."""
    recorded: dict[Trial, dict] = field(default_factory=dict)
    """The rows on storage when the sweep (re)started, by configuration: what is done, whatever
    Tune's own state says (a state file cut short by a full disk loses trials that ran)."""
    trial_timeout_s: float | None = None
    """Each trial's time limit (`TrainConfig.time_limit_s`): a run past it is recorded failed."""

    def group_spec(self, trial: Trial | ResolvedTrial):
        """The worker group a trial of this sweep runs on (`slmray.sweep.warm_scheduler.GroupSpec`)."""
        from slmray.sweep.warm_scheduler import GroupSpec

        spec = spec_for(trial.gpu_type) if trial.gpu_type else None
        return GroupSpec(
            num_workers=trial.num_gpus, use_gpu=self.capacity.use_gpu,
            accelerator_type=spec.ray_accelerator_type if spec else None, cpus_per_worker=self.cpus_per_worker,
            storage_path=join(self.sweep_dir, "train"), max_groups=1, max_failures=self.space.max_failures,
        )


RECORDED_AS = "recorded_as"
"""The report's key that names the trial id a re-reported row was recorded under (Tune sets
`trial_id` in every report to the reporting trial's)."""


def row_uri(sweep_dir: str, trial_id: str) -> str:
    """Where a finished trial's row is written, the moment it finishes."""
    return join(sweep_dir, "rows", f"{trial_id}.parquet")


def make_row(
    sweep: SweepSettings, trial_id: str, planned: PlannedTrial, result: dict[str, Any] | None,
    status: str, error: str, started: float, ended: float,
) -> dict[str, Any]:
    """The results row of a trial (`slmray.core.row`): its configuration the TrainConfig its plan
    carries; `result`'s versions are what the workers ran."""
    import ray

    driver = {"sweep_id": sweep.sweep_id, "trial_id": trial_id, "torch_version": importlib.metadata.version("torch"),
              "ray_version": ray.__version__, "slmray_version": __version__}
    capacity = sweep.capacity  # a sweep runs on nodes that are there: its trials share them
    return core_row.make_row(driver, planned.row_columns(), planned.train.flat(), result, {"status": status, "error": error},
                             started=started, ended=ended, prices=sweep.prices,
                             node_gpus=capacity.gpus_per_node.get(planned.gpu_type) if capacity.nodes_given else None)


def _run_warm(sweep: SweepSettings, trial: ResolvedTrial, train: dict, trial_id: str) -> dict:
    """Hand the configuration to the warm pool of its shape and wait for it to run there; again to
    the pool Ray restarted where the pool's process died (`slmray.sweep.warm.POOL_RESTARTS`).
    Raises `InfrastructureFailure` when the pool is gone for good, or when groups kept dying under
    the configuration for the cluster's sake: its row is not the configuration's to carry."""
    import ray
    from ray.exceptions import RayActorError

    from slmray.sweep.warm import POOL_RESTARTS

    for attempt in range(POOL_RESTARTS + 1):
        try:
            outcome = ray.get(sweep.pool.run.remote(sweep.group_spec(trial).key, trial_id, train))
            break
        except RayActorError as exc:  # the pool's process died: Ray starts it again, empty, unless out of restarts
            if attempt == POOL_RESTARTS:
                raise InfrastructureFailure(f"the sweep's warm pool died ({error_line(exc)})") from None
    status, message = outcome.get("error", (None, ""))
    if status == INFRASTRUCTURE_STATUS:
        raise InfrastructureFailure(message)
    return outcome


def run_trial(config: dict[str, Any], sweep: SweepSettings) -> None:
    """Tune function trainable: plan, run (or prune) one trial, report its row."""
    from ray import tune

    started = time.time()
    trial_id = tune.get_context().get_trial_id()
    row = _recorded_row(sweep, trial_id, config)
    if row is not None:  # finished before the driver died, after Tune's last checkpoint: not run again
        _report(sweep, {**{k: v.timestamp() if isinstance(v, datetime.datetime) else v for k, v in row.items()},
                        RECORDED_AS: row["trial_id"]})
        return
    correction = Correction(**config["correction"]) if config.get("correction") else None  # slmray.sweep.searchers.Recalibrating
    planned = plan_trial(sweep.space.resolve(config, sweep.capacity.device), sweep.capacity, sweep.prices, sweep.prune,
                         correction, sweep.pool is None)
    result, status, error, ran_on = None, "ok", "", {}
    train = planned.train.replace(time_limit_s=sweep.trial_timeout_s).to_dict()
    if planned.pruned:
        status = "pruned"
        error = f"predicted {planned.estimate.peak_mem_gb:.1f} GiB per GPU: more than {planned.gpu_type} holds"
    elif sweep.pool is not None:
        outcome = _run_warm(sweep, planned.resolved, train, trial_id)
        result = outcome.get("result")
        status, error = (result["status"], result["error"]) if result else outcome["error"]
        ran_on = {"warm": outcome["warm"], "group_trials": outcome["group_trials"]}
    else:
        import ray.train
        from ray.train import FailureConfig
        from ray.train.torch import TorchTrainer

        from slmray.sweep.warm import scaling_config
        from slmray.train.loop import train_loop_per_worker  # torch: only a trial that builds its own group needs it

        group = sweep.group_spec(planned.resolved)
        trainer = TorchTrainer(
            train_loop_per_worker,
            train_loop_config={"train": train},
            scaling_config=scaling_config(group),
            run_config=ray.train.RunConfig(
                name=trial_id,  # deterministic: a retried trial restores its own Train run
                storage_path=group.storage_path, failure_config=FailureConfig(max_failures=group.max_failures),
            ),
        )
        try:
            result = trainer.fit().return_value
            status, error = result["status"], result["error"]
        except Exception as exc:  # Ray Train's TrainingFailedError, or a start-up failure
            status, error = failure(exc)
            if status == INFRASTRUCTURE_STATUS:  # Tune runs the trial again on a fresh actor (`FailureConfig`)
                raise InfrastructureFailure(error) from None
    row = make_row(sweep, trial_id, planned, result, status, error, started, time.time())
    _report(sweep, {**row, **ran_on})


def _recorded_row(sweep: SweepSettings, trial_id: str, config: dict[str, Any]) -> dict[str, Any] | None:
    """The row already recorded for this trial, or for its configuration under another trial id
    (Tune restored from a state that lost the trial); re-reported under its own trial id, it is
    written over itself, never beside itself."""
    recorded = row_uri(sweep.sweep_dir, trial_id)
    if exists(recorded):
        return read_table(recorded).to_pylist()[0]
    return sweep.recorded.get(Trial.from_config(config))


def _report(sweep: SweepSettings, row: dict[str, Any]) -> None:
    """The trial's one report to Tune: its row, with every objective present (NaN where not
    measured), since a searcher is told the objectives and Tune checks they are there."""
    from ray import tune

    for objective in sweep.space.objective_list:
        if row.get(objective.column) is None:
            row[objective.column] = math.nan
    tune.report(row)
