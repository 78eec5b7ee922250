"""The dry-run calendar: the Graph requests it would send, written as JSON files."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from processor.graph_events import EventRequests, new_attendees
from processor.models import Meeting
from processor.ports import Attendee, EventRef


class DryRunCalendar:
    """Writes the requests it would send as numbered JSON files; sends nothing."""

    dry_run = True

    def __init__(self, path: Path, base_url: str, requests_: EventRequests) -> None:
        self._path = path
        self._base_url = base_url
        self._requests = requests_
        self._state_file = path / "state.json"

    def ensure_event(self, meeting: Meeting, known: EventRef | None) -> EventRef:
        if meeting.teams_event_id:
            self._write("GET", self._requests.event_path(meeting.teams_event_id), None)
            return self._ref(meeting.teams_event_id)
        if known is not None:
            return known
        self._write("POST", self._requests.events_path, self._requests.create(meeting))
        return self._ref(f"dry-run-{meeting.id}")

    def update_attendees(
        self, event: EventRef, add: Sequence[Attendee], remove: Sequence[str]
    ) -> EventRef:
        # Without Graph the current list is what earlier dry runs "sent", kept in state.json.
        state = self._load_state()
        attendees = new_attendees(state.get(event.event_id, []), add, remove)
        if attendees is not None:
            state[event.event_id] = attendees
            self._write(
                "PATCH",
                self._requests.event_path(event.event_id),
                {"attendees": attendees},
                {"If-Match": event.etag},
            )
            self._state_file.write_text(json.dumps(state, indent=2), encoding="utf-8")
        return event

    def _ref(self, event_id: str) -> EventRef:
        return EventRef(event_id, 'W/"dry-run"', f"https://teams.invalid/dry-run/{event_id}")

    def _load_state(self) -> dict[str, list[dict[str, Any]]]:
        try:
            state = json.loads(self._state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def _write(
        self, method: str, path: str, body: Any, headers: Mapping[str, str] | None = None
    ) -> Path:
        self._path.mkdir(parents=True, exist_ok=True)
        number = 1 + max(
            (int(p.name[:4]) for p in self._path.glob("[0-9][0-9][0-9][0-9]-*.json")), default=0
        )
        target = self._path / f"{number:04d}-{method.lower()}.json"
        request = {
            "method": method,
            "url": self._base_url + path,
            "headers": {"Content-Type": "application/json", **(headers or {})},
            "body": body,
        }
        target.write_text(json.dumps(request, indent=2, ensure_ascii=False), encoding="utf-8")
        return target
