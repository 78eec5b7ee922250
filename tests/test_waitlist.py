"""The waiting list: freed places go to the first that fit, never over capacity."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from processor.models import Meeting, Mode, Registration, RegistrationStatus
from processor.waitlist import apply, promotions

TZ = ZoneInfo("Europe/London")
MEETING = Meeting(
    "m",
    "Committee",
    datetime(2026, 12, 10, 18, 30, tzinfo=TZ),
    datetime(2026, 12, 10, 20, 30, tzinfo=TZ),
    "Chamber",
    4,
    1,
)


def reg(sender: str, mode: Mode, party: int, status: RegistrationStatus) -> Registration:
    return Registration("m", sender, None, mode, party, status)


def test_it_promotes_the_first_waiting_party_that_fits() -> None:
    regs = [
        reg("a", "in_person", 2, "confirmed"),
        reg("b", "in_person", 2, "confirmed"),
        reg("c", "in_person", 3, "waitlisted"),
        reg("d", "in_person", 2, "waitlisted"),
        reg("e", "in_person", 1, "waitlisted"),
    ]
    after = apply(regs, reg("a", "in_person", 2, "cancelled"))
    promoted = promotions(MEETING, after)
    # 2 seats free: c (3) does not fit, d (2) does, then none is left for e.
    assert [(r.sender, r.status) for r in promoted] == [("d", "confirmed")]


def test_it_promotes_nobody_while_the_chamber_is_full() -> None:
    regs = [reg("a", "in_person", 4, "confirmed"), reg("c", "in_person", 1, "waitlisted")]
    assert promotions(MEETING, apply(regs, None)) == []


def test_it_gives_a_freed_online_place_to_the_online_waiting_list() -> None:
    regs = [
        reg("a", "online", 1, "confirmed"),
        reg("b", "online", 1, "waitlisted"),
        reg("c", "online", 1, "waitlisted"),
    ]
    after = apply(regs, reg("a", "online", 1, "cancelled"))
    assert [r.sender for r in promotions(MEETING, after)] == ["b"]
