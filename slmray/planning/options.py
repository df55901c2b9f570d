"""The options a results frame supports for one model, and each one's tokens/s.

Options are the configurations of the model that the tables ran (per-device batch, attention,
compile, precision, sequence length, ...; for a model with no rows, those the tables ran for the
others), on each GPU type of the tables (or those asked for), at 1, 2, 4, ... and `max_gpus` GPUs,
with DDP, FSDP or FSDP keeping parameters gathered (fsdp_grad_op) beyond one GPU, on the instances
that hold them (`slmray.catalog.rent`).  An option a table measured (same GPU type, count, strategy
and configuration) takes the measured tokens/s and is `measured`; every other one is `predicted`,
anchored on the measurements (`speed`): the one-GPU rate of the same per-device configuration
(measured, else the estimator's corrected by the trials, `slmray.predict.calibration`) times the
estimator's scaling efficiency, at most 1.  An option the estimator (or a table) finds out of
memory is excluded.  Each function takes and returns frames; a row becomes a `TrainConfig` only
through `TrainConfig.from_row`.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from statistics import median
from typing import Iterable, Sequence

import pandas as pd

from slmray.catalog.gpus import CPU, spec_for
from slmray.catalog.prices import PriceBook
from slmray.catalog.rent import Rental, rent
from slmray.errors import ConfigError
from slmray.predict.calibration import MIN_FIT_ROWS, POOLED, Correction, Regime, fit_corrections
from slmray.predict.estimate import Estimate, estimate
from slmray.train.config import CONFIG_KEYS, ROW_DEFAULTS, ModelConfig, TrainConfig
from slmray.train.presets import get_model

MULTI_GPU_STRATEGIES = ("ddp", "fsdp", "fsdp_grad_op")
PLACEMENT = ("gpu_type", "num_gpus", "strategy")
"""Where an option runs: what the planner varies beyond the configurations the tables ran."""
CONFIG = (*(k for k in CONFIG_KEYS if k not in ("model", *PLACEMENT)), "grad_accum")
"""What an option shares with the trial it is anchored on: the work of one device's step (the
configuration's identity less the model and the placement; grad_accum, not swept, too)."""
OPTION = (*PLACEMENT, *CONFIG)
RENTAL = ("instances", "instance_type", "gpus_billed", "idle_gpus", "usd_per_hour", "gpus_per_node",
          "inter_node_gbps", "fabric", "rental")
"""How an option's GPUs are rented and billed (`slmray.catalog.rent.Rental`, `rental` its
description; NaN and "" without a price); a prediction on several instances counts their network."""
SPEED = ("tokens_per_s", "tokens_per_s_low", "tokens_per_s_high", "source", "basis", "one_gpu_tokens_per_s",
         "one_gpu_source", "scaling", "excluded")
"""What `speed` adds to each option: tokens/s, its interval where predicted (NaN where measured),
measured or predicted, how it was obtained; the one-GPU rate it stands on (measured or predicted)
and the scaling efficiency applied to it (1 on one GPU; NaN for a measured option); and why the
option is excluded ("" where it is not)."""


def with_row_defaults(df: pd.DataFrame) -> pd.DataFrame:
    """`df` with `ROW_DEFAULTS` in the nulls (or absent columns) of older tables and CONFIG's
    integer and flag columns as such, so that rows and options compare column by column."""
    out = df.copy()
    for name, value in ROW_DEFAULTS.items():
        out[name] = out[name].fillna(value) if name in out.columns else value
    return out.astype({"per_device_batch": int, "seq_len": int, "num_gpus": int, "grad_accum": int,
                       "compile": bool, "activation_checkpointing": bool})


def model_configs(names: Iterable[str]) -> dict[str, ModelConfig]:
    """Each name `slmray.train.presets.get_model` resolves, with its shape; the others are left out
    (a row of a model whose shape cannot be rebuilt can be neither predicted nor planned)."""
    out = {}
    for name in dict.fromkeys(names):
        try:
            out[name] = get_model(name)
        except ConfigError:
            continue
    return out


def estimate_row(model: ModelConfig, row, gpu_type: str, num_gpus: int, gpus_per_node: int = 8,
                 inter_node_gbps: float | None = None, fabric: str | None = None) -> Estimate:
    """The estimator's prediction of a table row or an option on `num_gpus` GPUs of `gpu_type`, on
    nodes of `gpus_per_node` joined by `inter_node_gbps` of `fabric` (`slmray.predict.estimate.estimate`).
    A ValueError (a ConfigError among them) where it cannot be configured or estimated."""
    return estimate(TrainConfig.from_row(row, model), gpu_type, num_gpus, gpus_per_node, inter_node_gbps, fabric=fabric)


def fit_table_corrections(df: pd.DataFrame) -> dict[str, Correction]:
    """Per GPU type (and pooled), from every ok row of `df` on a GPU of gpus.csv whose model's
    shape is known: the estimator's uncorrected prediction recomputed now against the measurement,
    with the row's regime (the correction can bend with it).  Multi-GPU rows count like the others;
    whether a row is host-bound is read from its configuration's one-GPU estimate, as
    `predicted_one_gpu_rate` reads it where the correction is applied."""
    df = with_row_defaults(df)
    models = model_configs(df["model"].dropna())
    rows = df[(df["status"] == "ok") & df["model"].isin(list(models))
              & df["gpu_type"].map(lambda g: isinstance(g, str) and spec_for(g) is not None)]
    triples = []
    for _, r in rows.iterrows():
        try:
            predicted = estimate_row(models[r["model"]], r, r["gpu_type"], int(r["num_gpus"]))
            one_gpu = predicted if int(r["num_gpus"]) == 1 else estimate_row(models[r["model"]], r, r["gpu_type"], 1)
        except ValueError:  # a configuration the estimator does not model: it cannot be corrected either
            continue
        triples.append((r["gpu_type"], predicted.tokens_per_s, float(r["tokens_per_s"]), Regime.of(r, one_gpu.host_share)))
    return fit_corrections(triples)


def gpu_counts(max_gpus: int, measured: Sequence[int]) -> list[int]:
    """1, 2, 4, ... up to `max_gpus`, `max_gpus` itself (a machine of 3 or 12 GPUs), and every
    measured count within it."""
    counts = {1 << i for i in range(max_gpus.bit_length()) if 1 << i <= max_gpus} | {max_gpus}
    return sorted(counts | {n for n in measured if n <= max_gpus})


def candidates(rows: pd.DataFrame, configs: pd.DataFrame, gpu_types: Sequence[str], max_gpus: int) -> pd.DataFrame:
    """Every (GPU type, count, strategy, configuration) to consider: `configs` (CONFIG columns) on
    each of `gpu_types` at 1, 2, 4, ... `max_gpus` GPUs, one-GPU strategies as `rows` (one model's,
    `with_row_defaults`) ran them, every multi-GPU strategy beyond; the OPTION columns."""
    one_gpu = sorted(set(rows.loc[rows["num_gpus"] == 1, "strategy"])) or ["ddp"]
    multi = sorted((set(MULTI_GPU_STRATEGIES) | set(rows.loc[rows["num_gpus"] > 1, "strategy"])) - {"single"})
    records = configs.to_dict("records")
    out = []
    for gpu in gpu_types:
        measured = rows.loc[rows["gpu_type"] == gpu, "num_gpus"].tolist()
        # the CPU estimate is deliberately rough: offer only what was measured there
        counts = sorted(set(measured)) if gpu == CPU else gpu_counts(max_gpus, measured)
        for n in counts:
            for strategy in (one_gpu if n == 1 else multi):
                for c in records:
                    out.append({"gpu_type": gpu, "num_gpus": n, "strategy": strategy, **c})
    return pd.DataFrame(out, columns=list(OPTION))


class Measured:
    """The model's rows of the tables, looked up by configuration: `ok` maps (GPU type, count,
    strategy, CONFIG values) to the ok tokens/s, `oom` holds those that ran out of memory, and
    `one_gpu` maps (GPU type, CONFIG values) to the ok one-GPU rows' (tokens/s, strategy), any
    strategy.  One pass over the rows instead of a frame filter per option."""

    def __init__(self, rows: pd.DataFrame):
        self.ok: dict[tuple, list[float]] = defaultdict(list)
        self.oom: set[tuple] = set()
        self.one_gpu: dict[tuple, list[tuple[float, str]]] = defaultdict(list)
        for r in rows.to_dict("records"):
            config = tuple(r[c] for c in CONFIG)
            key = (r["gpu_type"], r["num_gpus"], r["strategy"], config)
            if r["status"] == "ok":
                self.ok[key].append(r["tokens_per_s"])
                if r["num_gpus"] == 1:
                    self.one_gpu[(r["gpu_type"], config)].append((r["tokens_per_s"], r["strategy"]))
            elif r["status"] == "oom":
                self.oom.add(key)
                if r["num_gpus"] == 1:
                    self.oom.add((r["gpu_type"], config))


class Estimates:
    """The estimator's predictions of one model's options, each computed once; a ValueError (the
    configuration cannot be estimated) is kept and raised again."""

    def __init__(self, model: ModelConfig):
        self.model = model
        self._done: dict[tuple, Estimate | ValueError] = {}

    def __call__(self, o, strategy: str, count: int, gpus_per_node: int = 8, gbps: float | None = None,
                 fabric: str | None = None) -> Estimate:
        key = (o["gpu_type"], tuple(o[c] for c in CONFIG), strategy, count, gpus_per_node, gbps, fabric)
        if key not in self._done:
            try:
                self._done[key] = estimate_row(self.model, {**o, "strategy": strategy}, o["gpu_type"], count,
                                               gpus_per_node, gbps, fabric)
            except ValueError as exc:  # a configuration the estimator (or the GPU) cannot take
                self._done[key] = exc
        found = self._done[key]
        if isinstance(found, ValueError):
            raise found
        return found


def rental(o, book: PriceBook, measured: Measured, predicted: Estimates) -> dict:
    """The RENTAL columns of option `o`: `slmray.catalog.rent.rent`'s one rule, the layout a
    measurement ran on (fewest instances) for a measured option, the lowest predicted dollars per
    token for the others."""
    config = tuple(o[c] for c in CONFIG)
    ran = measured.ok.get((o["gpu_type"], o["num_gpus"], o["strategy"], config))

    def speed(gpus_per_node: int, gbps: float | None, fabric: str | None) -> float | None:
        try:
            est = predicted(o, o["strategy"], int(o["num_gpus"]), gpus_per_node, gbps, fabric)
        except ValueError:
            return None
        return None if est.oom else est.tokens_per_s

    r: Rental | None = rent(book, o["gpu_type"], int(o["num_gpus"]), None if ran or o["gpu_type"] == CPU else speed)
    if r is None:
        return {"instances": 0, "instance_type": "", "gpus_billed": int(o["num_gpus"]), "idle_gpus": 0,
                "usd_per_hour": math.nan, "gpus_per_node": 8, "inter_node_gbps": math.nan, "fabric": "", "rental": ""}
    return {"instances": r.instances, "instance_type": r.instance_type, "gpus_billed": r.gpus_billed,
            "idle_gpus": r.idle_gpus, "usd_per_hour": r.usd_per_hour, "gpus_per_node": r.gpus_per_node,
            "inter_node_gbps": math.nan if r.inter_node_gbps is None else r.inter_node_gbps, "fabric": r.fabric or "",
            "rental": r.description}


def predicted_one_gpu_rate(o, est_1: Estimate, corrections: dict[str, Correction], model: str) -> tuple[float, str]:
    """(tokens/s, label) of option `o`'s configuration on one GPU where no table ran it: the
    estimator's `est_1` corrected in its regime by the trials of its GPU type where they give a
    correction (uncorrected where none beat no correction, or outside the regimes its trials span),
    else (fewer than two of its trials can be fitted on) of all GPU types, as a sweep's
    `Recalibrator.pooled_fallback` does."""
    regime = dataclasses.replace(Regime.of(o, est_1.host_share), model=model)
    gpu = o["gpu_type"]
    if regime.host_bound:
        return est_1.tokens_per_s, "1 GPU predicted, uncorrected (host-bound: the host's speed, no correction)"
    own = corrections.get(gpu)
    if own is not None and own.usable >= MIN_FIT_ROWS:  # its own trials, corrected or (none beat none) not
        if not own.rows:
            return est_1.tokens_per_s, f"1 GPU predicted, uncorrected (no correction beat none on {own.usable} trials)"
        if not own.covers(regime):
            return est_1.tokens_per_s, f"1 GPU predicted, uncorrected (outside the regimes of {gpu}'s {own.rows} trials)"
        return own.apply(est_1.tokens_per_s, regime), f"1 GPU predicted x{own.multiplier(regime):.3f} ({own.kind}), {gpu}'s {own.rows} trials"
    none = f"no {gpu} trial" if own is None else f"{own.usable} of {own.observed} {gpu} trials usable"
    c = corrections.get(POOLED)
    if c is None or not c.rows:
        return est_1.tokens_per_s, "1 GPU predicted, uncorrected (no correction from the trials given)"
    if not c.covers(regime):
        return est_1.tokens_per_s, f"1 GPU predicted, uncorrected (outside the regimes of all {c.rows} trials, {none})"
    return (c.apply(est_1.tokens_per_s, regime),
            f"1 GPU predicted x{c.multiplier(regime):.3f} ({c.kind}), all {c.rows} trials, {none}")


def speed(o, measured: Measured, corrections: dict[str, Correction], predicted: Estimates) -> dict:
    """The SPEED columns of option `o` (a row of `candidates` with its RENTAL columns), from
    `measured`, the model's rows of the tables (`with_row_defaults`).

    Measured where a table ran the option (its median tokens/s).  Otherwise predicted, and never
    from the estimator's absolute speed where a measurement can anchor it: N x (the one-GPU rate)
    x (the predicted scaling efficiency: predicted per-GPU tokens/s on N GPUs over predicted
    tokens/s on one, at most 1, so no multi-GPU option is faster per GPU than its one-GPU rate).
    The one-GPU rate is the measured one of the same GPU type and per-device configuration (the
    trials of one strategy, the option's own where it ran; of another, times the estimator's ratio
    of the two strategies on one GPU: the trainer alone anchors a DDP option so); where
    none ran, the estimator's corrected by the GPU type's trials (or all trials), and where that
    configuration only fits sharded (out of memory on one GPU) the label says so.  The interval
    is the estimator's (`Estimate.tokens_per_s_low/high`) relative to its point; on a measured
    anchor only the part the anchor leaves (the N-GPU interval over the one-GPU interval), and
    no higher than perfect scaling of the measured rate."""
    none = {"tokens_per_s": math.nan, "tokens_per_s_low": math.nan, "tokens_per_s_high": math.nan, "basis": "",
            "one_gpu_tokens_per_s": math.nan, "one_gpu_source": "", "scaling": math.nan}
    config = tuple(o[c] for c in CONFIG)
    n = int(o["num_gpus"])
    key = (o["gpu_type"], n, o["strategy"], config)
    ok = measured.ok.get(key)
    if ok:
        tokens = median(ok)
        return {**none, "tokens_per_s": tokens, "source": "measured", "basis": f"{len(ok)} trial{'s' * (len(ok) > 1)}",
                "one_gpu_tokens_per_s": tokens if n == 1 else math.nan,
                "one_gpu_source": "measured" if n == 1 else "", "excluded": ""}
    if key in measured.oom:
        return {**none, "source": "measured", "excluded": "out of memory (measured)"}
    if o["gpu_type"] == CPU:  # the CPU estimate is too rough to offer what was not measured
        return {**none, "source": "predicted", "excluded": "not measured (no estimate on the CPU)"}
    link = (int(o["gpus_per_node"]), None if pd.isna(o["inter_node_gbps"]) else float(o["inter_node_gbps"]),
            o["fabric"] or None)
    trials = measured.one_gpu.get((o["gpu_type"], config), [])
    ran = [s for _, s in trials]
    # the anchor: the one-GPU trials of one strategy, the option's own where it ran, and the
    # estimator's ratio of the two strategies on one GPU (a DDP trial is not the trainer alone:
    # compiled SDPA inside DDP runs at `Calibration.parallel_compiled_fused_rate`)
    one_strategy = (o["strategy"] if o["strategy"] in ran else ran[0]) if ran else o["strategy"]
    anchor = [tokens for tokens, s in trials if s == one_strategy]
    one_gpu_oom = (o["gpu_type"], config) in measured.oom
    try:
        est = predicted(o, o["strategy"], n, *link)
        est_1 = predicted(o, one_strategy, 1)
        own_1 = predicted(o, o["strategy"], 1) if o["strategy"] != one_strategy else est_1
    except ValueError as exc:
        return {**none, "source": "predicted", "excluded": f"no estimate ({exc})"}
    if est.oom:
        return {**none, "source": "predicted",
                "excluded": f"out of memory (predicted {est.peak_mem_gb:.0f} of {est.capacity_gb:.0f} GiB)"}
    # the option's strategy on one GPU over the anchor's (a measured cause, not capped), then the
    # scaling over its own one-GPU rate (capped at 1)
    strategy_ratio = own_1.tokens_per_s / est_1.tokens_per_s
    scaling = est.tokens_per_s / n / own_1.tokens_per_s
    efficiency = min(1.0, scaling)
    low, high = est.tokens_per_s_low / est.tokens_per_s, est.tokens_per_s_high / est.tokens_per_s
    if anchor:
        rate = median(anchor)
        basis = f"same per-GPU configuration, 1 GPU ({len(anchor)} trial{'s' * (len(anchor) > 1)})"
        if n > 1:  # the anchor measured the one-GPU part: the N-GPU part is left, never inverted
            low = min(1.0, low / (est_1.tokens_per_s_low / est_1.tokens_per_s))
            high = max(1.0, high / (est_1.tokens_per_s_high / est_1.tokens_per_s))
    else:
        rate, basis = predicted_one_gpu_rate(o, est_1, corrections, predicted.model.name)
        if n > 1 and (est_1.oom or one_gpu_oom):
            basis += f", fits only sharded (out of memory on 1 GPU, {'measured' if one_gpu_oom else 'predicted'})"
    if abs(strategy_ratio - 1) > 5e-4:
        basis += f" as {one_strategy}, x{strategy_ratio:.3f} as {o['strategy']} predicted"
    if n > 1:
        basis += f", scaling {efficiency:.2f} predicted" + (f" (capped at 1, estimator {scaling:.2f})" if scaling > 1 else "")
        if o["instances"] > 1:
            basis += f" over {int(o['instances'])} instances"
    tokens = n * rate * strategy_ratio * efficiency
    top = tokens * high
    if anchor and n > 1:  # no faster than perfect scaling of the anchor (the strategies' ratio is predicted too)
        top = min(top, n * rate * max(1.0, strategy_ratio))
    return {"tokens_per_s": tokens, "tokens_per_s_low": tokens * low, "tokens_per_s_high": top,
            "source": "predicted", "basis": basis, "one_gpu_tokens_per_s": rate,
            "one_gpu_source": "measured" if anchor else "predicted", "scaling": efficiency, "excluded": ""}


def with_speeds(options: pd.DataFrame, model: ModelConfig, rows: pd.DataFrame, corrections: dict[str, Correction],
                book: PriceBook) -> pd.DataFrame:
    """`options` with the RENTAL and SPEED columns, one `rental` and one `speed` per option."""
    measured, predicted = Measured(rows), Estimates(model)
    placed = [{**o, **rental(o, book, measured, predicted)} for o in options.to_dict("records")]
    speeds = [speed(o, measured, corrections, predicted) for o in placed]
    return pd.DataFrame([{**o, **sp} for o, sp in zip(placed, speeds)], index=options.index,
                        columns=[*OPTION, *RENTAL, *SPEED])
