"""One driver per sweep: an exclusive lock on `<storage>/<name>/driver.lock`.

Two drivers on one sweep name would each write the whole table over the other's, and a
`--resume` beside a running driver would run its trials twice.  The lock is taken before Ray
starts and held until the driver exits; a driver killed with SIGKILL must not leave it stuck:

- Local storage: `fcntl.flock` on the lock file.  The kernel drops the lock when its holder
  dies, however it dies, so there is nothing to expire.  The file is never removed (a waiter
  that opened it just before an unlink would lock a file nobody else sees); it only holds the
  holder's description, for the message the next driver prints.
- S3 has no locks but has conditional writes: the lock object is created with
  `If-None-Match: *` (exactly one creator wins) and refreshed every `HEARTBEAT_S` with
  `If-Match: <its ETag>` (a holder that lost it finds out).  A lock is stale when the server
  last saw a heartbeat more than `LEASE_S` ago, or at once when its holder ran on this host
  and that process is gone; a stale lock is taken over with `If-Match` on the stale ETag, so of
  two drivers taking over one lock, one wins.  Release deletes it, conditional on the ETag.
"""

from __future__ import annotations

import datetime
import email.utils
import fcntl
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Callable

from slmray.errors import first_line
from slmray.results.storage import StorageError, filesystem, join

LOCK_FILE = "driver.lock"
HEARTBEAT_S = 10.0
LEASE_S = 60.0
"""Six missed heartbeats: longer than any pause of a healthy driver."""


class LockHeld(StorageError):
    """Another live driver holds the sweep; the message names it."""


_LOST: set[str] = set()
"""Lock files of this process that another driver took over (an S3 lease outlived)."""


def lock_lost(sweep_dir: str) -> bool:
    """Whether this process lost the sweep's lock: it must write nothing more there."""
    return join(sweep_dir, LOCK_FILE) in _LOST


def _holder() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _process_start(os.getpid()),
            "since": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (/proc), so a reused pid is not mistaken for it."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _is_alive_here(holder: dict) -> bool:
    """Whether the holder is a live process of this host (False when it ran elsewhere)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    started = _process_start(holder["pid"])
    return started is not None and started == holder.get("started")


def _describe(holder: dict) -> str:
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"


class SweepLock:
    """`with SweepLock(sweep_dir, name):` holds the sweep for this process, or raises LockHeld."""

    def __init__(self, sweep_dir: str, name: str, on_lost: Callable[[], None] | None = None):
        """`on_lost`: called (from the heartbeat thread) when another driver took the lock over."""
        self.uri, self.name, self.on_lost = join(sweep_dir, LOCK_FILE), name, on_lost
        self._fd: int | None = None
        self._s3 = None
        self._etag: str | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self.lost = False
        """Set when an S3 heartbeat finds the lock taken over (this driver was paused past the lease)."""

    def __enter__(self) -> SweepLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def _held(self, holder: dict) -> LockHeld:
        return LockHeld(f"--name: sweep {self.name} is being run by another driver ({_describe(holder)}); "
                        f"wait for it to end, or stop it before --resume")

    # local ---------------------------------------------------------------------------------
    def acquire(self) -> None:
        if self.uri.startswith("s3://"):
            return self._acquire_s3()
        _, path = filesystem(self.uri)
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by Ray's processes
        except OSError as exc:
            raise StorageError(_unwritable(Path(path).parent, exc)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.read(fd, 4096) or b"{}")
            except ValueError:
                holder = {}
            os.close(fd)
            raise self._held(holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
        if self._s3 is not None and self._etag is not None:
            self._stop.set()
            if self._heartbeat:
                self._heartbeat.join()
            bucket, key = self._bucket_key()
            try:
                self._s3.delete_object(Bucket=bucket, Key=key, IfMatch=self._etag)
            except Exception:  # taken over after our lease ran out: it is the new holder's now
                pass
            self._etag = None

    # S3 ------------------------------------------------------------------------------------
    def _bucket_key(self) -> tuple[str, str]:
        bucket, _, key = self.uri.removeprefix("s3://").partition("/")
        return bucket, key

    def _client(self):
        import boto3  # reads credentials as pyarrow does: instance role, AWS_PROFILE, AWS_* variables

        return boto3.client("s3")

    def _acquire_s3(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        self._s3 = self._client()
        bucket, key = self._bucket_key()
        self._holder = _holder()
        body = json.dumps(self._holder).encode()
        try:
            try:
                self._etag = self._s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")["ETag"]
            except ClientError as exc:
                if _code(exc) not in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise
                self._take_over_if_stale(bucket, key, body)
        except (ClientError, BotoCoreError) as exc:
            raise StorageError(f"--storage: cannot write s3://{bucket}/{key} ({first_line(exc)})") from None
        self._heartbeat = threading.Thread(target=self._beat, args=(bucket, key), daemon=True)
        self._heartbeat.start()

    def _take_over_if_stale(self, bucket: str, key: str, body: bytes) -> None:
        from botocore.exceptions import ClientError

        try:
            got = self._s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) not in ("NoSuchKey", "404"):
                raise
            try:  # released meanwhile: try once more to create it
                self._etag = self._s3.put_object(Bucket=bucket, Key=key, Body=body, IfNoneMatch="*")["ETag"]
                return
            except ClientError as again:
                if _code(again) in ("PreconditionFailed", "ConditionalRequestConflict"):
                    raise self._held({}) from None
                raise
        try:
            holder = json.loads(got["Body"].read())
        except ValueError:
            holder = {}
        # the server's clock on both sides of the comparison: no trust in this host's clock
        now = email.utils.parsedate_to_datetime(got["ResponseMetadata"]["HTTPHeaders"]["date"])
        age = (now - got["LastModified"]).total_seconds()
        gone_here = holder.get("host") == socket.gethostname() and not _is_alive_here(holder)
        if age <= LEASE_S and not gone_here:
            raise self._held(holder)
        try:
            self._etag = self._s3.put_object(Bucket=bucket, Key=key, Body=body, IfMatch=got["ETag"])["ETag"]
        except ClientError as exc:
            if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
                raise self._held(holder) from None  # another driver took it over first
            raise

    def _beat(self, bucket: str, key: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        while not self._stop.wait(HEARTBEAT_S):
            try:
                body = json.dumps({**self._holder, "heartbeat": time.time()}).encode()
                self._etag = self._s3.put_object(Bucket=bucket, Key=key, Body=body, IfMatch=self._etag)["ETag"]
            except ClientError as exc:
                if _code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey"):
                    self._lose()
                    return
            except BotoCoreError:
                pass  # a transient network error: the next beat tries again, well inside the lease

    def _lose(self) -> None:
        """Another driver holds the sweep now: this process writes nothing more there.  `lost` is
        set last, once all of this has happened."""
        _LOST.add(self.uri)
        print(f"warning: the lock on sweep {self.name} was taken over by another driver: stopping", flush=True)
        if self.on_lost:
            self.on_lost()
        self.lost = True


def _unwritable(directory: Path, exc: OSError) -> str:
    """Name the part of the path that is in the way: a file where a directory should be, or
    the deepest directory that exists and cannot be written."""
    existing = next(p for p in (directory, *directory.parents) if p.exists())
    if not existing.is_dir():
        return f"--storage: {existing} is a file, not a directory"
    if existing == directory:
        return f"--storage: cannot write {existing} ({exc.strerror or exc})"
    return f"--storage: cannot make {directory}: cannot write {existing} ({exc.strerror or exc})"


def _code(exc) -> str:
    return exc.response.get("Error", {}).get("Code", "")
