"""The standalone trainer as a user meets it: bad input, out of memory, the result it prints."""

import json

import pytest

from slmray.errors import ConfigError
from slmray.train.config import flash_attn_available
from slmray.train.cli import build_parser, config_from_args, main
from slmray.train.config import TrainConfig
from slmray.train.presets import get_model

from tests.conftest import call_main


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "llama-7b"], "error: model: unknown model 'llama-7b' (known: llama-100m,"),
        (["--per-device-batch", "0"], "error: per_device_batch: must be a positive integer, got 0"),
        (["--seq-len", "512"], "error: seq_len: 512 is above tiny's limit of 256"),
        (["--seq-len", "64", "--attention", "flash3"], "error: attention: 'flash3' is not one of eager, sdpa,"),
        (["--seq-len", "64", "--strategy", "zero3"], "error: strategy: 'zero3' is not one of single, ddp,"),
        (["--seq-len", "64", "--data", "/nonexistent"], "error: data: /nonexistent is not a token-shard directory"),
        # 0 is a value, not "no override": it must reach ModelConfig's check, not fall back to the preset
        *[([f"--{flag}", "0"], f"error: model.{flag.replace('-', '_')}: must be a positive integer, got 0")
          for flag in ("n-layer", "d-model", "n-head", "d-mlp", "vocab-size")],
        (["--n-layer", "-1"], "error: model.n_layer: must be a positive integer, got -1"),
        (["--vocab-size", "-5"], "error: model.vocab_size: must be a positive integer, got -5"),
        # non-finite hyperparameters passed the old checks (inf > 0; nan < 0 is False) and trained to a NaN loss
        (["--lr", "inf"], "error: lr: must be a positive finite number, got inf"),
        (["--grad-clip", "nan"], "error: grad_clip: must be a finite number, 0 or more, got nan"),
        (["--weight-decay", "inf"], "error: weight_decay: must be a finite number, 0 or more, got inf"),
        (["--n-head", "64"], "error: model.n_head: 64 heads leave 1 dims a head (d_model 64); rotary embeddings need"),
        # what a CPU sweep refuses, the CPU trainer refuses too (it ran sdpa-flash on a CPU kernel)
        (["--attention", "sdpa-flash"], "error: attention: sdpa-flash needs a CUDA GPU; on the CPU: eager, sdpa, sdpa-math"),
        (["--memory-fraction", "0.5"], "error: memory_fraction: 0.5 caps a GPU's memory; this run is on the CPU"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_field(capsys, args, message):
    out = call_main(capsys, main, "--device", "cpu", *args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(message), out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.skipif(flash_attn_available(), reason="flash_attn is installed: flash2 is available")
def test_flash2_without_flash_attn_names_the_extra(capsys):
    out = call_main(capsys, main, "--device", "cpu", "--seq-len", "64", "--attention", "flash2", "--steps", "1")
    assert out.returncode == 2, out.stdout + out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: attention: flash2 needs the flash_attn package"), out.stderr
    assert "pip install 'slmray[flash]'" in last
    assert "Traceback" not in out.stderr and not out.stdout


def test_forced_out_of_memory_is_a_status_not_a_traceback(cli):
    # logits of 64 x 256 x 4M fp32 = 268 GB: the CPU allocator refuses at once
    out = cli("-m", "slmray.train", "--device", "cpu", "--seq-len", "256", "--per-device-batch", "64",
              "--vocab-size", "4000000", "--d-model", "8", "--n-head", "2", "--json")
    assert out.returncode == 3, out.stderr
    assert "Traceback" not in out.stderr
    result = json.loads(out.stdout)["result"]
    assert result["status"] == "oom" and result["error"].startswith("out of memory: ")
    assert result["tokens_per_s"] is None


def test_a_cpu_run_whose_state_cannot_fit_is_refused_before_it_builds(cli):
    # 48 blocks of d_model 16384 (llama-2b's MLP width): 68B parameters, 1 TiB of weights, gradients and AdamW's states.
    # Built, it would have been killed by the kernel (SIGKILL: no message, no row) or refused by the allocator.
    out = cli("-m", "slmray.train", "--device", "cpu", "--model", "llama-2b", "--d-model", "16384", "--n-layer", "48",
              "--n-head", "64", "--json")
    assert out.returncode == 3, out.stderr
    result = json.loads(out.stdout)["result"]
    assert result["status"] == "oom" and result["tokens_per_s"] is None
    assert result["error"].startswith("out of memory: the run needs at least 1020.6 GiB") and "not started" in result["error"]
    assert "building" not in out.stderr


def test_training_state_counts_every_process_here_and_fsdp_shards():
    from slmray.train.host_memory import training_state_bytes

    assert training_state_bytes(1_000, world_size=1, sharded=False, processes_here=1) == 16_000
    assert training_state_bytes(1_000, world_size=4, sharded=False, processes_here=4) == 64_000  # DDP: a copy each
    assert training_state_bytes(1_000, world_size=2, sharded=True, processes_here=2) == 16_000   # FSDP: a share each
    assert training_state_bytes(1_000, world_size=16, sharded=True, processes_here=8) == 32_000  # but builds it whole


def _machine(tmp_path, cgroup_line: str, files: dict[str, str], available_kib: int | None = 8 * 1024 * 1024):
    proc, cgroup = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "cgroup").write_text(cgroup_line + "\n")
    if available_kib is not None:
        (proc / "meminfo").write_text(f"MemTotal: 99999999 kB\nMemAvailable: {available_kib} kB\n")
    for path, text in files.items():
        (cgroup / path).parent.mkdir(parents=True, exist_ok=True)
        (cgroup / path).write_text(text)
    return proc, cgroup


@pytest.mark.parametrize("cgroup_line, files, available_kib, gib", [
    ("0::/", {"memory.max": "max\n"}, 8 * 1024 * 1024, 8),                               # v2, no limit
    ("0::/job/step", {"job/memory.max": "2147483648\n", "job/step/memory.max": "max"}, 8 * 1024 * 1024, 2),  # a parent's
    ("0::/other", {"memory.max": "4294967296"}, 8 * 1024 * 1024, 4),                     # own folder not mounted: the root's
    ("4:memory:/docker/abc", {"memory/docker/abc/memory.limit_in_bytes": "1073741824"}, 8 * 1024 * 1024, 1),  # v1
    ("4:memory:/", {"memory/memory.limit_in_bytes": "9223372036854771712"}, 8 * 1024 * 1024, 8),  # v1's "none"
    ("0::/", {"memory.max": "3221225472"}, None, 3),                                     # no meminfo
], ids=["v2-max", "v2-parent", "v2-root", "v1", "v1-none", "no-meminfo"])
def test_free_memory_is_the_lowest_of_the_machine_and_its_cgroups(tmp_path, cgroup_line, files, available_kib, gib):
    from slmray.train.host_memory import GIB, available_bytes

    assert available_bytes(*_machine(tmp_path, cgroup_line, files, available_kib)) == gib * GIB


def test_free_memory_unreadable_checks_nothing(tmp_path):
    from slmray.train.host_memory import available_bytes

    assert available_bytes(tmp_path / "proc", tmp_path / "cgroup") is None


def test_cli_reports_throughput_and_loss(cli):
    out = cli("-m", "slmray.train", "--device", "cpu", "--seq-len", "64", "--steps", "3", "--repeats", "2",
              "--warmup-steps", "1", "--data", "stdlib", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)["result"]
    assert r["status"] == "ok" and r["gpu_type"] == "cpu" and r["mfu"] is None
    assert r["tokens_per_s"] > 0 and r["tokens_per_s_std"] >= 0
    assert r["tokens_per_step"] == 8 * 64 and r["tokens_seen"] == 7 * 8 * 64
    assert len(r["losses"]) == 7 and r["final_loss"] == pytest.approx(sum(r["losses"][-5:]) / 5)
    assert r["startup_s"] > 0 and r["step_time_median_s"] > 0
    assert "warm-up: 1 steps" in out.stderr and "measuring: 2 x 3 steps" in out.stderr  # progress


def test_config_round_trips_and_rejects_unknown_fields():
    cfg = TrainConfig(model=get_model("tiny"), seq_len=64)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="^batch: unknown training field"):
        TrainConfig.from_dict({**cfg.to_dict(), "batch": 3})
    with pytest.raises(ConfigError, match="^warmup_steps: compile needs"):
        TrainConfig(model=get_model("tiny"), seq_len=64, compile=True, warmup_steps=0)


def test_no_arguments_run_the_defaults(capsys):
    """`python -m slmray.train` alone: tiny at its own sequence limit (256), not TrainConfig's 1024."""
    assert main([]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("tiny sdpa single batch 8 x seq 256 on 1 x "), out.out + out.err
    assert "tokens/s" in out.out and "error" not in out.err


@pytest.mark.parametrize(
    "args, seq_len",
    [([], 256), (["--model", "llama-100m"], 1024), (["--model", "pythia-160m"], 1024), (["--seq-len", "64"], 64)],
)
def test_default_sequence_length_follows_the_model(args, seq_len):
    assert config_from_args(build_parser().parse_args(args)).seq_len == seq_len


def test_an_explicit_sequence_length_is_still_checked(capsys):
    assert main(["--seq-len", "1024"]) == 2
    assert capsys.readouterr().err == "error: seq_len: 1024 is above tiny's limit of 256\n"


@pytest.mark.dist  # parallel.setup starts a one-rank gloo group
@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "fsdp_grad_op"])
def test_a_parallel_strategy_outside_torchrun_says_it_runs_one_process(strategy, capsys, monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR"):
        monkeypatch.delenv(name, raising=False)
    assert main(["--strategy", strategy, "--device", "cpu", "--seq-len", "32", "--steps", "1", "--warmup-steps", "1"]) == 0
    out = capsys.readouterr()
    warnings = [line for line in out.err.splitlines() if line.startswith("warning:")]
    assert warnings == [f"warning: --strategy {strategy} outside torchrun runs one process; for N GPUs: "
                        "torchrun --nproc-per-node N -m slmray.train ..."], out.err
    assert f"tiny sdpa {strategy} batch 8 x seq 32 on 1 x cpu" in out.out


def test_single_or_torchrun_gets_no_such_warning(capsys, monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert main(["--device", "cpu", "--seq-len", "32", "--steps", "1", "--warmup-steps", "1"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_result_is_plain_python_so_whoever_reads_it_needs_no_torch():
    # a warm trial's result passes through the pool, the trial and Tune's driver: a torch type in
    # it (torch.__version__ is a TorchVersion) made each of them import torch to unpickle it
    from slmray.train.loop import run

    result = run(TrainConfig(model=get_model("tiny"), seq_len=32, steps=2, warmup_steps=1, per_device_batch=2,
                             device="cpu")).to_dict()
    assert result["status"] == "ok", result["error"]

    def plain(value):
        if type(value) in (list, tuple):
            return all(plain(v) for v in value)
        if type(value) is dict:
            return all(type(k) is str and plain(v) for k, v in value.items())
        return type(value) in (str, int, float, bool, type(None))

    assert {k: type(v).__name__ for k, v in result.items() if not plain(v)} == {}


def test_a_long_run_says_how_far_it_has_got(monkeypatch):
    """Past the warm-up and measuring lines a run said nothing until its result: minutes on a CPU."""
    from slmray.train import loop

    said = []
    monkeypatch.setattr(loop, "PROGRESS_EVERY_S", 0.0)  # every step, instead of every ten seconds
    result = loop.run(TrainConfig(model=get_model("tiny"), seq_len=32, steps=2, warmup_steps=1, per_device_batch=2,
                                  device="cpu"), progress=said.append)
    assert result.status == "ok", result.error
    assert [m for m in said if m.startswith("step ")] == ["step 1 of 3", "step 2 of 3", "step 3 of 3"]


def test_a_model_with_a_negative_rope_theta_is_refused():
    with pytest.raises(ConfigError, match=r"^model.rope_theta: must be a positive finite number, got -1"):
        get_model("tiny").replace(rope_theta=-1)


def test_a_run_whose_loss_stops_being_finite_is_not_ok(capsys):
    # lr 1e30 is a valid setting: AdamW's first step puts the weights at about 1e30, the next loss is NaN
    out = call_main(capsys, main, "--device", "cpu", "--seq-len", "32", "--steps", "2", "--warmup-steps", "1",
                    "--per-device-batch", "2", "--lr", "1e30", "--json")
    assert out.returncode == 3, out.stdout + out.stderr
    result = json.loads(out.stdout)["result"]
    assert result["status"] == "failed" and result["error"].startswith("loss is not finite from step 2 on (nan)")


def test_device_auto_on_a_machine_without_a_gpu_refuses_gpu_only_settings(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = call_main(capsys, main, "--seq-len", "32", "--steps", "1", "--attention", "sdpa-cudnn")
    assert out.returncode == 2 and out.stderr.strip().splitlines()[-1] == (
        "error: attention: sdpa-cudnn needs a CUDA GPU; on the CPU: eager, sdpa, sdpa-math")
