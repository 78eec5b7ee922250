"""The staff log: one row per processed message, as a table, CSV or JSON."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from processor.staffstore import log_rows
from processor.store import Store

# The contract's fields first (see PRODUCT.md), then the ones that explain them.
FIELDS = (
    "message_id",
    "received_at",
    "sender",
    "name",
    "intent",
    "mode",
    "meeting_id",
    "party_size",
    "outcome",
    "reply_sent",
    "invite_sent",
    "reason",
    "invite_dry_run",
    "subject",
    "rule",
    "evidence",
    "access_needs",
    "error",
)
TABLE_FIELDS = (
    "received_at",
    "sender",
    "intent",
    "mode",
    "meeting_id",
    "party_size",
    "outcome",
    "reply_sent",
    "reason",
)


def log_entries(
    store: Store,
    meeting: str | None = None,
    status: str | None = None,
    sender: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[dict[str, Any]]:
    entries = []
    rows = log_rows(
        store, meeting_id=meeting, outcome=status, sender=sender, since=since, until=until
    )
    for row in rows:
        entry = {name: row.get(name) for name in FIELDS}
        entry["reply_sent"] = bool(row["reply_sent"])
        entry["invite_sent"] = bool(row["invite_sent"])
        entry["invite_dry_run"] = bool(row["invite_dry_run"])
        entry["evidence"] = json.loads(row["evidence"] or "[]")
        entry["access_needs"] = json.loads(row["access_needs"] or "[]")
        entries.append(entry)
    return entries


def as_json(entries: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(entries), indent=2, ensure_ascii=False)


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet shows as text: no formula injection (OWASP CSV guidance)."""
    if isinstance(value, list | dict):
        value = json.dumps(value, ensure_ascii=False)
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def as_csv(entries: Sequence[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FIELDS)
    for entry in entries:
        writer.writerow([csv_cell(entry[name]) for name in FIELDS])
    return out.getvalue()


def as_table(entries: Sequence[dict[str, Any]], width: int = 60) -> str:
    def cell(value: Any) -> str:
        text = (
            "-"
            if value is None
            else "yes"
            if value is True
            else "no"
            if value is False
            else str(value)
        )
        text = " ".join(text.split())
        return text if len(text) <= width else text[: width - 1] + "…"

    rows = [[cell(e[name]) for name in TABLE_FIELDS] for e in entries]
    widths = [max([len(n)] + [len(r[i]) for r in rows]) for i, n in enumerate(TABLE_FIELDS)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(TABLE_FIELDS, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"{len(entries)} message(s)")
    return "\n".join(lines)
