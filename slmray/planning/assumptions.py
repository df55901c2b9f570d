"""What a full run costs beyond D / tokens/s of training, each part stated with the answer: start-up
once, compile once where on, and blocking checkpoint saves.  Light (no pandas): the command's
`--help` reads its defaults here."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from slmray.errors import UserError
from slmray.predict.overheads import COMPILE_S, GROUP_START_S

DEFAULT_TOKENS_PER_PARAM = 20.0
"""Chinchilla's compute-optimal ratio (Hoffmann et al. 2022)."""
CHECKPOINT_BYTES_PER_PARAM = 12
"""fp32 weights and AdamW's two fp32 moments; gradients are not saved."""


class PlanError(UserError):
    """Input the decision cannot be made from; the message says which and why."""


@dataclass(frozen=True)
class RunAssumptions:
    """What a full run costs beyond D / tokens/s; each one printed with the answer."""

    startup_s: float
    """Start to first training step, once (the tables' median time_to_first_step_s: Ray Train's
    worker group, torch, CUDA, NCCL and the warm-up steps)."""
    compile_s: float
    """Added once where compile is on: the slowest precision's (`slmray.predict.overheads.COMPILE_S`),
    seconds that do not matter against a run of hours."""
    checkpoint_every_h: float = 1.0
    checkpoint_gb_s: float = 1.0
    """Sustained write bandwidth of one save (all ranks together), blocking training."""

    def checkpoint_s(self, n_params: int) -> float:
        """Seconds of one save."""
        return CHECKPOINT_BYTES_PER_PARAM * n_params / (self.checkpoint_gb_s * 1e9)

    def wall_s(self, train_s, compile_on, n_params: int):
        """Wall-clock seconds of a run whose training steps take `train_s` (arrays welcome)."""
        train_s = np.asarray(train_s, dtype=float)
        saves = train_s / (self.checkpoint_every_h * 3600) if self.checkpoint_every_h > 0 else 0.0
        return self.startup_s + np.where(compile_on, self.compile_s, 0.0) + train_s + saves * self.checkpoint_s(n_params)

    def lines(self, n_params: int) -> list[str]:
        every = (f"a {CHECKPOINT_BYTES_PER_PARAM * n_params / 1e9:.1f} GB checkpoint (fp32 weights + AdamW moments) "
                 f"every {self.checkpoint_every_h:g} h at {self.checkpoint_gb_s:g} GB/s, blocking: "
                 f"{self.checkpoint_s(n_params):.0f} s each, +{100 * self.checkpoint_s(n_params) / (self.checkpoint_every_h * 3600):.2f}% "
                 "(--checkpoint-every-hours, --checkpoint-gb-s)"
                 if self.checkpoint_every_h > 0 else "no checkpoints (--checkpoint-every-hours 0)")
        return [
            f"start-up {self.startup_s:.0f} s once (--startup-s), compile {self.compile_s:.0f} s once where on; "
            "training at the tokens/s of the option throughout",
            f"checkpointing: {every}",
        ]


def default_assumptions(df, startup_s: float | None = None, checkpoint_every_h: float = 1.0,
                        checkpoint_gb_s: float = 1.0) -> RunAssumptions:
    """Start-up from the results frame `df`'s ok trials (median time to first step), or a worker
    group's measured start where none recorded it; compile from `slmray.predict.overheads`."""
    if startup_s is None:
        first = df.loc[df["status"] == "ok", "time_to_first_step_s"].astype(float)
        first = first[np.isfinite(first)]
        startup_s = float(first.median()) if len(first) else GROUP_START_S
    for name, value in (("--startup-s", startup_s), ("--checkpoint-every-hours", checkpoint_every_h)):
        if not (math.isfinite(value) and value >= 0):
            raise PlanError(f"{name}: must be a non-negative number, got {value}")
    if not checkpoint_gb_s > 0:
        raise PlanError(f"--checkpoint-gb-s: must be positive, got {checkpoint_gb_s}")
    return RunAssumptions(startup_s, max(COMPILE_S.values()), checkpoint_every_h, checkpoint_gb_s)
