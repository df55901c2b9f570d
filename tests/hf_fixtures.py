"""Hugging Face config files for the tests: written by the test (nothing downloaded), and counted
as Transformers counts them."""

import json

import torch
import transformers


def write_config(tmp_path, raw: dict, name: str = "model") -> str:
    """`raw` as `<tmp_path>/<name>/config.json`; its path."""
    folder = tmp_path / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(raw))
    return str(folder / "config.json")


def transformers_count(path: str) -> int:
    """What transformers counts for the config at `path`: built on the meta device, tied weights once."""
    config = transformers.AutoConfig.from_pretrained(path)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())
