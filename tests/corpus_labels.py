"""The labelled corpus's settings (tests/corpus/labels.json), shared by its test and bench."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from processor.models import Meeting

CORPUS = Path(__file__).parent / "corpus"
LABELS: dict[str, Any] = json.loads((CORPUS / "labels.json").read_text(encoding="utf-8"))
TZ = ZoneInfo(LABELS["timezone"])
NOW = datetime.fromisoformat(LABELS["now"])
OWN = LABELS["committee"]["address"]


def _meeting(row: dict[str, Any]) -> Meeting:
    closes = row.get("registration_closes")
    return Meeting(
        id=row["id"],
        title=row["title"],
        start=datetime.fromisoformat(row["start"]).replace(tzinfo=TZ),
        end=datetime.fromisoformat(row["end"]).replace(tzinfo=TZ),
        venue=row["venue"],
        in_person_capacity=row["in_person_capacity"],
        online_capacity=row["online_capacity"],
        registration_closes=datetime.fromisoformat(closes).replace(tzinfo=TZ) if closes else None,
    )


MEETINGS = tuple(_meeting(row) for row in LABELS["meetings"])
