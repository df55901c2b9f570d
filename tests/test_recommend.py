"""python -m slmray.recommend on the committed one-GPU sweeps (H100, H200), in-process; and the
report's planning section.  No devices, no Ray."""

import math
import subprocess
import sys
import time

import pandas as pd
import pytest

from slmray.analysis import decision
from slmray.analysis.costs import price_trials
from slmray.analysis.table import load_results
from slmray.catalog.prices import PriceBook
from slmray.core import scaling_law
from slmray.predict.calibration import POOLED
from slmray.planning.assumptions import default_assumptions
from slmray.planning.options import fit_table_corrections
from slmray.planning.run import plan_run
from slmray.planning.text import answer, option_label
from slmray.planning.text import hours as _hours
from slmray.planning.text import money as _money
from slmray.recommend import main, parse_tokens

from analysis_fixtures import REPO, RESULTS

SWEEPS = [str(RESULTS / "sweeps" / "sweep_h200x1.parquet"), str(RESULTS / "sweeps" / "sweep_h100x1.parquet")]
BAR = [*SWEEPS, "--model", "llama-1b", "--tokens-per-param", "20", "--prices", "aws"]
LLAMA_1B = 970_458_240


@pytest.fixture(scope="module")
def sweeps() -> pd.DataFrame:
    return price_trials(load_results(SWEEPS), PriceBook.load("aws"))


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_the_bar_command_prints_options_with_hours_and_dollars(capsys):
    rc, out, err = run(capsys, *BAR)
    assert rc == 0, err
    assert f"{20 * LLAMA_1B:,} tokens (20 per parameter)" in out
    # the measured H100 trial: llama-1b sdpa b16 at 62,907 tokens/s, 19.4e9 tokens in 86.0 h at $6.88 per GPU-hour
    line = next(l for l in out.splitlines() if l.startswith("H100-80GB") and " 62,907 " in l)
    assert "measured" in line and " 86.0 " in line and " 592 " in line
    assert "predicted" in out and "Cheapest: " in out and "Fastest: " in out
    assert "Measured only (no estimate involved): cheapest H100-80GB x1 ddp sdpa b16: 62,907 tokens/s" in out
    assert "every multi-GPU option is predicted" in out
    assert "H200: x0.950 from 10 ok trials, leave-one-out error" in out and "uncorrected 5.8%" in out
    assert "checkpointing: a 11.6 GB checkpoint" in out and "out of memory (measured)" in out
    # the global batch per option (b16 x 1,024 x 1 GPU) and the critical batch at the run's Chinchilla loss
    assert " 16,384 " in line and "tokens/step" in out
    critical = scaling_law.critical_batch_tokens(scaling_law.loss(LLAMA_1B, 20 * LLAMA_1B))
    assert (f"the critical batch at this run's loss 2.59 (Chinchilla law; Kaplan et al. 2020, Eq. 5.3) is about "
            f"{critical:,.0f}: every option is below it") in out


def test_hours_and_dollars_follow_the_stated_assumptions(sweeps):
    a = default_assumptions(sweeps, startup_s=30.0, checkpoint_every_h=1.0, checkpoint_gb_s=2.0)
    d = plan_run(sweeps, "llama-1b", 1e10, PriceBook.load("aws"), a)
    o = d.options[(d.options["source"] == "measured") & (d.options["excluded"] == "")].iloc[0]
    train_s = 1e10 / o["tokens_per_s"]
    save_s = 12 * LLAMA_1B / 2e9
    wall = 30.0 + train_s + train_s / 3600 * save_s
    assert o["hours"] == pytest.approx(wall / 3600)
    assert o["usd"] == pytest.approx(wall / 3600 * o["num_gpus"] * o["usd_per_gpu_hour"])
    assert o["gpu_hours"] == pytest.approx(o["hours"] * o["num_gpus"])
    # every option with more GPUs than any trial is predicted; every measured one ran on one GPU
    assert set(d.options.loc[d.options["num_gpus"] > 1, "source"]) == {"predicted"}
    assert (d.options.loc[d.options["source"] == "measured", "num_gpus"] == 1).all()


def test_predicted_options_are_anchored_on_the_same_configuration(sweeps):
    d = plan_run(sweeps, "llama-1b", 1e10, PriceBook.load("aws"), default_assumptions(sweeps))
    opts = d.options.set_index(["gpu_type", "num_gpus", "strategy", "attention", "per_device_batch"])
    measured = opts.loc[("H100-80GB", 1, "ddp", "sdpa", 16), "tokens_per_s"]
    two = opts.loc[("H100-80GB", 2, "ddp", "sdpa", 16)]
    assert two["source"] == "predicted" and "this configuration's 1 trial" in two["basis"]
    assert 1.5 * measured < two["tokens_per_s"] < 2 * measured
    # llama-1b sdpa b32 never ran on the H200: the H200's correction from its 10 trials
    assert "H200's 10 trials" in opts.loc[("H200", 2, "fsdp", "sdpa", 32), "basis"]


def test_the_correction_uses_multi_gpu_rows_when_a_table_has_them(sweeps):
    before = fit_table_corrections(sweeps)
    row = sweeps[(sweeps["model"] == "llama-1b") & (sweeps["gpu_type"] == "H100-80GB") & (sweeps["status"] == "ok")
                 & (sweeps["per_device_batch"] == 16) & (sweeps["attention"] == "sdpa")].copy()
    row = row.assign(num_gpus=2, tokens_per_s=row["tokens_per_s"] * 1.8)
    with_two = pd.concat([sweeps, row], ignore_index=True)
    after = fit_table_corrections(with_two)
    assert after["H100-80GB"].rows == before["H100-80GB"].rows + 1
    d = plan_run(with_two, "llama-1b", 1e10, PriceBook.load("aws"), default_assumptions(with_two))
    two = d.options[(d.options["gpu_type"] == "H100-80GB") & (d.options["num_gpus"] == 2) & (d.options["strategy"] == "ddp")
                    & (d.options["per_device_batch"] == 16) & (d.options["attention"] == "sdpa")].iloc[0]
    assert two["source"] == "measured" and two["tokens_per_s"] == pytest.approx(float(row["tokens_per_s"].iloc[0]))
    assert not any("every multi-GPU option is predicted" in n for n in d.notes)


def test_an_unseen_gpu_type_gets_the_pooled_correction(capsys):
    rc, out, err = run(capsys, *BAR, "--gpu-types", "A100-80GB", "--max-gpus", "8", "--top", "40")
    assert rc == 0, err
    assert f"{POOLED}" in out
    assert "A100-80GB" in out and "(no A100-80GB trial)" in out


@pytest.mark.parametrize("argv, message", [
    (["--model", "llama-1b", "--tokens", "0"], "--tokens: must be a positive number"),
    (["--model", "llama-1b", "--tokens-per-param", "-1"], "--tokens-per-param: must be positive"),
    (["--model", "llama-9b", "--tokens", "1e9"], "--model: unknown model 'llama-9b' (known: llama-100m"),
    (["--model", "pythia-160m", "--tokens", "1e9"], "pythia-160m has no trial in the tables"),
    (["--model", "llama-1b", "--tokens", "1e9", "--prices", "lambda", "--gpu-types", "H200"],
     "prices: the lambda prices have none for any option's GPU type (H200)"),
    (["--model", "llama-1b", "--tokens", "1e9", "--gpu-types", "B300"], "--gpu-types: 'B300' is not in gpus.csv"),
    (["--model", "llama-1b", "--tokens", "1e9", "--deadline-hours", "0"], "--deadline-hours: must be positive"),
    (["--model", "llama-1b", "--tokens", "1e9", "--prices", "nowhere"], "profile 'nowhere' is not one of"),
    (["--model", "llama-1b", "--tokens", "1e9", "--gpu-types", "cpu"], "--gpu-types: no option to plan llama-1b on cpu"),
], ids=["tokens-0", "ratio-negative", "unknown-model", "model-absent", "no-prices", "unknown-gpu", "deadline-0",
        "unknown-profile", "no-option"])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    rc, out, err = run(capsys, *SWEEPS, *argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err


@pytest.mark.parametrize("top", ["0", "-1", "x"])
def test_top_takes_a_whole_number_of_at_least_one(capsys, top):
    with pytest.raises(SystemExit) as exit_:
        main([*SWEEPS, "--model", "llama-1b", "--tokens", "1e9", "--top", top])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --top: " in err and "Traceback" not in err


def test_a_deadline_nothing_meets_gives_the_nearest_options(capsys):
    rc, out, err = run(capsys, *BAR, "--deadline-hours", "2")
    assert rc == 0, err
    assert "No option finishes within 2.00 h. Nearest (fastest):" in out
    nearest = [l for l in out.splitlines() if "needs a deadline of" in l]
    assert len(nearest) == 3 and all("x8" in l for l in nearest)  # the fastest use the most GPUs
    assert "over the deadline" in out


def test_a_budget_nothing_meets_gives_the_cheapest_and_what_they_need(capsys):
    rc, out, err = run(capsys, *BAR, "--budget-usd", "100")
    assert rc == 0, err
    assert "No option costs $100 or less. Nearest (cheapest):" in out
    assert any("needs a budget of $" in l and "(+$" in l for l in out.splitlines())


def test_deadline_and_budget_pick_cheapest_in_time_and_fastest_in_budget(sweeps):
    book = PriceBook.load("aws")
    a = default_assumptions(sweeps)
    free = plan_run(sweeps, "llama-1b", 2e10, book, a)
    ok = free.eligible
    deadline = float(ok["hours"].quantile(0.5))
    budget = float(ok["usd"].quantile(0.5))
    d = plan_run(sweeps, "llama-1b", 2e10, book, a, deadline_h=deadline, budget_usd=budget)
    kept = d.eligible
    assert len(kept) and (kept["hours"] <= deadline).all() and (kept["usd"] <= budget).all()
    late = d.options["excluded"].str.contains("over the deadline")
    assert (d.options.loc[late, "hours"] > deadline).all() and late.any()
    lines = answer(d)
    cheapest, fastest = kept.sort_values(["usd", "hours"]).iloc[0], kept.sort_values(["hours", "usd"]).iloc[0]
    assert lines[0].startswith(f"Cheapest within the deadline of {_hours(deadline)} and the budget: {option_label(cheapest)}: ")
    assert lines[1].startswith(f"Fastest within the budget of {_money(budget)} and the deadline: {option_label(fastest)}: ")
    assert all(l.startswith("Measured only (no estimate involved): ") for l in lines[2:]) and len(lines) <= 3


def test_parse_tokens_suffixes():
    assert parse_tokens("26B") == 26e9 and parse_tokens("500m") == 5e8 and parse_tokens("2.6e10") == 2.6e10


@pytest.mark.subprocess  # a fresh interpreter's start-up
def test_help_is_fast():
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "slmray.recommend", "--help"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and "--tokens-per-param" in done.stdout
    assert time.perf_counter() - started < 1.0


def test_the_report_plans_a_run_per_model(sweeps):
    from slmray.analysis.costs import add_cost_metrics

    parts = {title: (text, tables) for title, text, tables in decision.sections(add_cost_metrics(sweeps))}
    assert list(parts) == [f"Planning a run: {m}, 20 tokens per parameter"
                           for m in ("llama-100m", "llama-500m", "llama-1b", "llama-2b")]
    text, tables = parts["Planning a run: llama-1b, 20 tokens per parameter"]
    assert any(t.startswith("Cheapest: ") for t in text) and any("leave-one-out" in t for t in text)
    assert {"measured", "predicted"} >= set(tables[0][1]["source"]) and len(tables[0][1]) == decision.TOP
    summary = decision.summary(add_cost_metrics(sweeps))
    assert list(summary["model"]) == ["llama-100m", "llama-500m", "llama-1b", "llama-2b"]
    assert summary["cheapest $"].map(math.isfinite).all()


def test_when_nothing_fits_in_memory_it_says_so_without_failing(capsys):
    rc, out, err = run(capsys, SWEEPS[0], "--model", "llama-2b", "--tokens", "1e9", "--gpu-types", "A10G",
                       "--prices", "aws")
    assert rc == 0, err
    assert "No option fits in memory with a price: nothing to recommend." in out
    assert "out of memory (predicted" in out and "Cheapest" not in out


def test_the_planner_takes_a_config_json_and_plans_it_by_its_name(sweeps, tmp_path):
    """--model as a config.json: resolved by get_model, its rows found by the name the trainer gave them,
    its rows' estimates built on its shape (the table's llama-1b rows stand in for a file of that shape)."""
    import json

    from slmray.planning.assumptions import PlanError
    from slmray.planning.run import check_model, recorded_prices
    from slmray.train.presets import PRESETS

    m = PRESETS["llama-1b"]
    folder = tmp_path / "llama-1b"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": m.d_model, "intermediate_size": m.d_mlp, "num_hidden_layers": m.n_layer,
        "num_attention_heads": m.n_head, "vocab_size": m.vocab_size, "max_position_embeddings": m.max_seq_len,
        "rms_norm_eps": m.norm_eps, "rope_theta": m.rope_theta}))
    spec = check_model(str(folder))
    assert spec.replace(source=m.source) == m
    book, a = recorded_prices(sweeps), default_assumptions(sweeps)
    by_file, by_name = plan_run(sweeps, str(folder), 2e10, book, a), plan_run(sweeps, "llama-1b", 2e10, book, a)
    assert by_file.model == "llama-1b" and by_file.n_params == by_name.n_params
    pd.testing.assert_frame_equal(by_file.options, by_name.options)
    with pytest.raises(PlanError, match=r"^--model: .*nowhere/config.json does not exist"):
        plan_run(sweeps, str(tmp_path / "nowhere" / "config.json"), 2e10, book, a)
