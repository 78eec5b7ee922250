"""The store's two locks: flocks on files beside the database, which the kernel drops
when their holder dies, so a killed process never leaves the store locked.

- `ProcessingLock` (`<store>.lock`): one worker processes at a time; the staff
  commands that change decisions take it too.
- `WriterLock` (`<store>.writer`): one SQLite writer at a time, queued here.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from typing import TextIO

from processor.errors import LockHeldError


class ProcessingLock:
    """`acquire()` or LockHeldError; the file names the holder for the one refused.

    A worker's reply process shares it (reply_process.py, through `fileno`), so a worker
    that has just died holds it until that process has finished the reply in hand: a
    second or so at most, which is what `acquire(wait=...)` is for.
    """

    def __init__(self, store_path: Path) -> None:
        self.path = store_path.with_name(store_path.name + ".lock")
        self.holder = f"{socket.gethostname()}:{os.getpid()}"
        self._file: TextIO | None = None

    def acquire(self, wait: float = 0.0) -> None:
        """Take the lock, trying for `wait` seconds, or raise LockHeldError."""
        if self._file is not None:
            return
        handle = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                handle.seek(0)
                holder = handle.read().strip() or "another worker"
                handle.close()
                raise LockHeldError(f"the store is locked by {holder}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"worker {self.holder}\n")
        handle.flush()
        self._file = handle

    def fileno(self) -> int | None:
        """The held lock's file descriptor, for a process that must hold it too."""
        return None if self._file is None else self._file.fileno()

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class WriterLock:
    """One writer at a time per database file, among threads and processes alike (the
    worker, its reply threads or reply process, the staff commands), queued here in the
    kernel rather than in SQLite: SQLite makes a writer wait by polling, with sleeps of
    up to 25 ms, and a writer that writes again straight after its commit can keep
    another waiting like that for good. An flock on a file beside the database: each
    Store opens its own, so its threads exclude each other too, and the kernel drops it
    when a holder dies.
    """

    def __init__(self, store_path: Path) -> None:
        path = store_path.with_name(store_path.name + ".writer")
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)
