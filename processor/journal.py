"""The sent journal: a line per reply the SMTP server accepted, written the moment it does.

Between the server's 250 and our record of it, a crash sends the reply twice the next
time. The record must therefore never wait, and an SQLite commit can: the main thread
may hold the write lock while it decides. A line appended to a file beside the
database cannot wait on anyone; once `write` returns it survives a killed process
(the kernel holds it), and the `fdatasync` after it survives a power cut too.

The next reply session reads the journal first and marks those rows `sent` in the
store, then empties it; a session that finishes cleanly empties it itself, every line
in it having been marked done by then.
"""

from __future__ import annotations

import os
from pathlib import Path


class SentJournal:
    def __init__(self, store_path: Path) -> None:
        self.path = store_path.with_name(store_path.name + ".sent")
        self._fd: int | None = None

    def pending(self) -> list[str]:
        """The idempotency keys recorded and not yet cleared."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        # A line cut short by a crash mid-write has no newline: it names no key.
        return text.split("\n")[:-1]

    def record(self, key: str) -> None:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(self._fd, f"{key}\n".encode())
        os.fdatasync(self._fd)

    def clear(self) -> None:
        """Empty the journal: everything in it is in the store now."""
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
