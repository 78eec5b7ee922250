"""The waiting list: who gets a place that a cancellation or a change frees.

First come, first served, by the order the waiting places were taken; a party that
does not fit is passed over for a smaller one behind it (the chamber cannot seat
half a family), and waits for the next free seats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from processor.models import Meeting, Registration


def apply(registrations: Sequence[Registration], change: Registration | None) -> list[Registration]:
    """The meeting's registrations as they will be once `change` is written."""
    if change is None:
        return list(registrations)
    result = [r for r in registrations if r.sender != change.sender]
    position = next((i for i, r in enumerate(registrations) if r.sender == change.sender), None)
    result.insert(len(result) if position is None else position, change)
    return result


def promotions(meeting: Meeting, registrations: Sequence[Registration]) -> list[Registration]:
    """Waitlisted registrations that now fit, in waiting order, as confirmed ones."""
    confirmed = [r for r in registrations if r.status == "confirmed"]
    seats = meeting.in_person_capacity - sum(
        r.party_size for r in confirmed if r.mode == "in_person"
    )
    places = meeting.online_capacity - sum(1 for r in confirmed if r.mode == "online")
    promoted = []
    for waiting in (r for r in registrations if r.status == "waitlisted"):
        if waiting.mode == "in_person" and waiting.party_size <= seats:
            seats -= waiting.party_size
        elif waiting.mode == "online" and places >= 1:
            places -= 1
        else:
            continue
        promoted.append(replace(waiting, status="confirmed"))
    return promoted
