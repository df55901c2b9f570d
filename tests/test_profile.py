"""The GPU profile: its shape ladder, its table format and loader, the op counts the estimator
uses, and the estimator's small-problem terms with and without a profile (all on the CPU)."""

import dataclasses

import pytest

from slmray.catalog.gpus import spec_for
from slmray.catalog.profiles import CsvError, Measurement, format_profile, parse_profile, profile_for
from slmray.predict import kernels
from slmray.predict.estimate import CALIBRATION, compute_time_s, estimate, step_work
from slmray.predict.profile import (
    QUICK_MODELS,
    QUICK_TOKENS,
    TOKENS,
    attention_ladder,
    count_block_ops,
    gemm_ladder,
)
from slmray.train.config import TrainConfig
from slmray.train.presets import PRESETS

HEADER = {"gpu_type": "H100-80GB", "device": "NVIDIA H100 80GB HBM3", "date": "2026-12-05T18:31:13Z",
          "driver": "580.159.04", "torch": "2.11.0+cu130", "cuda": "13.0", "sms": "132"}


def test_gemm_ladder_has_each_linear_forward_and_both_gradients_at_every_step_size():
    ladder = gemm_ladder(["llama-100m"])
    assert len(ladder) == len(set(ladder)) and ladder == sorted(ladder)
    for t in TOKENS:  # llama-100m's qkv: 864 -> 2592
        assert {(t, 2592, 864, False), (t, 864, 2592, False), (2592, 864, t, True)} <= set(ladder)
    assert (1024, 32000, 864, False) in ladder  # the head
    assert not any(32000 in shape for shape in gemm_ladder(["llama-100m"], blocks_only=True))
    quick = gemm_ladder(QUICK_MODELS, QUICK_TOKENS)
    assert set(quick) < set(gemm_ladder()) and {m for m, n, k, _ in quick if n == 2592} == set(QUICK_TOKENS)


def test_attention_ladder_covers_the_presets_head_dims_at_both_sequence_lengths():
    ladder = attention_ladder()
    assert {hd for _, _, hd in ladder} == {m.head_dim for name, m in PRESETS.items() if not name.startswith("tiny")}
    assert {t for _, t, _ in ladder} == {1024, 2048}


def _profile(**extra_rows) -> bytes:
    rows = [Measurement("gemm", "bf16", m, 2592, 864, 1e-5 * m / 1024) for m in (1024, 4096)]
    rows += [Measurement("gemm_wgrad", "bf16", 2592, 864, k, 2e-5 * k / 1024) for k in (1024, 4096)]
    rows += [Measurement("attention", "sdpa", bh, 1024, 96, 1e-4 * bh / 16) for bh in (16, 64)]
    rows += [Measurement("copy", "-", 1 << 30, 0, 0, 8e-4), Measurement("kernel", "-", 200, 0, 0, 3e-6),
             Measurement("host_op", "llama-sdpa", 150, 80, 0, 2e-5), Measurement("compiled_call", "-", 0, 0, 0, 5e-4),
             Measurement("compiled_block", "llama-sdpa", 0, 0, 0, 1.7e-3)]
    return format_profile(HEADER, rows).encode()


def test_profile_round_trips_and_interpolates():
    p = parse_profile(_profile(), "H100-80GB.csv")
    assert p.gpu_type == "H100-80GB" and p.header["driver"] == "580.159.04"
    assert p.gemm_seconds(1024, 2592, 864) == pytest.approx(1e-5)
    assert p.gemm_seconds(2048, 2592, 864) == pytest.approx(2e-5)  # log-log between 1024 and 4096
    assert p.gemm_seconds(65536, 2592, 864) == pytest.approx(4e-5 * 16)  # proportional past the largest
    assert p.gemm_seconds(512, 2592, 864) == pytest.approx(1e-5)  # no faster than the smallest
    assert p.gemm_seconds(2592, 864, 2048, weight_gradient=True) == pytest.approx(4e-5)  # over k
    assert p.gemm_seconds(2592, 864, 2048) is None  # a forward GEMM of that (n, k) was not measured
    assert p.gemm_seconds(1024, 999, 864) is None and p.gemm_seconds(1024, 2592, 864, "fp8") is None
    assert p.attention_seconds(32, 1024, 96) == pytest.approx(2e-4)
    assert p.attention_seconds(32, 2048, 96) is None and p.attention_seconds(32, 1024, 96, "sdpa-cudnn") is None
    assert p.copy_bytes_per_s == pytest.approx(2 * (1 << 30) / 8e-4)
    assert (p.kernel_s, p.host_op_s, p.compiled_call_s, p.compiled_block_s) == (3e-6, 2e-5, 5e-4, 1.7e-3)
    assert p.block_ops("llama", "sdpa") == (150, 80) and p.block_ops("neox", "sdpa") is None


@pytest.mark.parametrize("edit, error", [
    (lambda t: t.replace("# driver: 580.159.04\n", ""), "header: missing driver"),
    (lambda t: t.replace("kernel,-", "kernels,-"), "benchmark: row"),
    (lambda t: t.replace("3e-06", "-3e-06"), "seconds: row"),
    (lambda t: t.replace("3e-06", "x"), "seconds: row"),
    (lambda t: t.replace("# gpu_type: H100-80GB", "# gpu_type H100-80GB"), "is not '# key: value'"),
])
def test_a_malformed_profile_is_one_line_naming_the_file_and_field(edit, error):
    with pytest.raises(CsvError, match=error) as info:
        parse_profile(edit(_profile().decode()).encode(), "H100-80GB.csv")
    assert str(info.value).startswith("H100-80GB.csv: ") and "\n" not in str(info.value)


def test_the_estimators_op_counts_are_what_the_model_dispatches():
    for (family, attention), counts in kernels.BLOCK_OPS.items():
        assert count_block_ops(family, attention) == counts, (family, attention)


def test_tile_waves_and_a_short_k_lower_a_gemms_efficiency():
    full = kernels.shape_efficiency(128 * 132, 128, 1 << 20, 132)
    assert full == pytest.approx(1.0, abs=1e-3)
    assert kernels.shape_efficiency(128 * 133, 128, 1 << 20, 132) == pytest.approx(133 / 264, rel=1e-3)  # a second wave of one tile
    assert kernels.shape_efficiency(65536, 2592, 128, 132) < 0.6 * kernels.shape_efficiency(65536, 2592, 4096, 132)
    assert kernels.shape_efficiency(1024, 864, 864, 132) < kernels.shape_efficiency(65536, 864, 864, 132)
    assert kernels.shape_efficiency(864, 864, 65536, 132) > 0.5  # split-K fills the SMs a weight gradient leaves idle


def test_without_a_profile_the_estimate_says_so_and_uses_the_priors():
    cfg = TrainConfig(model=PRESETS["llama-100m"], attention="sdpa", per_device_batch=8, seq_len=1024)
    if profile_for("A100-80GB") is None:
        assert estimate(cfg, "A100-80GB", 1).profiled is False
    spec = spec_for("A100-80GB")
    times = compute_time_s(step_work(cfg, 1), spec, CALIBRATION, profile=None, step_rate=1.0)  # the priors alone
    launched = kernels.kernels_per_step(cfg.model, "sdpa", False, 1.0, 1, None)
    assert times["kernels"] == pytest.approx(launched * kernels.PRIOR_KERNEL_S)
    assert launched == pytest.approx(9 * kernels.BLOCK_OPS[("llama", "sdpa")][1] + kernels.HEAD_OPS / 2 + kernels.OPTIMIZER_OPS)


def test_a_profile_times_the_gemms_and_attention_it_measured_and_the_host_it_saw():
    cfg = TrainConfig(model=PRESETS["llama-100m"], attention="sdpa", per_device_batch=1, seq_len=1024)
    spec, work = spec_for("H100-80GB"), step_work(cfg, 1)
    profile = parse_profile(_profile(), "H100-80GB.csv")
    # the profile's times as measured: its scales at 1 and no share left to the datasheet path
    cal = dataclasses.replace(CALIBRATION, profiled_matmul_scale=1.0, profiled_attention_scale=1.0, profile_weight=1.0)
    without = compute_time_s(work, spec, cal, profile=None)
    with_profile = compute_time_s(work, spec, cal, profile=profile)
    qkv = [g for g in work.gemms if (g.n, g.k) == (2592, 864) or (g.m, g.n) == (2592, 864)]
    assert len(qkv) == 2
    measured = sum(profile.gemm_seconds(g.m, g.n, g.k, weight_gradient=g.weight_gradient) * g.count for g in qkv)
    others = kernels.matmul_terms(tuple(g for g in work.gemms if g not in qkv), spec.peak_bf16_tflops * 1e12, spec.sms, None)
    assert with_profile["matmul"] == pytest.approx(measured + others["aligned"] / CALIBRATION.matmul_efficiency)
    assert with_profile["attention"] == pytest.approx(9 * profile.attention_seconds(9, 1024, 96))
    assert with_profile["kernels"] == pytest.approx(kernels.kernels_per_step(cfg.model, "sdpa", False, 1.0, 1, profile) * 3e-6)
    host = (9 * 150 + kernels.HEAD_OPS + kernels.OPTIMIZER_OPS) * 2e-5  # the profile's own op count
    device = sum(v for k, v in with_profile.items() if k != "host")
    assert with_profile["host"] == pytest.approx(max(0.0, host - device))
    assert without.keys() == with_profile.keys()


def test_small_steps_are_bound_by_the_host_and_larger_ones_are_not():
    def per_token(batch, compile):
        cfg = TrainConfig(model=PRESETS["pythia-160m"], attention="sdpa", per_device_batch=batch, seq_len=1024, compile=compile)
        e = estimate(cfg, "H200", 1)
        return e.time_s["host"], e.step_time_s / cfg.tokens_per_device_step

    host_small, small = per_token(1, False)
    host_large, large = per_token(64, False)
    assert host_small > 0 and host_large == 0.0
    assert small > 1.5 * large  # the fixed costs of a step spread over 64x fewer tokens
    # compiled, a block is one call for the host, but one that costs milliseconds in a trial
    # (`Calibration.compiled_block_host_s`): the small step is the host's too, and not much faster
    # (measured on an H100: llama-100m at batch 4, 132,315 tokens/s compiled, 131,920 not)
    host_compiled, compiled = per_token(1, True)
    assert host_compiled > 0 and 0.7 * small < compiled
    assert per_token(64, True)[0] == 0.0


def test_profile_command_refuses_without_a_gpu(cli):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here")
    out = cli("-m", "slmray.predict.profile", "--out", "-")
    assert out.returncode == 2
    assert out.stderr.strip().startswith("error: profile: no CUDA GPU here") and len(out.stderr.strip().splitlines()) == 1


def test_the_profile_weight_blends_the_profiled_and_datasheet_times_linearly():
    cfg = TrainConfig(model=PRESETS["llama-100m"], attention="sdpa", per_device_batch=8, seq_len=1024)
    spec, work = spec_for("H100-80GB"), step_work(cfg, 1)
    profile = parse_profile(_profile(), "H100-80GB.csv")  # llama-100m's qkv GEMMs and attention
    at = {w: compute_time_s(work, spec, dataclasses.replace(CALIBRATION, profile_weight=w), profile=profile) for w in (0.0, 0.25, 1.0)}
    sheet = compute_time_s(work, spec, CALIBRATION, profile=None)
    for term in ("matmul", "attention"):
        assert at[0.0][term] == pytest.approx(sheet[term])
        assert at[0.25][term] == pytest.approx(0.75 * at[0.0][term] + 0.25 * at[1.0][term])
    assert at[1.0]["matmul"] != pytest.approx(sheet["matmul"]) and at[1.0]["attention"] != pytest.approx(sheet["attention"])
    # the per-kernel cost stays the profile's whatever the weight
    assert at[0.0]["kernels"] == at[1.0]["kernels"] != sheet["kernels"]


def test_a_compiled_misaligned_gemm_is_timed_at_the_shape_inductor_pads_it_to():
    # llama-500m's MLP width 4147: cuBLAS's slow kernels un-compiled, padded to 4152 compiled
    shapes = {c: {(g.m, g.n, g.k) for g in step_work(TrainConfig(model=PRESETS["llama-500m"], per_device_batch=1,
                                                                  seq_len=1024, compile=c), 1).gemms} for c in (False, True)}
    assert any(4147 in s for s in shapes[False]) and not any(4147 in s for s in shapes[True])
    assert any(4152 in s for s in shapes[True])


def test_a_compiled_block_costs_the_host_the_fit_else_the_profiles_block_else_its_region():
    """`kernels.host_s` compiled: the fitted host time per block where there is one, else the
    profile's compiled block, else (a profile from before that row) its one-kernel region."""
    from slmray.predict import kernels

    with_block = parse_profile(_profile(), "H100-80GB.csv")
    without = parse_profile(_profile().decode().replace("compiled_block,llama-sdpa,0,0,0,0.0017\n", "").encode(), "H100-80GB.csv")
    assert without.compiled_block_s is None
    m = PRESETS["llama-100m"]
    optimizer = kernels.OPTIMIZER_OPS * 2e-5

    def per_block(profile, fitted=None):
        return (kernels.host_s(m, "sdpa", True, 1.0, 1, profile, compiled_block_s=fitted) - optimizer - 5e-4) / m.n_layer

    assert per_block(with_block) == pytest.approx(1.7e-3)
    assert per_block(without) == pytest.approx(5e-4)
    assert per_block(with_block, 3.3e-3) == pytest.approx(3.3e-3)


def test_a_compiled_benchmark_is_timed_after_it_compiles_and_skipped_where_inductor_fails(monkeypatch):
    """`_compiled_host_s` (the compiled call and block rows): three untimed calls first, then the
    median over five rounds; an exception in the untimed calls is one line said and no row."""
    import torch

    from slmray.predict import profile

    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)  # timed on the host: no device here
    calls, said = [], []
    seconds = profile._compiled_host_s("compiled block", lambda: calls.append(1), said.append, calls=4)
    assert len(calls) == 3 + 5 * 4 and seconds > 0 and said == [f"compiled block: {seconds * 1e6:.1f} us forward and backward"]

    def broken():
        raise RuntimeError("InductorError: no Triton\nmore")
    said.clear()
    assert profile._compiled_host_s("compiled block", broken, said.append, calls=4) is None
    assert said == ["compiled block: skipped (RuntimeError: InductorError: no Triton)"]
