"""What a trial or a run costs beyond its training steps, measured: a warm trial's turnaround, a
worker group's start, an isolated trial's, torch.compile's.  The sweep's plan (`slmray.sweep.plan`)
and the run planner (`slmray.planning`) both predict time with them, so they sit with the other
predictions, below both.
"""

TRIAL_OVERHEAD_S = 1.0
"""A warm trial's time outside its training steps (the sweep's default): the median over a warm
group's ok trials after its first, on one H200 (benchmarks/results/warm_trials/warm_trials_h200_2026-12-04.md;
1 s from it and the earlier runs that folder's README lists): the configuration handed to the group,
the model built, the wait for NCCL's held tensors after the first step, the result handed back, the
next trial started."""
GROUP_START_S = 42.0
"""What the first trial of a warm group pays once on top: Ray Train's controller and workers,
torch and CUDA start-up, the process group (the first warm trial's overhead, same file; 42 s
from the earlier runs its README lists)."""
ISOLATED_TRIAL_OVERHEAD_S = 25.0
"""A trial's time outside its training steps with `--isolate-trials`, each on a group of its own
(the isolated median, same file; 25 s from the earlier runs its README lists and
benchmarks/results/sweeps/sweep_h200x1.parquet)."""
COMPILE_S = {"bf16": 18.0, "fp8": 25.0, "fp8-rowwise": 29.0}
"""torch.compile's time before the first measured step, by precision: the medians over the H200's
compiled trials (benchmarks/results/precision/sweep_h200x1_{precision,checkpointing,seq_len}.parquet:
startup_s less the warm-up steps at the measured step time; 10 to 34 s by model).  FP8 compiles
more graphs: the casts and scalings."""
