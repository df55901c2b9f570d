"""python -m slmray.recommend RESULTS... --model M (--tokens D | --tokens-per-param R) [--deadline-hours H] [--budget-usd X] ...

From measurements to a decision: which GPU type, how many GPUs and which configuration train
model M on D tokens by a deadline or within a budget, how long it takes and what it costs.

Options are the configurations of M that the tables ran (per-device batch, attention,
compile, precision), on each GPU type of the tables (or `--gpu-types`), at 1, 2, 4, ...
`--max-gpus` GPUs, with DDP or FSDP beyond one GPU.  An option a table measured (same GPU
type, count, strategy and configuration) takes the measured tokens/s and is `measured`; every
other one is `predicted`: `slmray.predict.estimate`, anchored on the measurements (`slmray.predict.calibration`):
times the measured-over-predicted factor of the same configuration on the same GPU type where
a table ran it, else of the GPU type's rows, else of all rows.  An option the estimator (or a
table) finds out of memory is excluded.

A run is longer than a trial: its wall-clock is start-up (once), compile (once, where on),
D / tokens/s of training, and blocking checkpoint saves (an explicit assumption: a save of
the fp32 weights and AdamW's two moments, 12 bytes per parameter, every
`--checkpoint-every-hours` at `--checkpoint-gb-s`).  Dollars = price per GPU-hour x GPUs x
wall-clock hours (`slmray.core.costs`).  Prices: those the tables recorded, or a profile
and overrides (`--prices`, `--price`, `--price-file`, as in `python -m slmray.analysis`).
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

from slmray.train.config import config_label

if TYPE_CHECKING:  # heavy imports stay out of `--help`
    import pandas as pd

    from slmray.catalog.prices import PriceBook
    from slmray.predict.calibration import Correction
    from slmray.train.config import ModelConfig

DEFAULT_TOKENS_PER_PARAM = 20.0
"""Chinchilla's compute-optimal ratio (Hoffmann et al. 2022)."""
CHECKPOINT_BYTES_PER_PARAM = 12
"""fp32 weights and AdamW's two fp32 moments; gradients are not saved."""
MULTI_GPU_STRATEGIES = ("ddp", "fsdp")
RECORDED = "recorded"
"""Price profile name of the prices the tables recorded (the sweep's --prices)."""
SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


class RecommendError(ValueError):
    """Input the decision cannot be made from; the message says which and why."""


@dataclass(frozen=True)
class RunAssumptions:
    """What a full run costs beyond D / tokens/s; each one printed with the answer."""

    startup_s: float
    """Start to first training step, once (the tables' median time_to_first_step_s: Ray Train's
    worker group, torch, CUDA, NCCL and the warm-up steps)."""
    compile_s: float
    """Added once where compile is on: the slowest precision's (`slmray.sweep.plan.COMPILE_S`), seconds
    that do not matter against a run of hours."""
    checkpoint_every_h: float = 1.0
    checkpoint_gb_s: float = 1.0
    """Sustained write bandwidth of one save (all ranks together), blocking training."""

    def checkpoint_s(self, n_params: int) -> float:
        """Seconds of one save."""
        return CHECKPOINT_BYTES_PER_PARAM * n_params / (self.checkpoint_gb_s * 1e9)

    def wall_s(self, train_s, compile_on, n_params: int):
        """Wall-clock seconds of a run whose training steps take `train_s` (arrays welcome)."""
        import numpy as np

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


@dataclass
class Decision:
    """What `plan_run` found: every option, and how its tokens/s was obtained."""

    model: str
    n_params: int
    tokens: float
    options: pd.DataFrame
    """One row per option: configuration, tokens_per_s, source (measured/predicted), basis,
    hours, gpu_hours, usd, excluded (reason or "")."""
    corrections: dict[str, Correction]
    assumptions: RunAssumptions
    deadline_h: float | None = None
    budget_usd: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def eligible(self) -> pd.DataFrame:
        return self.options[self.options["excluded"] == ""]


# ---------------------------------------------------------------------------------------------
# options


CONFIG = ("per_device_batch", "seq_len", "attention", "compile", "precision", "activation_checkpointing", "grad_accum")
"""What an option shares with the trial it is anchored on: the work of one device's step."""
OPTION = ("gpu_type", "num_gpus", "strategy", *CONFIG)


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """The columns CONFIG needs, with the trainer's defaults where a table has none."""
    defaults = {"precision": "bf16", "activation_checkpointing": False, "grad_accum": 1, "compile": False}
    out = df.copy()
    for name, value in defaults.items():
        out[name] = out[name].fillna(value) if name in out.columns else value
    return out.astype({"per_device_batch": int, "seq_len": int, "num_gpus": int, "grad_accum": int,
                       "compile": bool, "activation_checkpointing": bool})


def model_spec(model: str | ModelConfig) -> ModelConfig:
    """The ModelConfig of --model: a preset, a config.json path or a hub id (`get_model`)."""
    from slmray.errors import ConfigError
    from slmray.train.config import ModelConfig
    from slmray.train.presets import get_model

    if isinstance(model, ModelConfig):
        return model
    try:
        return get_model(model)
    except ConfigError as exc:
        raise RecommendError(f"--model: {str(exc).removeprefix('model: ')}") from None


def train_config(model: str | ModelConfig, row) -> object:
    """The TrainConfig of a table row or option (`slmray.train.config`); `model` a name or a ModelConfig."""
    import dataclasses

    from slmray.train.config import TrainConfig

    values = dict(
        model=model_spec(model), attention=row["attention"], strategy=row["strategy"], compile=bool(row["compile"]),
        per_device_batch=int(row["per_device_batch"]), seq_len=int(row["seq_len"]), grad_accum=int(row["grad_accum"]),
        activation_checkpointing=bool(row["activation_checkpointing"]), precision=row["precision"],
    )
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in values.items() if k in known})


def _estimate(model: str | ModelConfig, row, gpu_type: str, num_gpus: int):
    from slmray.predict.estimate import estimate

    return estimate(train_config(model, row), gpu_type, num_gpus)


def fit_table_corrections(df: pd.DataFrame) -> dict[str, Correction]:
    """Per GPU type (and pooled), from every ok row of `df` on a GPU of gpus.csv whose model is
    a preset: the estimator's uncorrected prediction recomputed now against the measurement.
    Multi-GPU rows count like the others."""
    from slmray.catalog.gpus import spec_for
    from slmray.predict.calibration import fit_corrections
    from slmray.train.presets import PRESETS

    df = _normalise(df)
    rows = df[(df["status"] == "ok") & df["model"].isin(list(PRESETS))
              & df["gpu_type"].map(lambda g: isinstance(g, str) and spec_for(g) is not None)]
    triples = []
    for _, r in rows.iterrows():
        try:
            predicted = _estimate(r["model"], r, r["gpu_type"], int(r["num_gpus"])).tokens_per_s
        except ValueError:  # a configuration the estimator does not model: it cannot be corrected either
            continue
        triples.append((r["gpu_type"], predicted, float(r["tokens_per_s"])))
    return fit_corrections(triples)


def recorded_prices(df: pd.DataFrame) -> PriceBook:
    """The per-GPU-hour prices the tables recorded (price_per_hour_usd / num_gpus), per GPU type;
    where a type has several, the most common."""
    from slmray.catalog.prices import Price, PriceBook

    priced = df.dropna(subset=["price_per_hour_usd", "gpu_type"])
    prices = {}
    for gpu, part in priced.groupby("gpu_type"):
        per_gpu = (part["price_per_hour_usd"].astype(float) / part["num_gpus"].astype(float)).round(6)
        usd = float(per_gpu.mode().iloc[0])
        sources = part["price_source"].dropna() if "price_source" in part else []
        source = str(sources.mode().iloc[0]) if len(sources) else "recorded in the results table"
        prices[gpu] = Price(gpu, usd, source)
    return PriceBook(RECORDED, prices)


def _gpu_counts(max_gpus: int, measured: Sequence[int]) -> list[int]:
    counts = {1 << i for i in range(max_gpus.bit_length()) if 1 << i <= max_gpus}
    return sorted(counts | {n for n in measured if n <= max_gpus})


def _candidates(df: pd.DataFrame, gpu_types: Sequence[str], max_gpus: int) -> pd.DataFrame:
    """Every (GPU type, count, strategy, configuration) to consider, from `df`'s rows of one model."""
    import pandas as pd

    configs = df[list(CONFIG)].drop_duplicates()
    one_gpu = sorted(set(df.loc[df["num_gpus"] == 1, "strategy"])) or ["ddp"]
    multi = sorted((set(MULTI_GPU_STRATEGIES) | set(df.loc[df["num_gpus"] > 1, "strategy"])) - {"single"})
    rows = []
    for gpu in gpu_types:
        measured = df.loc[df["gpu_type"] == gpu, "num_gpus"].tolist()
        # the CPU estimate is deliberately rough: offer only what was measured there
        counts = sorted(set(measured)) if gpu == "cpu" else _gpu_counts(max_gpus, measured)
        for n in counts:
            for strategy in (one_gpu if n == 1 else multi):
                for c in configs.to_dict("records"):
                    rows.append({"gpu_type": gpu, "num_gpus": n, "strategy": strategy, **c})
    return pd.DataFrame(rows, columns=list(OPTION))


def _anchor(model: str | ModelConfig, ok_rows: pd.DataFrame, gpu_type: str) -> Correction:
    """The correction from `ok_rows` (one configuration on one GPU type, any count or strategy)."""
    from slmray.predict.calibration import fit_correction

    pairs = []
    for _, r in ok_rows.iterrows():
        try:
            pairs.append((_estimate(model, r, gpu_type, int(r["num_gpus"])).tokens_per_s, float(r["tokens_per_s"])))
        except ValueError:
            continue
    return fit_correction(gpu_type, pairs)


SPEED = ("tokens_per_s", "source", "basis", "excluded")


def _speed(model: str | ModelConfig, o, rows: pd.DataFrame, corrections: dict[str, Correction]) -> tuple[float, str, str, str]:
    """(tokens/s, measured or predicted, how it was obtained, why excluded or "") of option `o`."""
    import pandas as pd

    from slmray.catalog.gpus import CPU
    from slmray.predict.calibration import POOLED

    same_config = (rows[list(CONFIG)] == pd.Series({c: o[c] for c in CONFIG})).all(axis=1)
    on_gpu = rows["gpu_type"] == o["gpu_type"]
    exact = rows[same_config & on_gpu & (rows["num_gpus"] == o["num_gpus"]) & (rows["strategy"] == o["strategy"])]
    ok = exact[exact["status"] == "ok"]
    if len(ok):
        return float(ok["tokens_per_s"].median()), "measured", f"{len(ok)} trial{'s' * (len(ok) > 1)}", ""
    if (exact["status"] == "oom").any():
        return math.nan, "measured", "", "out of memory (measured)"
    if o["gpu_type"] == CPU:  # the CPU estimate is too rough to offer what was not measured
        return math.nan, "predicted", "", "not measured (no estimate on the CPU)"
    try:
        est = _estimate(model, o, o["gpu_type"], int(o["num_gpus"]))
    except ValueError as exc:  # a configuration the estimator (or the GPU) cannot take
        return math.nan, "predicted", "", f"no estimate ({exc})"
    if est.oom:
        return math.nan, "predicted", "", f"out of memory (predicted {est.peak_mem_gb:.0f} of {est.capacity_gb:.0f} GiB)"
    anchor_rows = rows[same_config & on_gpu & (rows["status"] == "ok")]
    c = _anchor(model, anchor_rows, o["gpu_type"]) if len(anchor_rows) else None
    if c is not None and c.rows:
        label = f"x{c.factor:.3f}, this configuration's {c.rows} trial{'s' * (c.rows > 1)}"
    elif o["gpu_type"] in corrections:
        c = corrections[o["gpu_type"]]
        label = f"x{c.factor:.3f}, {o['gpu_type']}'s {c.rows} trials"
    elif POOLED in corrections:
        c = corrections[POOLED]
        label = f"x{c.factor:.3f}, all {c.rows} trials (no {o['gpu_type']} trial)"
    else:
        return est.tokens_per_s, "predicted", "uncorrected (no ok trial)", ""
    return c.apply(est.tokens_per_s), "predicted", label, ""


def plan_run(
    df: pd.DataFrame, model: str | ModelConfig, tokens: float, book: PriceBook, assumptions: RunAssumptions,
    gpu_types: Sequence[str] | None = None, max_gpus: int = 8, deadline_h: float | None = None,
    budget_usd: float | None = None,
) -> Decision:
    """Every option of training `model` on `tokens` tokens, from the results frame `df`.

    Raises RecommendError for a model or GPU type it cannot plan, or no price for any option.
    """
    import warnings

    import numpy as np

    from slmray.catalog.gpus import CPU, spec_for
    from slmray.catalog.prices import PriceWarning
    from slmray.core.costs import trial_cost_usd

    spec = model_spec(model)  # the table's rows carry its name; a config.json's is its folder's
    model = spec.name
    if not (isinstance(tokens, (int, float)) and math.isfinite(tokens) and tokens > 0):
        raise RecommendError(f"--tokens: must be a positive number of tokens, got {tokens!r}")
    if max_gpus < 1:
        raise RecommendError(f"--max-gpus: must be at least 1, got {max_gpus}")
    for name, value in (("--deadline-hours", deadline_h), ("--budget-usd", budget_usd)):
        if value is not None and not value > 0:
            raise RecommendError(f"{name}: must be positive, got {value}")
    df = _normalise(df)
    rows = df[df["model"] == model]
    if rows.empty:
        raise RecommendError(f"--model: {model} has no trial in the tables (they have: "
                             f"{', '.join(sorted(df['model'].dropna().unique())) or 'no trials'})")
    if gpu_types:
        for g in gpu_types:
            if g != CPU and spec_for(g) is None:
                raise RecommendError(f"--gpu-types: {g!r} is not in gpus.csv")
        gpu_types = [g if g == CPU else spec_for(g).gpu for g in gpu_types]
    else:
        gpu_types = sorted(df["gpu_type"].dropna().unique())
    n_params = spec.num_params
    corrections = fit_table_corrections(df)
    options = _candidates(rows, gpu_types, max_gpus)
    speeds = [_speed(spec, o, rows, corrections) for _, o in options.iterrows()]
    options = options.assign(**{k: [sp[i] for sp in speeds] for i, k in enumerate(SPEED)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PriceWarning)  # a missing price is reported per option below
        prices = {g: book.trial_price(g, 1) for g in gpu_types}
    per_gpu_hour = options["gpu_type"].map(lambda g: prices[g].usd_per_hour if prices[g] else math.nan)
    wall = assumptions.wall_s(tokens / options["tokens_per_s"].to_numpy(dtype=float), options["compile"].to_numpy(), n_params)
    options = options.assign(
        usd_per_gpu_hour=per_gpu_hour, hours=wall / 3600, gpu_hours=wall / 3600 * options["num_gpus"],
        usd=trial_cost_usd(per_gpu_hour * options["num_gpus"], wall),
    )
    fits = options["excluded"] == ""
    if fits.any() and not np.isfinite(options.loc[fits, "usd_per_gpu_hour"]).any():
        missing = ", ".join(g for g in gpu_types if prices[g] is None)
        raise RecommendError(f"prices: the {book.profile} prices have none for any option's GPU type ({missing}); "
                             "give --prices PROFILE, --price GPU=USD or --price-file")
    reasons = options["excluded"].copy()
    no_price = fits & ~np.isfinite(options["usd_per_gpu_hour"])
    reasons[no_price] = f"no {book.profile} price"
    priced = reasons == ""
    late = priced & (options["hours"] > deadline_h) if deadline_h is not None else priced & False
    dear = priced & (options["usd"] > budget_usd) if budget_usd is not None else priced & False
    for i in options.index[late | dear]:
        why = [f"over the deadline ({options.at[i, 'hours']:,.1f} h)"] if late[i] else []
        why += [f"over the budget (${options.at[i, 'usd']:,.0f})"] if dear[i] else []
        reasons[i] = ", ".join(why)
    options = options.assign(excluded=reasons).sort_values(["usd", "hours"], na_position="last", kind="stable")
    notes = []
    if (options["num_gpus"] > 1).any() and not (df["num_gpus"] > 1).any():
        notes.append("No table measures more than one GPU: every multi-GPU option is predicted, and its "
                     "communication term (slmray.predict.estimate) has met no multi-GPU measurement yet.")
    return Decision(model, n_params, float(tokens), options.reset_index(drop=True), corrections, assumptions,
                    deadline_h, budget_usd, notes)


# ---------------------------------------------------------------------------------------------
# the answer, in words


def option_label(o) -> str:
    """`H200 x8 fsdp sdpa b16` (+ compile, precision, checkpointing, sequence length where not the default)."""
    return config_label(o, model=False)


def _money(usd: float) -> str:
    return "$?" if not math.isfinite(usd) else f"${usd:,.0f}" if usd >= 100 else f"${usd:,.2f}"


def _hours(h: float) -> str:
    return "?" if not math.isfinite(h) else f"{h:,.1f} h" if h >= 10 else f"{h:,.2f} h"


def _summary(o) -> str:
    return (f"{option_label(o)}: {o['tokens_per_s']:,.0f} tokens/s ({o['source']}), {_hours(o['hours'])}, "
            f"{o['gpu_hours']:,.1f} GPU-hours, {_money(o['usd'])}")


def answer(d: Decision) -> list[str]:
    """The decision in sentences: the cheapest within the deadline, the fastest within the
    budget, or, where nothing meets them, the nearest options and what they would need."""
    priced = d.options[d.options["excluded"].isin(["", *_over(d.options)])]
    priced = priced[priced["usd_per_gpu_hour"].notna()]
    lines = []
    if priced.empty:
        return ["No option fits in memory with a price: nothing to recommend."]
    deadline, budget = d.deadline_h, d.budget_usd
    in_time = priced if deadline is None else priced[priced["hours"] <= deadline]
    in_budget = priced if budget is None else priced[priced["usd"] <= budget]
    both = in_time.loc[in_time.index.intersection(in_budget.index)]
    if deadline is None and budget is None:
        lines.append(f"Cheapest: {_summary(priced.sort_values(['usd', 'hours']).iloc[0])}.")
        lines.append(f"Fastest: {_summary(priced.sort_values(['hours', 'usd']).iloc[0])}.")
        return lines + _measured_only(priced)
    if deadline is not None:
        if len(in_time):
            pick = (both if len(both) else in_time).sort_values(["usd", "hours"]).iloc[0]
            within = " and the budget" if budget is not None and len(both) else ""
            lines.append(f"Cheapest within the deadline of {_hours(deadline)}{within}: {_summary(pick)}.")
        else:
            fastest = priced.sort_values(["hours", "usd"]).head(3)
            lines.append(f"No option finishes within {_hours(deadline)}. Nearest (fastest):")
            lines += [f"  {_summary(o)}: needs a deadline of {_hours(o['hours'])} "
                      f"({o['hours'] / deadline:.2f}x)" for _, o in fastest.iterrows()]
            lines.append("  or more GPUs than --max-gpus allows, or fewer tokens.")
    if budget is not None:
        if len(in_budget):
            pick = (both if len(both) else in_budget).sort_values(["hours", "usd"]).iloc[0]
            within = " and the deadline" if deadline is not None and len(both) else ""
            lines.append(f"Fastest within the budget of {_money(budget)}{within}: {_summary(pick)}.")
        else:
            cheapest = priced.sort_values(["usd", "hours"]).head(3)
            lines.append(f"No option costs {_money(budget)} or less. Nearest (cheapest):")
            lines += [f"  {_summary(o)}: needs a budget of {_money(o['usd'])} (+{_money(o['usd'] - budget)})"
                      for _, o in cheapest.iterrows()]
    if deadline is not None and budget is not None and len(in_time) and len(in_budget) and not len(both):
        t = in_time.sort_values(["usd", "hours"]).iloc[0]
        b = in_budget.sort_values(["hours", "usd"]).iloc[0]
        lines.append(f"No option meets both: within the deadline the cheapest costs {_money(t['usd'])} "
                     f"({_money(t['usd'] - budget)} over the budget); within the budget the fastest takes "
                     f"{_hours(b['hours'])} ({_hours(b['hours'] - deadline)} over the deadline).")
    return lines + (_measured_only(both) if len(both) else [])


def _measured_only(options: pd.DataFrame) -> list[str]:
    """Where the picks are predicted: the best of the options a table measured, which rest on no estimate."""
    measured = options[options["source"] == "measured"]
    if measured.empty or (options["source"] == "measured").all():
        return []
    cheapest = measured.sort_values(["usd", "hours"]).iloc[0]
    fastest = measured.sort_values(["hours", "usd"]).iloc[0]
    if cheapest.name == fastest.name:
        return [f"Measured only (no estimate involved): {_summary(cheapest)}."]
    return [f"Measured only (no estimate involved): cheapest {_summary(cheapest)}; fastest {_summary(fastest)}."]


def _over(options: pd.DataFrame) -> list[str]:
    """The exclusion reasons that are the deadline's or the budget's (such options are priced)."""
    return [r for r in options["excluded"].unique() if r.startswith("over the")]


TABLE_COLUMNS = ("gpu_type", "num_gpus", "per_device_batch", "attention", "strategy", "compile", "precision",
                 "tokens_per_s", "source", "hours", "gpu_hours", "usd")
HEADERS = {"gpu_type": "gpu", "num_gpus": "gpus", "per_device_batch": "batch", "tokens_per_s": "tokens/s",
           "gpu_hours": "GPU-h", "usd": "$"}


def options_table(options: pd.DataFrame, reason: bool = False) -> pd.DataFrame:
    """Options as display text, one column per TABLE_COLUMNS (precision only where not all bf16)."""
    columns = [c for c in TABLE_COLUMNS if c != "precision" or (options["precision"] != "bf16").any()]
    out = options[columns].copy()
    out["compile"] = out["compile"].map({True: "yes", False: "no"})
    out["tokens_per_s"] = out["tokens_per_s"].map(lambda v: "-" if not math.isfinite(v) else f"{v:,.0f}")
    for c in ("hours", "gpu_hours"):
        out[c] = out[c].map(lambda v: "-" if not math.isfinite(v) else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}")
    out["usd"] = out["usd"].map(lambda v: "-" if not math.isfinite(v) else f"{v:,.0f}" if v >= 100 else f"{v:,.2f}")
    if reason:
        out["why excluded"] = options["excluded"]
    else:
        out["tokens/s from"] = options["basis"]
    return out.rename(columns=HEADERS).astype(str)


def _text_table(frame: pd.DataFrame) -> list[str]:
    widths = [max(len(str(c)), *(len(v) for v in frame[c])) for c in frame.columns]
    left = {"gpu", "attention", "strategy", "source", "tokens/s from", "why excluded", "compile", "precision"}
    def line(values):
        return "  ".join(v.ljust(w) if c in left else v.rjust(w) for c, v, w in zip(frame.columns, values, widths)).rstrip()
    return [line([str(c) for c in frame.columns]), *(line(r) for r in frame.itertuples(index=False))]


def correction_lines(d: Decision) -> list[str]:
    from slmray.predict.calibration import POOLED

    lines = ["Estimator correction, measured / predicted tokens/s refitted on the ok trials given "
             "(leave-one-out: each trial predicted from the others):"]
    if not d.corrections:
        return [lines[0][:-1] + ": none, no ok trial on a GPU of gpus.csv."]
    lines += [f"  {c.describe()}" for g, c in d.corrections.items() if g != POOLED]
    if POOLED in d.corrections:
        lines.append(f"  {d.corrections[POOLED].describe()} (for GPU types without trials)")
    return lines


def render(d: Decision, top: int = 15) -> str:
    ranked = d.eligible
    excluded = d.options[d.options["excluded"] != ""]
    tokens = f"{d.tokens:,.0f} tokens ({d.tokens / d.n_params:.3g} per parameter)"
    out = [f"{d.model} ({d.n_params / 1e6:,.0f}M parameters) on {tokens}", ""]
    out += ["Assumptions:", *(f"  {line}" for line in d.assumptions.lines(d.n_params)), *(f"  {n}" for n in d.notes), ""]
    out += [*correction_lines(d), ""]
    limits = ([f"the deadline of {_hours(d.deadline_h)}"] if d.deadline_h else []) + (
        [f"the budget of {_money(d.budget_usd)}"] if d.budget_usd else [])
    head = f"Options{' within ' + ' and '.join(limits) if limits else ''}, cheapest first"
    if len(ranked):
        shown = ranked.head(top)
        out += [f"{head} ({len(shown)} of {len(ranked)}; --top):", *_text_table(options_table(shown)), ""]
    else:
        out += [f"{head}: none.", ""]
    out += answer(d)
    if len(excluded):
        counts = excluded["excluded"].str.split(", ").explode().str.replace(r" \(.*", "", regex=True).value_counts()
        out += ["", "Excluded: " + ", ".join(f"{n} {r}" for r, n in counts.items()) + "; nearest first:"]
        order = excluded.assign(_oom=excluded["excluded"].str.startswith("out of memory"))
        order = order.sort_values(["_oom", "usd", "hours"], na_position="last", kind="stable").head(top)
        out += _text_table(options_table(order, reason=True))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# command line


def parse_tokens(text: str) -> float:
    """`2.6e10`, `26B`, `500M` -> tokens."""
    t = text.strip().lower()
    scale = SUFFIXES.get(t[-1:], 1.0) if t else 1.0
    try:
        return float(t[:-1] if scale != 1.0 else t) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of tokens: {text!r} (e.g. 2.6e10 or 26B)") from None


def build_parser() -> argparse.ArgumentParser:
    from slmray.cli import parser

    p = parser(
        "python -m slmray.recommend",
        "Plan a training run of D tokens from results tables: which GPU type, how many GPUs, which "
        "configuration, how long and what it costs; the cheapest within a deadline, the fastest within a budget.",
    )
    p.add_argument("results", nargs="+", help="results tables (.parquet), local paths or s3:// URIs")
    p.add_argument("--model", required=True,
                   help="the model the tables ran: a preset (python -m slmray.train --list-models), or the "
                        "config.json path or hub id it was swept from")
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument("--tokens", type=parse_tokens, help="training tokens D (2.6e10, 26B)")
    size.add_argument("--tokens-per-param", type=float, help=f"D as a multiple of the parameter count "
                      f"(Chinchilla: {DEFAULT_TOKENS_PER_PARAM:g})")
    p.add_argument("--deadline-hours", type=float, default=None, help="wall-clock hours the run must finish in (default: no deadline)")
    p.add_argument("--budget-usd", type=float, default=None, help="dollars the run may cost (default: no budget)")
    p.add_argument("--gpu-types", nargs="+", default=None, help="GPU types to consider (default: the tables')")
    p.add_argument("--max-gpus", type=int, default=8, help="largest GPU count to consider")
    p.add_argument("--prices", default=None, help="price profile: aws, gcp, lambda, ... (default: the prices "
                   "the tables recorded)")
    p.add_argument("--price-file", default=None, help="CSV (gpu,usd_per_gpu_hour[,source]) or JSON of per-GPU prices (default: none)")
    p.add_argument("--price", action="append", default=[], metavar="GPU=USD", help="price of one GPU-hour, repeatable (default: none)")
    p.add_argument("--startup-s", type=float, default=None,
                   help="start-up seconds, counted once (default: the tables' median time to first step)")
    p.add_argument("--checkpoint-every-hours", type=float, default=1.0, help="hours between checkpoints; 0: none")
    p.add_argument("--checkpoint-gb-s", type=float, default=1.0, help="write bandwidth of a checkpoint save, GB/s")
    p.add_argument("--top", type=int, default=15, help="rows of each table to print")
    return p


def default_assumptions(df: pd.DataFrame, startup_s: float | None = None, checkpoint_every_h: float = 1.0,
                        checkpoint_gb_s: float = 1.0) -> RunAssumptions:
    """Start-up from the tables' ok trials (median time to first step), or the plan's trial
    group start where none recorded it; compile from the plan."""
    import numpy as np

    from slmray.sweep.plan import COMPILE_S, GROUP_START_S

    if startup_s is None:
        first = df.loc[df["status"] == "ok", "time_to_first_step_s"].astype(float)
        first = first[np.isfinite(first)]
        startup_s = float(first.median()) if len(first) else GROUP_START_S
    for name, value in (("--startup-s", startup_s), ("--checkpoint-every-hours", checkpoint_every_h)):
        if not (math.isfinite(value) and value >= 0):
            raise RecommendError(f"{name}: must be a non-negative number, got {value}")
    if not checkpoint_gb_s > 0:
        raise RecommendError(f"--checkpoint-gb-s: must be positive, got {checkpoint_gb_s}")
    return RunAssumptions(startup_s, max(COMPILE_S.values()), checkpoint_every_h, checkpoint_gb_s)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import warnings

    from slmray.catalog.prices import PriceBook, PriceError, parse_price_overrides
    from slmray.core.costs import price_trials
    from slmray.results.storage import StorageError
    from slmray.results.table import ResultsError, ResultsWarning, load_results

    try:
        spec = model_spec(args.model)
        if args.tokens is not None:
            tokens = args.tokens
        elif not (math.isfinite(args.tokens_per_param) and args.tokens_per_param > 0):
            raise RecommendError(f"--tokens-per-param: must be positive, got {args.tokens_per_param}")
        else:
            tokens = args.tokens_per_param * spec.num_params
        if not (math.isfinite(tokens) and tokens > 0):
            raise RecommendError(f"--tokens: must be a positive number of tokens, got {tokens:g}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResultsWarning)
            df = load_results(args.results)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        repricing = args.prices or args.price_file or args.price
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # plan_run reports options without a price
            if repricing:
                book = PriceBook.load(args.prices or "local", args.price_file, parse_price_overrides(args.price))
                df = price_trials(df, book)
            else:
                book = recorded_prices(df)
        assumptions = default_assumptions(df, args.startup_s, args.checkpoint_every_hours, args.checkpoint_gb_s)
        decision = plan_run(df, spec, tokens, book, assumptions, args.gpu_types, args.max_gpus,
                            args.deadline_hours, args.budget_usd)
    except (RecommendError, PriceError, ResultsError, StorageError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render(decision, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
