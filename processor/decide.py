"""Decide what to do with one message: an ordered list of named rules, first match wins."""

from __future__ import annotations

from processor.models import (
    Classification,
    Decision,
    InboundEmail,
    Meeting,
    Mode,
    Occupancy,
    Registration,
    Request,
    Situation,
)

_LIVE = ("confirmed", "waitlisted")


def decide(
    email: InboundEmail,
    classification: Classification,
    request: Request | None,
    situation: Situation,
    capacity_check: bool = True,
) -> Decision:
    """The outcome for `email`; never confirms a meeting or mode the sender did not ask for."""
    if classification.automated or request is None:
        reason = classification.reason or "Automated mail gets no reply."
        return Decision("ignored", reason, f"decide.ignore.{classification.rule or 'automated'}")
    if not email.reply_to:
        return Decision("referred", "The message has no address to reply to.", "decide.no_sender")
    if request.refer_reasons:
        return _refer(request.refer_reasons[0], "decide.refer.reasons", request)
    if request.intent == "speak":
        return Decision(
            "referred",
            "The resident asks to speak or put a question; staff arrange that.",
            "decide.refer.speak",
            meeting_id=request.meeting_id,
            mode=request.mode,
            reply_kind="speak_acknowledged",
        )
    if request.intent == "cancel":
        return _cancel(request, situation)
    if request.intent == "change":
        live = _live_registration(request, situation)
        if isinstance(live, Registration):
            return _change(live, request, situation, capacity_check)
    if request.intent in ("attend", "change"):
        return _attend(request, situation, capacity_check)
    return _refer(
        "The message does not ask to attend, cancel or change a place.",
        "decide.refer.other",
        request,
    )


def _refer(reason: str, rule: str, request: Request) -> Decision:
    return Decision(
        "referred", reason, rule, meeting_id=request.meeting_id, mode=request.mode,
        reply_kind="referred",
    )  # fmt: skip


def _cancel(request: Request, situation: Situation) -> Decision:
    live = _live_registration(request, situation)
    if live is None:
        return Decision(
            "clarification_requested",
            "No registration found for this sender to cancel.",
            "decide.cancel.none",
            meeting_id=request.meeting_id,
            reply_kind="no_registration",
        )
    if isinstance(live, tuple):
        return Decision(
            "clarification_requested",
            "The sender holds several places; the reply asks which one to cancel.",
            "decide.cancel.which",
            reply_kind="clarification_meeting",
            open_meeting_ids=live,
        )
    return Decision(
        "cancelled",
        f"The {_mode_words(live.mode)} place at {live.meeting_id} was cancelled.",
        "decide.cancel",
        meeting_id=live.meeting_id,
        mode=live.mode,
        party_size=live.party_size,
        reply_kind="cancelled",
        calendar_remove=live.mode == "online" and live.status == "confirmed",
    )


def _live_registration(
    request: Request, situation: Situation
) -> Registration | tuple[str, ...] | None:
    """The one live registration the request refers to, the ids if several, or None."""
    upcoming = {m.id for m in situation.meetings if m.end > situation.now}
    live = [r for r in situation.registrations if r.status in _LIVE and r.meeting_id in upcoming]
    if request.meeting_named:
        live = [r for r in live if r.meeting_id in request.meeting_candidates]
    if not live:
        return None
    if len(live) == 1:
        return live[0]
    return tuple(dict.fromkeys(r.meeting_id for r in live))


def _attend(request: Request, situation: Situation, capacity_check: bool) -> Decision:
    meetings = {m.id: m for m in situation.meetings}
    open_ids = tuple(m.id for m in situation.meetings if situation.now < m.closes_at())
    meeting_id = request.meeting_id
    if meeting_id is None and not request.meeting_named:
        if not open_ids:
            return Decision(
                "closed", "No meeting is open for registration.", "decide.closed.none_open",
                reply_kind="closed",
            )  # fmt: skip
        if len(open_ids) == 1:
            meeting_id = open_ids[
                0
            ]  # the product spec: an unnamed request goes to the only open one
    meeting = meetings.get(meeting_id or "")
    if meeting is None:
        asked = tuple(c for c in request.meeting_candidates if c in open_ids) or open_ids
        return Decision(
            "clarification_requested",
            _which_reason(request),
            "decide.clarify.meeting",
            mode=request.mode,
            reply_kind="clarification_meeting",
            open_meeting_ids=asked,
        )
    if situation.now >= meeting.closes_at():
        return Decision(
            "closed",
            f"Registration for {meeting.id} closed at {meeting.closes_at().isoformat()}.",
            "decide.closed",
            meeting_id=meeting.id,
            mode=request.mode,
            reply_kind="closed",
        )
    if request.mode is None:
        return Decision(
            "clarification_requested",
            "The message does not say whether to attend in person or online.",
            "decide.clarify.mode",
            meeting_id=meeting.id,
            reply_kind="clarification_mode",
            open_meeting_ids=(meeting.id,),
        )
    existing = next(
        (r for r in situation.registrations if r.meeting_id == meeting.id and r.status in _LIVE),
        None,
    )
    if existing is not None:
        return _change(existing, request, situation, capacity_check, meeting)
    party = (request.party_size or 1) if request.mode == "in_person" else 1
    if capacity_check and _over_capacity(meeting, situation, request.mode, party, None):
        return _waitlist(meeting, request.mode, party)
    return Decision(
        "confirmed",
        f"Confirmed {_mode_words(request.mode)} for {meeting.id} "
        f"({party} {'place' if party == 1 else 'places'}).",
        f"decide.confirm.{request.mode}",
        meeting_id=meeting.id,
        mode=request.mode,
        party_size=party,
        reply_kind="confirmed_online" if request.mode == "online" else "confirmed_in_person",
        calendar_add=request.mode == "online",
    )


def _change(
    live: Registration,
    request: Request,
    situation: Situation,
    capacity_check: bool,
    meeting: Meeting | None = None,
) -> Decision:
    meeting = meeting or next((m for m in situation.meetings if m.id == live.meeting_id), None)
    if meeting is None or situation.now >= meeting.closes_at():
        return Decision(
            "closed", f"Registration for {live.meeting_id} is closed; nothing was changed.",
            "decide.change.closed", meeting_id=live.meeting_id, mode=live.mode,
            reply_kind="closed",
        )  # fmt: skip
    mode: Mode = request.mode or live.mode
    if mode == "in_person":
        party = request.party_size or (live.party_size if live.mode == "in_person" else 1)
    else:
        party = 1
    if mode == live.mode and party == live.party_size:
        return Decision(
            "already_registered",
            f"The sender already holds this {_mode_words(mode)} place at {meeting.id}.",
            "decide.already_registered",
            meeting_id=meeting.id,
            mode=mode,
            party_size=party,
            reply_kind="already_registered",
        )
    if capacity_check and _over_capacity(meeting, situation, mode, party, live):
        return _waitlist(meeting, mode, party)
    was_online = live.mode == "online" and live.status == "confirmed"
    return Decision(
        "changed",
        f"Changed from {_mode_words(live.mode)} ({live.party_size}) to "
        f"{_mode_words(mode)} ({party}) for {meeting.id}.",
        f"decide.change.{mode}",
        meeting_id=meeting.id,
        mode=mode,
        party_size=party,
        reply_kind="changed",
        calendar_add=mode == "online" and not was_online,
        calendar_remove=mode == "in_person" and was_online,
    )


def _over_capacity(
    meeting: Meeting, situation: Situation, mode: Mode, party: int, live: Registration | None
) -> bool:
    taken = situation.occupancy.get(meeting.id, Occupancy())
    if live is not None and live.status == "confirmed" and live.mode == mode:
        freed = live.party_size if mode == "in_person" else 1  # their own place is reused
    else:
        freed = 0
    if mode == "in_person":
        return taken.in_person - freed + party > meeting.in_person_capacity
    return taken.online - freed + 1 > meeting.online_capacity


def _waitlist(meeting: Meeting, mode: Mode, party: int) -> Decision:
    where = "The chamber" if mode == "in_person" else "The online meeting"
    return Decision(
        "waitlisted",
        f"{where} is full for {meeting.id}; the sender is on the waiting list.",
        f"decide.waitlist.{mode}",
        meeting_id=meeting.id,
        mode=mode,
        party_size=party,
        reply_kind="waitlisted",
    )


def _which_reason(request: Request) -> str:
    if request.meeting_named and not request.meeting_candidates:
        return "The meeting named matches none of the meetings on the calendar."
    if len(request.meeting_candidates) > 1:
        return "The message could mean more than one meeting."
    return "The message names no meeting and several are open."


def _mode_words(mode: Mode) -> str:
    return "online" if mode == "online" else "in person"
