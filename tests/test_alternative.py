"""The priced alternative to a measured pick without a price (`slmray.planning.alternative`): like
for like, fits in memory, priced, ranked by the planner's rank, labelled with its interval; none
for a pick that has a price; one line where the prices price no GPU type that can run the model."""

import math
from pathlib import Path

import pandas as pd

from slmray.analysis import decision
from slmray.analysis.costs import add_cost_metrics
from slmray.catalog.prices import Price, PriceBook
from slmray.core.objective import Objective
from slmray.planning import alternative
from slmray.planning.assumptions import RunAssumptions
from slmray.planning.rank import from_columns
from slmray.planning.run import Decision
from slmray.planning.text import alternative_text, unpriced_lines

SWEEPS = [Path("benchmarks/results/sweeps/sweep_h100x1.parquet"), Path("benchmarks/results/sweeps/sweep_h200x1.parquet")]
OBJECTIVES = [Objective.parse("max:tokens_per_s"), Objective.parse("min:usd_per_btok")]
CONFIG = dict(per_device_batch=16, attention="sdpa", compile=False, precision="bf16", seq_len=1024,
              activation_checkpointing=False, loss_kernel="standard", backend="native", grad_accum=1)


def _option(gpu, n, strategy, tokens_per_s, usd_per_hour, source="predicted", excluded="", **config):
    low, high = (0.8 * tokens_per_s, 1.2 * tokens_per_s) if source == "predicted" else (math.nan, math.nan)
    hours = 1e9 / tokens_per_s / 3600 if tokens_per_s else math.nan
    return {"gpu_type": gpu, "num_gpus": n, "strategy": strategy, **CONFIG, **config, "tokens_per_s": tokens_per_s,
            "tokens_per_s_low": low, "tokens_per_s_high": high, "source": source, "basis": f"{source} anchor",
            "usd_per_hour": usd_per_hour, "rental": f"{n} GPUs", "hours": hours, "gpu_hours": hours * n,
            "usd": usd_per_hour * hours, "usd_per_btok": usd_per_hour * hours, "excluded": excluded}


def _decision(options, objectives=("time", "cost")):
    no_overhead = RunAssumptions(startup_s=0.0, compile_s=0.0, checkpoint_every_h=0.0)
    return Decision("llama-2b", 2_000_000_000, 1e9, pd.DataFrame(options), {}, no_overhead,
                    profile="paper", objectives=objectives)


def test_a_model_measured_only_unpriced_gets_the_best_priced_prediction_like_for_like():
    d = _decision([
        _option("H200", 1, "ddp", 18_000.0, math.nan, "measured", "no paper price"),
        _option("H100-80GB", 1, "ddp", 0.0, 2.53, excluded="out of memory (predicted 90 of 80 GiB)"),
        _option("H100-80GB", 2, "fsdp", 34_000.0, 4.5),  # the cheapest, by more than the tolerance
        _option("H100-80GB", 4, "fsdp", 68_000.0, 10.12, per_device_batch=8),
        _option("H100-80GB", 8, "fsdp", 200_000.0, 20.24, seq_len=2048),  # faster, but not like for like
    ])
    measured = alternative.unpriced_measured(d)
    assert measured["gpu_type"] == "H200"
    alt = alternative.choose(d, measured)
    o = alt.option
    assert (o["gpu_type"], o["num_gpus"], o["per_device_batch"], o["seq_len"]) == ("H100-80GB", 4, 8, 1024)
    assert alt.differs == ("H100-80GB not H200", "x4 not x1", "fsdp not ddp", "b8 not b16")
    assert alt.usd_low < o["usd"] < alt.usd_high  # the run's dollars at the top and bottom of its tokens/s
    text = alternative_text(alt)
    assert text.startswith("priced alternative, predicted: H100-80GB x4 fsdp sdpa b8")
    assert "(54,400-81,600)" in text and "tokens/s from predicted anchor" in text and text.endswith("(predicted: measure it)")
    assert unpriced_lines(d)[0].endswith(f"{text}.")  # python -m slmray.recommend says the same
    assert alternative.choose(_decision(d.options.to_dict("records"), ("cost", "time")), measured).option["num_gpus"] == 2


def test_a_model_with_a_priced_measurement_gets_none():
    d = _decision([_option("H100-80GB", 1, "ddp", 60_000.0, 2.53, "measured"),
                   _option("H200", 1, "ddp", 70_000.0, math.nan, "measured", "no paper price"),
                   _option("H100-80GB", 2, "fsdp", 110_000.0, 5.06)])
    assert alternative.unpriced_measured(d) is None and unpriced_lines(d) == []
    df = pd.DataFrame({"model": ["llama-2b"], "status": ["ok"]})
    assert decision.alternatives(df, {"llama-2b": "no ok trial"}, [Objective.parse("max:tokens_per_s")]) == {}


def test_prices_of_no_gpu_that_fits_say_so_in_one_line():
    d = _decision([_option("H200", 1, "ddp", 18_000.0, math.nan, "measured", "no paper price"),
                   *(_option("L4", n, "fsdp", 0.0, 0.8 * n, excluded="out of memory (predicted 30 of 24 GiB)")
                     for n in (1, 2, 4, 8))])
    found = alternative.choose(d, alternative.unpriced_measured(d))
    assert found == "it fits in memory at its settings on no GPU type the paper prices name (L4; predicted, up to 8 GPUs)"
    assert alternative_text(found) == f"no priced alternative: {found}"


def test_the_analysis_objectives_map_to_the_planners():
    parse = Objective.parse
    assert from_columns([parse("max:tokens_per_s"), parse("min:usd_per_btok")]) == ("time", "cost")
    assert from_columns([parse("max:tokens_per_usd"), parse("max:tokens_per_s")]) == ("cost", "time")
    assert from_columns([parse("max:mfu")]) == ("cost", "time")  # none maps: the planner's default


def test_every_profile_prices_every_model_of_the_first_section(cli, tmp_path):
    for profile in ("paper", "gcp", "lambda", "aws"):
        out = tmp_path / profile
        done = cli("-m", "slmray.analysis", *map(str, SWEEPS), "--prices", profile, "--out", str(out))
        assert done.returncode == 0, done.stderr
        first = (out / "report.md").read_text().split("## Why each pick")[0]
        rows = [r.split(" | ") for r in first.splitlines() if r.startswith("| llama")]
        for model in {r[0] for r in rows}:
            assert any(r[0] == model and r[6] != "-" for r in rows), (profile, model)  # run $: measured or predicted
        alternatives = [r for r in rows if "priced alternative" in r[1]]
        assert [r[0] for r in alternatives] == (["| llama-2b"] if profile in ("paper", "lambda") else []), profile
        for r in alternatives:
            assert r[1].startswith("priced alternative (predicted): H100-80GB") and "not H200" in r[1]
            assert r[7].startswith("predicted, ") and "measure it" in r[7]
    html = (tmp_path / "paper" / "report.html").read_text()
    assert "priced alternative (predicted): H100-80GB" in html


def test_prices_of_one_tiny_gpu_plan_on_it_and_say_it_cannot_run_the_model():
    rows = pd.read_parquet(SWEEPS[1])
    df = add_cost_metrics(rows[rows["model"] == "llama-2b"].assign(price_per_hour_usd=math.nan, price_source=None))
    picks = decision.choose(df, OBJECTIVES)
    found = decision.alternatives(df, picks, OBJECTIVES, book=PriceBook("file", {"L4": Price("L4", 0.8, "a file")}))
    assert found == {"llama-2b": "it fits in memory at its settings on no GPU type the file prices name (L4; predicted, "
                                 "up to 8 GPUs)"}
