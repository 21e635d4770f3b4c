"""One writer at a time: an exclusive lock on a results folder.

A run holds ``out/_opticam.lock`` for its whole duration with an operating-system lock
(``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows). The kernel releases it when the
holding process ends, however it ends (``kill -9`` included), so a lock left by a dead process
is taken over by the next run at once, safely: there is no "is the holder still alive?" guess
and no window in which two processes could both take it. The file holds the holder's host, pid
and start time, which the refusal quotes. The file stays behind after the run (its content
describes the last holder); it lives beside ``out/rows``, the Parquet-only folder readers are
given, so it never disturbs them.

A second process on the same folder is refused with a :class:`StoreBusyError` (a
``ValueError`` naming ``out``) before it reads or writes anything: the store never holds two
copies of an image. On a shared file system (a cluster), the lock is as good as the file
system's ``flock`` (NFSv4 supports it); the Ray engine writes every shard from the driver, so a
run has a single writer anyway.

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder, StoreLock(folder):
    ...     pass
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["LOCK_FILE", "StoreBusyError", "StoreLock"]

LOCK_FILE = "_opticam.lock"


class StoreBusyError(ValueError):
    """Another process holds the results folder (its host, pid and start time in the message)."""


def _try_lock(fd: int) -> bool:
    """Take the OS lock on ``fd`` without waiting; whether we got it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: held by another open file description
        return False
    return True


#: Seconds a refused run waits for the holder to write its host, pid and start time (the holder
#: writes them right after taking the lock; a run refused in between would otherwise name none).
HOLDER_WAIT = 1.0


def _read_holder(path: Path) -> dict[str, Any]:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):  # not there, or half written
        return {}
    return info if isinstance(info, dict) else {}


def _holder(path: Path, wait: float = HOLDER_WAIT) -> str:
    deadline = time.monotonic() + wait
    info = _read_holder(path)
    while not info and time.monotonic() < deadline:
        time.sleep(0.02)
        info = _read_holder(path)
    if not info:
        return "a process that is starting"
    return (f"host {info.get('host')}, pid {info.get('pid')}, started "
            f"{info.get('started')}")


class StoreLock:
    """Hold ``out/_opticam.lock`` exclusively (a context manager; the folder is created).

    Args:
        out: The results folder.

    Raises:
        StoreBusyError: Another process (or another run in this one) holds it.
    """

    def __init__(self, out: str | os.PathLike) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> StoreLock:
        """Take the lock, or raise :class:`StoreBusyError` naming its holder."""
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if not _try_lock(fd):
            os.close(fd)
            raise StoreBusyError(
                f"`out` {str(self.out)!r} is in use by another run ({_holder(self.path)}); "
                "wait for it to end or stop it, or give another `out` (a lock left by a "
                "process that died is taken over automatically)")
        info = {"host": socket.gethostname(), "pid": os.getpid(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(info).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the lock go (closing the file releases the OS lock)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.ftruncate(fd, 0)  # no holder any more
            finally:
                os.close(fd)

    def __enter__(self) -> StoreLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
