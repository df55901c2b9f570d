"""How far a tokens/s prediction may be off: an 80% interval around `estimate.Estimate.tokens_per_s`.

The interval is multiplicative (the estimator's errors are ratios): `[t / w, t * w]`.  The width `w`
is measured, not assumed: `interval_widths.csv`, written by `python benchmarks/heldout_accuracy.py`,
holds the 80th percentile of |log(predicted / measured)| of held-out predictions of the committed
one-GPU rows, per class of comparable rows (`row_class`; and over the classes, the host-bound steps,
`HOST_BOUND`) and per split: `gpu measured` (the
constants refitted without the row's model: a GPU type with rows, a model without) and `gpu
unmeasured` (refitted without the row's GPU type: what a GPU type with no rows gets).  Beyond what
the rows measured, stated priors widen it (`WIDENING`): more than one GPU (no committed row has
measured a collective), a micro-step outside the measured tokens, a GPU type with neither rows nor a
profile.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
from dataclasses import dataclass
from functools import lru_cache

from slmray.train.config import TrainConfig, is_fp8

WIDTHS_CSV = os.path.join(os.path.dirname(__file__), "interval_widths.csv")
COVERAGE = 0.8
"""The share of measurements an interval is meant to hold."""
SMALL_TOKENS = 8192
"""A micro-step of at most this many tokens per device is a small step: the kernels' latency, tile
waves and the host's dispatch set its time more than the FLOPs do (issue 23)."""
CLASSES = ("fp8", "uncounted kernels", "small step, compiled", "small step", "regular")
HOST_BOUND = "host-bound step"
"""Not a class of its own but a width over them: the held-out rows of any class whose predicted
step is host-bound (`HOST_BOUND_SHARE`); such a row takes it where wider than its class's."""
HOST_BOUND_SHARE = 0.2
"""A step whose predicted host excess (`Estimate.host_share`: the dispatch time the device cannot
hide) is at least this share of it is host-bound: its time is the CPU's, which differs between
machines and over a process's life (the same pythia-160m step, first in a fresh process: 28 ms on
one lent H100, 43 and 55 ms on another, 45 ms on an H200; its batch-24 step, which the device sets,
within 1.5% on both H100s; `benchmarks/results/heldout/`).  The held-out errors of such rows spread -31% to +72%
(`benchmarks/results/estimate/heldout_accuracy.md`), against 80th percentiles of x1.06 to x1.36 for
the classes.  A step the host sets but the estimate does not see as such (a host excess hidden
under a device term it overcounts) keeps its class's width."""
SPLITS = ("gpu measured", "gpu unmeasured")
MIN_ROWS = 5
"""Held-out rows a class needs in a split for its own 80th percentile; with fewer (compiled small steps:
one committed row, and issue 23 found such steps predicted 44-115% too fast) it takes the
widest width of its split, and at least `FEW_ROWS_WIDTH`: too few rows say nothing about how far it may be off."""
FEW_ROWS_WIDTH = 1.5
"""Stated prior, not a fit: the least width of a class with fewer than `MIN_ROWS` held-out rows in its
split, whose width is borrowed (the widest of the split, which its rows may not resemble).  Issue 23
measured compiled steps of 8192 tokens 44-115% faster predicted than run, by an estimate without the
kernel and host terms it has now; one committed row of that class since (within 3.4%) cannot say how
far such a step may be off; and a GPU type left out may lack a whole class (the H200 has no
uncompiled Transformers rows).  Such an interval stays at least x1.5 until rows measure it."""
WIDENING = {"multi_gpu": 1.3, "no_rows_no_profile": 1.2, "outside_tokens_per_doubling": 0.1}
"""Stated priors, not fits: x1.3 for several GPUs (communication terms no committed row measured);
x1.2 for a GPU type with neither rows nor a profile (datasheet only; the measured `gpu unmeasured`
split left out the H100 and the H200, one generation apart, while an A100 or an L4 is further); +10% of
the width's log per doubling of a micro-step's tokens outside those the rows measured."""


def row_class(cfg: TrainConfig) -> str:
    """The class of comparable rows whose held-out errors set `cfg`'s interval width."""
    if is_fp8(cfg.precision):
        return "fp8"
    if not cfg.compile and (cfg.backend == "transformers" or cfg.model.family == "transformers" or cfg.model.qk_norm):
        # Transformers' own modules, or a q/k norm, uncompiled: their ops and element-wise bytes are
        # counted (`opcount`), but the committed H100 rows are still predicted 3-64% too fast held out
        # (repeats of one configuration spread by 31%: the host's share of such a step varies, which
        # no count gives), so they keep their own class and width; the name is the widths' key
        return "uncounted kernels"
    if cfg.per_device_batch * cfg.seq_len <= SMALL_TOKENS:
        return "small step, compiled" if cfg.compile else "small step"
    return "regular"


@dataclass(frozen=True)
class Width:
    split: str
    row_class: str
    rows: int
    width: float
    min_tokens: int
    max_tokens: int
    gpu_types: tuple[str, ...]


@lru_cache(maxsize=1)
def widths(path: str = WIDTHS_CSV) -> dict[tuple[str, str], Width]:
    """(split, class) -> its measured width, from `interval_widths.csv`."""
    with open(path, newline="") as f:
        out = {}
        for r in csv.DictReader(f):
            out[(r["split"], r["class"])] = Width(r["split"], r["class"], int(r["rows"]), float(r["width"]),
                                                 int(r["min_tokens"]), int(r["max_tokens"]), tuple(r["gpu_types"].split(";")))
    return out


def measured_gpu_types() -> set[str]:
    """The GPU types whose rows the widths were measured on."""
    return {g for w in widths().values() for g in w.gpu_types}


@dataclass(frozen=True)
class Interval:
    """Tokens/s bounds (global, all GPUs) and the reasons the interval is as wide as it is."""

    low: float
    high: float
    width: float
    reasons: tuple[str, ...] = ()


def class_width(split: str, cls: str, table: dict[tuple[str, str], Width] | None = None) -> Width:
    """The width of `cls` in `split` (see `MIN_ROWS` for classes with few rows or none: the widest
    of the classes of its split, not `HOST_BOUND`'s line), from `table` (default: the shipped `widths()`)."""
    table = widths() if table is None else table
    own = table.get((split, cls))
    if own is None or own.rows < MIN_ROWS:
        widest = max((w for (s, c), w in table.items() if s == split and c != HOST_BOUND and w.rows >= MIN_ROWS),
                     key=lambda w: w.width)
        return dataclasses.replace(widest, width=max(widest.width, FEW_ROWS_WIDTH))
    return own


def _log_width(w: Width, cls: str, tokens: int | None) -> float:
    """log of `w`'s width for a row of `cls` with `tokens` a micro-step, widened where those lie
    outside the tokens its rows measured (its own class's rows only: a borrowed width is already
    the widest, and the host-bound rows' tokens say nothing of a step's kernels)."""
    log_width = math.log(w.width)
    if tokens is None or w.row_class != cls:
        return log_width
    outside = max(w.min_tokens / tokens, tokens / w.max_tokens, 1.0)
    return log_width * (1 + WIDENING["outside_tokens_per_doubling"] * math.log2(outside))


def row_width(split: str, cls: str, host_share: float, tokens: int | None = None,
              table: dict[tuple[str, str], Width] | None = None) -> tuple[Width, float, bool]:
    """(the width used, its log widened for `tokens` outside its rows', whether it is `HOST_BOUND`'s)
    for a row of `cls` whose predicted step is `host_share` the host's: its class's, or where the
    step is host-bound and that is wider, the host-bound steps'."""
    own = class_width(split, cls, table)
    own_log = _log_width(own, cls, tokens)
    if host_share >= HOST_BOUND_SHARE:
        host = class_width(split, HOST_BOUND, table)
        if math.log(host.width) > own_log:
            return host, math.log(host.width), True
    return own, own_log, False


def tokens_per_s_interval(tokens_per_s: float, cfg: TrainConfig, gpu_type: str, *, profiled: bool, num_gpus: int,
                          host_share: float = 0.0) -> Interval:
    """The 80% interval around `tokens_per_s`, a prediction of `cfg` on `num_gpus` x `gpu_type` (a
    canonical gpus.csv name) made with (or without) a GPU profile, whose step is `host_share` the
    host's excess."""
    measured = gpu_type in measured_gpu_types()
    cls, tokens = row_class(cfg), cfg.per_device_batch * cfg.seq_len
    w, log_width, host_bound = row_width("gpu measured" if measured else "gpu unmeasured", cls, host_share, tokens)
    reasons = [f"{cls}: {w.split}, {w.rows} held-out rows of {w.row_class}"]
    if host_bound:
        reasons.append(f"host-bound: {host_share:.0%} of the step is the host's dispatch")
    elif log_width > math.log(w.width):
        reasons.append(f"{tokens} tokens a micro-step, outside the measured {w.min_tokens}-{w.max_tokens}")
    if not measured:
        reasons.append(f"no {gpu_type} rows")
        if not profiled:
            log_width += math.log(WIDENING["no_rows_no_profile"])
            reasons.append("no GPU profile")
    if num_gpus > 1:
        log_width += math.log(WIDENING["multi_gpu"])
        reasons.append(f"{num_gpus} GPUs, communication unmeasured")
    width = math.exp(log_width)
    return Interval(tokens_per_s / width, tokens_per_s * width, width, tuple(reasons))
