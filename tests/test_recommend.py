"""python -m slmray.recommend on the committed one-GPU sweeps (H100, H200), in-process; and the
report's planning section.  No devices, no Ray."""

import re
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
from slmray.predict.calibration import POOLED, Regime, fit_correction, fit_corrections
from slmray.predict.estimate import estimate
from slmray.planning.assumptions import default_assumptions
from slmray.planning.options import fit_table_corrections, predicted_one_gpu_rate
from slmray.planning.run import plan_run
from slmray.planning.text import answer, option_label
from slmray.planning.text import hours as _hours
from slmray.planning.text import money as _money
from slmray.recommend import main, parse_tokens
from slmray.train.config import TrainConfig
from slmray.train.presets import get_model

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
    h200 = next(line for line in out.splitlines() if line.strip().startswith("H200: "))
    assert "from 10 ok trials, applied within 16k-64k tokens to llama-100m, llama-1b, llama-2b, llama-500m only, leave-one-out error" in h200 and "(uncorrected " in h200
    assert "checkpointing: a 11.6 GB checkpoint" in out and "out of memory (measured)" in out
    # the global batch per option (b16 x 1,024 x 1 GPU) and the critical batch at the run's Chinchilla loss
    assert " 16,384 " in line and "tokens/step" in out
    critical = scaling_law.critical_batch_tokens(scaling_law.loss(LLAMA_1B, 20 * LLAMA_1B))
    assert (f"the critical batch at this run's loss 2.59 (Chinchilla law; Kaplan et al. 2020, Eq. 5.3) is about "
            f"{critical:,.0f}: every option is below it") in out


def test_a_predicted_pick_names_the_best_measured_option_and_where_its_dollars_fall(capsys):
    """The pick is predicted, so the best measured option follows it: its dollar and hour gaps, and
    whether its dollars lie inside the pick's interval, said of the dollars alone (the hours differ
    8x: the pick runs on 8 GPUs, the measured option on one)."""
    rc, out, err = run(capsys, *BAR)
    assert rc == 0, err
    line = next(l for l in out.splitlines() if l.strip().startswith("Best measured: "))
    assert line.strip().startswith("Best measured: H100-80GB x1 ddp sdpa b16: 62,907 tokens/s (measured)")
    gaps = re.search(r"against this predicted pick ([+-][\d.]+)% in dollars, inside its \$([\d,]+)-\$([\d,]+) "
                     r"interval \(on dollars the data cannot tell them apart\), and ([+-][\d.]+)% in hours\.$", line)
    assert gaps, line
    dollars, low, high, hours = float(gaps[1]), *(float(g.replace(",", "")) for g in gaps.group(2, 3)), float(gaps[4])
    assert low < 592 < high and 0 < dollars < 10 and hours > 500  # $592 measured; 86.0 h against about 10 h


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
    assert two["source"] == "predicted" and two["basis"].startswith("same per-GPU configuration, 1 GPU (1 trial), scaling ")
    assert two["tokens_per_s"] <= 2 * measured  # never faster per GPU than the measured GPU
    # two p5.4xlarge cost less per token than a p5.48xlarge with 6 idle even at their 100 Gbps, which the
    # prediction counts: a lower scaling than on one 8-GPU instance's NVLink
    eight = opts.loc[("H100-80GB", 8, "ddp", "sdpa", 16)]
    assert two["rental"] == "2 x p5.4xlarge, joined by 100 Gbps" and eight["rental"] == "p5.48xlarge, 8 GPUs"
    assert two["scaling"] < eight["scaling"] <= 1 and "over 2 instances" in two["basis"]
    assert two["one_gpu_tokens_per_s"] == measured and two["one_gpu_source"] == "measured"
    assert two["tokens_per_s"] == pytest.approx(2 * measured * two["scaling"])
    assert two["tokens_per_s_low"] < two["tokens_per_s"] <= two["tokens_per_s_high"] <= 2 * measured
    # llama-1b sdpa b32 never ran on the H200: its one-GPU rate is the estimator's, corrected by the H200's 10 trials
    basis = opts.loc[("H200", 2, "fsdp", "sdpa", 32), "basis"]
    assert basis.startswith("1 GPU predicted x") and "(regime+model), H200's 10 trials" in basis
    # batch 8, under every H200 trial's micro-step: the correction is not extrapolated
    assert opts.loc[("H200", 2, "fsdp", "sdpa", 8), "basis"].startswith(
        "1 GPU predicted, uncorrected (outside the regimes of H200's 10 trials)")
    # b32 ran out of memory on one H100: sharded it fits, and the label says why it may beat b16 per GPU
    assert "fits only sharded (out of memory on 1 GPU, measured)" in opts.loc[("H100-80GB", 8, "fsdp", "sdpa", 32), "basis"]
    assert {"ddp", "fsdp", "fsdp_grad_op"} == set(d.options.loc[d.options["num_gpus"] > 1, "strategy"])
    assert opts.index.is_unique  # one rental per option: catalog.rent's choice


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


def test_table_corrections_count_host_bound_rows_without_fitting_on_them(sweeps):
    before = fit_table_corrections(sweeps)["H200"]
    ok = sweeps[(sweeps["gpu_type"] == "H200") & (sweeps["status"] == "ok")]
    small = ok.iloc[:2].assign(model="pythia-160m", per_device_batch=4, attention="sdpa", compile=False, tokens_per_s=1000.0)
    after = fit_table_corrections(pd.concat([sweeps, small], ignore_index=True))["H200"]
    assert after.host_bound_rows == before.host_bound_rows + 2 and after.observed == before.observed + 2
    assert after.rows == before.rows and after.coefficients == pytest.approx(before.coefficients)  # 1,000 tokens/s moved nothing


def test_a_multi_gpu_row_is_host_bound_as_its_one_gpu_configuration_is(sweeps):
    """The planner applies corrections to one-GPU rates, so a row is classed by its one-GPU estimate:
    this step's host share is above the line on one GPU and below it on 128 (communication added)."""
    cfg = TrainConfig(model=get_model("llama-100m"), per_device_batch=6, seq_len=1024, attention="sdpa", strategy="ddp")
    assert estimate(cfg, "H100-80GB", 1).host_share >= 0.2 > estimate(cfg, "H100-80GB", 128).host_share
    before = fit_table_corrections(sweeps)["H100-80GB"]
    ok = sweeps[(sweeps["gpu_type"] == "H100-80GB") & (sweeps["status"] == "ok")]
    wide = ok.iloc[:1].assign(model="llama-100m", per_device_batch=6, attention="sdpa", compile=False, strategy="ddp",
                              num_gpus=128, tokens_per_s=1000.0)
    after = fit_table_corrections(pd.concat([sweeps, wide], ignore_index=True))["H100-80GB"]
    assert after.host_bound_rows == before.host_bound_rows + 1 and after.rows == before.rows


def test_a_host_bound_option_is_left_uncorrected_and_says_so():
    o = {"gpu_type": "H200", "per_device_batch": 4, "seq_len": 1024, "attention": "sdpa", "compile": False}
    est = estimate(TrainConfig(model=get_model("pythia-160m"), per_device_batch=4, seq_len=1024, attention="sdpa"), "H200", 1)
    assert est.host_share >= 0.2
    c = fit_correction("H200", [(100.0, 80.0, Regime(2048, False, False)), (100.0, 80.0, Regime(16384, False, False))])
    assert c.rows == 2 and c.multiplier(Regime.of(o)) < 0.9  # would apply, were the step the device's
    rate, label = predicted_one_gpu_rate(o, est, {"H200": c}, "pythia-160m")
    assert rate == est.tokens_per_s and label == "1 GPU predicted, uncorrected (host-bound: the host's speed, no correction)"


def test_a_gpu_type_whose_trials_were_all_host_bound_gets_the_pooled_correction():
    device_bound = [(100.0, 80.0, Regime(b * 1024, False, False)) for b in (8, 16, 32)]
    corrections = fit_corrections([("H100-80GB", 100.0, 60.0, Regime(4096, False, False, host_bound=True))] * 3
                                  + [("H200", *t) for t in device_bound])
    assert corrections["H100-80GB"].usable == 0 and corrections[POOLED].rows == 3
    o = {"gpu_type": "H100-80GB", "per_device_batch": 16, "seq_len": 1024, "attention": "sdpa", "compile": False}
    est = estimate(TrainConfig(model=get_model("llama-1b"), per_device_batch=16, seq_len=1024, attention="sdpa"), "H100-80GB", 1)
    assert est.host_share < 0.2
    rate, label = predicted_one_gpu_rate(o, est, corrections, "llama-1b")
    assert rate == pytest.approx(est.tokens_per_s * 0.8, rel=0.05)
    assert label.endswith(", all 3 trials, 0 of 3 H100-80GB trials usable")


def test_an_unseen_gpu_type_gets_the_pooled_correction(capsys):
    rc, out, err = run(capsys, *BAR, "--gpu-types", "A100-80GB", "--max-gpus", "8", "--top", "40")
    assert rc == 0, err
    assert f"{POOLED}" in out
    assert "A100-80GB" in out and ", all 26 trials, no A100-80GB trial" in out


@pytest.mark.parametrize("argv, message", [
    (["--model", "llama-1b", "--tokens", "0"], "--tokens: must be a positive number"),
    (["--model", "llama-1b", "--tokens-per-param", "-1"], "--tokens-per-param: must be positive"),
    (["--model", "llama-9b", "--tokens", "1e9"], "--model: unknown model 'llama-9b' (known: llama-100m"),
    (["--model", "llama-1b", "--tokens", "1e9", "--tolerance", "1"], "--tolerance: must be at least 0 and below 1"),
    (["--model", "llama-1b", "--tokens", "1e9", "--prices", "lambda", "--gpu-types", "H200"],
     "prices: the lambda prices have none for any option's GPU type (H200); give --prices PROFILE, --price GPU=USD "
     "or --price-file, or plan on GPU types they price (python -m slmray.recommend ... --gpu-types A100-40GB A100-80GB "
     "H100-80GB H100-PCIe)"),
    (["--model", "llama-1b", "--tokens", "1e9", "--gpu-types", "B300"], "--gpu-types: 'B300' is not in gpus.csv"),
    (["--model", "llama-1b", "--tokens", "1e9", "--deadline-hours", "0"], "--deadline-hours: must be positive"),
    (["--model", "llama-1b", "--tokens", "1e9", "--prices", "nowhere"], "profile 'nowhere' is not one of"),
    (["--model", "llama-1b", "--tokens", "1e9", "--gpu-types", "cpu"], "--gpu-types: no option to plan llama-1b on cpu"),
    (["--model", "llama-1b", "--tokens", "1e9", "--gpu-types", "H100-90GB"],
     "--gpu-types: 'H100-90GB' is not a catalog name (did you mean H100-80GB?)"),
    (["--model", "llama-1b", "--tokens", "1e9", "--price", "A100=1"],
     "--price 'A100=1': 'A100' is not a catalog name (did you mean A100-40GB?)"),
], ids=["tokens-0", "ratio-negative", "unknown-model", "tolerance-1", "no-prices", "unknown-gpu", "deadline-0",
        "unknown-profile", "no-option", "gpu-type-typo", "price-typo"])
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


@pytest.mark.subprocess  # a shell pipe, as a script would read it
def test_json_is_stdout_alone_and_valid_for_json_tool():
    """Warnings (here a price for a GPU the catalog does not know) go to stderr; stdout parses with
    `python -m json.tool`."""
    command = (f"{sys.executable} -m slmray.recommend {' '.join(SWEEPS)} --model llama-1b --tokens 1e9 --json "
               "--prices aws --price B999=3 "
               f"| {sys.executable} -m json.tool > /dev/null")
    done = subprocess.run(["bash", "-o", "pipefail", "-c", command], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "warning: " in done.stderr and "'B999' is not a GPU of the catalog" in done.stderr


@pytest.mark.subprocess  # a fresh interpreter's start-up
def test_help_is_fast():
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "slmray.recommend", "--help"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0 and "--tokens-per-param" in done.stdout
    assert time.perf_counter() - started < 1.0


def test_the_report_plans_a_run_per_model(sweeps):
    from slmray.analysis.costs import add_cost_metrics

    decided = decision.decisions(add_cost_metrics(sweeps))
    parts = {title: (text, tables) for title, text, tables in decision.sections(decided)}
    assert list(parts) == [f"Planning a run: {m}, 20 tokens per parameter"
                           for m in ("llama-100m", "llama-500m", "llama-1b", "llama-2b")]
    text, tables = parts["Planning a run: llama-1b, 20 tokens per parameter"]
    assert any(t.startswith("Cheapest: ") for t in text) and any("leave-one-out" in t for t in text)
    assert {"measured", "predicted"} >= set(tables[0][1]["source"]) and len(tables[0][1]) == decision.TOP
    planner = decision.planner_table(decided)  # the report's Decision shows the planner's first option beside its pick
    assert list(planner["model"]) == ["llama-100m", "llama-500m", "llama-1b", "llama-2b"]
    first = decided["llama-1b"].eligible.iloc[0]
    row = planner.set_index("model").loc["llama-1b"]
    assert row["planner's pick"].startswith(f"{first['gpu_type']} x{first['num_gpus']} ") and row["source"] == first["source"]
    assert row["run $"] == f"${first['usd']:,.0f}" and (row["interval"] != "-") == (first["source"] == "predicted")
    measured = decided["llama-1b"].eligible.query("source == 'measured'").iloc[0]  # a predicted pick says what it beats
    assert row["best measured run"].startswith(f"{measured['gpu_type']} x1 ") and f"${measured['usd']:,.0f}, " in row["best measured run"]


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


PER_DEVICE = ("per_device_batch", "attention", "compile", "precision", "seq_len", "activation_checkpointing",
              "loss_kernel", "backend")


def plan_json(capsys, *argv) -> dict:
    import json

    rc, out, err = run(capsys, *argv, "--json")
    assert rc == 0, err
    return json.loads(out)  # stdout is the JSON alone


def test_the_bar_json_rents_whole_instances_and_no_option_beats_its_measured_gpu(capsys):
    """Issue 24's bar: on the committed one-GPU tables, an AWS H200 x4 option is billed as a
    p5en.48xlarge (8 GPUs), and no predicted multi-GPU option is faster per GPU than the best
    measured one-GPU row of the same GPU type and per-device configuration."""
    from slmray.planning.options import with_row_defaults

    plan = plan_json(capsys, *SWEEPS, "--model", "llama-1b", "llama-100m", "--tokens-per-param", "20", "--prices", "aws")
    assert [m["model"] for m in plan["models"]] == ["llama-1b", "llama-100m"]
    table = with_row_defaults(load_results(SWEEPS))
    ok = table[(table["status"] == "ok") & (table["num_gpus"] == 1)]
    best_one_gpu = ok.groupby(["model", "gpu_type", *PER_DEVICE])["tokens_per_s"].max().to_dict()
    checked = 0
    for m in plan["models"]:
        options = m["options"]
        h200x4 = [o for o in options if o["gpu_type"] == "H200" and o["num_gpus"] == 4 and not o["excluded"]]
        assert h200x4 and all(o["instance_type"] == "p5en.48xlarge" and o["gpus_billed"] == 8 and o["idle_gpus"] == 4
                              and o["instances"] == 1 for o in h200x4)
        for o in h200x4:
            assert o["cost_usd"] == pytest.approx(63.296 * o["hours"])
        for o in options:
            assert {"config", "gpu_type", "num_gpus", "instances", "tokens_per_s", "hours", "gpu_hours", "cost_usd",
                    "source", "low", "high"} <= set(o)
            if o["excluded"] or o["source"] != "predicted":
                assert o["low"] is None and o["high"] is None if o["source"] == "measured" else True
                continue
            assert o["low"] <= o["tokens_per_s"] <= o["high"]
            key = (m["model"], o["gpu_type"], *(o["config"][k] for k in PER_DEVICE))
            if o["num_gpus"] > 1 and key in best_one_gpu:
                assert o["tokens_per_s"] / o["num_gpus"] <= best_one_gpu[key] * (1 + 1e-12), (key, o)
                checked += 1
    assert checked > 50
    pick = plan["models"][0]["pick"]
    assert pick["source"] in ("measured", "predicted") and pick["cost_usd"] > 0 and plan["models"][0]["runner_up"]


def test_json_carries_the_dollar_interval_and_the_best_measured_run_the_text_states(capsys):
    args = (*SWEEPS, "--model", "llama-1b", "--tokens-per-param", "20", "--prices", "aws")
    m = plan_json(capsys, *args)["models"][0]
    text = run(capsys, *args)[1]
    pick, best = m["pick"], m["best_measured"]
    assert pick["source"] == "predicted" and pick["cost_usd_low"] < pick["cost_usd"] < pick["cost_usd_high"]
    assert f"({_money(pick['cost_usd_low'])}-{_money(pick['cost_usd_high'])})" in text
    assert best["option"]["source"] == "measured" and best["option"]["cost_usd_low"] is None
    over = best["option"]["cost_usd"] / pick["cost_usd"] - 1
    assert best["usd_over_pick"] == pytest.approx(over)
    assert f"against this predicted pick {over:+.1%} in dollars, {'inside' if best['inside_pick_interval'] else 'outside'}" in text


def test_per_gpu_pricing_bills_the_gpus_used(capsys):
    plan = plan_json(capsys, *BAR, "--per-gpu-pricing")
    h200x4 = next(o for o in plan["models"][0]["options"] if o["gpu_type"] == "H200" and o["num_gpus"] == 4
                  and not o["excluded"])
    assert h200x4["gpus_billed"] == 4 and h200x4["idle_gpus"] == 0 and h200x4["instances"] == 0
    assert h200x4["cost_usd"] == pytest.approx(4 * 63.296 / 8 * h200x4["hours"])
    assert plan["models"][0]["per_gpu_pricing"] is True


def test_the_decision_comes_first_for_every_model(capsys):
    rc, out, err = run(capsys, *SWEEPS, "--model", "llama-1b", "llama-100m", "--tokens-per-param", "20", "--prices", "aws")
    assert rc == 0, err
    head = out.split("\n\n")[0].splitlines()
    assert head[0] == "Decision:" and head[-1].startswith("Ranked by cost, then time among options within 3% of the best cost")
    for model in ("llama-1b", "llama-100m"):
        line = next(l for l in head if l.startswith(f"{model}: "))
        assert " tokens/s, $" in line and " per billion tokens, $" in line and " for the run (" in line
    assert sum(l.startswith("  Why: $") for l in head) == 2 and sum(l.startswith("  Runner-up: ") for l in head) == 2
    assert sum(l.startswith("  How sure: predicted, ") or l.startswith("  How sure: measured (") for l in head) == 2
    assert out.index("Decision:") < out.index("Assumptions:")
    # the measured ratio behind a pick over a runner-up on another GPU type: the tables' equal settings on one GPU
    from slmray.planning.options import CONFIG, with_row_defaults

    rows = with_row_defaults(load_results(SWEEPS))
    rows = rows[(rows["model"] == "llama-100m") & (rows["status"] == "ok")]
    rates = rows.groupby(["gpu_type", *CONFIG])["tokens_per_s"].median()
    ratio = (rates.xs("H100-80GB") / rates.xs("H200")).dropna()
    why_100m = head[head.index(next(l for l in head if l.startswith("llama-100m: "))) + 1]
    assert why_100m.endswith(f"H100-80GB / H200 tokens/s is {ratio.median():.2f}x (median of {len(ratio)} configurations).")


def test_the_pick_is_the_first_ranked_and_the_runner_up_differs_in_gpu_or_configuration(sweeps):
    from slmray.planning.options import CONFIG
    from slmray.planning.text import runner_up

    d = plan_run(sweeps, "llama-1b", 2e10, PriceBook.load("aws"), default_assumptions(sweeps), objectives=("time", "cost"))
    ranked = d.eligible
    pick = ranked.iloc[0]
    second = runner_up(ranked, pick)
    fastest = ranked["hours"].min()
    assert pick["hours"] <= fastest * 1.03 and pick["usd"] == ranked[ranked["hours"] <= fastest * 1.03]["usd"].min()
    assert second["gpu_type"] != pick["gpu_type"] or any(second[c] != pick[c] for c in CONFIG)


def test_seq_len_filters_and_predicts_where_no_trial_ran(capsys):
    trainer = str(RESULTS / "trainer" / "trainer_throughput_h100.parquet")  # ran seq 1024 and 2048
    plan = plan_json(capsys, trainer, "--model", "pythia-1b", "--tokens", "1e10", "--prices", "aws", "--seq-len", "2048")
    options = plan["models"][0]["options"]
    assert {o["config"]["seq_len"] for o in options} == {2048}
    assert any(o["source"] == "measured" for o in options)
    assert not any("sequence length" in n for n in plan["models"][0]["notes"])
    plan = plan_json(capsys, *SWEEPS, "--model", "llama-1b", "--tokens", "1e10", "--prices", "aws", "--seq-len", "4096")
    m = plan["models"][0]
    assert {o["config"]["seq_len"] for o in m["options"]} == {4096}
    assert {o["source"] for o in m["options"]} == {"predicted"}
    assert any("ran at sequence length 4096" in n for n in m["notes"])


def test_a_model_without_rows_is_planned_from_predictions_and_flagged(capsys):
    rc, out, err = run(capsys, *SWEEPS, "--model", "pythia-160m", "--tokens", "1e9", "--prices", "aws")
    assert rc == 0, err
    assert out.splitlines()[1].startswith("pythia-160m (predicted only: no trial of it): ")
    assert "pythia-160m has no trial in the tables: every option is predicted" in out
    plan = plan_json(capsys, *SWEEPS, "--model", "pythia-160m", "--tokens", "1e9", "--prices", "aws")
    m = plan["models"][0]
    assert m["predicted_only"] is True and m["model_given"] == "pythia-160m"
    assert {o["source"] for o in m["options"]} == {"predicted"} and m["pick"]["low"] < m["pick"]["tokens_per_s"]


def test_a_missed_budget_names_the_levers_with_their_effects(sweeps):
    from slmray.planning.text import lever_lines

    book = PriceBook.load("aws")
    d = plan_run(sweeps, "llama-1b", 2e10, book, default_assumptions(sweeps), budget_usd=300, deadline_h=100)
    assert d.eligible.empty
    found = {f["lever"]: f for f in d.levers["budget"]}
    assert set(found) == {"compile", "spot", "GPU type", "fewer tokens"}
    fewer = found["fewer tokens"]
    assert fewer["meets"] and fewer["usd"] == pytest.approx(300) and fewer["tokens"] < 2e10
    nearest = d.options.loc[fewer["option_index"]]
    assert nearest["usd"] == d.options.loc[d.options["excluded"].str.startswith("over the"), "usd"].min()
    assert found["compile"]["source"] == "predicted" and found["compile"]["tokens_per_s"] > nearest["tokens_per_s"]
    spot = [f for f in d.levers["budget"] if f["lever"] == "spot"]
    assert spot[0]["change"] == "no aws-spot price for H100-80GB" and nearest["gpu_type"] == "H100-80GB"
    # aws-spot prices the p5en.48xlarge only: the H200's cheapest option at its spot price, which meets the budget
    h200 = d.options[(d.options["gpu_type"] == "H200") & d.options["excluded"].str.startswith("over the")]
    cheapest_h200 = h200.sort_values(["usd", "hours"]).iloc[0]
    assert spot[1]["change"].startswith(f"{option_label(cheapest_h200)} at aws-spot: p5en.48xlarge, 8 GPUs at $27.20/h")
    assert spot[1]["usd"] == pytest.approx(cheapest_h200["usd"] * 27.1988 / 63.296) and spot[1]["meets"]
    assert found["GPU type"]["change"].split()[0] != nearest["gpu_type"]
    lines = lever_lines(d)
    assert lines[0].startswith("Levers for the budget, on ") and any("meets it" in l for l in lines)


def test_free_machines_compare_without_dividing_by_zero(capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        rc, out, err = run(capsys, SWEEPS[0], "--model", "llama-1b", "--tokens", "1e9", "--prices", "local")
    assert rc == 0, err
    why = next(l for l in out.splitlines() if l.startswith("  Why: "))
    assert why.startswith("  Why: $0.00 vs $0.00 (-) and ") and "idle GPUs" not in why


def test_a_config_json_the_tables_never_ran_is_planned_predicted_and_named_by_its_path(capsys, tmp_path):
    import json

    folder = tmp_path / "my-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "llama", "hidden_size": 1024, "intermediate_size": 2816, "num_hidden_layers": 12,
        "num_attention_heads": 16, "vocab_size": 32000, "max_position_embeddings": 2048}))
    plan = plan_json(capsys, *SWEEPS, "--model", str(folder), "--tokens", "1e9", "--prices", "aws")
    m = plan["models"][0]
    assert m["predicted_only"] is True and m["model_given"] == str(folder) and m["model"] != "llama-1b"
    assert {o["source"] for o in m["options"]} == {"predicted"} and m["pick"]["config"]["model"] == m["model"]
    bases = [o["basis"] for o in m["options"] if not o["excluded"]]
    # corrected by the trials' regimes where they span the option's, else uncorrected and saying so
    assert all(b.startswith(("1 GPU predicted x", "1 GPU predicted, uncorrected (outside the regimes")) for b in bases)


def test_recorded_prices_rent_as_the_sweep_priced(sweeps):
    """Tables whose every price names one profile's catalog instance plan at that profile (its instances);
    a price the user gave per GPU stays per GPU, whatever the rows' whole-instance prices."""
    from slmray.catalog.rent import rent
    from slmray.planning.run import recorded_prices

    book = recorded_prices(load_results(SWEEPS))
    assert book.profile == "aws" and rent(book, "H200", 4).instance_type == "p5en.48xlarge"
    mixed = recorded_prices(price_trials(load_results(SWEEPS), PriceBook.load("aws", overrides={"H200": 3.0})))
    assert mixed.profile == "recorded" and mixed.lookup("H200").usd_per_gpu_hour == 3.0
    assert mixed.lookup("H100-80GB").usd_per_gpu_hour == pytest.approx(6.88)  # p5.4xlarge's one GPU


def test_a_price_given_for_one_gpu_type_leaves_the_others_at_their_recorded_prices(capsys):
    """The tables recorded AWS's whole instances; --price H100-80GB=3 re-prices the H100 alone (per GPU),
    the H200 still rents a p5en.48xlarge, never a free GPU."""
    plan = plan_json(capsys, *SWEEPS, "--model", "llama-1b", "--tokens", "1e9", "--price", "H100-80GB=3")
    options = [o for o in plan["models"][0]["options"] if o["usd_per_hour"] is not None]
    h100 = {o["usd_per_hour"] / o["num_gpus"] for o in options if o["gpu_type"] == "H100-80GB"}
    h200 = [o for o in options if o["gpu_type"] == "H200"]
    assert h100 == {3.0} and h200
    assert all(o["usd_per_hour"] == pytest.approx(63.296) for o in h200), {o["usd_per_hour"] for o in h200}


def test_a_missed_deadline_names_the_levers_on_the_fastest(sweeps):
    d = plan_run(sweeps, "llama-1b", 2e10, PriceBook.load("aws"), default_assumptions(sweeps), deadline_h=2)
    found = {f["lever"]: f for f in d.levers["deadline"]}
    assert set(found) == {"compile", "GPU type", "more GPUs", "fewer tokens"}  # spot changes dollars, not hours
    wider = found["more GPUs"]  # in the first plan past --max-gpus 8 with one, its best option on more GPUs that meets it
    assert wider["meets"] and wider["hours"] <= 2 and wider["source"] == "predicted"
    n = int(wider["change"].split()[1].rstrip(":"))
    assert n in (16, 32, 64) and f" x{n} " in wider["change"]
    if n > 16:
        half = plan_run(sweeps, "llama-1b", 2e10, PriceBook.load("aws"), default_assumptions(sweeps), max_gpus=n // 2)
        assert (half.eligible["hours"] > 2).all()
    beyond = plan_run(sweeps, "llama-1b", 2e10, PriceBook.load("aws"), default_assumptions(sweeps), deadline_h=0.01)
    assert "more GPUs" not in {f["lever"] for f in beyond.levers["deadline"]}  # not even 64 GPUs: no such lever
    odd = plan_run(sweeps, "llama-1b", 2e10, PriceBook.load("aws"), default_assumptions(sweeps), max_gpus=40, deadline_h=1.5)
    assert any(f["change"].startswith("--max-gpus 64: ") for f in odd.levers["deadline"])  # 40 -> 64, not 80 and out
    other = pd.concat([sweeps, sweeps[sweeps["gpu_type"] == "H100-80GB"].assign(gpu_type="NVIDIA B200")], ignore_index=True)
    d = plan_run(other, "llama-1b", 2e10, PriceBook.load("aws"), default_assumptions(other), deadline_h=2)
    assert "more GPUs" in {f["lever"] for f in d.levers["deadline"]}  # the tables' own GPU types, torch's names too
    nearest = d.options.loc[found["fewer tokens"]["option_index"]]
    assert nearest["hours"] == d.options.loc[d.options["excluded"].str.startswith("over the deadline"), "hours"].min()
    assert found["fewer tokens"]["hours"] == pytest.approx(2) and found["fewer tokens"]["meets"]
    assert found["fewer tokens"]["tokens"] == pytest.approx(2e10 * 2 / nearest["hours"], rel=0.02)


def test_a_predicted_pick_names_the_best_measured_option_and_the_margin(sweeps):
    from slmray.planning.text import best_measured_line, decision_lines

    d = plan_run(sweeps, "llama-1b", 2e10, PriceBook.load("aws"), default_assumptions(sweeps))
    ranked = d.eligible
    pick = ranked.iloc[0]
    assert pick["source"] == "predicted"  # the committed tables measure one GPU; the pick here is predicted
    best = ranked[ranked["source"] == "measured"].iloc[0]
    line = best_measured_line(d, pick, ranked)[0]
    assert line in decision_lines(d)
    assert f"{best['usd'] / pick['usd'] - 1:+.1%} in dollars" in line
    inside = d.usd_at(pick, pick["tokens_per_s_high"]) <= best["usd"] <= d.usd_at(pick, pick["tokens_per_s_low"])
    assert ("inside its" in line) == inside
    assert best_measured_line(d, best, ranked) == []  # a measured pick needs no such line


def test_json_carries_the_priced_alternative_where_the_measured_pick_has_no_price(capsys):
    """At the paper's prices (no H200) llama-2b ran only on the H200: the JSON names that measured
    option and the text's priced alternative (a priced GPU type, like for like, its dollars inside
    their interval, what differs); llama-1b, measured on the priced H100, has none."""
    plan = plan_json(capsys, *SWEEPS, "--model", "llama-2b", "llama-1b", "--tokens-per-param", "20", "--prices", "paper")
    two_b, one_b = plan["models"]
    assert one_b["unpriced_measured"] is None
    found = two_b["unpriced_measured"]
    assert found["measured"]["gpu_type"] == "H200" and found["measured"]["source"] == "measured"
    assert found["measured"]["cost_usd"] is None and found["no_alternative"] is None
    alt = found["alternative"]
    assert alt["gpu_type"] == "H100-80GB" and alt["source"] == "predicted" and alt["excluded"] is None
    assert alt["cost_usd_low"] < alt["cost_usd"] < alt["cost_usd_high"]
    assert "H100-80GB not H200" in alt["differs"]
    like = ("seq_len", "attention", "compile", "precision", "activation_checkpointing")
    assert all(alt["config"][k] == found["measured"]["config"][k] for k in like)
    text = run(capsys, *SWEEPS, "--model", "llama-2b", "--tokens-per-param", "20", "--prices", "paper")[1]
    assert f"{_money(alt['cost_usd'])} for the run ({_money(alt['cost_usd_low'])}-{_money(alt['cost_usd_high'])})" in text
    assert "paper prices. The paper profile's prices are relative (A100-40GB GPU-hour = 1), so '$' reads" in text
    aws = run(capsys, *SWEEPS, "--model", "llama-2b", "--tokens-per-param", "20", "--prices", "aws")[1]
    assert "relative" not in aws


def test_a_one_gpu_option_anchored_on_another_strategy_takes_the_predicted_difference(capsys):
    """The trainer alone (strategy single) measured compiled SDPA llama-100m at batch 64; a sweep's
    one-GPU DDP trial of it would run at `Calibration.parallel_compiled_fused_rate` of that: the DDP option
    is anchored on the measured rate times that, and its label says so."""
    from slmray.predict.estimate import CALIBRATION

    trainer = str(RESULTS / "trainer" / "trainer_throughput_h100.parquet")
    plan = plan_json(capsys, trainer, SWEEPS[1], "--model", "llama-100m", "--tokens", "1e9", "--prices", "aws")
    one = {o["config"]["strategy"]: o for o in plan["models"][0]["options"] if o["num_gpus"] == 1 and o["config"]["compile"]
           and o["config"]["attention"] == "sdpa" and o["config"]["per_device_batch"] == 64}
    assert one["single"]["source"] == "measured" and one["ddp"]["source"] == "predicted"
    assert one["ddp"]["one_gpu_tokens_per_s"] == one["single"]["tokens_per_s"]
    assert one["ddp"]["tokens_per_s"] == pytest.approx(one["single"]["tokens_per_s"] * CALIBRATION.parallel_compiled_fused_rate)
    rate = f"x{CALIBRATION.parallel_compiled_fused_rate:.3f}"
    assert one["ddp"]["basis"] == f"same per-GPU configuration, 1 GPU (1 trial) as single, {rate} as ddp predicted"


def test_an_option_anchored_on_a_ddp_trial_takes_the_strategies_ratio_uncapped_and_fsdp_no_free_speed(capsys):
    """The compiled grid's one-GPU DDP trial anchors the trainer-alone option (strategy single) at its
    rate over `parallel_compiled_fused_rate`: faster, for a measured cause, not capped at the anchor;
    FSDP on 8 GPUs takes the same wrapper rate, so it is not predicted above DDP, nor above its own
    one-GPU rate by the sharded optimizer step alone."""
    from slmray.predict.estimate import CALIBRATION

    trainer = str(RESULTS / "trainer" / "trainer_throughput_h100.parquet")
    grid = str(RESULTS / "small_batch" / "h100x1_small_batch_compiled.parquet")
    plan = plan_json(capsys, trainer, grid, "--model", "llama-100m", "--tokens", "1e9", "--prices", "aws")
    opts = {(o["num_gpus"], o["config"]["strategy"]): o for o in plan["models"][0]["options"]
            if o["config"]["compile"] and o["config"]["attention"] == "sdpa" and o["config"]["per_device_batch"] == 16}
    ddp, single = opts[(1, "ddp")], opts[(1, "single")]
    assert ddp["source"] == "measured" and single["source"] == "predicted"
    assert single["tokens_per_s"] == pytest.approx(ddp["tokens_per_s"] / CALIBRATION.parallel_compiled_fused_rate, rel=1e-3)
    assert f"as ddp, x{1 / CALIBRATION.parallel_compiled_fused_rate:.3f} as single predicted" in single["basis"]
    for strategy in ("fsdp", "fsdp_grad_op"):
        fsdp = opts[(8, strategy)]
        assert fsdp["tokens_per_s"] <= opts[(8, "ddp")]["tokens_per_s"] and fsdp["scaling"] < 1
        assert "capped" not in fsdp["basis"]


def test_every_predicted_interval_holds_its_point_and_an_anchor_on_another_strategy_keeps_its_upper_bound(capsys):
    """Anchored on a trial, the N-GPU interval is the part the anchor did not measure: never inverted
    (a host-bound one-GPU estimate has the wider interval), and on a trial of another strategy the
    strategies' ratio is a prediction too, so the upper bound is not squeezed to it."""
    trainer = str(RESULTS / "trainer" / "trainer_throughput_h100.parquet")
    grid = str(RESULTS / "small_batch" / "h100x1_small_batch_compiled.parquet")
    uncompiled = str(RESULTS / "small_batch" / "h100x1_small_batch.parquet")  # batch 4: host-bound on one GPU
    for tables, model in (([uncompiled], "llama-100m"), ([uncompiled], "pythia-410m"), ([trainer, grid], "llama-100m"),
                          ([trainer, grid], "llama-500m")):
        plan = plan_json(capsys, *tables, "--model", model, "--tokens", "1e9", "--prices", "aws", "--max-gpus", "8")
        predicted = [o for o in plan["models"][0]["options"] if o["source"] == "predicted" and not o["excluded"]]
        assert predicted and all(o["low"] <= o["tokens_per_s"] <= o["high"] for o in predicted)
    on_single = [o for o in predicted if o["num_gpus"] == 8 and " as single, x0." in o["basis"]]
    assert on_single and all(o["high"] / o["tokens_per_s"] > 1.05 for o in on_single)


def test_a_machine_of_three_gpus_is_planned_on_three():
    from slmray.planning.options import gpu_counts

    assert gpu_counts(3, []) == [1, 2, 3]  # it planned 1 and 2 alone
    assert gpu_counts(8, [6, 16]) == [1, 2, 4, 6, 8]
