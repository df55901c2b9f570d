"""Precision as a trainer option and a swept dimension: which Linear layers FP8 takes, the FP8
loop on the CPU (torchao's emulation), and every refusal, each one line naming `precision`.

The FP8 GEMMs themselves need FP8 tensor cores: they are measured on the GPU machine
(benchmarks/results/precision/sweep_h200x1_precision.*), not here.
"""

import logging
import subprocess
import sys

import pytest
import torch

from slmray.errors import ConfigError
from slmray.sweep.capacity import Capacity
from slmray.sweep.space import SearchSpace, SpaceError, Trial, load_space
from slmray.train import fp8, parallel
from slmray.train.config import TrainConfig, config_label
from slmray.train.metrics import mfu
from slmray.train.model import Transformer
from slmray.train.presets import get_model

from tests.conftest import call_main

torchao = pytest.importorskip("torchao", reason="FP8 conversion needs torchao (the test extra has it)")


@pytest.mark.parametrize(
    "model, converted, linears",
    [
        ("llama-1b", 19 * 4, 19 * 4 + 1),  # every block Linear; the output head stays bf16
        ("llama-500m", 15 * 2, 15 * 4 + 1),  # MLP width 4,147: gate_up (8,294) and down stay bf16
        ("llama-2b", 24 * 2, 24 * 4 + 1),  # MLP width 6,739
        ("pythia-410m", 24 * 4, 24 * 4 + 1),
        ("tiny", 2 * 2, 2 * 4 + 1),  # MLP width 172
        ("smollm2-360m", 32 * 4, 32 * 4 + 1),  # GQA's narrower qkv (960 -> 1,600); the tied head stays bf16
        ("qwen2.5-0.5b", 24 * 4, 24 * 4 + 1),  # with q/k/v biases (torchao keeps them in high precision)
    ],
)
def test_fp8_takes_the_block_linears_whose_dimensions_divide_by_16(model, converted, linears):
    with torch.device("meta"):  # shapes only: no memory, no GPU
        m = Transformer(get_model(model), "sdpa")
    assert sum(isinstance(x, torch.nn.Linear) for x in m.modules()) == linears
    assert fp8.convert(m, "fp8", fsdp=False) == converted == fp8.count(m)
    assert type(m.head.lm_head) is torch.nn.Linear


def test_bf16_converts_nothing():
    m = Transformer(get_model("tiny"), "sdpa")
    assert fp8.convert(m, "bf16", fsdp=False) == 0 and fp8.count(m) == 0


@pytest.mark.dist
@pytest.mark.parametrize("strategy, precision, hook, changes", [
    ("single", "fp8", False, {}), ("fsdp", "fp8", True, {}), ("fsdp", "fp8-rowwise", False, {}),
    ("fsdp", "fp8", True, {"n_kv_head": 2, "tie_embeddings": True, "qkv_bias": True, "qk_norm": True}),
], ids=["single", "fsdp", "fsdp-rowwise", "fsdp-gqa-tied"])
def test_fp8_loop_through_parallelize_learns_on_cpu(strategy, precision, hook, changes):
    """The conversion, activation checkpointing and FSDP2 in parallelize's order, FP8 emulated.
    FSDP with tensorwise scaling all-gathers FP8 weights, whose scales the optimizer hook
    precomputes; rowwise has no FP8 all-gather."""
    env = parallel.setup("cpu", strategy)
    try:
        torch.manual_seed(0)
        model = Transformer(get_model("tiny", **changes), "sdpa")
        model, _ = parallel.parallelize(model, strategy, env, compile=False, activation_checkpointing=True,
                                        precision=precision, emulate_fp8=True)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
        assert fp8.count(model) == 4
        assert fp8.register_optimizer_hook(model, optimizer) is hook
        x = torch.randint(0, 256, (4, 32), generator=torch.Generator().manual_seed(0))
        losses = []
        for _ in range(4):
            loss = model(x, x)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        assert losses[-1] < losses[0]
    finally:
        parallel.teardown(env)


def test_precision_on_the_cpu_is_refused_before_anything_starts(monkeypatch):
    with pytest.raises(ConfigError, match="^precision: fp8 needs a GPU with FP8 tensor cores .*device is cpu$"):
        TrainConfig(model=get_model("tiny"), seq_len=64, precision="fp8", device="cpu")
    with pytest.raises(ConfigError, match="^precision: 'fp16' is not one of bf16, fp8, fp8-rowwise$"):
        TrainConfig(model=get_model("tiny"), seq_len=64, precision="fp16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="^precision: fp8-rowwise needs a GPU .* this run is on the CPU$"):
        fp8.check_supported("fp8-rowwise", "auto")
    fp8.check_supported("bf16", "auto")


def test_gpu_without_fp8_or_without_torchao_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "NVIDIA A100-SXM4-80GB")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (8, 0))
    with pytest.raises(ConfigError, match=r"^precision: fp8 needs FP8 tensor cores .*NVIDIA A100-SXM4-80GB has 8\.0$"):
        fp8.check_supported("fp8", "cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (9, 0))
    fp8.check_supported("fp8", "cuda")
    monkeypatch.setattr(fp8, "torchao_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^precision: fp8 needs torchao: pip install 'slmray\[fp8\]'$"):
        fp8.check_supported("fp8", "cuda")


@pytest.mark.parametrize("args", [["--precision", "fp8", "--device", "cpu"],
                                  ["--precision", "fp8-rowwise", "--device", "cpu", "--model", "llama-1b"]])
def test_cli_fp8_on_cpu_exits_2_with_one_line_naming_precision(capsys, args):
    from slmray.train.cli import main

    out = call_main(capsys, main, *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().startswith("error: precision: fp8"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not out.stdout


def test_cli_bf16_runs_and_reports_no_fp8_layers(cli):
    import json

    out = cli("-m", "slmray.train", "--device", "cpu", "--seq-len", "32", "--steps", "1", "--warmup-steps", "0",
              "--precision", "bf16", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["config"]["precision"] == "bf16"
    assert got["result"]["fp8_linear_layers"] == 0 and got["result"]["mfu_fp8"] is None


def test_mfu_against_the_bf16_and_the_fp8_peak():
    assert mfu(1000.0, 989.4e9, "H200") == pytest.approx(1.0)
    assert mfu(1000.0, 1979e9, "H200", dtype="fp8") == pytest.approx(1.0)
    assert mfu(1000.0, 1e9, "A100-80GB", dtype="fp8") is None  # no FP8 tensor cores
    assert mfu(1000.0, 1e9, "cpu", dtype="fp8") is None


SPACE = dict(model=["tiny"], per_device_batch=[2], num_gpus=[1], attention=["sdpa"], strategy=["single"], seq_len=32)


def test_precision_checkpointing_and_seq_len_are_swept():
    space = SearchSpace(**{**SPACE, "seq_len": [32, 64], "activation_checkpointing": [False, True],
                           "precision": ["bf16", "fp8", "fp8-rowwise"], "gpu_type": ["H200"]})
    trials = space.trials()
    assert len(trials) == 2 * 2 * 3 and len(set(trials)) == len(trials)
    assert [t.precision for t in trials[:3]] == ["bf16", "fp8", "fp8-rowwise"]  # like with like, side by side
    cfg = space.train_config(trials[-1], device="cuda")
    assert (cfg.seq_len, cfg.activation_checkpointing, cfg.precision) == (64, True, "fp8-rowwise")
    assert Trial.from_config(trials[-1].as_config()) == trials[-1]
    assert config_label(trials[-1].as_config()) == "tiny H200 x1 single sdpa b2 fp8-rowwise +AC seq 64"
    assert space.choices()["precision"] == ["bf16", "fp8", "fp8-rowwise"]


def test_a_configuration_from_before_these_were_swept_takes_the_space_values():
    space = SearchSpace(**{**SPACE, "activation_checkpointing": True})
    old = {k: v for k, v in space.trials()[0].as_config().items()
           if k not in ("seq_len", "activation_checkpointing", "precision")}
    cfg = space.train_config(Trial.from_config(old), device="cpu")
    assert (cfg.seq_len, cfg.activation_checkpointing, cfg.precision) == (32, True, "bf16")


def test_batch_per_model():
    space = SearchSpace(**{**SPACE, "model": ["tiny", "tiny-neox"], "per_device_batch": {"tiny": [2, 4], "tiny-neox": [8]}})
    assert [(t.model, t.per_device_batch) for t in space.trials()] == [("tiny", 2), ("tiny", 4), ("tiny-neox", 8)]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"precision": ["bf16", "fp16"]}, "precision: 'fp16' is not one of bf16, fp8, fp8-rowwise"),
        ({"precision": []}, "precision: must list at least one value"),
        ({"precision": ["fp8"], "gpu_type": ["A100-80GB", "H100-80GB"]}, "precision: fp8 needs FP8 tensor cores, which A100-80GB lacks"),
        ({"precision": "fp8", "device": "cpu"}, "precision: fp8 needs GPUs with FP8 tensor cores; device is cpu"),
        ({"activation_checkpointing": [False, "yes"]}, "activation_checkpointing: 'yes' is not true or false"),
        ({"seq_len": [32, 32]}, "seq_len: lists a value twice"),
        ({"seq_len": [32, 4096]}, "seq_len: 4096 is above tiny's limit of 256"),
        ({"per_device_batch": {"tiny": [2], "llama-1b": [4]}}, "per_device_batch: 'llama-1b' is not one of the space's models"),
        ({"per_device_batch": {"tiny": [0]}}, "per_device_batch: must be a positive integer, got 0"),
        ({"per_device_batch": {"tiny": [2]}, "search": "optuna"}, "per_device_batch: a batch list per model needs search='grid'"),
    ],
)
def test_bad_swept_values_name_the_field(changes, message):
    with pytest.raises(ConfigError) as err:
        SearchSpace(**{**SPACE, **changes})
    assert str(err.value).startswith(message), str(err.value)


def test_space_without_torchao_refuses_fp8(monkeypatch, tmp_path):
    monkeypatch.setattr(fp8, "torchao_available", lambda: False)
    path = tmp_path / "space.py"
    path.write_text("from slmray.sweep.space import SearchSpace\nSPACE = SearchSpace(model=['tiny'], per_device_batch=[2], "
                    "num_gpus=[1], attention=['sdpa'], strategy=['single'], seq_len=32, precision=['bf16', 'fp8'])\n")
    with pytest.raises(SpaceError, match=r": precision: fp8 needs torchao \(pip install 'slmray\[fp8\]'\)$"):
        load_space(str(path))


def test_capacity_refuses_fp8_where_no_gpu_has_it():
    space = SearchSpace(**{**SPACE, "precision": ["bf16", "fp8"]})
    with pytest.raises(ConfigError, match="^precision: fp8 needs GPUs with FP8 tensor cores and this machine has none$"):
        Capacity(use_gpu=False).check(space)
    with pytest.raises(ConfigError, match="^precision: fp8 needs FP8 tensor cores, which A10G in the cluster lacks$"):
        Capacity(use_gpu=True, gpus={"A10G": 4}, gpus_per_node={"A10G": 4}, where="the cluster").check(space)
    Capacity(use_gpu=True, gpus={"H200": 1}, gpus_per_node={"H200": 1}).check(space)


def _cfg(model, batch, precision="bf16", **kw):
    return TrainConfig(model=get_model(model), strategy="single", per_device_batch=batch, compile=True,
                       precision=precision, **kw)


def test_estimate_prices_the_fp8_gemms_casts_and_smaller_activations():
    from slmray.predict.estimate import estimate, step_work

    bf16, fp8_, rowwise = (estimate(_cfg("llama-1b", 32, p), "H200", 1) for p in ("bf16", "fp8", "fp8-rowwise"))
    assert "fp8_matmul" not in bf16.time_s and fp8_.time_s["fp8_matmul"] > 0 and fp8_.time_s["fp8_casts"] > 0
    assert fp8_.tokens_per_s > bf16.tokens_per_s and rowwise.tokens_per_s < fp8_.tokens_per_s
    assert fp8_.peak_mem_gb < bf16.peak_mem_gb and rowwise.peak_mem_gb == pytest.approx(fp8_.peak_mem_gb)
    # llama-500m: only qkv and proj divide by 16, so most of its GEMM FLOPs stay bf16
    work = step_work(_cfg("llama-500m", 8, "fp8"), 1)
    assert 0 < work.fp8_matmul_flops < work.matmul_flops + work.misaligned_matmul_flops
    assert step_work(_cfg("llama-500m", 8), 1).fp8_matmul_flops == 0
    # rowwise casts each operand along both axes
    assert step_work(_cfg("llama-1b", 8, "fp8-rowwise"), 1).fp8_cast_elements == pytest.approx(
        2 * step_work(_cfg("llama-1b", 8, "fp8"), 1).fp8_cast_elements)


def test_estimate_refuses_fp8_on_a_gpu_without_it():
    from slmray.predict.estimate import estimate

    with pytest.raises(ValueError, match="^precision: A100-80GB has no FP8 tensor cores"):
        estimate(_cfg("llama-1b", 8, "fp8"), "A100-80GB", 1)


def test_estimate_knows_checkpointing_and_sequence_length():
    from slmray.predict.estimate import estimate

    off, on = (estimate(_cfg("llama-2b", 32, attention="eager", activation_checkpointing=ac), "H200", 1)
               for ac in (False, True))
    assert off.oom and not on.oom and on.tokens_per_s < off.tokens_per_s  # memory for recompute
    short, long = estimate(_cfg("llama-1b", 32), "H200", 1), estimate(_cfg("llama-1b", 16, seq_len=2048), "H200", 1)
    assert long.time_s["attention"] > short.time_s["attention"] and long.tokens_per_s < short.tokens_per_s


def test_precision_table_compares_like_with_like():
    """On the committed H200 sweep: a row per configuration with FP8 trials, the batch held fixed;
    tables without FP8 (or from before the precision column) have none."""
    import pandas as pd

    from slmray.analysis.findings import precision_effect
    from slmray.results.table import read_tables

    from analysis_fixtures import H200_SWEEP, RESULTS

    df = read_tables([str(RESULTS / "precision" / f"sweep_h200x1_{n}.parquet") for n in ("precision", "checkpointing", "seq_len")])
    table = precision_effect(df.to_pandas())
    one_b = table[(table["model"] == "llama-1b") & (table["seq_len"] == 1024)].iloc[0]
    assert one_b["per_device_batch"] == 32 and one_b["fp8 / bf16"] >= 1.10  # the Bar, from the table
    assert one_b["GiB fp8"] < one_b["GiB bf16"]
    assert not table["fp8"].isna().any()  # checkpointing rows run in bf16 alone are not listed
    assert precision_effect(read_tables([str(H200_SWEEP)]).to_pandas()).empty
    assert precision_effect(pd.DataFrame({"model": ["tiny"], "tokens_per_s": [1.0]})).empty


def test_estimate_counts_fsdp_fp8_all_gather_as_one_byte_weights():
    from slmray.predict.estimate import estimate

    def fsdp(precision):
        cfg = TrainConfig(model=get_model("llama-1b"), strategy="fsdp", per_device_batch=8, compile=True, precision=precision)
        return estimate(cfg, "H100-80GB", 16, gpus_per_node=8)

    bf16, tensorwise, rowwise = fsdp("bf16"), fsdp("fp8"), fsdp("fp8-rowwise")
    assert tensorwise.memory_gb["weight_copies"] < rowwise.memory_gb["weight_copies"] == bf16.memory_gb["weight_copies"]
    assert tensorwise.time_s["communication"] < rowwise.time_s["communication"]


def test_torchao_import_noise_is_held_back_and_the_levels_restored(caplog):
    caplog.set_level(logging.WARNING)
    torchao_log = logging.getLogger("torchao")
    with fp8.quiet_torchao_import():
        torchao_log.warning("an extension built for another torch")
        torchao_log.error("a real failure")
    torchao_log.warning("after the import")
    assert [r.getMessage() for r in caplog.records] == ["a real failure", "after the import"]
    assert all(logging.getLogger(name).level == logging.NOTSET for name in fp8.IMPORT_NOISE)


@pytest.mark.subprocess
@pytest.mark.skipif(not fp8.torchao_available(), reason="without torchao there is no import to quieten")
def test_the_transformers_backend_starts_without_torchao_import_noise():
    run = subprocess.run(
        [sys.executable, "-m", "slmray.train", "--model", "tiny", "--backend", "transformers", "--steps", "1",
         "--warmup-steps", "0", "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr
    output = run.stdout + run.stderr
    assert "tokens/s" in output
    assert "Failed to load" not in output and "register_constant" not in output, output
