"""RFC 3834 and loop detection: which mail gets no reply, and which rule said so."""

from __future__ import annotations

import pytest

from processor.classify import LOOP_HEADER, classify
from processor.reading import read_message

OWN = "committee@council.example.gov.uk"


def _classify(
    headers: str, sender: str = "Jo <jo@example.com>", body: str = "hi"
) -> tuple[bool, str]:
    raw = f"From: {sender}\nMessage-ID: <1@example.com>\n{headers}\n{body}\n"
    result = classify(read_message(raw.encode()), OWN)
    assert result.reason
    return result.automated, result.rule


@pytest.mark.parametrize(
    ("headers", "rule"),
    [
        ("Auto-Submitted: auto-replied\n", "auto_submitted"),
        ("Auto-Submitted: auto-generated\n", "auto_submitted"),
        ("Return-Path: <>\n", "return_path_null"),
        (
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n',
            "multipart_report",
        ),
        ("Precedence: bulk\n", "precedence_bulk"),
        ("Precedence: junk\n", "precedence_bulk"),
        ("Precedence: list\n", "precedence_bulk"),
        ("List-Id: <x.example.com>\n", "list_header"),
        ("List-Unsubscribe: <mailto:u@example.com>\n", "list_header"),
        ("X-Autoreply: yes\n", "autoreply_header"),
        ("X-Autorespond: yes\n", "autoreply_header"),
        ("X-Auto-Response-Suppress: All\n", "auto_response_suppress"),
    ],
)
def test_it_marks_rfc3834_automated_mail(headers: str, rule: str) -> None:
    assert _classify(headers) == (True, rule)


@pytest.mark.parametrize(
    "sender",
    ["MAILER-DAEMON@mx.example.com", "postmaster@example.org", "no-reply@x.com", "noreply@x.com"],
)
def test_it_marks_robot_senders(sender: str) -> None:
    assert _classify("", sender=sender) == (True, "robot_sender")


def test_it_marks_mail_from_our_own_address() -> None:
    assert _classify("", sender=f"Committee <{OWN.upper()}>") == (True, "own_address")


def test_it_marks_our_own_replies_by_loop_header_and_message_id_domain() -> None:
    raw = f"From: fwd@example.net\nMessage-ID: <r1@council.example.gov.uk>\n{LOOP_HEADER}: 1\n\nx"
    result = classify(read_message(raw.encode()), OWN)
    assert (result.automated, result.rule) == (True, "own_reply")


def test_it_does_not_trust_a_loop_header_on_a_foreign_message_id() -> None:
    raw = f"From: jo@example.net\nMessage-ID: <r1@example.net>\n{LOOP_HEADER}: 1\n\nx"
    assert not classify(read_message(raw.encode()), OWN).automated


def test_it_treats_auto_submitted_no_as_human() -> None:
    assert _classify("Auto-Submitted: no\n") == (False, "human")


def test_it_treats_ordinary_mail_as_human() -> None:
    assert _classify("Subject: I'd like to attend\n") == (False, "human")
