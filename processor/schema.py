"""The SQLite schema: numbered migrations, applied in order by `Store` at open."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL UNIQUE,
        sha256 TEXT NOT NULL,
        received_at TEXT NOT NULL,
        stored_at TEXT NOT NULL,
        sender TEXT NOT NULL DEFAULT '',
        name TEXT,
        subject TEXT NOT NULL DEFAULT '',
        raw BLOB,
        raw_complete INTEGER NOT NULL DEFAULT 1,
        size INTEGER NOT NULL DEFAULT 0,
        mailbox_key TEXT,
        sync_token TEXT,
        state TEXT NOT NULL DEFAULT 'stored',
        attempts INTEGER NOT NULL DEFAULT 0,
        intent TEXT,
        mode TEXT,
        meeting_id TEXT,
        party_size INTEGER,
        access_needs TEXT NOT NULL DEFAULT '[]',
        outcome TEXT,
        reason TEXT,
        rule TEXT,
        evidence TEXT NOT NULL DEFAULT '[]',
        request TEXT,
        destination TEXT,
        decided_at TEXT,
        filed_at TEXT,
        error TEXT
    );
    CREATE INDEX messages_state ON messages(state);
    CREATE INDEX messages_sender ON messages(sender);
    CREATE TABLE registrations (
        id INTEGER PRIMARY KEY,
        meeting_id TEXT NOT NULL,
        sender TEXT NOT NULL,
        name TEXT,
        mode TEXT NOT NULL,
        party_size INTEGER NOT NULL,
        status TEXT NOT NULL,
        access_needs TEXT NOT NULL DEFAULT '[]',
        message_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        UNIQUE (meeting_id, sender)
    );
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        idempotency_key TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        message_id TEXT NOT NULL,
        recipient TEXT NOT NULL DEFAULT '',
        meeting_id TEXT,
        payload BLOB NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX outbox_due ON outbox(state, next_attempt_at);
    CREATE INDEX outbox_message ON outbox(message_id);
    CREATE TABLE events (
        meeting_id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        etag TEXT NOT NULL,
        join_url TEXT,
        fingerprint TEXT NOT NULL DEFAULT '',
        updated_at TEXT NOT NULL
    );
    CREATE TABLE mailbox_state (
        folder TEXT PRIMARY KEY,
        sync_token TEXT NOT NULL,
        last_key TEXT,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        message_id TEXT,
        detail TEXT NOT NULL DEFAULT ''
    );
    """,
    # 2: the reply budget is counted per message; without this every count scanned
    # the whole outbox, so a backlog of N took O(N^2) (bench/backlog.py --profile)
    """
    CREATE INDEX outbox_recipient ON outbox(recipient, kind, created_at);
    """,
    # 3: occupancy kept by triggers: counting the registrations for every decision made
    # a backlog of N cost O(N^2) (bench/backlog.py --profile); the database keeps the
    # sums in step with every write to registrations, whoever makes it (no OR IGNORE:
    # the statement that fires a trigger imposes its own conflict policy on its body)
    """
    CREATE TABLE occupancy (
        meeting_id TEXT PRIMARY KEY,
        in_person INTEGER NOT NULL DEFAULT 0,
        online INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO occupancy(meeting_id, in_person, online)
        SELECT meeting_id,
            SUM(CASE WHEN mode = 'in_person' THEN party_size ELSE 0 END),
            SUM(mode = 'online')
        FROM registrations WHERE status = 'confirmed' GROUP BY meeting_id;
    CREATE TRIGGER occupancy_insert AFTER INSERT ON registrations
    WHEN NEW.status = 'confirmed' BEGIN
        INSERT INTO occupancy(meeting_id) SELECT NEW.meeting_id
            WHERE NOT EXISTS (SELECT 1 FROM occupancy WHERE meeting_id = NEW.meeting_id);
        UPDATE occupancy SET
            in_person = in_person + ((NEW.mode = 'in_person') * NEW.party_size),
            online = online + (NEW.mode = 'online')
        WHERE meeting_id = NEW.meeting_id;
    END;
    CREATE TRIGGER occupancy_delete AFTER DELETE ON registrations
    WHEN OLD.status = 'confirmed' BEGIN
        UPDATE occupancy SET
            in_person = in_person - ((OLD.mode = 'in_person') * OLD.party_size),
            online = online - (OLD.mode = 'online')
        WHERE meeting_id = OLD.meeting_id;
    END;
    CREATE TRIGGER occupancy_update AFTER UPDATE ON registrations BEGIN
        UPDATE occupancy SET
            in_person = in_person - ((OLD.mode = 'in_person') * OLD.party_size),
            online = online - (OLD.mode = 'online')
        WHERE meeting_id = OLD.meeting_id AND OLD.status = 'confirmed';
        INSERT INTO occupancy(meeting_id) SELECT NEW.meeting_id
            WHERE NEW.status = 'confirmed'
            AND NOT EXISTS (SELECT 1 FROM occupancy WHERE meeting_id = NEW.meeting_id);
        UPDATE occupancy SET
            in_person = in_person + ((NEW.mode = 'in_person') * NEW.party_size),
            online = online + (NEW.mode = 'online')
        WHERE meeting_id = NEW.meeting_id AND NEW.status = 'confirmed';
    END;
    """,
    # 4: a resident's registrations are looked up by sender for every decision; the
    # unique index leads with the meeting, so each lookup scanned the whole table
    """
    CREATE INDEX registrations_sender ON registrations(sender);
    """,
    # 5: each cycle looks up every message in the folder by its mailbox key, to skip
    # the ones decided before; without an index each lookup scanned every message kept
    # (a 2000-message backlog over 20000 kept messages: 44 s of lookups)
    """
    CREATE INDEX messages_mailbox ON messages(sync_token, mailbox_key);
    """,
)
