import pytest
import torch

from slmray.config import ConfigError
from slmray.model import Transformer
from slmray.presets import PAPER_PARAM_COUNTS, PRESETS, get_model


@pytest.mark.parametrize("name", list(PRESETS))
def test_built_model_has_the_counted_parameters(name):
    cfg = PRESETS[name]
    with torch.device("meta"):  # shapes only: the 2.8B model allocates nothing
        model = Transformer(cfg, attention="sdpa")
    assert sum(p.numel() for p in model.parameters()) == cfg.num_params


@pytest.mark.parametrize("name", ["llama-500m", "llama-1b", "llama-2b"])
def test_paper_llama_counts_are_exact(name):
    assert PRESETS[name].num_params == PAPER_PARAM_COUNTS[name]
    assert PRESETS[name].d_mlp == int(2.7 * PRESETS[name].d_model)


def test_llama_100m_is_within_five_percent():
    assert abs(PRESETS["llama-100m"].num_params / PAPER_PARAM_COUNTS["llama-100m"] - 1) < 0.05


@pytest.mark.parametrize("name", [n for n in PRESETS if n.startswith("pythia")])
def test_pythia_counts_within_one_percent(name):
    cfg = PRESETS[name]
    assert abs(cfg.num_params / PAPER_PARAM_COUNTS[name] - 1) < 0.01
    assert cfg.vocab_size == 50304 and cfg.d_mlp == 4 * cfg.d_model and cfg.rotary_dim == cfg.head_dim // 4


@pytest.mark.parametrize("name", [n for n in PRESETS if n.startswith("llama")])
def test_llama_head_dims(name):
    assert 64 <= PRESETS[name].head_dim <= 128
    assert PRESETS[name].vocab_size == 32000


def test_custom_shape_and_unknown_model():
    custom = get_model("tiny", d_model=128, n_head=2)
    assert custom.d_model == 128 and custom.name == "tiny-custom"
    with pytest.raises(ConfigError, match="^model: unknown model 'llama-7b'"):
        get_model("llama-7b")
    with pytest.raises(ConfigError, match="model.n_head"):
        get_model("tiny", n_head=3)


def test_list_models_cli(cli):
    out = cli("-m", "slmray.train", "--list-models")
    assert out.returncode == 0
    assert "llama-2b" in out.stdout and "1,969,027,008" in out.stdout
    assert "pythia-2.8b" in out.stdout and "2,775,208,960" in out.stdout
