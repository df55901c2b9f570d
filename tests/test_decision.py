"""The measured decision by hand (`slmray.analysis.decision.choose`): ranked by the objectives in
order, ties within the run-to-run spread broken by the next; why as like-for-like factors; how
sure; a run's hours and dollars; a GPU with no price left unranked and said so."""

import math

import pandas as pd
import pytest

from slmray.analysis import decision
from slmray.core.objective import Objective

OBJECTIVES = [Objective.parse("max:tokens_per_s"), Objective.parse("min:usd_per_btok")]


def _frame(rows, **columns):
    """rows: (gpu, attention, compile, batch, status, tokens/s, $ per GPU-hour, repeats, sd)."""
    df = pd.DataFrame(rows, columns=["gpu_type", "attention", "compile", "per_device_batch", "status",
                                     "tokens_per_s", "price", "repeats", "tokens_per_s_std"])
    df = df.assign(model="m", n_params=1e9, num_gpus=1, strategy="single", seq_len=1024, precision="bf16",
                   activation_checkpointing=False, loss_kernel="standard", backend="native", **columns)
    df["usd_per_btok"] = df["price"] / (df["tokens_per_s"] * 3600) * 1e9
    return df


def test_pick_why_run_cost_and_runner_up():
    df = _frame([
        ("H100-80GB", "sdpa", True, 16, "ok", 200.0, 3.6, 3, 1.0),
        ("H100-80GB", "sdpa", False, 16, "ok", 100.0, 3.6, 3, 1.0),
        ("H100-80GB", "eager", True, 16, "ok", 160.0, 3.6, 3, 1.0),
        ("H200", "sdpa", False, 16, "ok", 120.0, 5.0, 3, 1.0),  # faster than the H100 at equal settings
        ("H100-80GB", "sdpa", True, 32, "oom", math.nan, 3.6, 1, math.nan),
    ])
    pick = decision.choose(df, OBJECTIVES)["m"]
    assert pick.configuration == "H100-80GB x1 single sdpa b16 compile"
    assert pick.runner_up == "H100-80GB x1 single eager b16 compile" and not pick.tied
    assert pick.spread == pytest.approx(1 / 200) and "3 repeats" in pick.spread_source
    assert pick.tokens == 20e9 and pick.hours == pytest.approx(20e9 / 200 / 3600)
    assert pick.usd == pytest.approx(3.6 * pick.hours)  # one GPU at $3.60 an hour
    why = "; ".join(pick.why)
    assert "sdpa over eager x1.25" in why and "compile over no compile x2.00" in why
    # the H200 never ran compiled: the factor where both ran at equal settings, and a prompt to measure it
    assert "H100-80GB over H200: x0.83 where both ran at equal settings, not at the pick's (H200 was faster" in why
    assert "b16: b32 ran out of memory at these settings" in why  # an alternative that failed is a reason too
    assert pick.best_on == {}  # the pick is also the cheapest per token


def test_within_the_spread_the_next_objective_decides():
    df = _frame([
        ("H100-80GB", "sdpa", False, 16, "ok", 100.0, 3.6, 3, 2.0),  # sd 2%: 101 is within 2 sd of it
        ("H200", "sdpa", False, 16, "ok", 101.0, 5.0, 3, 2.0),
    ])
    pick = decision.choose(df, OBJECTIVES)["m"]
    assert pick.configuration.startswith("H100-80GB")  # tied on tokens/s, cheaper per token
    assert pick.runner_up.startswith("H200") and not pick.tied  # not a tie: 37.5% dearer per token
    sure = decision.summary_lines(df, OBJECTIVES)[0]
    assert "1.0% ahead on tokens_per_s (within the spread), 37.5% behind on usd_per_btok (outside the spread)" in sure
    assert decision.summary_table(df, OBJECTIVES).loc[0, "how sure"] == (
        "measured, sd 2.0%; runner-up 1.0% ahead (within the spread)")


def test_a_runner_up_within_the_spread_on_every_objective_is_a_tie():
    df = _frame([("H100-80GB", "sdpa", False, 16, "ok", 100.0, 3.6, 3, 2.0),
                 ("H100-80GB", "sdpa", False, 32, "ok", 101.0, 3.6, 3, 2.0)])
    pick = decision.choose(df, OBJECTIVES)["m"]
    assert pick.configuration.endswith("b32") and pick.tied
    assert decision.summary_table(df, OBJECTIVES).loc[0, "how sure"].endswith("a tie with the runner-up")
    assert decision.summary_lines(df, OBJECTIVES)[0].endswith(
        "a tie, either will do. Runner-up: H100-80GB x1 single sdpa b16.")


def test_without_a_repeat_the_spread_is_unknown_and_said_so():
    df = _frame([("H100-80GB", "sdpa", False, 16, "ok", 100.0, 3.6, 1, 0.0),
                 ("H100-80GB", "eager", False, 16, "ok", 99.0, 3.6, 1, 0.0)])
    pick = decision.choose(df, OBJECTIVES)["m"]
    assert math.isnan(pick.spread) and pick.spread_source.startswith("unknown") and not pick.tied
    assert pick.configuration.endswith("sdpa b16")


def test_a_gpu_without_a_price_is_not_ranked_and_said_so():
    df = _frame([("H100-80GB", "sdpa", False, 16, "ok", 100.0, 3.6, 1, 0.0),
                 ("H200", "sdpa", False, 16, "ok", 120.0, math.nan, 1, 0.0)])
    pick = decision.choose(df, OBJECTIVES)["m"]
    assert pick.configuration.startswith("H100-80GB") and "1 ok trial(s) on H200 not ranked" in pick.unranked
    only_h200 = decision.choose(df[df["gpu_type"] == "H200"], OBJECTIVES)["m"]
    assert only_h200.ranked_by == (OBJECTIVES[0],) and math.isnan(only_h200.usd)
    text = decision.summary_lines(df[df["gpu_type"] == "H200"], OBJECTIVES)[0]
    assert "no price for its GPU" in text and "dollars unknown" in text and "Ranked without usd_per_btok" in text


def test_no_ok_trial_is_a_reason_not_a_pick():
    df = _frame([("H100-80GB", "sdpa", False, 16, "oom", math.nan, 3.6, 1, math.nan)])
    assert decision.choose(df, OBJECTIVES)["m"].startswith("no ok trial has tokens_per_s")
    assert decision.summary_table(df, OBJECTIVES).loc[0, "pick"].startswith("none: ")


def test_a_cpu_table_at_price_zero_reads_in_workers_minutes_and_level_dollars():
    """The smoke sweep's table: the local machine at $0, a run of minutes on CPU workers.  No `nan%`
    gap on dollars (0 / 0), no `0.0 h`, no `GPU(s)` for processes on a CPU."""
    df = _frame([("cpu", "sdpa", False, 4, "ok", 40_000.0, 0.0, 1, 0.0),
                 ("cpu", "eager", False, 4, "ok", 36_000.0, 0.0, 1, 0.0)])
    df["num_gpus"], df["n_params"] = 2, 1e5
    df["usd_per_btok"] = 0.0
    text = decision.summary_lines(df, OBJECTIVES, tokens_per_param=20)[0]
    assert "takes 50.0 s on 2 CPU worker(s) for $0." in text  # 2e6 tokens at 40,000 tokens/s
    assert "the runner-up is 11.1% behind on tokens_per_s, level on usd_per_btok" in text
    assert "nan" not in text and "GPU(s)" not in text
    dearer = df.assign(usd_per_btok=[0.0, 1.0])  # one of two at $0: no ratio, both values said
    assert "not comparable on usd_per_btok (0 against 1)" in decision.summary_lines(dearer, OBJECTIVES)[0]


@pytest.mark.parametrize("h, text", [(12.25, "12.2 h"), (1.25, "1.25 h"), (0.1, "0.10 h"), (0.05, "3.0 min"),
                                     (0.01, "36.0 s"), (math.nan, "?")])
def test_hours_reads_a_short_run_in_minutes_or_seconds(h, text):
    from slmray.planning.text import hours

    assert hours(h) == text
