"""The staff-facing SQL: log, review queue, staff decisions, resends, retries, digests, purging.

Every statement the staff tools run lives here, as functions over a `Store`, so
`store.py` stays the worker's and this file is the one place to read what staff
commands can change. Staff actions write the audit trail in the same transaction
as the change they record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from processor.records import DecisionRecord, NewOutboxItem
from processor.store import Store, insert_outbox, upsert_registration

# No schema change is needed: staff decisions are told apart by their rule ("staff.*").
STAFF_MIGRATIONS: list[str] = []

STAFF_RULE_PREFIX = "staff."


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds")


# --- finding things ----------------------------------------------------------------------


def log_rows(
    store: Store,
    meeting_id: str | None = None,
    outcome: str | None = None,
    sender: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    """Every decided message for the staff log, with whether its reply and invite went."""
    sql = (
        "SELECT m.*, "
        "EXISTS(SELECT 1 FROM outbox o WHERE o.message_id = m.message_id "
        "AND o.kind = 'reply' AND o.state IN ('sent', 'done')) AS reply_sent, "
        "EXISTS(SELECT 1 FROM outbox o WHERE o.message_id = m.message_id "
        "AND o.kind = 'attendee_add' AND o.state = 'done') AS invite_sent, "
        "EXISTS(SELECT 1 FROM outbox o WHERE o.message_id = m.message_id "
        "AND o.kind = 'attendee_add' AND o.state = 'dry_run') AS invite_dry_run "
        "FROM messages m WHERE m.outcome IS NOT NULL"
    )
    params: list[Any] = []
    if meeting_id:
        sql += " AND m.meeting_id = ?"
        params.append(meeting_id)
    if outcome:
        sql += " AND m.outcome = ?"
        params.append(outcome)
    if sender:
        sql += " AND m.sender = ?"
        params.append(sender.lower())
    if since:
        sql += " AND m.received_at >= ?"
        params.append(_iso(since))
    if until:
        sql += " AND m.received_at < ?"
        params.append(_iso(until))
    sql += " ORDER BY m.id"
    return [dict(r) for r in store.db.execute(sql, params).fetchall()]


def find_message(store: Store, ref: str) -> dict[str, Any] | None:
    """A message by the integer id `review list` shows, or by its Message-ID."""
    ref = ref.strip()
    if ref.isdigit():
        row = store.db.execute("SELECT * FROM messages WHERE id = ?", (int(ref),)).fetchone()
    else:
        wanted = ref if ref.startswith("<") else f"<{ref}>"
        row = store.db.execute("SELECT * FROM messages WHERE message_id = ?", (wanted,)).fetchone()
    return None if row is None else dict(row)


def review_queue(store: Store) -> list[dict[str, Any]]:
    """Referred messages no member of staff has decided yet, and messages whose reply or
    Teams change was given up on (dead letters), oldest first."""
    rows = store.db.execute(
        "SELECT id, message_id, received_at, sender, name, subject, meeting_id, "
        "CASE WHEN outcome = 'referred' THEN reason "
        "ELSE 'Gave up sending: ' || COALESCE(error, 'see retry') END AS reason, rule "
        "FROM messages m WHERE (outcome = 'referred' AND rule NOT LIKE ?) "
        "OR EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = m.message_id "
        "AND o.state = 'failed') ORDER BY id",
        (STAFF_RULE_PREFIX + "%",),
    ).fetchall()
    return [dict(r) for r in rows]


def attendee_rows(store: Store, meeting_id: str) -> list[dict[str, Any]]:
    """Every registration at a meeting (any status), in the order people registered."""
    rows = store.db.execute(
        "SELECT sender, name, mode, party_size, status, access_needs, created_at, updated_at "
        "FROM registrations WHERE meeting_id = ? ORDER BY created_at, id",
        (meeting_id,),
    ).fetchall()
    out = []
    for row in rows:
        entry = dict(row)
        entry["access_needs"] = json.loads(entry["access_needs"] or "[]")
        out.append(entry)
    return out


def failed_outbox(store: Store) -> list[dict[str, Any]]:
    """Side effects that gave up (dead letters), with the message they belong to."""
    rows = store.db.execute(
        "SELECT o.id, o.kind, o.recipient, o.meeting_id, o.attempts, o.last_error, "
        "o.updated_at, m.id AS message_row FROM outbox o "
        "LEFT JOIN messages m ON m.message_id = o.message_id "
        "WHERE o.state IN ('failed', 'dead') ORDER BY o.id"
    ).fetchall()
    return [dict(r) for r in rows]


def outcome_counts_since(store: Store, since: datetime) -> dict[str, int]:
    rows = store.db.execute(
        "SELECT outcome, COUNT(*) AS n FROM messages WHERE outcome IS NOT NULL "
        "AND received_at >= ? GROUP BY outcome",
        (_iso(since),),
    ).fetchall()
    return {r["outcome"]: int(r["n"]) for r in rows}


def last_reply(store: Store, message_id: str) -> dict[str, Any] | None:
    row = store.db.execute(
        "SELECT * FROM outbox WHERE message_id = ? AND kind = 'reply' ORDER BY id DESC LIMIT 1",
        (message_id,),
    ).fetchone()
    return None if row is None else dict(row)


def reply_count(store: Store, message_id: str) -> int:
    row = store.db.execute(
        "SELECT COUNT(*) FROM outbox WHERE message_id = ? AND kind = 'reply'", (message_id,)
    ).fetchone()
    return int(row[0])


# --- staff actions -----------------------------------------------------------------------


def commit_staff_decision(
    store: Store, record: DecisionRecord, *, actor: str, action: str, detail: str
) -> int:
    """A staff decision, its registration and outbox rows, and the audit line: one
    transaction. Unlike the worker's, it leaves the message's state and folder alone
    (the mail already sits in Review). Returns how many outbox rows were new."""
    now = _iso(datetime.now(UTC))
    d = record
    added = 0
    with store.transaction() as db:
        db.execute(
            "UPDATE messages SET intent = ?, mode = ?, meeting_id = ?, party_size = ?, "
            "access_needs = ?, outcome = ?, reason = ?, rule = ?, decided_at = ?, "
            "name = COALESCE(?, name) WHERE message_id = ?",
            (
                d.intent,
                d.mode,
                d.meeting_id,
                d.party_size,
                json.dumps(list(d.access_needs)),
                d.outcome,
                d.reason,
                d.rule,
                now,
                d.name,
                d.message_id,
            ),
        )
        if d.registration is not None:
            upsert_registration(db, d.registration, d.message_id, now)
        for item in d.outbox:
            added += insert_outbox(db, d.message_id, item, now)
        store.audit(db, action, d.message_id, detail, actor=actor)
    return added


def note_staff_reason(
    store: Store,
    message_id: str,
    *,
    rule: str,
    reason: str,
    actor: str,
    action: str,
    outbox: tuple[NewOutboxItem, ...] = (),
) -> int:
    """Record a staff verdict that changes no registration (a rejection), with its reply."""
    now = _iso(datetime.now(UTC))
    added = 0
    with store.transaction() as db:
        db.execute(
            "UPDATE messages SET rule = ?, reason = ?, decided_at = ? WHERE message_id = ?",
            (rule, reason, now, message_id),
        )
        for item in outbox:
            added += insert_outbox(db, message_id, item, now)
        store.audit(db, action, message_id, reason, actor=actor)
    return added


def enqueue(
    store: Store, message_id: str, item: NewOutboxItem, *, actor: str, action: str, detail: str
) -> int:
    """One more outbox row for a message (a resend), audited; 0 when the key exists."""
    now = _iso(datetime.now(UTC))
    with store.transaction() as db:
        added = insert_outbox(db, message_id, item, now)
        store.audit(db, action, message_id, detail, actor=actor)
    return added


def retry_failed(store: Store, message_id: str, *, actor: str, now: datetime) -> int:
    """Dead-lettered rows of a message back to pending, due now, with a fresh budget."""
    with store.transaction() as db:
        cursor = db.execute(
            "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, "
            "updated_at = ? WHERE message_id = ? AND state IN ('failed', 'dead')",
            (_iso(now), _iso(now), message_id),
        )
        count = cursor.rowcount
        if count:
            store.audit(
                db, "review.retry", message_id, f"{count} failed item(s) retried", actor=actor
            )
    return count


# --- retention ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PurgeCounts:
    messages: int
    registrations: int
    outbox: int
    audit_redacted: int

    def describe(self) -> str:
        return (
            f"{self.messages} message(s), {self.registrations} registration(s), "
            f"{self.outbox} outbox item(s) deleted; {self.audit_redacted} audit line(s) "
            "redacted"
        )


def purge_personal_data(
    store: Store,
    *,
    ended_meetings: list[str],
    configured_meetings: list[str],
    cutoff: datetime,
    actor: str,
    note: str,
) -> PurgeCounts:
    """Delete what belongs to ended meetings, and old mail tied to no configured meeting.

    The audit lines of purged messages keep who did what and when, but lose the
    Message-ID and the detail (which can quote a resident); one new line says what
    was purged, in counts only.
    """
    ended = json.dumps(ended_meetings)
    configured = json.dumps(configured_meetings)
    when = _iso(cutoff)
    with store.transaction() as db:
        db.execute("CREATE TEMP TABLE IF NOT EXISTS purge_set (message_id TEXT PRIMARY KEY)")
        db.execute("DELETE FROM purge_set")
        db.execute(
            "INSERT INTO purge_set SELECT message_id FROM messages WHERE "
            "meeting_id IN (SELECT value FROM json_each(?)) OR ("
            "(meeting_id IS NULL OR meeting_id NOT IN (SELECT value FROM json_each(?))) "
            "AND received_at < ?)",
            (ended, configured, when),
        )
        registrations = db.execute(
            "DELETE FROM registrations WHERE meeting_id IN (SELECT value FROM json_each(?)) "
            "OR message_id IN (SELECT message_id FROM purge_set) OR ("
            "meeting_id NOT IN (SELECT value FROM json_each(?)) AND updated_at < ?)",
            (ended, configured, when),
        ).rowcount
        outbox = db.execute(
            "DELETE FROM outbox WHERE message_id IN (SELECT message_id FROM purge_set) "
            "OR meeting_id IN (SELECT value FROM json_each(?))",
            (ended,),
        ).rowcount
        audit = db.execute(
            "UPDATE audit SET message_id = NULL, detail = '[purged]' "
            "WHERE message_id IN (SELECT message_id FROM purge_set)"
        ).rowcount
        messages = db.execute(
            "DELETE FROM messages WHERE message_id IN (SELECT message_id FROM purge_set)"
        ).rowcount
        db.execute("DELETE FROM purge_set")
        counts = PurgeCounts(messages, registrations, outbox, audit)
        store.audit(db, "retention.purge", None, f"{note}: {counts.describe()}", actor=actor)
    return counts


def compact(store: Store) -> None:
    """Rewrite the database file so deleted rows leave no bytes behind, in it or its WAL."""
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.execute("VACUUM")
    # VACUUM in WAL mode writes the new pages to the WAL: copy them home, empty the WAL.
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def empty_wal(store: Store) -> None:
    """Copy the WAL into the database file and truncate it to nothing."""
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
