"""Understanding free text: the labelled corpus end to end, and one test per rule."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from processor.classify import classify
from processor.decide import decide
from processor.models import Decision, InboundEmail, Request, Situation
from processor.reading import read_message
from processor.understand import merge_requests, understand
from tests.corpus_labels import CORPUS, LABELS, MEETINGS, NOW, OWN, TZ


@dataclass(frozen=True)
class Outcome:
    email: InboundEmail
    request: Request | None
    decision: Decision


def run(raw: bytes, now: datetime = NOW) -> Outcome:
    email = read_message(raw)
    classification = classify(email, OWN)
    request = None if classification.automated else understand(email, MEETINGS, TZ, now)
    situation = Situation(now=now, meetings=MEETINGS, registrations=(), occupancy={})
    return Outcome(email, request, decide(email, classification, request, situation))


def text(
    body: str, subject: str = "Meeting", sender: str = "Jo Bloggs <jo@example.com>"
) -> Request:
    raw = f"From: {sender}\nSubject: {subject}\nDate: Thu, 26 Nov 2026 09:00:00 +0000\n\n{body}\n"
    email = read_message(raw.encode())
    return understand(email, MEETINGS, TZ, NOW)


@pytest.mark.parametrize("name", sorted(LABELS["messages"]))
def test_it_understands_each_labelled_corpus_message(name: str) -> None:
    expected = LABELS["messages"][name]
    got = run((CORPUS / name).read_bytes())
    actual = {
        "intent": got.request.intent if got.request else "automated",
        "mode": got.request.mode if got.request else None,
        "meeting": got.decision.meeting_id,
        "name": got.request.name if got.request else None,
        "party_size": got.request.party_size if got.request else None,
        "outcome": got.decision.outcome,
    }
    wanted = {key: expected[key] for key in actual}
    assert actual == wanted, (got.request, got.decision, got.email.new_text)


def test_it_has_at_least_sixty_labelled_messages() -> None:
    emls = sorted(p.name for p in CORPUS.glob("*.eml"))
    assert len(emls) >= 60
    assert emls == sorted(LABELS["messages"])


@pytest.mark.parametrize(
    ("body", "intent"),
    [
        ("I'd like to attend on 3 December", "attend"),
        ("Please cancel my place", "cancel"),
        ("I won't be able to attend after all", "cancel"),
        ("Can I speak at the meeting?", "speak"),
        ("I would like to ask a question of the committee", "speak"),
        ("Could I switch to online instead?", "change"),
        ("What time does the library open?", "other"),
        ("I can't attend in person, so online please", "attend"),
        ("I hope the meeting won't be cancelled; I'd like to attend", "attend"),
    ],
)
def test_it_reads_the_intent(body: str, intent: str) -> None:
    assert text(body).intent == intent


@pytest.mark.parametrize(
    ("body", "mode"),
    [
        ("Please send me the Teams link", "online"),
        ("I'll join online", "online"),
        ("I'd like to watch online", "online"),
        ("I will attend virtually", "online"),
        ("I'll come along", "in_person"),
        ("A seat in the chamber please", "in_person"),
        ("I'd like to attend the meeting in person", "in_person"),
        ("Not in person, online please", "online"),
        ("I'd like to attend", None),
        ("I'd like to hear about the neighbourhood policing teams", None),
        ("Is there a link between knife crime and the schools?", None),
        ("Can you send me the link?", "online"),
        ("I'll join on Microsoft Teams", "online"),
        ("in person or online, either is fine", None),
    ],
)
def test_it_reads_the_mode(body: str, mode: str | None) -> None:
    assert text(body).mode == mode


@pytest.mark.parametrize(
    ("body", "candidates"),
    [
        ("the meeting on 3rd December", ("cdc-2026-12-03",)),
        ("on 17/12 please", ("cdc-2026-12-17",)),
        ("Thursday 17th", ("cdc-2026-12-17",)),
        ("next Thursday", ("cdc-2026-12-03",)),
        ("the December meeting", ("cdc-2026-12-03", "cdc-2026-12-17")),
        ("the March meeting", ()),
        ("10/03", ()),
        ("the knife crime scrutiny meeting", ("cdc-2026-12-03",)),
        ("the meeting on 19 November", ("cdc-2026-11-19",)),
    ],
)
def test_it_finds_the_meeting_named(body: str, candidates: tuple[str, ...]) -> None:
    request = text(body)
    assert request.meeting_named
    assert request.meeting_candidates == candidates
    assert request.meeting_id == (candidates[0] if len(candidates) == 1 else None)


def test_it_offers_the_open_meetings_when_none_is_named() -> None:
    request = text("I'd like to attend online")
    assert not request.meeting_named
    assert request.meeting_candidates == ("cdc-2026-12-03", "cdc-2026-12-17")
    assert request.meeting_id is None


def test_it_ignores_times_and_phone_numbers_as_dates() -> None:
    assert not text("I'll be there at 6.30pm, call 07700 900123").meeting_named


@pytest.mark.parametrize(
    ("body", "sender", "name"),
    [
        ("My name is Jane Smith and I'd like to attend", "x@example.com", "Jane Smith"),
        ("Online please.\n\nThanks,\nJane Smith", "x@example.com", "Jane Smith"),
        ("Online please.\n\n-- \nJane Smith\n1 High St", "x@example.com", "Jane Smith"),
        ("Online please.", "Jane Smith <x@example.com>", "Jane Smith"),
        ("Online please.", "jane.smith@example.com", None),
        ("Online please.\n\nSent from my iPhone", "x@example.com", None),
    ],
)
def test_it_finds_the_name_and_never_invents_one(body: str, sender: str, name: str | None) -> None:
    assert text(body, sender=sender).name == name


@pytest.mark.parametrize(
    ("body", "party"),
    [
        ("me and my husband", 2),
        ("three of us will come", 3),
        ("2 people in person", 2),
        ("I'll come with my neighbour", 2),
        ("my wife and I", 2),
        ("me and 2 others", 3),
        ("I'll come on my own", 1),
        ("I'd like to come", None),
    ],
)
def test_it_counts_the_party(body: str, party: int | None) -> None:
    assert text(body).party_size == party


def test_it_normalises_access_needs() -> None:
    request = text("I use a wheelchair, need a hearing loop, BSL and large print papers")
    assert request.access_needs == ("wheelchair", "hearing_loop", "bsl", "large_print")


@pytest.mark.parametrize(
    "body",
    [
        "When are my bins collected? I'd like to attend online",
        "Question about council tax",
        "Je voudrais assister à la réunion, merci et bonne journée",
        "Я хотел бы присутствовать на заседании",
    ],
)
def test_it_gives_refer_reasons_for_unrelated_or_foreign_mail(body: str) -> None:
    assert text(body).refer_reasons


def test_it_refers_conflicting_intents() -> None:
    request = text("Please cancel my place and I would like to speak instead")
    assert request.refer_reasons


def test_it_records_evidence_for_each_field() -> None:
    request = text(
        "Me and my husband would like to come in person on 3 December.\n\nThanks,\nAl Green"
    )
    fields = {e.field for e in request.evidence}
    assert {"intent", "mode", "meeting", "name", "party_size"} <= fields
    assert any(rule.startswith("mode.in_person.") for rule in request.rules())


def test_it_merges_a_follow_up_answering_which_mode() -> None:
    original = text("I'd like to attend on 3 December")
    merged = merge_requests(original, text("Online please"))
    assert (merged.intent, merged.mode, merged.meeting_id) == ("attend", "online", "cdc-2026-12-03")


def test_it_merges_a_follow_up_answering_which_meeting() -> None:
    original = text("I'd like to attend online, me and my wife", sender="Al Green <al@example.com>")
    merged = merge_requests(original, text("The 17th December one"))
    assert (merged.mode, merged.meeting_id, merged.party_size) == ("online", "cdc-2026-12-17", 2)
    assert merged.name == "Al Green"


def test_it_lets_a_follow_up_cancel() -> None:
    merged = merge_requests(text("attend online on 3 December"), text("Actually please cancel"))
    assert merged.intent == "cancel"


def test_it_resolves_weekdays_against_the_date_header_in_the_committee_tz() -> None:
    raw = (
        b"From: a@example.com\nDate: Mon, 30 Nov 2026 23:30:00 -0800\n\nOnline on Thursday please\n"
    )
    # 23:30 in California on Monday is Tuesday morning in London: Thursday is still 3 Dec.
    email = read_message(raw)
    assert understand(email, MEETINGS, TZ, NOW).meeting_id == "cdc-2026-12-03"


def test_it_reads_a_bare_weekday_on_that_day_as_today() -> None:
    meeting_day = datetime(2026, 12, 3, 9, 0, tzinfo=TZ)
    raw = b"From: a@example.com\n\nCan I watch Thursday's meeting online?\n"
    request = understand(read_message(raw), MEETINGS, TZ, meeting_day)
    assert request.meeting_id == "cdc-2026-12-03"


def test_it_reads_the_same_phrase_against_each_reference_date_and_time_zone() -> None:
    # The dates dateparser reads are cached by phrase and local date: the second pass
    # is answered from the cache and must still give each reference its own day.
    email = read_message(b"From: a@example.com\n\nOnline tomorrow please\n")
    los_angeles = ZoneInfo("America/Los_Angeles")
    cases = [
        (datetime(2026, 12, 2, 0, 5, tzinfo=TZ), TZ, "cdc-2026-12-03"),
        (datetime(2026, 12, 2, 23, 55, tzinfo=TZ), TZ, "cdc-2026-12-03"),
        (datetime(2026, 12, 3, 0, 5, tzinfo=TZ), TZ, None),  # tomorrow is 4 December
        (datetime(2026, 12, 16, 9, 0, tzinfo=TZ), TZ, "cdc-2026-12-17"),
        # 06:00 on 3 December in London is still 2 December in California.
        (datetime(2026, 12, 3, 6, 0, tzinfo=TZ), los_angeles, "cdc-2026-12-03"),
    ]
    for _ in range(2):
        for now, tz, meeting_id in cases:
            assert understand(email, MEETINGS, tz, now).meeting_id == meeting_id, (now, tz)


def test_it_reads_a_weekday_against_each_date_header() -> None:
    for _ in range(2):
        for date, meeting_id in (
            ("Mon, 30 Nov 2026", "cdc-2026-12-03"),
            ("Mon, 14 Dec 2026", "cdc-2026-12-17"),
        ):
            raw = f"From: a@example.com\nDate: {date} 09:00:00 +0000\n\nOnline on Thursday\n"
            now = datetime(2026, 12, 1, 9, 0, tzinfo=TZ)
            assert (
                understand(read_message(raw.encode()), MEETINGS, TZ, now).meeting_id == meeting_id
            )
