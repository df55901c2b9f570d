import numpy as np
import pytest
import torch

from slmray.data.cli import main as data_main
from slmray.data.sources import ByteTokenizer, HFTokenizer, load_tokens, make_batches, prepare, read_meta, stdlib_corpus
from slmray.errors import ConfigError

from tests.conftest import call_main


def test_prepare_and_read_round_trip(tmp_path, cli):
    (tmp_path / "a.txt").write_text("héllo")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("world")
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe\x00")
    out = tmp_path / "shards"
    res = cli("-m", "slmray.data", "prepare", str(tmp_path / "a.txt"), str(tmp_path / "sub"), str(tmp_path / "blob.bin"),
              "--out", str(out), "--shard-tokens", "4")
    assert res.returncode == 0, res.stderr
    tokens = load_tokens(str(out))
    expected = list("héllo".encode()) + [256] + list(b"world") + [256]  # the binary file is skipped
    assert tokens.tolist() == expected and tokens.dtype == np.uint16
    meta = read_meta(str(out))
    assert meta["num_tokens"] == len(expected) and meta["num_documents"] == 2 and meta["vocab_size"] == 257
    assert len(list(out.glob("shard_*.parquet"))) == 4  # 13 tokens, 4 per shard
    assert not list(tmp_path.glob("shards.tmp-*"))


def test_prepare_with_a_tokenizers_json(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["the cat sat on the mat"] * 10, trainers.BpeTrainer(vocab_size=40, special_tokens=["[UNK]"]))
    path = tmp_path / "tok.json"
    tok.save(str(path))
    (tmp_path / "t.txt").write_text("the cat sat")
    hf = HFTokenizer(str(path))
    meta = prepare([str(tmp_path / "t.txt")], str(tmp_path / "out"), hf)
    assert load_tokens(str(tmp_path / "out")).tolist() == tok.encode("the cat sat").ids + [hf.eot]
    assert meta["vocab_size"] == tok.get_vocab_size() + 1


def test_prepare_errors_name_the_input(tmp_path, capsys):
    res = call_main(capsys, data_main, "prepare", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2
    assert res.stderr.strip() == f"error: inputs: no such file or directory {tmp_path / 'missing.txt'}"
    (tmp_path / "x.txt").write_text("x")
    (tmp_path / "o").mkdir()
    res = call_main(capsys, data_main, "prepare", str(tmp_path / "x.txt"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "out:" in res.stderr and "already exists" in res.stderr
    with pytest.raises(ConfigError, match="^tokenizer: no such file"):
        HFTokenizer(str(tmp_path / "nope.json"))
    (tmp_path / "notes.json").write_text("not json")
    res = call_main(capsys, data_main, "prepare", str(tmp_path / "x.txt"), "--out", str(tmp_path / "p"),
                    "--tokenizer", str(tmp_path / "notes.json"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"error: tokenizer: {tmp_path / 'notes.json'} is not a Hugging Face tokenizers JSON file")
    res = call_main(capsys, data_main, "prepare", str(tmp_path / "x.txt"), "--out", " ")
    assert (res.returncode, res.stderr) == (2, "error: out: must name a folder for the shards (got an empty path)\n")
    res = call_main(capsys, data_main, "prepare", str(tmp_path / "x.txt"), "--out", "s3://")
    assert (res.returncode, res.stderr) == (2, "error: storage: s3:// names no bucket (s3://bucket/prefix)\n")


@pytest.mark.parametrize(
    "flag, value, field",
    [("--shard-tokens", "0", "shard_tokens"), ("--shard-tokens", "-4", "shard_tokens"),
     ("--max-bytes", "0", "max_bytes"), ("--max-bytes", "-1", "max_bytes")],
)
def test_prepare_refuses_non_positive_sizes_and_writes_nothing(tmp_path, capsys, flag, value, field):
    # --shard-tokens 0 used to crash in range(), -4 to write a meta.json and no shards;
    # --max-bytes 0 read nothing and blamed the inputs
    (tmp_path / "x.txt").write_text("some text")
    res = call_main(capsys, data_main, "prepare", str(tmp_path / "x.txt"), "--out", str(tmp_path / "o"), flag, value)
    assert res.returncode == 2, res.stderr
    assert res.stderr.strip() == f"error: {field}: must be a positive integer, got {value}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.txt"]  # no directory, no staging left over


def test_max_bytes_stops_after_that_many_bytes_cutting_the_last_file(tmp_path):
    """Not after whole files that fit, counted in characters: a file longer than the limit gave
    `no UTF-8 text found`.  The cut falls back to a whole character."""
    (tmp_path / "a.txt").write_text("é" * 10)  # 20 bytes
    (tmp_path / "b.txt").write_text("plain text")
    meta = prepare([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], str(tmp_path / "one"), ByteTokenizer(), max_bytes=7)
    assert (meta["num_bytes"], meta["num_documents"]) == (7, 2)  # three é (a fourth's first byte dropped), then "p"
    meta = prepare([str(tmp_path / "a.txt"), str(tmp_path / "b.txt")], str(tmp_path / "two"), ByteTokenizer(), max_bytes=25)
    assert (meta["num_bytes"], meta["num_documents"]) == (25, 2)  # all of a, five bytes of b


@pytest.mark.parametrize("damage, message", [
    ("cut", "Parquet magic bytes not found"),
    ("empty", "is not a readable token shard ("),
    ("foreign", "is not a readable token shard ("),
    ("ids", "holds token id 999, not below the vocab_size 257 of "),
])
def test_a_damaged_shard_is_one_line_naming_it(tmp_path, damage, message):
    """A half-copied or foreign shard folder: an error naming the shard, not pyarrow's traceback or an
    index error in the embedding."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "x.txt").write_text("some text")
    out = tmp_path / "shards"
    prepare([str(tmp_path / "x.txt")], str(out), ByteTokenizer())
    shard = out / "shard_00000.parquet"
    if damage == "cut":
        shard.write_bytes(shard.read_bytes()[:100])
    elif damage == "empty":
        shard.write_bytes(b"")
    elif damage == "foreign":
        pq.write_table(pa.table({"ids": [1, 2]}), shard)
    else:
        pq.write_table(pa.table({"tokens": np.array([1, 999], dtype=np.uint16)}), shard)
    with pytest.raises(ConfigError) as err:
        load_tokens(str(out))
    assert str(err.value).startswith(f"data: {shard} ") and message in str(err.value) and "\n" not in str(err.value)


def test_prepare_says_how_far_it_has_got(tmp_path, monkeypatch):
    import slmray.data.sources as sources

    for name in ("a.txt", "b.txt"):
        (tmp_path / name).write_text("some text")
    monkeypatch.setattr(sources, "PROGRESS_EVERY_S", 0.0)  # every file, instead of every ten seconds
    said = []
    prepare([str(tmp_path)], str(tmp_path / "out"), ByteTokenizer(), progress=said.append)
    assert said == ["read 0 of 2 files, 0.0 MB of text", "read 1 of 2 files, 0.0 MB of text"]


def test_stdlib_corpus_is_python_source():
    path = stdlib_corpus()
    assert stdlib_corpus() == path  # built once
    tokens = load_tokens(path)
    assert tokens.size > 1_000_000
    text = bytes(t for t in tokens[:50_000] if t < 256).decode("utf-8", errors="replace")
    assert "def " in text and "import " in text


def test_ranks_slice_one_global_batch():
    cpu = torch.device("cpu")
    tokens = np.arange(10_000, dtype=np.uint16)
    from slmray.data.sources import BatchStream

    whole = BatchStream(tokens, 50_000, 4, 16, rank=0, world_size=1, grad_accum=1, seed=7, device=cpu)
    halves = [BatchStream(tokens, 50_000, 2, 16, rank=r, world_size=2, grad_accum=1, seed=7, device=cpu) for r in (0, 1)]
    accum = BatchStream(tokens, 50_000, 2, 16, rank=0, world_size=1, grad_accum=2, seed=7, device=cpu)
    for step in range(3):
        x, y = whole.get(step)
        torch.testing.assert_close(torch.cat([h.get(step)[0] for h in halves]), x)
        torch.testing.assert_close(torch.cat([accum.get(step, m)[0] for m in (0, 1)]), x)
        torch.testing.assert_close(x[:, 1:], y[:, :-1])  # targets are inputs shifted by one
    assert not torch.equal(whole.get(0)[0], whole.get(1)[0])


def test_synthetic_batches_are_sliced_the_same_way():
    cpu = torch.device("cpu")
    whole = make_batches("synthetic", 100, 4, 8, 0, 1, 1, 3, cpu)
    halves = [make_batches("synthetic", 100, 2, 8, r, 2, 1, 3, cpu) for r in (0, 1)]
    for step in range(5):
        torch.testing.assert_close(torch.cat([h.get(step)[0] for h in halves]), whole.get(step)[0])
    assert int(whole.get(0)[0].max()) < 100


def test_vocabulary_larger_than_the_model_is_refused(tmp_path):
    (tmp_path / "t.txt").write_text("abc" * 100)
    prepare([str(tmp_path / "t.txt")], str(tmp_path / "d"), ByteTokenizer())
    with pytest.raises(ConfigError, match="^data: .* 257 ids, more than the model's vocabulary of 100"):
        make_batches(str(tmp_path / "d"), 100, 1, 8, 0, 1, 1, 0, torch.device("cpu"))
    with pytest.raises(ConfigError, match="^data: .* is not a token-shard directory"):
        make_batches(str(tmp_path), 1000, 1, 8, 0, 1, 1, 0, torch.device("cpu"))


def test_shards_on_s3_round_trip(tmp_path, s3_server, monkeypatch):
    for key, value in s3_server.items():
        monkeypatch.setenv(key, value)
    (tmp_path / "t.txt").write_text("def f():\n    return 1\n" * 50)
    meta = prepare([str(tmp_path / "t.txt")], "s3://slmray-test/corpus", ByteTokenizer(), shard_tokens=400)
    assert read_meta("s3://slmray-test/corpus") == meta
    tokens = load_tokens("s3://slmray-test/corpus")
    assert bytes(tokens[:-1].astype("uint8")).decode() == (tmp_path / "t.txt").read_text()
    x, y = make_batches("s3://slmray-test/corpus", 512, 2, 16, 0, 1, 1, 0, torch.device("cpu")).get(0)
    assert x.shape == (2, 16) and torch.equal(x[:, 1:], y[:, :-1])


def test_tokens_are_read_once_until_the_shards_change(tmp_path):
    # a warm worker group's next trial reads no shard again; a shard rewritten since is read anew
    import shutil

    (tmp_path / "a.txt").write_text("first")
    (tmp_path / "b.txt").write_text("second text")
    prepare([str(tmp_path / "a.txt")], str(tmp_path / "one"), ByteTokenizer())
    prepare([str(tmp_path / "b.txt")], str(tmp_path / "two"), ByteTokenizer())
    first = load_tokens(str(tmp_path / "one"))
    assert load_tokens(str(tmp_path / "one")) is first and not first.flags.writeable
    for shard in (tmp_path / "two").glob("shard_*.parquet"):
        shutil.copy(shard, tmp_path / "one" / shard.name)
    assert load_tokens(str(tmp_path / "one")).tolist() == list(b"second text") + [256]
