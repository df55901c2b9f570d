"""What a trial or a run costs beyond its training steps, measured: a warm trial's turnaround, a
worker group's start, an isolated trial's, torch.compile's.  The sweep's plan (`slmray.sweep.plan`)
and the run planner (`slmray.planning`) both predict time with them, so they sit with the other
predictions, below both.
"""

TRIAL_OVERHEAD_S = 1.0
"""A warm trial's time outside its training steps (the sweep's default): the median over a warm
group's ok trials after its first, on one H200 0.96 s, 1.07 s and 0.75 s in three runs of the code
as it changed (benchmarks/results/warm_trials_h200.md, warm_trials_h200_repeats3.md,
warm_trials_h200_2026-12-04.md): the configuration handed to the group, the model built, the
wait for NCCL's held tensors after the first step, the result handed back, the next trial started."""
GROUP_START_S = 42.0
"""What the first trial of a warm group pays once on top: Ray Train's controller and workers,
torch and CUDA start-up, the process group (39.4 s on the H200, same file; 42.7 s in
warm_trials_h200_2026-12-02.md)."""
ISOLATED_TRIAL_OVERHEAD_S = 25.0
"""A trial's time outside its training steps with `--isolate-trials`, each on a group of its own
(median 27.5 s on the H200, same file; 25.0 s in warm_trials_h200_2026-12-02.md; 27.8 s in
benchmarks/results/sweep_h200x1.parquet)."""
COMPILE_S = {"bf16": 18.0, "fp8": 25.0, "fp8-rowwise": 29.0}
"""torch.compile's time before the first measured step, by precision: the medians over the H200's
compiled trials (benchmarks/results/sweep_h200x1_{precision,checkpointing,seq_len}.parquet:
startup_s less the warm-up steps at the measured step time; 10 to 34 s by model).  FP8 compiles
more graphs: the casts and scalings."""
