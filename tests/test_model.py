"""The model's new switches leave today's models bit-identical, and each switch is what it says."""

import hashlib

import pytest
import torch

from slmray.errors import ConfigError
from slmray.train.config import ModelConfig
from slmray.train.model import Transformer
from slmray.train.presets import PRESETS, get_model

# Taken from the code before n_kv_head / head_dim / tie_embeddings / qkv_bias / qk_norm existed
# (main at d99730e, torch 2.13 CPU) with `_fingerprint` below: the sha256 of the initial
# state_dict (names and bytes, seed 0) and the loss on one fixed batch.
BEFORE = {
    "tiny": ("188432b7fc7e527f58019976b6a31edc83a957ee880075fcbf2bfd8fe64efcb9", 6.272024154663086),
    "tiny-neox": ("23beffdfb3acf5015a793af70390791e8072323e3bb9640a5e3f377f4e18764e", 6.285929203033447),
    "llama-100m-custom": ("a2cd1a9646cf897065b94074b1b9bb026f0428eda105a18f2a4a7839b1e3b169", 7.025176525115967),
}


def _fingerprint(cfg: ModelConfig) -> tuple[str, float]:
    torch.manual_seed(0)
    model = Transformer(cfg, attention="sdpa")
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    idx = torch.randint(0, cfg.vocab_size, (2, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return digest.hexdigest(), model(idx[:, :-1], idx[:, 1:]).item()


@pytest.mark.parametrize("cfg", [get_model("tiny"), get_model("tiny-neox"), get_model("llama-100m", n_layer=1, vocab_size=1000)],
                         ids=lambda c: c.name)
def test_defaults_keep_todays_models_bit_identical(cfg):
    digest, loss = _fingerprint(cfg)
    assert digest == BEFORE[cfg.name][0]
    assert loss == pytest.approx(BEFORE[cfg.name][1], rel=1e-6)  # summation order may differ across CPUs


def test_todays_presets_resolve_to_multi_head_untied():
    for name in ("llama-100m", "llama-1b", "pythia-410m", "tiny"):
        m = PRESETS[name]
        assert m.n_kv_head == m.n_head and m.head_dim * m.n_head == m.d_model
        assert not (m.tie_embeddings or m.qkv_bias or m.qk_norm) and m.rope_scaling is None
        assert m == ModelConfig(**{**m.__dict__, "n_kv_head": None, "head_dim": None})  # resolved = explicit


def test_tied_embeddings_are_one_parameter():
    cfg = get_model("tiny", tie_embeddings=True)
    model = Transformer(cfg)
    assert model.head.lm_head.weight is model.embed.weight
    assert sum(p.numel() for p in model.parameters()) == cfg.num_params == get_model("tiny").num_params - 512 * 64
    assert cfg.num_embedding_params == 512 * 64
    idx = torch.randint(0, 512, (2, 9))
    model(idx[:, :-1], idx[:, 1:]).backward()
    assert model.embed.weight.grad is not None


def test_head_dim_apart_from_width_and_gqa_shapes():
    cfg = get_model("tiny", n_head=4, n_kv_head=1, head_dim=24, qkv_bias=True, qk_norm=True)
    attn = Transformer(cfg).blocks[0].attn
    assert attn.qkv.weight.shape == (4 * 24 + 2 * 24, 64) and attn.qkv.bias.shape == (144,)
    assert attn.proj.weight.shape == (64, 96) and attn.q_norm.weight.shape == (24,)


def test_replace_derives_again_what_was_derived():
    tiny = get_model("tiny")  # 4 heads of 16 over 64
    wider = get_model("tiny", d_model=128)
    assert wider.head_dim == 32 and wider.n_kv_head == 4
    assert get_model("tiny", n_head=8).n_kv_head == 8 and get_model("tiny", n_head=8).head_dim == 8
    gqa = get_model("tiny", n_kv_head=2)
    assert gqa.replace(n_head=8).n_kv_head == 2  # given, not derived: kept
    assert tiny.replace(head_dim=32).head_dim == 32


@pytest.mark.parametrize("changes,message", [
    ({"n_kv_head": 3}, "model.n_kv_head: 3 does not divide n_head 4"),
    ({"n_kv_head": 0}, "model.n_kv_head"),
    ({"head_dim": 0}, "model.head_dim"),
    ({"n_head": 3}, "model.n_head: 3 does not divide d_model 64"),
    ({"rope_scaling": (8.0, 4.0, 1.0, 16)}, "model.rope_scaling"),
])
def test_bad_shapes_are_one_line(changes, message):
    with pytest.raises(ConfigError, match=message):
        get_model("tiny", **changes)


def test_neox_refuses_the_llama_switches():
    with pytest.raises(ConfigError, match="^model.family: neox"):
        get_model("tiny-neox", n_kv_head=2)


def test_round_trip_through_a_plain_dict():
    from slmray.train.config import TrainConfig

    cfg = TrainConfig(model=PRESETS["llama-3.2-1b"], seq_len=512)
    raw = cfg.to_dict()
    raw["model"]["rope_scaling"] = list(raw["model"]["rope_scaling"])  # as JSON gives it back
    assert TrainConfig.from_dict(raw) == cfg


@pytest.mark.parametrize("n_kv_head", [4, 2], ids=["mha", "gqa"])
def test_the_qkv_gradients_are_joined_over_heads(n_kv_head):
    """q, k and v are split from the one GEMM's output over the head dim, so backward joins their
    gradients along it.  Split over the last dim instead (7cca42b), the same step compiled ran 6-8%
    slower on an H100 (`benchmarks/results/trainer/qkv_split_h100.txt`).  Traced forward and
    backward by `make_fx`, the aten ops torch.compile's backward graph is built from."""
    from torch.fx.experimental.proxy_tensor import make_fx

    from slmray.train.attention import get_attention
    from slmray.train.model import Block, rotary_tables

    cfg = get_model("tiny", n_head=4, n_kv_head=n_kv_head)
    block = Block(cfg, get_attention("sdpa"))
    cos, sin = rotary_tables(cfg)

    def step(x):
        return torch.autograd.grad(block(x, cos[:8], sin[:8]).sum(), [x, *block.parameters()])

    graph = make_fx(step)(torch.randn(2, 8, cfg.d_model, requires_grad=True)).graph
    joins = [n for n in graph.nodes if n.target in (torch.ops.aten.cat.default, torch.ops.aten.stack.default)]
    width = (cfg.n_head + 2 * n_kv_head) * cfg.head_dim
    qkv_grad = [n for n in joins if n.meta["val"].numel() == 2 * 8 * width]
    # one join of the three gradients, over a head dim (a cat over heads, or cace4d0's unbind's stack):
    # the last dim stays head_dim, never the GEMM's whole width
    assert len(qkv_grad) == 1 and qkv_grad[0].meta["val"].shape[-1] == cfg.head_dim


def test_the_trainer_ab_script_takes_the_steps_it_is_given():
    """`benchmarks/trainer_ab.py` (how the split's cost was measured) runs MODEL:BATCH steps given
    after old|new, its two calibration steps without any, and exits on one line for a malformed run."""
    import runpy
    from pathlib import Path

    ab = runpy.run_path(str(Path(__file__).resolve().parents[1] / "benchmarks" / "trainer_ab.py"))
    assert ab["_runs"](["llama-3.2-1b:16", "smollm2-360m:32"]) == (("llama-3.2-1b", 16), ("smollm2-360m", 32))
    assert ab["_runs"]([]) == ab["RUNS"] == (("llama-100m", 64), ("llama-1b", 32))
    for malformed in (["llama-1b"], ["llama-1b:x"], ["llama-1b:16:2"]):
        with pytest.raises(SystemExit, match=f"give runs as MODEL:BATCH, not {malformed[0]}$"):
            ab["_runs"](malformed)
