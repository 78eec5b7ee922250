"""Deciding: one test per rule, with Situations for capacity, closing, duplicates and cancels."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from processor.decide import decide
from processor.models import (
    Classification,
    Decision,
    InboundEmail,
    Meeting,
    Mode,
    Occupancy,
    Registration,
    RegistrationStatus,
    Request,
    Situation,
)

TZ = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 26, 10, 0, tzinfo=TZ)
HUMAN = Classification(automated=False, rule="human", reason="No sign of automated mail.")
SENDER = "jo@example.com"


def _meeting(id: str, day: int, capacity: int = 10, online: int = 100) -> Meeting:
    start = datetime(2026, 12, day, 18, 30, tzinfo=TZ)
    return Meeting(
        id, f"Meeting {id}", start, start + timedelta(hours=2), "Chamber", capacity, online
    )


A = _meeting("a", 3)
B = _meeting("b", 17)
EMAIL = InboundEmail(
    message_id="<1@example.com>", sender=SENDER, display_name="Jo", reply_to=SENDER,
    subject="s", date=None, in_reply_to=None, references=(), headers=(),
    content_type="text/plain", text="t", new_text="t", signature=None,
)  # fmt: skip


def _reg(
    meeting: str = "a",
    mode: Mode = "online",
    party: int = 1,
    status: RegistrationStatus = "confirmed",
) -> Registration:
    return Registration(meeting, SENDER, "Jo", mode, party, status)


def _decide(
    request: Request,
    meetings: tuple[Meeting, ...] = (A,),
    registrations: tuple[Registration, ...] = (),
    occupancy: dict[str, Occupancy] | None = None,
    now: datetime = NOW,
) -> Decision:
    situation = Situation(now, meetings, registrations, occupancy or {})
    return decide(EMAIL, HUMAN, request, situation)


def attend(
    mode: Mode | None = "online", meeting: str | None = "a", party: int | None = None
) -> Request:
    named = meeting is not None
    return Request(
        "attend",
        mode,
        meeting,
        (meeting,) if meeting else (),
        named,
        party_size=party,
    )


def test_it_ignores_automated_mail_without_a_reply() -> None:
    auto = Classification(True, "auto_submitted", "Auto-Submitted is 'auto-replied'.")
    decision = decide(EMAIL, auto, None, Situation(NOW, (A,), (), {}))
    assert (decision.outcome, decision.reply_kind) == ("ignored", None)
    assert decision.rule == "decide.ignore.auto_submitted"


def test_it_refers_requests_with_refer_reasons() -> None:
    request = Request("attend", "online", "a", ("a",), True, refer_reasons=("Not in English.",))
    decision = _decide(request)
    assert (decision.outcome, decision.reply_kind, decision.reason) == (
        "referred", "referred", "Not in English.",
    )  # fmt: skip


def test_it_acknowledges_speaking_requests_and_refers_them() -> None:
    decision = _decide(Request("speak", wants_to_speak=True))
    assert (decision.outcome, decision.reply_kind) == ("referred", "speak_acknowledged")


def test_it_refers_messages_with_no_request() -> None:
    assert _decide(Request("other")).outcome == "referred"


def test_it_confirms_online_and_adds_to_the_calendar() -> None:
    decision = _decide(attend("online"))
    assert (decision.outcome, decision.reply_kind, decision.calendar_add) == (
        "confirmed", "confirmed_online", True,
    )  # fmt: skip
    assert decision.party_size == 1


def test_it_confirms_in_person_with_the_party_size() -> None:
    decision = _decide(attend("in_person", party=3))
    assert (decision.outcome, decision.reply_kind, decision.party_size) == (
        "confirmed", "confirmed_in_person", 3,
    )  # fmt: skip
    assert not decision.calendar_add


def test_it_sends_an_unnamed_request_to_the_only_open_meeting() -> None:
    closed_b = Meeting("b", "B", B.start, B.end, "Chamber", 10, 100, registration_closes=NOW)
    decision = _decide(attend("online", meeting=None), meetings=(A, closed_b))
    assert (decision.outcome, decision.meeting_id) == ("confirmed", "a")


def test_it_asks_which_meeting_when_several_are_open() -> None:
    decision = _decide(attend("online", meeting=None), meetings=(A, B))
    assert (decision.outcome, decision.reply_kind) == (
        "clarification_requested",
        "clarification_meeting",
    )
    assert decision.open_meeting_ids == ("a", "b")
    assert decision.meeting_id is None


def test_it_asks_when_the_named_date_matches_no_meeting() -> None:
    request = Request("attend", "online", None, (), True)
    decision = _decide(request, meetings=(A, B))
    assert decision.reply_kind == "clarification_meeting"
    assert "none of the meetings" in decision.reason


def test_it_asks_when_the_text_could_mean_two_meetings() -> None:
    request = Request("attend", "online", None, ("a", "b"), True)
    decision = _decide(request, meetings=(A, B))
    assert decision.outcome == "clarification_requested"
    assert decision.open_meeting_ids == ("a", "b")


def test_it_asks_for_the_mode_when_none_was_given() -> None:
    decision = _decide(attend(None))
    assert (decision.outcome, decision.reply_kind, decision.meeting_id) == (
        "clarification_requested", "clarification_mode", "a",
    )  # fmt: skip


def test_it_reports_registration_closed_at_the_deadline() -> None:
    decision = _decide(attend("online"), now=A.closes_at())
    assert (decision.outcome, decision.reply_kind) == ("closed", "closed")


def test_it_reports_closed_when_no_meeting_is_open() -> None:
    decision = _decide(attend("online", meeting=None), now=A.end)
    assert decision.outcome == "closed"


def test_it_waitlists_in_person_over_capacity() -> None:
    decision = _decide(attend("in_person", party=2), occupancy={"a": Occupancy(in_person=9)})
    assert (decision.outcome, decision.reply_kind, decision.mode) == (
        "waitlisted", "waitlisted", "in_person",
    )  # fmt: skip


def test_it_confirms_in_person_exactly_at_capacity() -> None:
    decision = _decide(attend("in_person", party=1), occupancy={"a": Occupancy(in_person=9)})
    assert decision.outcome == "confirmed"


def test_it_waitlists_online_over_capacity() -> None:
    decision = _decide(attend("online"), occupancy={"a": Occupancy(online=100)})
    assert decision.outcome == "waitlisted"
    assert not decision.calendar_add


def test_it_skips_the_capacity_check_when_told() -> None:
    situation = Situation(NOW, (A,), (), {"a": Occupancy(online=100)})
    decision = decide(EMAIL, HUMAN, attend("online"), situation, capacity_check=False)
    assert decision.outcome == "confirmed"


def test_it_says_already_registered_for_the_same_mode_and_party() -> None:
    decision = _decide(attend("online"), registrations=(_reg(),))
    assert (decision.outcome, decision.reply_kind) == ("already_registered", "already_registered")
    assert not decision.calendar_add


def test_it_changes_a_registration_when_the_mode_differs() -> None:
    decision = _decide(attend("in_person", party=2), registrations=(_reg(),))
    assert (decision.outcome, decision.mode, decision.party_size) == ("changed", "in_person", 2)
    assert decision.calendar_remove and not decision.calendar_add


def test_it_changes_party_size_and_reuses_the_residents_own_seats() -> None:
    reg = _reg(mode="in_person", party=2)
    request = Request("change", None, "a", ("a",), True, party_size=3)
    decision = _decide(request, registrations=(reg,), occupancy={"a": Occupancy(in_person=9)})
    assert (decision.outcome, decision.party_size) == ("changed", 3)


def test_it_changes_in_person_to_online_and_adds_to_the_calendar() -> None:
    reg = _reg(mode="in_person", party=2)
    request = Request("change", "online", None, (), False)
    decision = _decide(request, registrations=(reg,))
    assert (decision.outcome, decision.mode, decision.calendar_add) == ("changed", "online", True)


def test_it_treats_a_change_from_an_unknown_sender_as_a_new_request() -> None:
    request = Request("change", "online", "a", ("a",), True)
    assert _decide(request).outcome == "confirmed"


def test_it_cancels_the_only_live_registration_and_removes_online_attendees() -> None:
    decision = _decide(Request("cancel"), registrations=(_reg(),))
    assert (decision.outcome, decision.meeting_id, decision.calendar_remove) == (
        "cancelled",
        "a",
        True,
    )


def test_it_cancels_in_person_without_touching_the_calendar() -> None:
    decision = _decide(Request("cancel"), registrations=(_reg(mode="in_person", party=2),))
    assert decision.outcome == "cancelled"
    assert not decision.calendar_remove


def test_it_says_no_registration_when_there_is_nothing_to_cancel() -> None:
    decision = _decide(Request("cancel"), registrations=(_reg(status="cancelled"),))
    assert (decision.outcome, decision.reply_kind) == ("clarification_requested", "no_registration")
    assert decision.reason == "No registration found for this sender to cancel."


def test_it_asks_which_place_to_cancel_when_there_are_several() -> None:
    regs = (_reg("a"), _reg("b"))
    decision = _decide(Request("cancel"), meetings=(A, B), registrations=regs)
    assert (decision.reply_kind, decision.open_meeting_ids) == ("clarification_meeting", ("a", "b"))


def test_it_cancels_the_named_one_of_several() -> None:
    regs = (_reg("a"), _reg("b", mode="in_person"))
    request = Request("cancel", None, "b", ("b",), True)
    decision = _decide(request, meetings=(A, B), registrations=regs)
    assert (decision.outcome, decision.meeting_id, decision.calendar_remove) == (
        "cancelled",
        "b",
        False,
    )


def test_it_never_confirms_a_mode_or_meeting_that_was_not_asked_for() -> None:
    for request in (attend(None), attend("online", meeting=None), Request("attend")):
        decision = _decide(request, meetings=(A, B))
        assert decision.outcome != "confirmed"


def test_it_refers_mail_with_no_address_to_reply_to_without_replying() -> None:
    anonymous = replace(EMAIL, sender="", reply_to="")
    decision = decide(anonymous, HUMAN, attend("online"), Situation(NOW, (A,), (), {}))
    assert (decision.outcome, decision.reply_kind) == ("referred", None)
