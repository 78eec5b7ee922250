"""The store: one worker at a time, and a dead worker never leaves it locked."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from processor.errors import LockHeldError
from processor.models import (
    Evidence,
    Occupancy,
    Registration,
    Request,
    request_from_json,
    request_to_json,
)
from processor.records import NewOutboxItem
from processor.store import BatchUndone, Store, upsert_registration


def test_it_lets_only_one_worker_hold_the_lock(tmp_path: Path) -> None:
    first, second = Store(tmp_path / "s.sqlite3"), Store(tmp_path / "s.sqlite3")
    first.lock.acquire()
    with pytest.raises(LockHeldError, match="locked by worker"):
        second.lock.acquire()
    first.lock.release()
    second.lock.acquire()
    second.close()
    first.close()


def test_it_frees_the_lock_of_a_killed_worker(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from processor.store import Store; "
            f"s = Store(Path({str(path)!r})); s.lock.acquire(); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    store = Store(path)
    with pytest.raises(LockHeldError):
        store.lock.acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        try:
            store.lock.acquire()
            break
        except LockHeldError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    store.close()


def _row_count(path: Path) -> int:
    """What another connection sees: only what is committed."""
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM mailbox_state").fetchone()[0])


def _write_then_fail(store: Store, folder: str) -> None:
    """A nested block that writes a row, then fails, as one message's decision can."""
    with store.transaction() as db:
        db.execute(
            "INSERT INTO mailbox_state(folder, sync_token, updated_at) VALUES (?, 1, 0)",
            (folder,),
        )
        raise RuntimeError("this message failed")


def test_a_nested_transaction_undoes_only_its_own_writes_and_commits_with_the_outer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    with store.transaction():
        store.save_sync_state("kept", "1", None)  # itself a transaction(): a savepoint
        with pytest.raises(RuntimeError):
            _write_then_fail(store, "undone")
        assert store.sync_token("kept") == "1"
        assert store.sync_token("undone") is None
        assert _row_count(path) == 0  # nothing durable before the outer commit
    assert _row_count(path) == 1
    with pytest.raises(RuntimeError), store.transaction():
        store.save_sync_state("lost", "2", None)
        raise RuntimeError("the whole chunk failed")
    assert store.sync_token("lost") is None
    assert _row_count(path) == 1
    store.close()


def test_a_batch_is_undone_whole_when_a_nested_block_fails_even_if_caught(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    store = Store(path)
    with store.batch():
        store.save_sync_state("kept", "1", None)  # nested, without a savepoint
    assert store.sync_token("kept") == "1"
    with pytest.raises(BatchUndone), store.batch():
        store.save_sync_state("first", "2", None)
        with suppress(RuntimeError):  # as decide_and_enqueue refers the message, goes on
            _write_then_fail(store, "half")
        store.save_sync_state("after", "4", None)
    assert [store.sync_token(f) for f in ("first", "half", "after")] == [None, None, None]
    assert _row_count(path) == 1
    with store.transaction(), pytest.raises(RuntimeError, match="of its own"), store.batch():
        pass
    store.close()


def test_a_request_keeps_every_field_through_its_json() -> None:
    request = Request(
        intent="attend",
        mode="in_person",
        meeting_id="dec",
        meeting_candidates=("dec", "jan"),
        meeting_named=True,
        name="Zoë O'Brien",
        party_size=3,
        access_needs=("wheelchair",),
        wants_to_speak=True,
        refer_reasons=("asked to speak",),
        evidence=(Evidence("mode", "mode.in_person.chamber", "in the chamber"),),
    )
    text = request_to_json(request)
    assert request_from_json(text) == request
    assert json.loads(text) == json.loads(json.dumps(asdict(request)))


def test_the_occupancy_triggers_agree_with_counting_after_any_writes(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    rng = random.Random(7)
    counted = (
        "SELECT meeting_id, SUM((mode = 'in_person') * party_size), SUM(mode = 'online') "
        "FROM registrations WHERE status = 'confirmed' GROUP BY meeting_id"
    )
    for _ in range(400):
        meeting, sender = rng.choice(["dec", "jan"]), f"r{rng.randrange(12)}@x"
        mode, size = rng.choice(["in_person", "online"]), rng.randint(1, 4)
        status = rng.choice(["confirmed", "waitlisted", "cancelled"])
        with store.transaction() as db:
            action = rng.random()
            if action < 0.6:  # the worker's upsert: insert, or update on conflict
                registration = Registration(meeting, sender, None, mode, size, status, (), "<m>")
                upsert_registration(db, registration, "<m>", "now")
            elif action < 0.8:  # a change of meeting, status, mode or party by staff
                db.execute(
                    "UPDATE OR IGNORE registrations SET meeting_id = ?, status = ?, mode = ?, "
                    "party_size = ? WHERE sender = ?",
                    (meeting, status, mode, size, sender),
                )
            else:  # a purge
                db.execute("DELETE FROM registrations WHERE sender = ?", (sender,))
        expected = {m: Occupancy(p, o) for m, p, o in store.db.execute(counted)}
        kept = {m: o for m, o in store.occupancy().items() if o != Occupancy()}
        assert kept == expected
    store.close()


def _keep(store: Store, n: int, key: str, token: str = "uidvalidity-1") -> None:
    store.store_raw(
        message_id=f"<kept-{n}@residents.example>",
        sha256=f"{n:064d}",
        received_at=datetime(2026, 11, 30, tzinfo=UTC),
        raw=b"Subject: hi\r\n\r\nbody\r\n",
        raw_complete=True,
        size=20,
        mailbox_key=key,
        sync_token=token,
        sender=f"resident{n}@residents.example",
        name=None,
        subject="hi",
    )


def test_it_finds_the_messages_kept_at_a_folders_keys_in_one_go(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    for n in range(1200):  # more keys than one query takes
        _keep(store, n, str(n))
    _keep(store, 5000, "7", token="uidvalidity-2")  # the same key in another folder life

    found = store.messages_at("uidvalidity-1", ["7", "1199", "no-such-key", "1000"])

    assert sorted(found) == ["1000", "1199", "7"]
    assert found["7"].message_id == "<kept-7@residents.example>"
    assert len(store.messages_at("uidvalidity-1", [str(n) for n in range(1200)])) == 1200
    store.close()


def test_what_every_cycle_looks_up_per_message_uses_an_index(tmp_path: Path) -> None:
    # A council keeps months of mail; a lookup that scans it once per message turns a
    # backlog quadratic (by mailbox key, before schema 5: 44 s for 2000 messages over
    # 20000 kept). Every statement below must search an index, not scan its table.
    store = Store(tmp_path / "s.sqlite3")
    _keep(store, 1, "1")
    statements: list[str] = []
    store.db.set_trace_callback(statements.append)
    store.messages_at("uidvalidity-1", ["1", "2"])
    store.message("<kept-1@residents.example>")
    store.message_by_reply_id("<reply-1@council.example>")
    store.registrations_for("resident1@residents.example")
    store.replies_since("resident1@residents.example", datetime(2026, 11, 29, tzinfo=UTC))
    store.db.set_trace_callback(None)

    assert len(statements) >= 5
    for statement in statements:
        plan = [row[3] for row in store.db.execute(f"EXPLAIN QUERY PLAN {statement}")]
        scans = [step for step in plan if step.startswith("SCAN") and "INDEX" not in step]
        assert scans == [], (statement, plan)
    store.close()


def test_a_sending_session_is_not_given_back_the_rows_it_holds(tmp_path: Path) -> None:
    # A session behind a busy worker asks again at every batch of decisions: the rows
    # already in its hands are left out, past the 500 ids one query takes.
    store = Store(tmp_path / "s.sqlite3")
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    for n in range(1200):
        _keep(store, n, str(n))
        store.enqueue(
            NewOutboxItem(
                f"reply:<{n}.r@council.example>", "reply", f"r{n}@example.org", None, b"x"
            ),
            f"<kept-{n}@residents.example>",
        )
    every = store.due_outbox(now, ("reply",), leftovers=False)
    held = {item.id for item in every[:1100]}

    rest = store.due_outbox(now, ("reply",), leftovers=False, skip=held)

    assert len(every) == 1200
    assert [item.id for item in rest] == [item.id for item in every[1100:]]
    assert rest[0].payload == b"x"
    store.claim([rest[0].id])  # no longer due: not given even when not held
    assert len(store.due_outbox(now, ("reply",), leftovers=False, skip=held)) == 99
    store.close()
