"""Any architecture Transformers has, through `backend="transformers"`: a config.json outside the
LLaMA family is read as family transformers (Transformers' own shape and parameter count, nothing
downloaded), trained two steps by `python -m slmray.train`, planned by `python -m slmray.tune
--dry-run`; the native backend, and what has no causal-LM head the loss kernels can take, are
refused in one line."""

import json

import pytest
import torch

from slmray.errors import ConfigError
from slmray.predict.estimate import estimate
from slmray.train.config import TrainConfig
from slmray.train.hf_backend import build
from slmray.train.metrics import flops_per_token
from slmray.train.presets import PRESETS, get_model
from tests.conftest import call_main
from tests.hf_fixtures import transformers_count, write_config

transformers = pytest.importorskip("transformers")

VOCAB = 256
# small configs as a user's config.json holds them (each architecture's own key names); token ids
# inside the small vocabulary, as a real file's are inside its own
CONFIGS = {
    "gpt2": dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=128,
                 bos_token_id=0, eos_token_id=0),
    "opt": dict(model_type="opt", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, ffn_dim=128,
                vocab_size=VOCAB, max_position_embeddings=128, word_embed_proj_dim=32, pad_token_id=1,
                bos_token_id=2, eos_token_id=2),
    "phi3": dict(model_type="phi3", hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=96, vocab_size=VOCAB, max_position_embeddings=128, pad_token_id=0, bos_token_id=1,
                 eos_token_id=2),
}
# (layers, width, heads, kv heads, mlp, positions, tied) as Transformers normalises them
SHAPES = {"gpt2": (2, 64, 4, 4, 256, 128, True), "opt": (2, 64, 4, 4, 64 * 4, 128, True),
          "phi3": (2, 64, 4, 2, 96, 128, False)}






@pytest.mark.parametrize("arch", list(CONFIGS))
def test_config_reads_as_family_transformers_with_its_exact_count(arch, tmp_path):
    path = write_config(tmp_path, CONFIGS[arch], arch)
    m = get_model(path)
    assert m.family == "transformers" and m.model_type == arch and m.name == arch
    assert m.num_params == m.param_count == transformers_count(path)
    assert (m.n_layer, m.d_model, m.n_head, m.n_kv_head, m.d_mlp, m.max_seq_len, m.tie_embeddings) == SHAPES[arch]
    assert json.loads(m.hf_json) == CONFIGS[arch]
    cfg = TrainConfig(model=m, backend="transformers", device="cpu", seq_len=64)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg  # plain, for Ray and rows
    # MFU's count: 6 N + 12 L d T from the stored N
    assert flops_per_token(m, 64) == 6 * m.param_count + 12 * m.n_layer * m.q_dim * 64


@pytest.mark.parametrize("arch", ["gpt2", "opt"])
def test_loss_kernel_sees_the_logits_transformers_computes(arch, tmp_path):
    """Final hidden states times the output embedding are the causal LM's own logits (OPT: after
    its projection out of the width), so the loss kernels train what Transformers would."""
    m = get_model(write_config(tmp_path, CONFIGS[arch], arch))
    model = build(TrainConfig(model=m, backend="transformers", device="cpu", seq_len=32)).eval()
    idx = torch.randint(0, VOCAB, (2, 32))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), model.hf(input_ids=idx).logits)
    assert model.block_prefix in ("hf.transformer.h.", "hf.model.decoder.layers.") and len(model.blocks) == 2


@pytest.mark.parametrize("arch", ["gpt2", "phi3"])
def test_trains_two_steps_through_the_trainer_cli(arch, tmp_path, capsys):
    from slmray.train.cli import main

    path = write_config(tmp_path, CONFIGS[arch], arch)
    expected = transformers_count(path)
    out = call_main(capsys, main, "--model", path, "--backend", "transformers", "--device", "cpu", "--steps", "2",
                    "--warmup-steps", "0", "--seq-len", "32", "--per-device-batch", "2", "--loss-kernel", "chunked",
                    "--json")
    assert out.returncode == 0, out.stderr
    assert f"building {arch} ({expected:,} parameters)" in out.stderr
    run = json.loads(out.stdout)
    result = run["result"]
    assert result["status"] == "ok" and result["n_params"] == expected and run["config"]["backend"] == "transformers"
    assert run["config"]["model"]["family"] == "transformers"
    assert len(result["losses"]) == 2 and all(4.5 < loss < 7.0 for loss in result["losses"])  # about ln(256)


def test_native_backend_is_refused_in_one_line(tmp_path, capsys):
    from slmray.train.cli import main

    path = write_config(tmp_path, CONFIGS["gpt2"], "gpt2")
    expected = ("backend: gpt2 is model_type 'gpt2', which the native trainer does not build (family llama: llama, "
                "mistral, qwen2, qwen3; neox); train it with the transformers backend")
    with pytest.raises(ConfigError) as err:
        TrainConfig(model=get_model(path), device="cpu", seq_len=32)
    assert str(err.value) == expected
    out = call_main(capsys, main, "--model", path, "--device", "cpu", "--seq-len", "32", "--steps", "1")
    assert out.returncode == 2 and [line for line in out.stderr.splitlines() if line.startswith("error:")] == [
        f"error: {expected}"]
    assert "Traceback" not in out.stderr


def test_its_shape_is_its_config_json(tmp_path):
    m = get_model(write_config(tmp_path, CONFIGS["gpt2"], "gpt2"))
    assert m.replace(name="mine").name == "mine"
    with pytest.raises(ConfigError, match=r"^model.d_model: gpt2 is read from its config.json"):
        get_model(write_config(tmp_path, CONFIGS["gpt2"], "gpt2"), d_model=128)


def _space_file(tmp_path, path: str, backends: list[str]) -> str:
    space = tmp_path / f"space_{'_'.join(backends)}.py"
    space.write_text(
        "from slmray.space import SearchSpace\n"
        f"SPACE = SearchSpace(model=[{path!r}], per_device_batch=[2], num_gpus=[1], attention=['sdpa'], "
        f"strategy=['single'], seq_len=32, steps=2, warmup_steps=1, device='cpu', backend={backends!r})\n"
    )
    return str(space)


def test_a_space_sweeps_it_with_transformers_and_refuses_native(tmp_path, capsys):
    from slmray.tune import main

    path = write_config(tmp_path, CONFIGS["opt"], "opt")
    plan = _space_file(tmp_path, path, ["transformers"])
    assert main([plan, "--dry-run", "--verbose", "--prices", "local", "--storage", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "grid: 1 trials" in out and "opt" in out and "transformers" in out
    assert "approximate: opt (an architecture only Transformers builds) is estimated with the llama-family" in out
    refused = _space_file(tmp_path, path, ["native", "transformers"])
    assert main([refused, "--dry-run", "--prices", "local", "--storage", str(tmp_path / "s")]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [f"error: {refused}: backend: opt is model_type 'opt', which the native trainer does not build "
                      "(family llama: llama, mistral, qwen2, qwen3; neox); train it with the transformers backend"]


def test_estimator_counts_it_as_llama_and_says_so(tmp_path):
    m = get_model(write_config(tmp_path, CONFIGS["phi3"], "phi3"))
    cfg = TrainConfig(model=m, backend="transformers", per_device_batch=4, seq_len=128)
    approx = estimate(cfg, "H100-80GB", 1)
    assert approx.approximate and approx.tokens_per_s > 0 and approx.peak_mem_gb > 0
    assert not estimate(TrainConfig(model=PRESETS["tiny"], per_device_batch=4, seq_len=128), "H100-80GB", 1).approximate


REFUSED = {
    "no causal-LM head": (dict(model_type="t5", d_model=64, num_layers=2, num_heads=4, vocab_size=VOCAB),
                          "model_type 't5' has no causal-LM head in transformers"),
    "logits capped": (dict(model_type="gemma2", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                           num_key_value_heads=1, head_dim=16, intermediate_size=96, vocab_size=VOCAB,
                           max_position_embeddings=128, pad_token_id=0, bos_token_id=2, eos_token_id=1),
                      "final_logit_softcapping=30.0: Gemma2ForCausalLM changes its logits after the output projection"),
    "head bias": (dict(model_type="phi", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=96, vocab_size=VOCAB, max_position_embeddings=128),
                  "PhiForCausalLM's output projection has a bias"),
    "unknown model_type": (dict(model_type="no-such-arch", hidden_size=64),
                           "model_type 'no-such-arch' is neither LLaMA-family"),
    "no model_type": (dict(hidden_size=64), "model_type is missing"),
    "not buildable": ({**CONFIGS["gpt2"], "n_head": 5}, "transformers cannot build it"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_what_cannot_train_is_refused_in_one_line_naming_the_file(case, tmp_path):
    raw, message = REFUSED[case]
    path = write_config(tmp_path, raw, case.replace(" ", "-"))
    with pytest.raises(ConfigError) as err:
        get_model(path)
    text = str(err.value)
    assert "\n" not in text and text.startswith(f"{path}: ") and message in text, text


def test_the_planner_plans_it_from_its_transformers_rows(tmp_path):
    """`python -m slmray.recommend --model FILE`: rows of backend transformers (the committed H100
    table's llama-1b rows stand in, relabelled) are planned on the file's own count; a native row
    cannot be re-estimated for it, and says why in the backend's one line."""
    from analysis_fixtures import RESULTS

    from slmray.analysis.costs import price_trials
    from slmray.analysis.table import load_results
    from slmray.catalog.prices import PriceBook
    from slmray.planning.assumptions import default_assumptions
    from slmray.planning.run import plan_run, recorded_prices

    sweeps = price_trials(load_results([str(RESULTS / "sweeps" / "sweep_h100x1.parquet")]), PriceBook.load("aws"))
    path = write_config(tmp_path, {**CONFIGS["gpt2"], "n_embd": 1920, "n_layer": 19, "n_head": 15, "vocab_size": 32_000,
                            "n_positions": 2048}, "llama-1b")
    book, a = recorded_prices(sweeps), default_assumptions(sweeps)
    plan = plan_run(sweeps.assign(backend="transformers"), path, 2e10, book, a)
    assert plan.n_params == transformers_count(path) and set(plan.options["backend"]) == {"transformers"}
    predicted = plan.options[plan.options["source"] == "predicted"]
    assert len(predicted) and (predicted["tokens_per_s"].dropna() > 0).all() and predicted["tokens_per_s"].notna().any()
    native = plan_run(sweeps.assign(backend="native"), path, 2e10, book, a).options
    reasons = set(native.loc[native["source"] == "predicted", "excluded"])
    assert reasons == {"no estimate (backend: llama-1b is model_type 'gpt2', which the native trainer does not build "
                       "(family llama: llama, mistral, qwen2, qwen3; neox); train it with the transformers backend)"}


def test_an_attention_the_architecture_lacks_is_refused_in_one_line(tmp_path):
    """XGLM has no SDPA path in Transformers: sdpa is refused naming the attention, eager trains."""
    raw = dict(model_type="xglm", d_model=64, num_layers=2, attention_heads=4, ffn_dim=128, vocab_size=VOCAB,
               max_position_embeddings=128, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    m = get_model(write_config(tmp_path, raw, "xglm"))
    assert m.family == "transformers" and m.num_params == transformers_count(write_config(tmp_path, raw, "xglm"))
    with pytest.raises(ConfigError) as err:
        build(TrainConfig(model=m, backend="transformers", device="cpu", seq_len=32, attention="sdpa"))
    assert str(err.value) == ("attention: sdpa: xglm's Transformers model (model_type xglm) has no sdpa implementation; "
                              "eager runs in every one")
    model = build(TrainConfig(model=m, backend="transformers", device="cpu", seq_len=32, attention="eager"))
    assert model(torch.randint(0, VOCAB, (2, 32)), torch.randint(0, VOCAB, (2, 32))).isfinite()
