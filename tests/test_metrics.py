import pytest
import torch

from slmray.catalog.gpus import canonical_gpu, spec_for
from slmray.train.config import ModelConfig
from slmray.train.metrics import StepTimer, flops_per_token, median_and_iqr, mfu, peak_flops, tokens_per_second
from slmray.train.presets import PRESETS


def test_flops_per_token_by_hand():
    m = ModelConfig(name="m", family="llama", n_layer=2, d_model=8, n_head=2, d_mlp=16, vocab_size=10, max_seq_len=32)
    n = 2 * (4 * 64 + 3 * 8 * 16 + 16) + 8 + 2 * 10 * 8  # 1472
    assert m.num_params == n
    assert flops_per_token(m, 32) == 6 * n + 12 * 2 * 8 * 32
    assert flops_per_token(m, 32, include_embeddings=False) == 6 * (n - 160) + 12 * 2 * 8 * 32


def test_mfu_on_h100_by_hand():
    # pythia-1b at seq 2048: 6 * 1,011,781,632 + 12 * 16 * 2048 * 2048 = 6,876,043,837,440 FLOPs per token
    fpt = flops_per_token(PRESETS["pythia-1b"], 2048)
    assert fpt == 6 * 1_011_781_632 + 12 * 16 * 2048 * 2048
    # 80,000 tokens/s on one H100 SXM (989.4 TFLOP/s dense BF16)
    assert mfu(80_000, fpt, "H100-80GB") == pytest.approx(80_000 * fpt / 989.4e12)
    assert mfu(80_000, fpt, "NVIDIA H100 80GB HBM3") == mfu(80_000, fpt, "H100-80GB")
    assert mfu(1000, fpt, "cpu") is None


def test_gpu_names_from_torch():
    assert canonical_gpu("NVIDIA H100 80GB HBM3") == "H100-80GB"
    assert canonical_gpu("NVIDIA H100 PCIe") == "H100-PCIe"
    assert canonical_gpu("NVIDIA H200") == "H200"
    assert canonical_gpu("NVIDIA A100-SXM4-40GB") == "A100-40GB"
    assert canonical_gpu("NVIDIA A100-SXM4-80GB") == "A100-80GB"
    assert canonical_gpu("NVIDIA A10G") == "A10G"
    assert canonical_gpu("NVIDIA L4") == "L4"
    assert canonical_gpu("NVIDIA L40S") == "L40S"
    assert canonical_gpu("Some Future GPU") == "Some Future GPU"
    assert spec_for("L40S").peak_bf16_tflops == pytest.approx(362.05)
    assert peak_flops("A100-40GB") == 312e12
    for name in ("A10G", "L4", "L40S", "A100-40GB", "A100-80GB", "H100-80GB", "H200"):
        assert spec_for(name).source


def test_tokens_per_second_and_stats():
    assert tokens_per_second(1000, 0.5) == 2000
    assert median_and_iqr([1.0, 2.0, 3.0, 4.0, 100.0]) == (3.0, 2.0)
    assert median_and_iqr([5.0]) == (5.0, 0.0)


def test_step_timer_on_cpu_measures_the_gaps():
    import time

    timer = StepTimer(torch.device("cpu"))
    timer.mark()
    for delay in (0.02, 0.05):
        time.sleep(delay)
        timer.mark()
    d = timer.durations()
    assert len(d) == 2 and d[0] >= 0.02 and d[1] >= 0.05 and d[1] > d[0]
