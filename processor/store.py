"""The SQLite store: raw mail, decisions, registrations, the outbox and the audit trail.

The worker's SQL lives here; with staffstore.py (the staff tools' statements) and
schema.py (the migrations) it is all the SQL there is. WAL mode, numbered migrations,
and explicit `BEGIN IMMEDIATE` transactions so that a decision, its registration
change and its outbox rows commit together or not at all.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Container, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from processor import faults
from processor.locks import ProcessingLock, WriterLock
from processor.models import Occupancy, Registration
from processor.ports import EventRef
from processor.records import DecisionRecord, NewOutboxItem, OutboxItem, StoredMessage
from processor.schema import MIGRATIONS

_V = TypeVar("_V")

# Values per `IN (...)` list: well inside SQLite's limit on a statement's parameters.
_IN_LIST = 500


def _in_lists(values: Sequence[_V]) -> Iterator[tuple[Sequence[_V], str]]:
    """`values` a part at a time for `IN (...)`: each part and its placeholders."""
    for start in range(0, len(values), _IN_LIST):
        part = values[start : start + _IN_LIST]
        yield part, ",".join("?" for _ in part)


class BatchUndone(Exception):
    """A write in a `Store.batch()` failed part-way, so the whole batch was rolled back."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


class Store:
    """One SQLite database file; open one `Store` per process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # isolation_level=None: we issue BEGIN ourselves, so a transaction is exactly
        # the `with store.transaction()` block and nothing is committed implicitly.
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30.0)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("PRAGMA foreign_keys=ON")
        # A savepoint's journal in memory: past 64 KiB SQLite spills it to a temporary
        # file. When each decision was a savepoint (as a batch decided again still has
        # it, see `batch`), that cost a backlog of 2000 requests some 50 000 writes of
        # pages nobody reads back.
        self.db.execute("PRAGMA temp_store=MEMORY")
        self._migrate()
        self._depth = 0  # open transaction() blocks: 0 none, 1 a transaction, more savepoints
        self._batch = False  # the open transaction is a batch(): nested blocks are plain
        self._batch_spoilt = False  # a nested block in the batch failed
        self._writer = WriterLock(path)
        self.lock = ProcessingLock(path)  # one worker at a time (locks.py)

    def close(self) -> None:
        self.lock.release()
        self.db.close()
        self._writer.close()

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self.db.execute("BEGIN IMMEDIATE")
            try:
                for statement in statements(script):
                    self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number}")
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One transaction; inside another it is a savepoint.

        The worker wraps a whole fetch chunk in one transaction (one fsync for a hundred
        messages), and each message's own writes in a nested one: a message that fails
        undoes only its own writes, and nothing is durable until the outer commit.
        Inside a `batch()`, a nested one is no savepoint (see there).
        """
        if self._depth and self._batch:
            self._depth += 1
            try:
                yield self.db
            except BaseException:
                self._batch_spoilt = True  # its writes may be half done
                raise
            finally:
                self._depth -= 1
            return
        if self._depth:
            savepoint = f"sp{self._depth}"
            self.db.execute(f"SAVEPOINT {savepoint}")
            self._depth += 1
            try:
                yield self.db
            except BaseException:
                self.db.execute(f"ROLLBACK TO {savepoint}")
                raise
            finally:
                self._depth -= 1
                self.db.execute(f"RELEASE {savepoint}")
            return
        with self._writer:
            self.db.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            finally:
                self._depth = 0
            self.db.execute("COMMIT")

    @contextmanager
    def batch(self) -> Iterator[sqlite3.Connection]:
        """One transaction whose nested transactions are not savepoints.

        A savepoint copies every page its block changes, in case the block fails: 40 µs
        a decision, for a failure that hardly ever comes. In a batch a nested block
        that fails leaves its writes as far as they got, so the whole batch is undone,
        and BatchUndone raised, whether or not the caller caught that failure; the
        caller then does the batch again in a `transaction()`.
        """
        if self._depth:
            raise RuntimeError("a batch is a transaction of its own, not a nested one")
        self._batch, self._batch_spoilt = True, False
        try:
            with self.transaction() as db:
                yield db
                if self._batch_spoilt:
                    raise BatchUndone
        finally:
            self._batch = False

    @contextmanager
    def statement(self) -> Iterator[sqlite3.Connection]:
        """For writes that cannot half-happen (one statement, or a write and its read):
        a transaction of their own, or simply part of the one already open, without
        the savepoint a `transaction()` would add."""
        if self._depth:
            yield self.db
        else:
            with self.transaction() as db:
                yield db

    # --- mailbox sync state ----------------------------------------------------------

    def sync_token(self, folder: str) -> str | None:
        row = self.db.execute(
            "SELECT sync_token FROM mailbox_state WHERE folder = ?", (folder,)
        ).fetchone()
        return None if row is None else str(row["sync_token"])

    def save_sync_state(self, folder: str, token: str, last_key: str | None) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO mailbox_state(folder, sync_token, last_key, updated_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT(folder) DO UPDATE SET "
                "sync_token = excluded.sync_token, last_key = excluded.last_key, "
                "updated_at = excluded.updated_at",
                (folder, token, last_key, _iso(utcnow())),
            )

    # --- messages --------------------------------------------------------------------

    def store_raw(
        self,
        *,
        message_id: str,
        sha256: str,
        received_at: datetime,
        raw: bytes,
        raw_complete: bool,
        size: int,
        mailbox_key: str,
        sync_token: str,
        sender: str,
        name: str | None,
        subject: str,
    ) -> StoredMessage:
        """Keep the raw bytes before any side effect; a known Message-ID is not stored twice.
        The row as stored (or as it was, for a known one, at its new key)."""
        with self.statement() as db:
            rows = db.execute(
                "INSERT INTO messages(message_id, sha256, received_at, stored_at, raw, "
                "raw_complete, size, mailbox_key, sync_token, sender, name, subject) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(message_id) DO UPDATE SET mailbox_key = excluded.mailbox_key, "
                f"sync_token = excluded.sync_token RETURNING {_STORED}",
                (
                    message_id,
                    sha256,
                    _iso(received_at),
                    _iso(utcnow()),
                    raw,
                    int(raw_complete),
                    size,
                    mailbox_key,
                    sync_token,
                    sender,
                    name,
                    subject,
                ),
            ).fetchall()
        return _stored(rows[0])

    def message(self, message_id: str) -> StoredMessage | None:
        row = self.db.execute(
            f"SELECT {_STORED} FROM messages WHERE message_id = ?", (message_id,)
        ).fetchone()
        return None if row is None else _stored(row)

    def messages_at(self, sync_token: str, mailbox_keys: Sequence[str]) -> dict[str, StoredMessage]:
        """The stored messages last seen at these mailbox keys, by key (skips re-reading)."""
        found: dict[str, StoredMessage] = {}
        for keys, marks in _in_lists(mailbox_keys):
            rows = self.db.execute(
                f"SELECT {_STORED} FROM messages WHERE sync_token = ? AND mailbox_key IN ({marks})",
                (sync_token, *keys),
            )
            found.update((row["mailbox_key"], _stored(row)) for row in rows)
        return found

    def count_first_attempts(self, message_ids: Sequence[str]) -> None:
        """One start at handling each of these messages, none started before."""
        with self.statement() as db:
            for ids, marks in _in_lists(message_ids):
                db.execute(
                    f"UPDATE messages SET attempts = attempts + 1 WHERE message_id IN ({marks})",
                    ids,
                )

    def count_attempt(self, message_id: str) -> int:
        """One more start at handling the message; the number of starts so far."""
        with self.statement() as db:
            row = db.execute(
                "UPDATE messages SET attempts = attempts + 1 WHERE message_id = ? "
                "RETURNING attempts",
                (message_id,),
            ).fetchone()
        return int(row["attempts"]) if row else 0

    def message_by_reply_id(self, reply_message_id: str) -> StoredMessage | None:
        """The inbound message that one of our replies (by its Message-ID) answered."""
        row = self.db.execute(
            "SELECT message_id FROM outbox WHERE kind = 'reply' AND idempotency_key = ?",
            (f"reply:{reply_message_id}",),
        ).fetchone()
        return None if row is None else self.message(row["message_id"])

    def mark_filed(self, message_ids: Sequence[str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE messages SET state = 'filed', filed_at = ? WHERE message_id = ?",
                [(_iso(utcnow()), mid) for mid in message_ids],
            )

    def commit_decision(self, record: DecisionRecord) -> None:
        """The decision, its registration change and its outbox rows: one transaction."""
        now = _iso(utcnow())
        d = record
        with self.transaction() as db:
            db.execute(
                "UPDATE messages SET state = 'decided', intent = ?, mode = ?, meeting_id = ?, "
                "party_size = ?, access_needs = ?, outcome = ?, reason = ?, rule = ?, "
                "evidence = ?, request = ?, destination = ?, decided_at = ?, name = ?, "
                "error = COALESCE(?, error) WHERE message_id = ?",
                (
                    d.intent,
                    d.mode,
                    d.meeting_id,
                    d.party_size,
                    json.dumps(list(d.access_needs)),
                    d.outcome,
                    d.reason,
                    d.rule,
                    d.evidence_json,
                    d.request_json,
                    d.destination,
                    now,
                    d.name,
                    d.error,
                    d.message_id,
                ),
            )
            if d.registration is not None:
                upsert_registration(db, d.registration, d.message_id, now)
                faults.point("mid_decision", d.message_id)  # half its writes done
            for item in d.outbox:
                insert_outbox(db, d.message_id, item, now)
            for promoted in d.promotions:
                db.execute(
                    "UPDATE registrations SET status = 'confirmed', updated_at = ? "
                    "WHERE meeting_id = ? AND sender = ? AND status = 'waitlisted'",
                    (now, promoted.meeting_id, promoted.sender),
                )
                self.audit(
                    db,
                    "promoted",
                    promoted.message_id,
                    f"waiting list to confirmed ({promoted.mode}, {promoted.party_size}) "
                    f"at {promoted.meeting_id}",
                )
            self.audit(db, "decided", d.message_id, f"{d.outcome} ({d.rule}): {d.reason}")

    # --- registrations ---------------------------------------------------------------

    def registrations_for(self, sender: str) -> tuple[Registration, ...]:
        rows = self.db.execute(
            "SELECT * FROM registrations WHERE sender = ? ORDER BY id", (sender,)
        ).fetchall()
        return tuple(_registration(r) for r in rows)

    def registrations(self, meeting_id: str) -> list[Registration]:
        rows = self.db.execute(
            "SELECT * FROM registrations WHERE meeting_id = ? ORDER BY id", (meeting_id,)
        ).fetchall()
        return [_registration(r) for r in rows]

    def occupancy(self) -> dict[str, Occupancy]:
        """Confirmed places per meeting (kept by triggers on registrations: schema 3)."""
        rows = self.db.execute("SELECT meeting_id, in_person, online FROM occupancy").fetchall()
        return {r["meeting_id"]: Occupancy(r["in_person"], r["online"]) for r in rows}

    # --- events ----------------------------------------------------------------------

    def event(self, meeting_id: str) -> tuple[EventRef, str] | None:
        """The meeting's Teams event and the fingerprint of the config it was made from."""
        row = self.db.execute(
            "SELECT event_id, etag, join_url, fingerprint FROM events WHERE meeting_id = ?",
            (meeting_id,),
        ).fetchone()
        if row is None:
            return None
        return EventRef(row["event_id"], row["etag"], row["join_url"]), row["fingerprint"]

    def save_event(self, meeting_id: str, event: EventRef, fingerprint: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO events(meeting_id, event_id, etag, join_url, fingerprint, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(meeting_id) DO UPDATE SET "
                "event_id = excluded.event_id, etag = excluded.etag, "
                "join_url = excluded.join_url, fingerprint = excluded.fingerprint, "
                "updated_at = excluded.updated_at",
                (
                    meeting_id,
                    event.event_id,
                    event.etag,
                    event.join_url,
                    fingerprint,
                    _iso(utcnow()),
                ),
            )

    # --- outbox ----------------------------------------------------------------------

    def enqueue(self, item: NewOutboxItem, message_id: str) -> bool:
        """Add one outbox row unless its idempotency key is known; True when added."""
        with self.transaction() as db:
            return insert_outbox(db, message_id, item, _iso(utcnow())) == 1

    def due_outbox(
        self,
        now: datetime,
        kinds: Sequence[str],
        *,
        leftovers: bool = True,
        skip: Container[int] = (),
    ) -> list[OutboxItem]:
        """Pending rows that are due; with `leftovers`, also rows left `sending` by a
        crash (in doubt) and replies `sent` whose Sent copy a crash kept from being
        filed. A sending session takes those once: later it would only read back its
        own rows at every batch of decisions.

        Rows whose ids are in `skip` (a session's own, already in hand) are left out
        before their payloads are read: a sending session behind a busy worker would
        otherwise read every waiting reply again at each batch of decisions."""
        marks = ",".join("?" for _ in kinds)
        others = " OR state IN ('sending', 'sent')" if leftovers else ""
        due = f"kind IN ({marks}) AND ((state = 'pending' AND next_attempt_at <= ?){others})"
        params = (*kinds, _iso(now))
        ids = [
            row[0]
            for row in self.db.execute(f"SELECT id FROM outbox WHERE {due} ORDER BY id", params)
            if row[0] not in skip
        ]
        items: list[OutboxItem] = []
        for part, in_marks in _in_lists(ids):
            rows = self.db.execute(
                f"SELECT * FROM outbox WHERE id IN ({in_marks}) AND {due} ORDER BY id",
                (*part, *params),
            )
            items.extend(_outbox(row) for row in rows)
        return items

    def meetings_due(self, now: datetime, kinds: Sequence[str]) -> set[str]:
        """The meetings that pending rows of these kinds, due now, are for."""
        marks = ",".join("?" for _ in kinds)
        rows = self.db.execute(
            f"SELECT DISTINCT meeting_id FROM outbox WHERE kind IN ({marks}) AND "
            "state = 'pending' AND next_attempt_at <= ? AND meeting_id IS NOT NULL",
            (*kinds, _iso(now)),
        ).fetchall()
        return {row[0] for row in rows}

    def claim(self, item_ids: Sequence[int]) -> None:
        """Mark rows `sending` before the outside call, so a crash leaves them in doubt."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1, updated_at = ? "
                "WHERE id = ?",
                [(_iso(utcnow()), i) for i in item_ids],
            )

    def unclaim(self, item_ids: Sequence[int]) -> None:
        """Claimed rows never tried (the server went away first): pending, as they were."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE outbox SET state = 'pending', attempts = attempts - 1, updated_at = ? "
                "WHERE id = ? AND state = 'sending'",
                [(_iso(utcnow()), i) for i in item_ids],
            )

    def settle_sent(self, keys: Sequence[str]) -> None:
        """Rows a crashed session's sent journal says the server accepted: `sent`."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE outbox SET state = 'sent', last_error = NULL, updated_at = ? "
                "WHERE idempotency_key = ? AND state = 'sending'",
                [(_iso(utcnow()), key) for key in keys],
            )

    def finish(self, item_ids: Sequence[int], state: str = "done") -> None:
        """Record rows as carried out ('done'), or as only written down ('dry_run')."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE outbox SET state = ?, last_error = NULL, updated_at = ? WHERE id = ?",
                [(state, _iso(utcnow()), i) for i in item_ids],
            )

    def postpone(self, item_ids: Sequence[int], error: str, retry_at: datetime) -> None:
        with self.transaction() as db:
            db.executemany(
                "UPDATE outbox SET state = 'pending', last_error = ?, next_attempt_at = ?, "
                "updated_at = ? WHERE id = ?",
                [(error, _iso(retry_at), _iso(utcnow()), i) for i in item_ids],
            )

    def fail(self, item_ids: Sequence[int], error: str) -> None:
        """Dead-letter: staff see it in the log as referred; nothing retries it by itself."""
        with self.transaction() as db:
            for item_id in item_ids:
                db.execute(
                    "UPDATE outbox SET state = 'failed', last_error = ?, updated_at = ? "
                    "WHERE id = ?",
                    (error, _iso(utcnow()), item_id),
                )
                db.execute(
                    "UPDATE messages SET error = ? WHERE message_id = "
                    "(SELECT message_id FROM outbox WHERE id = ?)",
                    (error, item_id),
                )

    def replies_since(self, recipient: str, since: datetime) -> int:
        row = self.db.execute(
            "SELECT COUNT(*) FROM outbox WHERE kind = 'reply' AND recipient = ? "
            "AND created_at >= ?",
            (recipient, _iso(since)),
        ).fetchone()
        return int(row[0])

    # --- audit -----------------------------------------------------------------------

    def audit(
        self,
        db: sqlite3.Connection,
        action: str,
        message_id: str | None,
        detail: str,
        actor: str = "worker",
    ) -> None:
        db.execute(
            "INSERT INTO audit(at, actor, action, message_id, detail) VALUES (?, ?, ?, ?, ?)",
            (_iso(utcnow()), actor, action, message_id, detail),
        )


def statements(script: str) -> Iterator[str]:
    """The SQL statements of a script; a trigger's body has semicolons of its own."""
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                yield pending
            pending = ""


def upsert_registration(
    db: sqlite3.Connection, registration: Registration, message_id: str, now: str
) -> None:
    """Write a resident's place at a meeting (one row per meeting and sender)."""
    r = registration
    db.execute(
        "INSERT INTO registrations(meeting_id, sender, name, mode, party_size, "
        "status, access_needs, message_id, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(meeting_id, sender) "
        "DO UPDATE SET name = COALESCE(excluded.name, name), mode = excluded.mode, "
        "party_size = excluded.party_size, status = excluded.status, "
        "access_needs = excluded.access_needs, message_id = excluded.message_id, "
        "updated_at = excluded.updated_at",
        (
            r.meeting_id,
            r.sender,
            r.name,
            r.mode,
            r.party_size,
            r.status,
            json.dumps(list(r.access_needs)),
            message_id,
            now,
            now,
        ),
    )


def insert_outbox(db: sqlite3.Connection, message_id: str, item: NewOutboxItem, now: str) -> int:
    """Queue a side effect; a known idempotency key adds nothing. Returns rows added."""
    cursor = db.execute(
        "INSERT INTO outbox(idempotency_key, kind, message_id, recipient, meeting_id, payload, "
        "next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(idempotency_key) DO NOTHING",
        (
            item.idempotency_key,
            item.kind,
            item.message_id or message_id,
            item.recipient,
            item.meeting_id,
            item.payload,
            now,
            now,
            now,
        ),
    )
    return cursor.rowcount


_STORED = (
    "id, message_id, raw, raw_complete, size, state, attempts, mailbox_key, destination, "
    "outcome, request"
)


def _stored(row: sqlite3.Row) -> StoredMessage:
    return StoredMessage(
        id=row["id"],
        message_id=row["message_id"],
        raw=row["raw"],
        raw_complete=bool(row["raw_complete"]),
        size=row["size"],
        state=row["state"],
        attempts=row["attempts"],
        mailbox_key=row["mailbox_key"],
        destination=row["destination"],
        outcome=row["outcome"],
        request=row["request"],
    )


def _registration(row: sqlite3.Row) -> Registration:
    return Registration(
        meeting_id=row["meeting_id"],
        sender=row["sender"],
        name=row["name"],
        mode=row["mode"],
        party_size=row["party_size"],
        status=row["status"],
        access_needs=tuple(json.loads(row["access_needs"])),
        message_id=row["message_id"],
    )


def _outbox(row: sqlite3.Row) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        idempotency_key=row["idempotency_key"],
        kind=row["kind"],
        message_id=row["message_id"],
        recipient=row["recipient"],
        meeting_id=row["meeting_id"],
        payload=bytes(row["payload"]),
        state=row["state"],
        attempts=row["attempts"],
    )
