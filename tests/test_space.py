"""Search-space files: the shipped ones load; bad ones give one line naming the file and field."""

from pathlib import Path

import pytest

from slmray.sweep.space import SearchSpace, SpaceError, load_space

SPACES = sorted(Path("search_spaces").glob("*.py"))
GOOD = """
from slmray.sweep.space import SearchSpace
SPACE = SearchSpace(model=["tiny"], per_device_batch=[2], num_gpus=[1], attention=["sdpa"], strategy=["ddp"], seq_len=32, {extra})
"""


def _load_shipped(path) -> SearchSpace | None:
    """A shipped space, or None where it asks for an optional loss-kernel package this machine lacks
    (h100x1_models.py: Liger's Triton kernel, GPU only): then the refusal must be that one line."""
    from slmray.train.config import FUSED_LOSS_PACKAGES, installed_loss_kernels

    try:
        return load_space(str(path))
    except SpaceError as exc:
        text = path.read_text()
        missing = [k for k in FUSED_LOSS_PACKAGES if k not in installed_loss_kernels() and f'"{k}"' in text]
        if not missing:
            raise
        assert str(exc) == (f"{path}: loss_kernel: {missing[0]} needs the {FUSED_LOSS_PACKAGES[missing[0]][1]} package "
                            f"(pip install {FUSED_LOSS_PACKAGES[missing[0]][1]})")
        return None


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_shipped_spaces_load(path):
    space = _load_shipped(path)
    assert space is None or space.trials()


def test_full_space_is_the_papers_grid():
    space = load_space("search_spaces/full.py")
    assert len(space.trials()) == 4 * 5 * 7 * 3 * 2 * 3
    assert space.repeats == 3 and space.steps == 10 and space.seq_len == 1024


def _write(tmp_path, text, name="space.py"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "extra, message",
    [
        ("model_x=1", "unexpected keyword argument 'model_x'"),
        ("per_device_bacth=[4]", "unexpected keyword argument 'per_device_bacth'; did you mean 'per_device_batch'?"),
        ("search='bayes'", "search: 'bayes' is not one of grid, optuna"),
        ("objectives=['max:speed']", "objectives: objective 'max:speed': unknown column 'speed'"),
        ("gpu_type=['H100']", "gpu_type: 'H100' is not a known GPU (did you mean H100-PCIe or H100-NVL or H100-80GB? known: H200, "),
        ("compile=[]", "compile: must list at least one value"),
        ("prices='awz'", "prices: 'awz' is not a price profile (local, aws, "),
        ("device='tpu'", "device: 'tpu' is not one of auto, cuda, cpu"),
        ("device='cpu', attention=['sdpa-flash']", None),
    ],
)
def test_bad_fields_name_the_file_and_field(tmp_path, extra, message):
    text = GOOD.format(extra=extra)
    if "attention=" in extra:
        text = text.replace('attention=["sdpa"], ', "")
        message = "attention: sdpa-flash needs a CUDA GPU"
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


FIELDS = {"model": '["tiny"]', "per_device_batch": "[2]", "num_gpus": "[1]", "attention": '["sdpa"]', "strategy": '["ddp"]'}


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("model", '["llama-7b"]', "model: unknown model 'llama-7b'"),
        ("model", "[]", "model: must list at least one value"),
        ("per_device_batch", "[0, 4]", "per_device_batch: must be a positive integer, got 0"),
        ("num_gpus", "[1, 1]", "num_gpus: lists a value twice"),
        ("attention", '["flash2"]', "attention: 'flash2' is not an installed backend"),
        ("strategy", '["zero"]', "strategy: 'zero' is not one of single, ddp, fsdp, fsdp_grad_op"),
    ],
)
def test_bad_values(tmp_path, field, value, message):
    args = ", ".join(f"{k}={value if k == field else v}" for k, v in FIELDS.items())
    path = _write(tmp_path, f"from slmray.sweep.space import SearchSpace\nSPACE = SearchSpace({args}, seq_len=32)\n")
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert str(err.value).startswith(f"{path}: {message}")


def test_single_strategy_needs_one_gpu():
    with pytest.raises(ValueError, match="^strategy: single runs on one GPU"):
        SearchSpace(model=["tiny"], per_device_batch=[2], num_gpus=[1, 2], attention=["sdpa"], strategy=["single"], seq_len=32)


def test_seq_len_above_the_model_limit_is_refused(tmp_path):
    path = _write(tmp_path, GOOD.format(extra="").replace("seq_len=32", "seq_len=4096"))
    with pytest.raises(SpaceError, match=r": seq_len: 4096 is above tiny's limit of 256$"):
        load_space(path)


@pytest.mark.parametrize(
    "text, message",
    [
        ("SPACE = (\n", "syntax error"),
        ("x = 1\n", "SPACE: the file must define SPACE = SearchSpace(...)"),
        ("import nonexistent_module_xyz\n", "ModuleNotFoundError"),
    ],
)
def test_broken_files(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError, match=f"^{path}"):
        load_space(path)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert message in str(err.value)


def test_missing_file():
    with pytest.raises(SpaceError, match="^nope.py: no such search-space file$"):
        load_space("nope.py")


def test_grid_order_and_choices():
    space = SearchSpace(model=["tiny", "tiny-neox"], per_device_batch=[2, 4], num_gpus=[1, 2], attention=["eager", "sdpa"],
                        strategy=["ddp"], seq_len=32)
    trials = space.trials()
    assert len(trials) == 16 and len(set(trials)) == 16
    assert space.choices()["gpu_type"] == [None]
    assert space.default_num_samples() == 6


def test_every_gpu_type_a_shipped_space_names_has_a_cluster_file():
    from slmray.cluster.files import cluster_gpu_types

    have = cluster_gpu_types("cluster")
    named = {g for path in SPACES for g in (getattr(_load_shipped(path), "gpu_type", None) or [])}
    assert named and named <= have, named - have


@pytest.mark.parametrize("suffix", [".yaml", ".txt", ""])
def test_a_space_file_that_is_not_python_is_one_line(tmp_path, suffix):
    path = tmp_path / f"space{suffix}"
    path.write_text(Path("search_spaces/smoke.py").read_text())
    with pytest.raises(SpaceError, match=rf"^{path}: a search space is a Python file \(.py\) defining SPACE"):
        load_space(str(path))


def test_a_space_file_calling_sys_exit_is_an_error_not_the_sweeps_exit(tmp_path):
    path = _write(tmp_path, "import sys\nsys.exit(3)\n")
    with pytest.raises(SpaceError, match=rf"^{path}: the file called sys.exit\(3\) while it was read$"):
        load_space(path)


def test_a_space_takes_a_config_json_beside_presets(tmp_path):
    import json

    from slmray.errors import ConfigError

    folder = tmp_path / "my-qwen"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "qwen2", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 128,
        "tie_word_embeddings": True}))
    path = str(folder / "config.json")
    space = SearchSpace(model=["tiny", path], per_device_batch={"tiny": [4], path: [2, 8]}, num_gpus=[1],
                        attention=["sdpa"], strategy=["single"], seq_len=32)
    assert [(t.model, t.per_device_batch) for t in space.trials()] == [("tiny", 4), ("my-qwen", 2), ("my-qwen", 8)]
    cfg = space.train_config(space.trials()[1], device="cpu")
    assert cfg.model.name == "my-qwen" and cfg.model.qkv_bias and cfg.model.n_kv_head == 2
    with pytest.raises(ConfigError, match=r"^.*missing/config.json does not exist"):
        SearchSpace(model=[str(tmp_path / "missing" / "config.json")], per_device_batch=[2], num_gpus=[1],
                    attention=["sdpa"], strategy=["single"])


@pytest.mark.parametrize("attention", ["sdpa-flash", "sdpa-cudnn", "sdpa-efficient"])
def test_a_gpu_space_may_start_with_a_gpu_only_attention_kernel(attention):
    # the trainer-rules check builds a CPU TrainConfig of the first trial: it once kept its GPU-only kernel
    space = SearchSpace(model=["tiny"], per_device_batch=[2], num_gpus=[1], attention=[attention, "sdpa"],
                        strategy=["single"], seq_len=32, device="cuda")
    assert [t.attention for t in space.trials()] == [attention, "sdpa"]


def test_two_models_under_one_name_are_refused():
    from slmray.errors import ConfigError
    from slmray.train.presets import get_model

    kw = dict(per_device_batch=[2], num_gpus=[1], attention=["sdpa"], strategy=["single"], seq_len=32)
    tiny = get_model("tiny")
    with pytest.raises(ConfigError, match="^model: two models are named 'tiny'; give each its own name$"):
        SearchSpace(model=[tiny, tiny.replace(n_layer=3)], **kw)
    with pytest.raises(ConfigError, match="^model: a ModelConfig named 'tiny' differs from the preset of that name"):
        SearchSpace(model=[tiny.replace(n_layer=3)], **kw)
    assert [t.model for t in SearchSpace(model=[tiny, tiny.replace(n_layer=3, name="tiny-3")], **kw).trials()] == [
        "tiny", "tiny-3"]
    assert SearchSpace(model=[tiny], **kw).trials()  # the preset itself, given as its ModelConfig


def test_a_space_read_for_a_plan_elsewhere_asks_for_no_package_its_trials_import():
    # load_space(packages=False), as a dry run reads a space: Liger's kernel is planned without its
    # package here; the check is back for the next space made, and still refuses a GPU-only kernel on the CPU
    from slmray.errors import ConfigError
    from slmray.train.config import installed_loss_kernels

    if "liger" in installed_loss_kernels():
        pytest.skip("liger-kernel is installed here")
    path = "search_spaces/h100x1_models.py"
    with pytest.raises(SpaceError, match="loss_kernel: liger needs the liger-kernel package"):
        load_space(path)
    assert "liger" in load_space(path, packages=False).values("loss_kernel")
    with pytest.raises(ConfigError, match="^loss_kernel: liger needs the liger-kernel package"):
        SearchSpace(model=["tiny"], per_device_batch=[2], num_gpus=[1], attention=["sdpa"], strategy=["ddp"],
                    seq_len=32, loss_kernel="liger")
    with pytest.raises(ConfigError, match="^loss_kernel: liger is a Triton kernel that needs a CUDA GPU; device is cpu"):
        SearchSpace(model=["tiny"], per_device_batch=[2], num_gpus=[1], attention=["sdpa"], strategy=["ddp"],
                    seq_len=32, loss_kernel="liger", device="cpu")
