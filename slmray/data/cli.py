"""The command line of `python -m slmray.data`: `prepare` token shards, build the `stdlib` corpus.

Apart from `slmray.data.sources` so that it parses before numpy, pyarrow and torch load: `--help`
answers at once.
"""

from __future__ import annotations

import argparse
import sys

from slmray.cli import ArgumentParser, HelpFormatter, exits_2_on_user_error

SHARD_TOKENS_HELP = "tokens per shard file (default: 16,777,216)"
"""`slmray.data.sources.SHARD_TOKENS`, written out so that --help imports no torch (a test checks they agree)."""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="python -m slmray.data", formatter_class=HelpFormatter,
        description="Token data for the trainer: Parquet token shards from text files, or from Python's own sources.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{prepare,stdlib}")
    p = sub.add_parser("prepare", help="tokenise text files into Parquet token shards", formatter_class=HelpFormatter,
                       description="Tokenise text files into a directory (or s3:// prefix) of Parquet token shards.")
    p.add_argument("inputs", nargs="+", help="text files or directories (read recursively)")
    p.add_argument("--out", required=True, help="new directory or s3://bucket/prefix for the shards")
    p.add_argument("--tokenizer", default="bytes",
                   help="bytes (UTF-8 bytes, ids 0-256; offline) or the path of a Hugging Face tokenizers JSON file")
    p.add_argument("--max-bytes", type=int, default=None, help="stop after this many bytes of text, the last file cut there (default: no limit)")
    p.add_argument("--shard-tokens", type=int, default=None, help=SHARD_TOKENS_HELP)
    s = sub.add_parser("stdlib", help="build (once) the corpus of Python's standard library and print its path",
                       formatter_class=HelpFormatter,
                       description="Build (once per machine) the token shards of Python's standard library sources, "
                                   "which --data stdlib trains on, and print their directory.")
    s.add_argument("--cache-dir", default=None,
                   help="where the corpus is built (default: $SLMRAY_CACHE, else ~/.cache/slmray)")
    return parser


@exits_2_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from slmray.data import sources  # numpy, pyarrow and torch load here, after parsing

        if args.command == "stdlib":
            print(sources.stdlib_corpus(args.cache_dir))
            return 0
        tokenizer = sources.ByteTokenizer() if args.tokenizer == "bytes" else sources.HFTokenizer(args.tokenizer)
        shard_tokens = args.shard_tokens if args.shard_tokens is not None else sources.SHARD_TOKENS
        meta = sources.prepare(args.inputs, args.out, tokenizer, args.max_bytes, shard_tokens,
                               progress=lambda msg: print(msg, file=sys.stderr, flush=True))
    except KeyboardInterrupt:  # a local directory is written under a staging name, removed on the way out
        left = (f"the shards written so far stay under {args.out} without the meta.json readers require"
                if args.command == "prepare" and args.out.startswith("s3://") else "nothing was written")
        print(f"interrupted: {left}", file=sys.stderr)
        return 130
    except OSError as exc:  # a cache or output folder that cannot be made: the user's to fix, not a traceback
        where = f"--cache-dir {exc.filename or args.cache_dir}" if args.command == "stdlib" else f"--out {args.out}"
        reason = exc.strerror or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"error: {where}: cannot write there ({reason})", file=sys.stderr)
        return 2
    print(f"wrote {meta['num_tokens']:,} tokens from {meta['num_documents']} files to {args.out}")
    return 0
