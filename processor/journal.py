"""The sent journal: a line per reply the SMTP server accepted, written the moment it does.

Between the server's 250 and our record of it, a crash sends the reply twice the next
time. The record must therefore never wait, and an SQLite commit can: the main thread
may hold the write lock while it decides. A line appended to a file beside the
database cannot wait on anyone; once `write` returns it survives a killed process
(the kernel holds it).

To survive a power cut too it must reach the disk (`fdatasync`), which takes a few
hundred microseconds when the disk is busy: done in line, that was a fifth of each
reply's time at the SMTP server's pace. A syncer thread does it instead, while the
next reply's envelope (MAIL, RCPT) goes out, and the sender calls `wait_durable`
before it hands the server that reply's content. So, as before, at most one accepted
reply is ever not yet on disk: the one whose 250 has just come in.

The next reply session reads the journal first and marks those rows `sent` in the
store, then empties it; a session that finishes cleanly empties it itself, every line
in it having been marked done by then.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class SentJournal:
    def __init__(self, store_path: Path) -> None:
        self.path = store_path.with_name(store_path.name + ".sent")
        self._fd: int | None = None
        self._changed = threading.Condition()
        self._written = 0  # lines written
        self._durable = 0  # of which on disk
        self._failure: OSError | None = None
        self._syncer: threading.Thread | None = None

    def pending(self) -> list[str]:
        """The idempotency keys recorded and not yet cleared."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        # A line cut short by a crash mid-write has no newline: it names no key.
        return text.split("\n")[:-1]

    def record(self, key: str) -> None:
        """Append the line now; the syncer puts it on disk (see `wait_durable`)."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            self._syncer = threading.Thread(
                target=self._sync, args=(self._fd,), name="journal", daemon=True
            )
            self._syncer.start()
        os.write(self._fd, f"{key}\n".encode())
        with self._changed:
            self._written += 1
            self._changed.notify_all()

    def wait_durable(self) -> None:
        """Return once every line recorded so far is on disk; OSError if it cannot be."""
        with self._changed:
            while self._durable < self._written and self._failure is None:
                self._changed.wait()
            if self._failure is not None:
                raise self._failure

    def _sync(self, fd: int) -> None:
        while True:
            with self._changed:
                while self._durable == self._written and self._fd == fd:
                    self._changed.wait()
                if self._durable == self._written:
                    return  # closed, and nothing left to sync
                target = self._written
            try:
                os.fdatasync(fd)
            except OSError as exc:
                with self._changed:
                    self._failure = exc
                    self._changed.notify_all()
                return
            with self._changed:
                self._durable = target
                self._changed.notify_all()

    def clear(self) -> None:
        """Empty the journal: everything in it is in the store now."""
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Put what is written on disk and close the file."""
        if self._fd is None:
            return
        try:
            self.wait_durable()
        finally:
            with self._changed:
                fd, self._fd = self._fd, None
                self._changed.notify_all()
            if self._syncer is not None:
                self._syncer.join()
                self._syncer = None
            os.close(fd)
