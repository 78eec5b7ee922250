"""The sent journal: a line at once for each accepted reply, on disk before the next."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from processor.journal import SentJournal


def _syncs(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[int]:
    """The journal's size at each fdatasync of it (the real call still runs)."""
    sizes: list[int] = []
    real = os.fdatasync

    def watched(fd: int) -> None:
        real(fd)
        sizes.append(os.fstat(fd).st_size)

    monkeypatch.setattr(os, "fdatasync", watched)
    return sizes


def test_the_sent_journal_keeps_whole_lines_until_cleared(tmp_path: Path) -> None:
    journal = SentJournal(tmp_path / "s.sqlite3")
    assert journal.pending() == []
    journal.record("reply:<a@x>")
    journal.record("reply:<b@x>")
    journal.close()
    with journal.path.open("a") as handle:
        handle.write("reply:<c@")  # a write cut short by a crash names nothing
    assert SentJournal(tmp_path / "s.sqlite3").pending() == ["reply:<a@x>", "reply:<b@x>"]
    journal.clear()
    assert journal.pending() == []
    assert not journal.path.exists()


def test_a_line_is_written_at_once_and_on_disk_once_waited_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = SentJournal(tmp_path / "store.sqlite3")
    syncs = _syncs(monkeypatch, journal.path)
    for n in range(3):
        journal.record(f"reply:<{n}@council.example>")
        # Readable at once, as a killed process leaves it: no waiting on the disk.
        assert journal.pending()[-1] == f"reply:<{n}@council.example>"
        journal.wait_durable()
        assert syncs and syncs[-1] == journal.path.stat().st_size
    journal.close()
    assert journal.pending() == [f"reply:<{n}@council.example>" for n in range(3)]


def test_closing_puts_every_line_on_disk_and_ends_the_syncer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = threading.active_count()
    journal = SentJournal(tmp_path / "store.sqlite3")
    syncs = _syncs(monkeypatch, journal.path)
    for n in range(50):
        journal.record(f"reply:<{n}@council.example>")
    journal.close()

    assert syncs[-1] == journal.path.stat().st_size
    assert threading.active_count() == before
    journal.record("reply:<after@council.example>")  # reopened, with a syncer again
    journal.clear()
    assert journal.pending() == []
    assert threading.active_count() == before


def test_a_line_that_cannot_reach_the_disk_stops_the_sender(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fdatasync", failing)
    journal = SentJournal(tmp_path / "store.sqlite3")
    journal.record("reply:<1@council.example>")
    with pytest.raises(OSError, match="Input/output error"):
        journal.wait_durable()
    with pytest.raises(OSError, match="Input/output error"):
        journal.close()
    assert journal.pending() == ["reply:<1@council.example>"]  # still settles next time
