"""The command line of `python -m slmray.train`: parse, build the config, run, print.

Apart from the training loop (`slmray.train.loop`) so that it parses before torch is imported:
`--help`, `--list-models` and a bad flag answer in a tenth of a second instead of the 2 to 3 s
torch and CUDA take to load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

from slmray.cli import exits_2_on_user_error
from slmray.cli import parser as new_parser
from slmray.train.config import ModelConfig, TrainConfig
from slmray.train.presets import PUBLISHED_PARAM_COUNTS, PRESETS, get_model

DEFAULT_MODEL = "tiny"
SHAPE_FLAGS = {
    "n_layer": "number of transformer blocks", "d_model": "model width", "n_head": "attention heads",
    "n_kv_head": "key/value heads (grouped-query attention; must divide the attention heads)",
    "d_mlp": "MLP hidden width", "vocab_size": "vocabulary size",
}
"""ModelConfig fields the command line can override on a preset, with what each is."""
INT_OPTIONS = {
    "per_device_batch": "sequences per device per micro-step",
    "seq_len": "tokens per sequence (default: {seq_len}, or the model's own limit where that is lower)",
    "grad_accum": "micro-steps per optimizer step",
    "steps": "measured steps per repeat",
    "warmup_steps": "untimed steps before the measured ones (torch.compile compiles in them)",
    "repeats": "measured windows of --steps steps each; tokens/s is their mean",
    "lr_warmup_steps": "steps of linear learning-rate warm-up",
    "seed": "random seed of the weights and the data",
}
FLOAT_OPTIONS = {
    "lr": "AdamW's peak learning rate",
    "weight_decay": "AdamW's weight decay, on matrices and embeddings",
    "grad_clip": "global gradient-norm clip; 0 turns it off",
    "memory_fraction": "share of the GPU's memory the run may use, to stand in for a smaller GPU",
}


def _features(m: ModelConfig) -> str:
    """What sets a model apart from the paper's layout, in a few words (`-` for none)."""
    parts = [f"gqa {m.n_head}/{m.n_kv_head}"] if m.n_kv_head != m.n_head else []
    parts += [f"hd {m.head_dim}"] if m.head_dim * m.n_head != m.d_model else []
    parts += [name for name, on in (("tied", m.tie_embeddings), ("qkv-bias", m.qkv_bias), ("qk-norm", m.qk_norm),
                                    ("llama3-rope", m.rope_scaling is not None)) if on]
    return ",".join(parts) or "-"


def list_models(as_json: bool = False) -> str:
    """The presets: shape, parameter count, the published count where there is one, and the source."""
    if as_json:
        return json.dumps([
            {**dataclasses.asdict(m), "num_params": m.num_params, "published_params": PUBLISHED_PARAM_COUNTS.get(m.name)}
            for m in PRESETS.values()
        ])
    lines = [f"{'model':<15} {'family':<6} {'layers':>6} {'width':>6} {'heads':>5} {'mlp':>6} {'vocab':>7} "
             f"{'params':>15}  {'published':<24} {'features':<32} source"]
    for m in PRESETS.values():
        published = PUBLISHED_PARAM_COUNTS.get(m.name)
        pub = f"{published:,}({100 * (m.num_params / published - 1):+.2f}%)" if published else "-"
        lines.append(
            f"{m.name:<15} {m.family:<6} {m.n_layer:>6} {m.d_model:>6} {m.n_head:>5} {m.d_mlp:>6} {m.vocab_size:>7} "
            f"{m.num_params:>15,}  {pub:<24} {_features(m):<32} {m.source}"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    d = TrainConfig.__dataclass_fields__
    p = new_parser("python -m slmray.train", "Train one configuration and report its throughput.")
    p.add_argument("--list-models", action="store_true",
                   help="print the model presets (family, parameter count, source) and exit; with --json as JSON")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help="a preset (see --list-models), a Hugging Face config.json (or a directory holding one) of "
                        "model_type llama, mistral, qwen2 or qwen3, or a hub id such as HuggingFaceTB/SmolLM2-360M")
    for name, what in SHAPE_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=None,
                       help=f"{what}, replacing the preset's (default: the preset's)")
    p.add_argument("--attention", default=d["attention"].default,
                   help="eager (the paper's vanilla attention), sdpa (PyTorch's fused attention), sdpa-flash, "
                        "sdpa-cudnn, sdpa-efficient or sdpa-math (sdpa with that backend forced), flash2 (flash_attn)")
    p.add_argument("--strategy", default=d["strategy"].default,
                   help="single (one process, no wrapper), ddp, fsdp (FSDP2, resharding after forward) or "
                        "fsdp_grad_op (FSDP2, parameters kept gathered until backward); ddp and fsdp run one "
                        "process per GPU under torchrun, one process without it")
    for name, what in INT_OPTIONS.items():
        # seq_len: None until the model is known, then the smaller of TrainConfig's default and the model's limit
        default = None if name == "seq_len" else d[name].default
        p.add_argument(f"--{name.replace('_', '-')}", type=int, default=default,
                       help=what.format(seq_len=d["seq_len"].default))
    for name, what in FLOAT_OPTIONS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=float, default=d[name].default, help=what)
    p.add_argument("--compile", action="store_true", help="torch.compile each block and the output head (default: off)")
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="recompute each block's activations in the backward pass instead of keeping them (default: off)")
    p.add_argument("--precision", default=d["precision"].default,
                   help="bf16; fp8 (torchao's tensorwise FP8 training) or fp8-rowwise, which need FP8 tensor cores "
                        "(H100, H200, L4, L40S) and pip install 'slmray[fp8]'")
    p.add_argument("--loss-kernel", default=d["loss_kernel"].default,
                   help="standard (full fp32 logits), chunked (a chunk of tokens at a time, recomputed in backward), "
                        "liger (Liger-Kernel's fused linear cross-entropy) or cce (cut-cross-entropy); the last two "
                        "need a GPU and their package")
    p.add_argument("--backend", default=d["backend"].default,
                   help="native (slmray's model) or transformers (the same shape through "
                        "transformers.AutoModelForCausalLM, its own attention implementations)")
    p.add_argument("--data", default=d["data"].default,
                   help="synthetic (random tokens), stdlib (Python's own sources, built offline on first use), "
                        "or a token-shard directory / s3:// prefix from python -m slmray.data prepare")
    p.add_argument("--device", default=d["device"].default, choices=("auto", "cuda", "cpu"),
                   help="auto: a GPU where torch sees one, else the CPU")
    p.add_argument("--time-limit", dest="time_limit_s", type=float, default=None, metavar="SECONDS",
                   help="end the run with status failed once it has taken this long, wherever it is (default: no limit)")
    p.add_argument("--json", action="store_true",
                   help="print the configuration and result as one JSON object (default: one line of text)")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    # `is not None`, not truthiness: --n-layer 0 must reach ModelConfig's check, not fall back to the preset
    overrides = {k: getattr(args, k) for k in SHAPE_FLAGS if getattr(args, k) is not None}
    model = get_model(args.model, **overrides)
    names = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("model", "seq_len")]
    # an explicit --seq-len is kept as given, so one above the model's limit is still an error
    seq_len = args.seq_len if args.seq_len is not None else min(TrainConfig.seq_len, model.max_seq_len)
    return TrainConfig(model=model, seq_len=seq_len, **{n: getattr(args, n) for n in names})


@exits_2_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list_models:
        print(list_models(as_json=args.json))
        return 0
    cfg = config_from_args(args)
    if cfg.strategy != "single" and "WORLD_SIZE" not in os.environ:
        # A warning, not an error: DDP or FSDP on one process is a configuration people run on
        # purpose (a one-GPU sweep trial is one; benchmarks/results/sweeps compares it run directly), so
        # refusing would break it; whoever expected several processes learns here they need torchrun.
        print(f"warning: --strategy {cfg.strategy} outside torchrun runs one process; for N GPUs: "
              f"torchrun --nproc-per-node N -m slmray.train ...", file=sys.stderr, flush=True)
    from slmray.train.loop import TimeLimitError, format_result, is_out_of_memory, run  # torch loads here

    try:
        result = run(cfg, progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    except TimeLimitError as exc:  # a rank of a multi-process run
        print(f"status failed: {exc}", file=sys.stderr)
        return 3
    except Exception as exc:  # a ConfigError the run finds (no FP8 tensor cores, no data) is re-raised: exit 2
        if not is_out_of_memory(exc):
            raise
        print(f"status oom: {str(exc).strip().splitlines()[0][:300]}", file=sys.stderr)  # a rank of a multi-process run
        return 3
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, rank 0 alone prints
        if args.json:
            print(json.dumps({"config": cfg.to_dict(), "result": result.to_dict()}))
        else:
            print(format_result(cfg, result))
    return 0 if result.status == "ok" else 3
