"""Token data: synthetic random tokens, and real text as Parquet token shards.

A shard directory (local or s3://) holds `shard_NNNNN.parquet` files with one column
`tokens` (uint16, or uint32 for vocabularies past 65,536) and a `meta.json`.  Documents are
joined with an end-of-text token.  `python -m slmray.data prepare` writes one; `stdlib`
builds one offline from the Python standard library's sources, which every machine has.

Batches are drawn per step from the *global* batch (every rank's rows) and each rank takes
its slice, so 1 process with batch 4 and 2 processes with batch 2 see the same tokens.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from slmray.errors import ConfigError, check_positive_int, first_line
from slmray.results.storage import exists, filesystem, write_directory

if TYPE_CHECKING:  # torch loads where batches are made: the sweep's driver checks a source without it
    import torch

META = "meta.json"
SHARD_TOKENS = 1 << 24
STDLIB_MAX_BYTES = 16 << 20  # enough text for short throughput runs, built in about a second
SYNTHETIC_POOL = 4  # distinct synthetic batches cycled through, made once before the loop


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255, end-of-text 256: needs no files and no network."""

    name = "bytes"
    vocab_size = 257
    eot = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))


class HFTokenizer:
    """A Hugging Face `tokenizers` JSON file."""

    def __init__(self, path: str):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise ConfigError("tokenizer: a tokenizer JSON file needs the `tokenizers` package") from None
        if not Path(path).is_file():
            raise ConfigError(f"tokenizer: no such file {path}")
        try:
            self._tok = Tokenizer.from_file(path)
        except Exception as exc:  # tokenizers raises a bare Exception for a file it cannot parse
            raise ConfigError(f"tokenizer: {path} is not a Hugging Face tokenizers JSON file ({exc})") from None
        self.name = Path(path).name
        self.vocab_size = self._tok.get_vocab_size()
        self.eot = self.vocab_size  # one id past the tokenizer's own
        self.vocab_size += 1

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids


def _text_files(inputs: list[str]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"inputs: no such file or directory {item}")
    return files


PROGRESS_EVERY_S = 10.0
"""`prepare` says how far it has got at most this often."""


def prepare(
    inputs: list[str], out: str, tokenizer: ByteTokenizer | HFTokenizer, max_bytes: int | None = None,
    shard_tokens: int = SHARD_TOKENS, progress: Callable[[str], None] = lambda msg: None,
) -> dict:
    """Tokenise text files into shards under `out`; the directory appears whole or not at all.
    `progress` hears the files and bytes read so far, every `PROGRESS_EVERY_S`."""
    # before anything is read: 0 would crash range() below, a negative value would write no shards
    check_positive_int("shard_tokens", shard_tokens)
    if max_bytes is not None:
        check_positive_int("max_bytes", max_bytes)  # 0 would read nothing and blame the inputs
    if not out.strip():
        raise ConfigError("out: must name a folder for the shards (got an empty path)")
    files = _text_files(inputs)
    if exists(out):  # before the inputs are read and tokenised, which may take minutes
        raise ConfigError(f"out: {out} already exists")
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32
    pieces: list[np.ndarray] = []
    used, total_bytes, said = [], 0, time.perf_counter()
    for i, path in enumerate(files, start=1):
        if time.perf_counter() - said >= PROGRESS_EVERY_S:
            progress(f"read {i - 1:,} of {len(files):,} files, {total_bytes / 1e6:,.1f} MB of text")
            said = time.perf_counter()
        if max_bytes is not None and total_bytes >= max_bytes:
            break
        try:
            raw = path.read_bytes()
            text = raw.decode("utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binaries and unreadable files are not text
        if max_bytes is not None and total_bytes + len(raw) > max_bytes:  # the last file, cut at a whole character
            raw = raw[: max_bytes - total_bytes].decode("utf-8", errors="ignore").encode("utf-8")
            text = raw.decode("utf-8")
        total_bytes += len(raw)
        used.append(str(path))
        pieces.append(np.asarray(tokenizer.encode(text) + [tokenizer.eot], dtype=dtype))
    if not pieces:
        raise ConfigError(f"inputs: no UTF-8 text found in {', '.join(inputs)}")
    tokens = np.concatenate(pieces)
    meta = {
        "tokenizer": tokenizer.name, "vocab_size": tokenizer.vocab_size, "num_tokens": int(tokens.size),
        "num_documents": len(used), "num_bytes": total_bytes, "dtype": np.dtype(dtype).name,
    }
    if exists(out):
        raise ConfigError(f"out: {out} already exists")

    def write(fs: pafs.FileSystem, directory: str) -> None:
        fs.create_dir(directory)
        for i, start in enumerate(range(0, tokens.size, shard_tokens)):
            table = pa.table({"tokens": tokens[start : start + shard_tokens]})
            pq.write_table(table, f"{directory}/shard_{i:05d}.parquet", filesystem=fs)
        with fs.open_output_stream(f"{directory}/{META}") as f:  # last: readers require it
            f.write(json.dumps(meta, indent=1).encode())

    write_directory(out, write)
    return meta


def stdlib_corpus(cache_dir: str | None = None) -> str:
    """Shard directory of the Python standard library's sources, built once per machine."""
    root = Path(cache_dir or os.environ.get("SLMRAY_CACHE", Path.home() / ".cache" / "slmray"))
    out = root / f"stdlib-py{sys.version_info.major}{sys.version_info.minor}-bytes-v2"  # v2: its last file cut at the limit
    if not (out / META).is_file():
        try:
            root.mkdir(parents=True, exist_ok=True)
            staging = tempfile.TemporaryDirectory(dir=root)
        except OSError as exc:
            if cache_dir:  # the caller's own folder (python -m slmray.data stdlib --cache-dir): the caller says so
                raise
            raise ConfigError(f"data: stdlib: cannot build its corpus in {root} ({exc.strerror or exc}); set "
                              "SLMRAY_CACHE to a folder this user can write") from None
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        sources = sorted(str(p) for p in stdlib.rglob("*.py") if "site-packages" not in p.parts)
        with staging as tmp:
            build = Path(tmp) / "corpus"
            prepare(sources, str(build), ByteTokenizer(), max_bytes=STDLIB_MAX_BYTES)
            try:
                build.rename(out)
            except OSError:  # another process on this machine built it first
                pass
    return str(out)


def read_meta(source: str) -> dict:
    fs, path = filesystem(source)
    try:
        with fs.open_input_stream(f"{path}/{META}") as f:
            meta = json.loads(f.read())
    except FileNotFoundError:
        raise ConfigError(f"data: {source} is not a token-shard directory (no {META})") from None
    except OSError as exc:  # unreadable, or S3 refusing the credentials at hand
        raise ConfigError(f"data: cannot read {source}/{META} ({first_line(exc)})") from None
    except ValueError:
        raise ConfigError(f"data: {source}/{META} is not valid JSON") from None
    for key in ("vocab_size", "num_tokens"):
        if not isinstance(meta, dict) or isinstance(meta.get(key), bool) or not isinstance(meta.get(key), int):
            raise ConfigError(f"data: {source}/{META} has no integer {key!r}")
    return meta


def check_source(data: str, vocab_size: int, seq_len: int) -> dict | None:
    """Check a token source before training reads it: shards that exist, metadata that fits the
    model.  Returns the metadata (None for `synthetic`); `stdlib` is built on first use."""
    if data == "synthetic":
        return None
    source = resolve_source(data)
    meta = read_meta(source)
    if meta["vocab_size"] > vocab_size:
        raise ConfigError(
            f"data: {data} was tokenised with {meta['vocab_size']} ids, more than the model's vocabulary of {vocab_size}"
        )
    if meta["num_tokens"] <= seq_len + 1:
        raise ConfigError(f"data: {data} holds {meta['num_tokens']} tokens, fewer than one sequence of {seq_len}")
    fs, path = filesystem(source)
    if not any(i.path.endswith(".parquet") for i in fs.get_file_info(pafs.FileSelector(path))):
        raise ConfigError(f"data: {source} has {META} but no .parquet shard")
    return meta


def load_tokens(source: str) -> np.ndarray:
    """All tokens of a shard directory, concatenated in shard order (read-only).  Kept for the
    next call on the same unchanged shards: a warm worker group's next trial reads none again."""
    vocab_size = read_meta(source)["vocab_size"]
    fs, path = filesystem(source)
    shards = tuple(sorted(
        (info.path, info.size, info.mtime_ns)
        for info in fs.get_file_info(pafs.FileSelector(path)) if info.path.endswith(".parquet")
    ))
    return _concatenated_shards(source, shards, vocab_size)


@functools.lru_cache(maxsize=1)
def _concatenated_shards(source: str, shards: tuple[tuple[str, int, int | None], ...], vocab_size: int) -> np.ndarray:
    """The shards' tokens; a shard that is not one (cut short, empty, no `tokens` column, an id
    at or past `vocab_size`) is a ConfigError naming it, not an error deep in the model."""
    fs, _ = filesystem(source)
    pieces = []
    for path, _, _ in shards:
        try:
            piece = pq.read_table(path, filesystem=fs, columns=["tokens"]).column("tokens").to_numpy()
        except (pa.ArrowException, OSError, KeyError) as exc:
            raise ConfigError(f"data: {path} is not a readable token shard ({first_line(exc)})") from None
        if piece.size and int(piece.max()) >= vocab_size:
            raise ConfigError(f"data: {path} holds token id {int(piece.max())}, not below the vocab_size "
                              f"{vocab_size} of {source}/{META}")
        pieces.append(piece)
    if not pieces:
        raise ConfigError(f"data: {source} has no token shards (*.parquet) beside its {META}")
    tokens = np.concatenate(pieces)
    tokens.flags.writeable = False
    return tokens


def resolve_source(data: str) -> str:
    """`stdlib` -> its cache directory; anything else but `synthetic` is a shard directory."""
    return stdlib_corpus() if data == "stdlib" else data


@dataclass
class BatchStream:
    """This rank's micro-batches, (inputs, targets) of shape (batch, seq_len), on `device`."""

    tokens: np.ndarray | None
    """Real-text token stream, or None for synthetic tokens."""
    vocab_size: int
    per_device_batch: int
    seq_len: int
    rank: int
    world_size: int
    grad_accum: int
    seed: int
    device: torch.device

    def __post_init__(self) -> None:
        self._pool: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._check_fits_in_memory()
        if self.tokens is None:  # made once, so the timed loop does no random-number work
            self._pool = [self._to_device(self._synthetic_rows(k)) for k in range(SYNTHETIC_POOL)]

    def _check_fits_in_memory(self) -> None:
        """An out-of-memory error now where the batches alone cannot fit in this host's memory: made
        row by row, a batch of 10^9 sequences would take hours before the allocator refused it."""
        import torch

        batches = SYNTHETIC_POOL * self.grad_accum if self.tokens is None else 1
        # int64 tokens, held as the drawn rows, their copy and the inputs and targets cut from it
        need = batches * self.per_device_batch * (self.seq_len + 1) * 8 * 3
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        if need > have:
            raise torch.OutOfMemoryError(
                f"the batches need {need / 2**30:,.1f} GiB of host memory ({self.per_device_batch:,} sequences of "
                f"{self.seq_len + 1} tokens, {batches} at a time); this host has {have / 2**30:,.1f} GiB")

    def _rows(self, micro: int) -> range:
        first = (micro * self.world_size + self.rank) * self.per_device_batch
        return range(first, first + self.per_device_batch)

    def _synthetic_rows(self, k: int) -> np.ndarray:
        # one stream per (pool entry, global row): each rank draws only its own rows
        rows = [self._rows(m) for m in range(self.grad_accum)]
        return np.stack(
            [
                np.random.default_rng([self.seed, k, r]).integers(0, self.vocab_size, self.seq_len + 1)
                for rr in rows
                for r in rr
            ]
        )

    def _to_device(self, windows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        t = torch.from_numpy(windows.astype(np.int64))
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        return t[:, :-1].contiguous(), t[:, 1:].contiguous()

    def get(self, step: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.per_device_batch
        if self.tokens is None:
            x, y = self._pool[step % SYNTHETIC_POOL]
            return x[micro * b : (micro + 1) * b], y[micro * b : (micro + 1) * b]
        global_rows = self.per_device_batch * self.world_size * self.grad_accum
        starts = np.random.default_rng([self.seed, step]).integers(0, self.tokens.size - self.seq_len - 1, global_rows)
        mine = starts[self._rows(micro).start : self._rows(micro).stop]
        windows = self.tokens[mine[:, None] + np.arange(self.seq_len + 1)]
        return self._to_device(windows)


def make_batches(
    data: str, vocab_size: int, per_device_batch: int, seq_len: int, rank: int, world_size: int,
    grad_accum: int, seed: int, device: torch.device,
) -> BatchStream:
    tokens = None
    if check_source(data, vocab_size, seq_len) is not None:
        tokens = load_tokens(resolve_source(data))
        if tokens.size <= seq_len + 1:
            raise ConfigError(f"data: {data} holds {tokens.size} tokens, fewer than one sequence of {seq_len}")
    return BatchStream(tokens, vocab_size, per_device_batch, seq_len, rank, world_size, grad_accum, seed, device)

