"""Atomic writes (slmray.results.storage): a reader sees the old object or the new one, never half of one."""

import pytest

from slmray.results.storage import write_atomically, write_directory


class DiskFull(OSError):
    pass


def _half_then_fail(target, seen):
    """A writer that writes half its data, notes what a reader of `target` sees, then fails."""

    def write(fs, path):
        with fs.open_output_stream(path) as f:
            f.write(b"new, half")
            f.flush()
            seen.append(target.read_bytes() if target.is_file() else None)
            raise DiskFull("no space left on device")

    return write


def test_a_write_that_fails_midway_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "results.parquet"
    target.write_bytes(b"old, whole")
    seen = []
    with pytest.raises(DiskFull):
        write_atomically(str(target), _half_then_fail(target, seen))
    assert seen == [b"old, whole"]  # during the write: not written in place
    assert target.read_bytes() == b"old, whole"  # after it failed: untouched


def test_a_write_that_succeeds_replaces_the_file_and_leaves_no_staging(tmp_path):
    target = tmp_path / "rows" / "t1.parquet"  # the parent is created

    def write(fs, path):
        assert path != str(target)
        with fs.open_output_stream(path) as f:
            f.write(b"new")

    write_atomically(str(target), write)
    target.write_bytes(b"old")
    write_atomically(str(target), write)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["t1.parquet"]


def test_a_directory_that_fails_midway_does_not_appear(tmp_path):
    target = tmp_path / "shards"

    def write(fs, path):
        fs.create_dir(path)
        with fs.open_output_stream(f"{path}/shard_00000.parquet") as f:
            f.write(b"tokens")
        assert not target.exists()  # a reader does not see it while it is written
        raise DiskFull("no space left on device")

    with pytest.raises(DiskFull):
        write_directory(str(target), write)
    assert not target.exists()


def test_a_failed_write_leaves_no_staging_file_or_directory(tmp_path):
    target = tmp_path / "results.parquet"
    target.write_bytes(b"old, whole")
    with pytest.raises(DiskFull):
        write_atomically(str(target), _half_then_fail(target, []))

    def half_a_directory(fs, path):
        fs.create_dir(path)
        with fs.open_output_stream(f"{path}/shard_00000.parquet") as f:
            f.write(b"tokens")
        raise DiskFull("no space left on device")

    with pytest.raises(DiskFull):
        write_directory(str(tmp_path / "shards"), half_a_directory)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.parquet"]


@pytest.mark.s3  # pyarrow's S3 client retries the refused connection for about 6 s a call: not the fast tier
def test_an_s3_store_that_does_not_answer_is_one_line_for_analysis_and_recommend(monkeypatch, capsys):
    """An endpoint that refuses the connection (a closed local port): `analysis` and `recommend` print
    one line naming the table and exit 2, as `tune` and `data prepare` do."""
    from slmray.analysis.__main__ import main as analysis
    from slmray.recommend import main as recommend
    from slmray.results.storage import StorageError, exists

    for name, value in {"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_ACCESS_KEY_ID": "x",
                        "AWS_SECRET_ACCESS_KEY": "y", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    uri = "s3://nowhere/results.parquet"
    with pytest.raises(StorageError, match=f"^storage: cannot reach {uri} "):
        exists(uri)
    for main, args in ((analysis, [uri, "--out", "unused"]), (recommend, [uri, "--model", "llama-1b", "--tokens", "1e9"])):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: storage: cannot reach {uri} ") and err.count("\n") == 1
