"""`purge`: personal data of long-past meetings leaves the database file and its WAL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from processor.store import Store
from tests.staff_support import NOW, offline_config, request, run_cli, seed

PERSONAL = (b"residents.example", b"Jane Smith", b"Bob Jones", b"Linda", b"Bins")


def worker_store(tmp_path: Path) -> Path:
    """A store the real worker filled: raw mail, decisions, registrations, sent replies."""
    config = offline_config(tmp_path)
    mail = [
        request(
            1,
            "Jane Smith <jane@residents.example>",
            "Attending",
            "I'd like to attend on 10 December online please.\n\nJane Smith",
        ),
        request(
            2,
            "Bob Jones <bob@residents.example>",
            "Thursday",
            "Can I come in person with my neighbour on 10 December? I use a wheelchair.",
        ),
        request(
            3,
            "Linda <linda@residents.example>",
            "Bins",
            "When is my bin collection? My council tax bill is wrong.",
        ),
    ]
    for n, raw in enumerate(mail):
        (tmp_path / "maildir" / "new" / f"17960000{n}.m{n}.localhost").write_bytes(raw)
    result = run_cli(config, "run", "--once", "--now", NOW)
    assert result.returncode == 0, result.stderr
    return config


def database_bytes(tmp_path: Path) -> bytes:
    files = [tmp_path / "store.sqlite3", tmp_path / "store.sqlite3-wal"]
    return b"".join(p.read_bytes() for p in files if p.exists())


def test_it_leaves_no_personal_data_in_the_database_file_or_its_wal(tmp_path: Path) -> None:
    config = worker_store(tmp_path)
    assert all(word in database_bytes(tmp_path) for word in PERSONAL)
    # A second connection stays open (as a running worker's would), so the WAL file
    # outlives the purge process and must have been emptied, not merely deleted.
    watcher = sqlite3.connect(tmp_path / "store.sqlite3")
    try:
        watcher.execute("SELECT COUNT(*) FROM messages").fetchone()

        result = run_cli(
            config, "purge", "--days", "90", "--now", "2027-04-01T00:00:00+00:00", "--by", "erin"
        )

        assert result.returncode == 0, result.stderr
        assert "3 message(s), 2 registration(s)" in result.stdout
        assert (tmp_path / "store.sqlite3-wal").exists()
        leaked = [word for word in PERSONAL if word in database_bytes(tmp_path)]
        assert leaked == []
    finally:
        watcher.close()

    store = Store(tmp_path / "store.sqlite3")
    try:
        assert store.db.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == 0
        assert store.db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 0
        lines = store.db.execute(
            "SELECT actor, detail FROM audit WHERE action = 'retention.purge'"
        ).fetchall()
    finally:
        store.close()
    assert len(lines) == 1 and lines[0]["actor"] == "erin"
    assert "3 message(s)" in lines[0]["detail"] and "cdc-2026-12-10" in lines[0]["detail"]
    assert run_cli(config, "log", "--format", "json").stdout.strip() == "[]"


def test_it_keeps_what_is_still_within_the_retention_period(tmp_path: Path) -> None:
    config = worker_store(tmp_path)

    # 90 days before 5 March 2027 is 5 December 2026: the meeting (10 December) is
    # too recent to purge, while Linda's mail, tied to no meeting, is older than that.
    result = run_cli(config, "purge", "--now", "2027-03-05T00:00:00+00:00")

    assert result.returncode == 0, result.stderr
    data = database_bytes(tmp_path)
    assert b"jane@residents.example" in data and b"bob@residents.example" in data
    assert b"linda@residents.example" not in data and b"council tax" not in data
    attendees = run_cli(config, "attendees", "cdc-2026-12-10")
    assert "Bob Jones" in attendees.stdout and "jane@residents.example" in attendees.stdout


def test_it_purges_registrations_of_meetings_no_longer_configured(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    store = Store(tmp_path / "store.sqlite3")
    try:
        seed(
            store,
            1,
            "old@residents.example",
            name="Olive Old",
            outcome="confirmed",
            mode="online",
            status="confirmed",
            meeting_id="removed-2025-01-01",
        )
    finally:
        store.close()

    result = run_cli(config, "purge", "--days", "0", "--now", "2030-01-01T00:00:00+00:00")

    assert result.returncode == 0, result.stderr
    assert "1 message(s), 1 registration(s)" in result.stdout
    assert b"Olive Old" not in database_bytes(tmp_path)


def test_it_refuses_a_negative_number_of_days(tmp_path: Path) -> None:
    config = offline_config(tmp_path)

    result = run_cli(config, "purge", "--days", "-1")

    assert result.returncode == 1 and "--days must not be negative" in result.stderr
