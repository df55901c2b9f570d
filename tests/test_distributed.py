"""DDP and both FSDP2 modes on 2 gloo processes reproduce one process's loss trajectory on
the same global batch; run through the real CLI under torchrun, as a user would."""

import json

import pytest

COMMON = [
    "--model", "tiny", "--seq-len", "64", "--steps", "4", "--warmup-steps", "2", "--data", "stdlib",
    "--device", "cpu", "--lr", "3e-3", "--lr-warmup-steps", "1", "--json",
]

pytestmark = [pytest.mark.dist, pytest.mark.subprocess]  # torchrun, gloo process groups


def _losses(cli, *args, nproc=1, timeout=300):
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)] if nproc > 1 else []
    out = cli(*launcher, "-m", "slmray.train", *COMMON, *args, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, out.stdout  # rank 0 alone prints
    result = json.loads(lines[0])["result"]
    assert result["status"] == "ok" and result["num_gpus"] == nproc
    return result["losses"]


@pytest.fixture(scope="module")
def reference(request):
    from tests.conftest import run_cli

    return _losses(run_cli, "--per-device-batch", "4")


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "fsdp_grad_op"])
def test_two_processes_match_one(cli, reference, strategy):
    losses = _losses(cli, "--per-device-batch", "2", "--strategy", strategy, nproc=2)
    assert len(losses) == len(reference) == 6
    assert losses == pytest.approx(reference, rel=2e-5)
    assert losses[-1] < losses[0]  # it trains


def test_gradient_accumulation_matches_the_larger_batch(cli, reference):
    losses = _losses(cli, "--per-device-batch", "2", "--grad-accum", "2")
    assert losses == pytest.approx(reference, rel=2e-5)


def test_ddp_of_one_process_matches_plain(cli, reference):
    assert _losses(cli, "--per-device-batch", "4", "--strategy", "ddp") == pytest.approx(reference, rel=2e-5)


def test_activation_checkpointing_recomputes_the_same_function(cli, reference):
    assert _losses(cli, "--per-device-batch", "4", "--activation-checkpointing") == pytest.approx(reference, rel=1e-5)


def test_compile_trains_the_same_model(cli, reference):
    """torch.compile of each block and the head (Inductor, C++ on the CPU): same losses to fp32 rounding."""
    losses = _losses(cli, "--per-device-batch", "4", "--compile", "--strategy", "ddp", timeout=600)
    assert losses == pytest.approx(reference, rel=1e-4)


TIED_GQA = {
    "model_type": "qwen3", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 512,
    "max_position_embeddings": 256, "tie_word_embeddings": True, "rms_norm_eps": 1e-6,
}


def test_fsdp_trains_tied_embeddings_as_one_process(cli, tmp_path):
    """A tied input/output embedding (with GQA and q/k norm) under FSDP2 on 2 gloo processes follows
    one process's trajectory: the shared weight is one sharded parameter whose gradient sums both uses
    (untied by the wrapping, the trajectory would part from the reference's)."""
    path = tmp_path / "tied" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(TIED_GQA))
    one = _losses(cli, "--model", str(path), "--per-device-batch", "4")
    two = _losses(cli, "--model", str(path), "--per-device-batch", "2", "--strategy", "fsdp", nproc=2)
    assert two == pytest.approx(one, rel=2e-5)
    assert one[-1] < one[0]


@pytest.fixture(scope="module")
def transformers_reference(request):
    from tests.conftest import run_cli

    return _losses(run_cli, "--per-device-batch", "4", "--backend", "transformers", "--loss-kernel", "chunked")


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_transformers_backend_on_two_processes_matches_one(cli, transformers_reference, strategy):
    """The Transformers model under the same DDP / FSDP2 wrapping (FSDP per decoder layer)."""
    losses = _losses(cli, "--per-device-batch", "2", "--strategy", strategy, "--backend", "transformers",
                     "--loss-kernel", "chunked", nproc=2)
    assert losses == pytest.approx(transformers_reference, rel=2e-5)
    assert losses[-1] < losses[0]


def test_compiled_chunked_loss_trains_the_same_model(cli, reference):
    """The chunked loss kernel compiled with the head (its autograd.Function traced by Dynamo)."""
    losses = _losses(cli, "--per-device-batch", "4", "--compile", "--loss-kernel", "chunked", timeout=600)
    assert losses == pytest.approx(reference, rel=1e-4)


GPT2 = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 512, "n_positions": 256,
        "bos_token_id": 0, "eos_token_id": 0, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
"""Any architecture Transformers has (family transformers): GPT-2, its embeddings tied, dropout off
so that one process and two draw the same function."""


def test_fsdp_trains_an_architecture_only_transformers_has_as_one_process(cli, tmp_path):
    """FSDP2 per GPT2Block (`_no_split_modules`) on 2 gloo processes follows one process's trajectory."""
    path = tmp_path / "gpt2" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(GPT2))
    common = ("--model", str(path), "--backend", "transformers", "--loss-kernel", "chunked")
    one = _losses(cli, *common, "--per-device-batch", "4")
    two = _losses(cli, *common, "--per-device-batch", "2", "--strategy", "fsdp", nproc=2)
    assert two == pytest.approx(one, rel=2e-5)
    assert one[-1] < one[0]


def test_a_state_this_host_cannot_hold_is_refused_on_every_rank(cli):
    """Both ranks agree to stop before building (one going on alone would wait in a collective)."""
    out = cli("-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "slmray.train",
              "--device", "cpu", "--model", "llama-2b", "--d-model", "16384", "--n-layer", "48", "--n-head", "64",
              "--strategy", "fsdp", "--json", timeout=300)
    assert "exitcode  : 3" in out.stderr, out.stderr[-2000:]  # each rank: status oom
    result = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("{")))["result"]
    assert result["status"] == "oom" and result["num_gpus"] == 2
    assert "over its 2 processes here, at least 1020.6 GiB" in result["error"] and "sharded" in result["error"]
