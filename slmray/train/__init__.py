"""The trainer: one training run of a model on one device or a process group, and its measurements.

Configuration (`config`, `presets`) -> the single-device model (`model`, `attention`) -> wrapped from
outside (`parallel`, `fp8`) -> the loop and its metrics (`loop`, `metrics`).  Knows nothing of Ray Tune.
`python -m slmray.train` is `cli`.
"""
