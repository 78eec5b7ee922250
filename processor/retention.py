"""Retention: forget residents' personal data some days after their meeting is over.

UK GDPR's storage limitation principle (Article 5(1)(e)): keep personal data no
longer than needed. Once a meeting has ended and the clerk has had time to deal
with follow-ups, its messages, registrations and replies are deleted, and so is
old mail tied to no configured meeting. The database file is then rewritten
(VACUUM) because SQLite leaves deleted rows' bytes in free pages and in its WAL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from processor import staffstore
from processor.config import Config
from processor.errors import PermanentError
from processor.store import Store

DEFAULT_DAYS = 90


@dataclass(frozen=True)
class PurgeResult:
    cutoff: datetime
    meetings: tuple[str, ...]  # ids of the ended meetings whose data went
    counts: staffstore.PurgeCounts


def purge(store: Store, config: Config, *, days: int, now: datetime, actor: str) -> PurgeResult:
    """Delete what is older than `days`, under the worker lock, then compact the file."""
    if days < 0:
        raise PermanentError("--days must not be negative")
    cutoff = now - timedelta(days=days)
    ended = tuple(m.id for m in config.meetings if m.end < cutoff)
    store.lock.acquire()
    try:
        counts = staffstore.purge_personal_data(
            store,
            ended_meetings=list(ended),
            configured_meetings=[m.id for m in config.meetings],
            cutoff=cutoff,
            actor=actor,
            note=f"older than {days} days (before {cutoff.date().isoformat()}); "
            f"ended meetings: {', '.join(ended) or 'none'}",
        )
        staffstore.compact(store)
    finally:
        store.lock.release()
    # The lock's release is one more WAL frame (no personal data); leave the WAL empty.
    staffstore.empty_wal(store)
    return PurgeResult(cutoff, ended, counts)
