"""Where files live: a local path or s3://bucket/prefix, through pyarrow's filesystems.

S3 credentials and endpoint come from the environment, as boto3 reads them (instance
role, AWS_* variables, AWS_ENDPOINT_URL for an S3-compatible server), never from a file
of slmray's.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable

import pyarrow.fs as pafs

from slmray.errors import UserError, first_line


class StorageError(UserError):
    """A path slmray cannot use; the message names it."""


def normalize(uri: str, field: str = "storage") -> str:
    """An s3:// URI as given, a local path made absolute; checked without touching the network."""
    if uri.startswith("s3://"):
        if not uri.removeprefix("s3://").split("/", 1)[0]:
            raise StorageError(f"{field}: {uri} names no bucket (s3://bucket/prefix)")
        return uri
    if "://" in uri:
        raise StorageError(f"{field}: {uri} is neither a local path nor s3://")
    try:
        return str(Path(uri).expanduser().absolute())
    except RuntimeError as exc:  # ~nosuchuser
        raise StorageError(f"{field}: {uri}: {exc}") from None


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or an s3:// URI."""
    uri = normalize(uri)
    if uri.startswith("s3://"):
        try:
            return pafs.FileSystem.from_uri(uri)
        except OSError as exc:  # the bucket's region is looked up: no network, no bucket, no access
            raise StorageError(f"storage: cannot reach {uri} ({first_line(exc)})") from None
    return pafs.LocalFileSystem(), uri


def _info(uri: str, fs: pafs.FileSystem, what):
    """`fs.get_file_info(what)`, a StorageError naming `uri` where the store cannot be reached
    (an endpoint that does not answer, credentials it refuses): the first network call of a read."""
    try:
        return fs.get_file_info(what)
    except OSError as exc:
        raise StorageError(f"storage: cannot reach {uri} ({first_line(exc)})") from None


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return _info(uri, fs, path).type != pafs.FileType.NotFound


def list_files(uri: str, suffix: str = "") -> list[str]:
    """URIs of the files directly under a directory (none if it does not exist)."""
    if not exists(uri):
        return []
    fs, path = filesystem(uri)
    scheme = "s3://" if uri.startswith("s3://") else ""
    infos = _info(uri, fs, pafs.FileSelector(path))
    return sorted(scheme + i.path for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix))


def join(base: str, *parts: str) -> str:
    return "/".join([base if base.endswith("://") else base.rstrip("/"), *parts])


def write_atomically(uri: str, write: Callable[[pafs.FileSystem, str], None]) -> None:
    """Call `write(fs, staging_path)`, then move the staging file or directory onto `uri`.

    A reader sees the old object or the new one, never half of one; a write that fails leaves
    no staging object behind.
    """
    fs, path = filesystem(uri)
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    staging = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        write(fs, staging)
    except BaseException:
        kind = fs.get_file_info(staging).type
        if kind == pafs.FileType.Directory:
            fs.delete_dir(staging)
        elif kind == pafs.FileType.File:
            fs.delete_file(staging)
        raise
    fs.move(staging, path)


def write_directory(uri: str, write: Callable[[pafs.FileSystem, str], None]) -> None:
    """Write a directory so that no reader takes a half-written one for whole.

    Locally it is written under a staging name and renamed into place.  S3 has no directory
    rename, so there it is written in place and `write` must write a marker file last (the
    token shards' meta.json), which readers require.
    """
    if not uri.startswith("s3://"):
        write_atomically(uri, write)
        return
    fs, path = filesystem(uri)
    fs.create_dir(path, recursive=True)
    write(fs, path)
