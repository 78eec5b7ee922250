"""Reading raw bytes into an InboundEmail: decoding, quotes, defects, never raising."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mailparser_reply import EmailReplyParser

from processor.reading import _PARSED_HEADERS as PARSED
from processor.reading import (
    _SIMPLE_ADDRESS,
    _address,
    _decoded_header,
    _needs_parsing,
    _parsed_address,
    read_message,
    read_replies,
)


def test_it_synthesises_a_message_id_from_the_content_hash() -> None:
    raw = b"From: a@example.com\nSubject: hi\n\nbody\n"
    email = read_message(raw)
    digest = hashlib.sha256(raw).hexdigest()
    assert email.message_id == f"<{digest}@missing-message-id.invalid>"
    assert email.sha256 == digest
    assert email.size == len(raw)
    assert any("Message-ID" in d for d in email.defects)


def test_it_lower_cases_the_sender_and_honours_a_valid_reply_to() -> None:
    raw = b"From: Jo Bloggs <Jo.Bloggs@Example.COM>\nReply-To: Jo <JO@home.example>\n\nhi\n"
    email = read_message(raw)
    assert email.sender == "jo.bloggs@example.com"
    assert email.display_name == "Jo Bloggs"
    assert email.reply_to == "jo@home.example"


def test_it_falls_back_to_the_sender_when_reply_to_is_invalid() -> None:
    email = read_message(b"From: jo@example.com\nReply-To: not an address\n\nhi\n")
    assert email.reply_to == "jo@example.com"


def test_it_decodes_encoded_words_and_collapses_injected_line_breaks() -> None:
    raw = (
        b"From: =?utf-8?q?Zo=C3=AB_Ng?= <z@example.com>\n"
        b"Subject: =?utf-8?q?a=0D=0ABcc:_x@y.z?=\n\nb\n"
    )
    email = read_message(raw)
    assert email.display_name == "Zoë Ng"
    assert "\n" not in email.subject and "\r" not in email.subject
    assert email.subject == "a Bcc: x@y.z"


def test_it_prefers_text_plain_over_html() -> None:
    raw = (
        b'From: a@example.com\nContent-Type: multipart/alternative; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nplain words\n"
        b"--b\nContent-Type: text/html\n\n<p>html words</p>\n--b--\n"
    )
    assert read_message(raw).text == "plain words"


def test_it_renders_html_only_mail_without_scripts_or_styles() -> None:
    raw = (
        b"From: a@example.com\nContent-Type: text/html\n\n<html><head><style>p{x:y}</style>"
        b"<script>alert('online')</script></head><body><p>In person please</p></body></html>\n"
    )
    email = read_message(raw)
    assert email.text == "In person please"


def test_it_reads_an_unknown_charset_as_utf8() -> None:
    raw = b"From: a@example.com\nContent-Type: text/plain; charset=x-bogus\n\ncaf\xc3\xa9\n"
    email = read_message(raw)
    assert email.text == "café"
    assert any("x-bogus" in d for d in email.defects)


def test_it_falls_back_to_latin1_when_utf8_is_mostly_wrong() -> None:
    body = "Müller à côté é è ê ë ï".encode("latin-1")
    raw = b"From: a@example.com\nContent-Type: text/plain; charset=utf-8\n\n" + body
    assert read_message(raw).text == "Müller à côté é è ê ë ï"


def test_it_decodes_base64_bodies() -> None:
    body = base64.b64encode(b"Online please, 3 December")
    raw = b"From: a@example.com\nContent-Transfer-Encoding: base64\n\n" + body + b"\n"
    assert read_message(raw).text == "Online please, 3 December"


def test_it_skips_attachment_bodies() -> None:
    raw = (
        b'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\nContent-Disposition: attachment; filename=x.txt\n\n"
        b"attached words\n--b\nContent-Type: text/plain\n\nbody words\n--b--\n"
    )
    assert read_message(raw).text == "body words"


def test_it_strips_quoted_replies_and_keeps_the_signature_apart() -> None:
    raw = (
        b"From: a@example.com\n\nOnline please\n\nThanks,\nJane Smith\n\n"
        b"On Wed, 25 Nov 2026 at 10:00, Committee <c@example.com> wrote:\n> in person?\n"
    )
    email = read_message(raw)
    assert email.new_text == "Online please"
    assert email.signature == "Thanks,\nJane Smith"
    assert "in person?" in email.text


def test_it_keeps_only_the_text_above_a_forwarded_message() -> None:
    for marker in (
        "---------- Forwarded message ---------",
        "Begin forwarded message:",
        "-----Original Message-----",
    ):
        raw = f"From: a@example.com\n\nSee below.\n\n{marker}\nFrom: b@x.org\n\nIn person\n"
        assert read_message(raw.encode()).new_text == "See below.", marker


def test_it_cuts_an_outlook_from_sent_header_block() -> None:
    raw = (
        b"From: a@example.com\n\nYes, online.\n\n"
        b"From: Committee\nSent: 20 November 2026\nTo: me\n\nold\n"
    )
    assert read_message(raw).new_text == "Yes, online."


def test_it_never_raises_on_garbage() -> None:
    for raw in (
        b"",
        b"\x00\xff\xfe",
        b"From: <<<@@@>>>\n\n",
        b"Content-Type: multipart/mixed\n\n--",
    ):
        email = read_message(raw)
        assert email.message_id.endswith("@missing-message-id.invalid>")


def test_it_parses_the_date_header_as_aware_or_none() -> None:
    assert read_message(b"Date: Thu, 26 Nov 2026 09:00:00 +0000\n\nx").date is not None
    assert read_message(b"Date: yesterday-ish\n\nx").date is None


def test_it_reads_a_content_type_the_modern_parser_fails_on_with_the_legacy_one() -> None:
    raw = b"From: a@example.com\nContent-Type: text/plain; x*\n\nOnline please\n"
    for _ in range(2):  # parsed headers are cached: a failure must not be
        email = read_message(raw)
        assert email.text == "Online please"
        assert any("legacy parser" in d for d in email.defects)


def test_it_reads_each_message_by_its_own_headers_when_values_repeat() -> None:
    for charset, body in (("utf-8", "caf\xc3\xa9"), ("latin-1", "caf\xe9")):
        raw = (
            b"From: Jo Bloggs <jo@example.com>\nSubject: Meeting\n"
            b"Content-Type: text/plain; charset="
            + charset.encode()
            + b"\n\n"
            + body.encode("latin-1")
            + b"\n"
        )
        for _ in range(2):
            email = read_message(raw)
            assert (email.text, email.display_name, email.subject) == (
                "café",
                "Jo Bloggs",
                "Meeting",
            )


# Header values the reader takes as they are, without the full header parser (a
# hundredth of its cost), must be exactly what that parser would have returned.
TRICKY_HEADERS = [
    "Resident 1 <r1@residents.example>",
    "r1@residents.example",
    "<r1@residents.example>",
    "John Smith<j@x.example>",
    "John  Smith <j@x.example>",
    "Mr. Smith <s@x.example>",
    '"Smith, John" <j@x.example>',
    "John (Smith) <j@x.example>",
    "j@x.example (John)",
    "John Smith <j@x.example",
    "a@x.example, b@y.example",
    "group: a@x.example, b@y.example;",
    "Undisclosed recipients:;",
    "j@x.example.",
    ".j@x.example",
    "j..k@x.example",
    "=?utf-8?q?Eve?= <eve@example.net>",
    "x@[127.0.0.1]",
    "Re: the meeting on Thursday",
    "Fwd: [list] x: y (1)",
    "subject\twith a tab",
]


def _header_values(paths: list[Path]) -> list[tuple[str, str]]:
    values = []
    for path in paths:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.compat32)
        values += [(k.lower(), str(v)) for k, v in message.items() if k.lower() in PARSED]
    return values


@pytest.mark.parametrize("name", sorted(PARSED))
def test_it_takes_a_header_as_it_is_only_where_the_parser_would_give_it_back(
    name: str,
) -> None:
    corpus = sorted((Path(__file__).parent / "corpus").glob("*.eml"))
    values = [(name, v) for v in TRICKY_HEADERS] + _header_values(corpus)
    shortcuts = [(n, v) for n, v in values if not _needs_parsing(n, v)]
    assert len(shortcuts) > 10  # the shortcut is taken at all
    for n, value in shortcuts:
        assert " ".join(_decoded_header(n, value).split()) == " ".join(value.split()), value


def test_the_header_shortcut_agrees_with_the_parser_on_the_shared_corpus(
    shared_dir: Path,
) -> None:
    paths = [p for p in sorted((shared_dir / "corpus").rglob("*")) if p.suffix in (".eml", ".txt")]
    for n, value in _header_values(paths):
        if not _needs_parsing(n, value):
            assert " ".join(_decoded_header(n, value).split()) == " ".join(value.split()), value


def _replies(parsed: Any) -> list[tuple[str, str, str, str, list[str]]]:
    return [(r.content, r.body, r.headers, r.signatures, r.disclaimers) for r in parsed.replies]


# Lines that mail-parser-reply's header, disclaimer and signature patterns look for.
_REPLY_LINES = st.sampled_from(
    [
        "On Mon, 1 Dec 2025 at 10:00, Clerk <clerk@council.example> wrote:",
        "From: Clerk <clerk@council.example>",
        "Sent: Monday, 1 December 2025 10:00",
        "-----Original Message-----",
        "> quoted line",
        "--",
        "Sent from my iPhone",
        "Kind regards,",
        "This email and any attachments are confidential.",
        "I'd like to attend on 10 December online please.",
        "",
    ]
)


@given(st.lists(st.one_of(_REPLY_LINES, st.text(max_size=40)), max_size=12))
def test_replies_read_with_patterns_built_once_are_the_librarys_own(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert _replies(read_replies(text)) == _replies(EmailReplyParser(languages=["en"]).read(text))


def test_replies_read_with_patterns_built_once_agree_on_the_corpus() -> None:
    corpus = sorted((Path(__file__).parent / "corpus").glob("*.eml"))
    for path in corpus:
        text = read_message(path.read_bytes()).text
        assert _replies(read_replies(text)) == _replies(
            EmailReplyParser(languages=["en"]).read(text)
        ), path.name


@given(st.from_regex(_SIMPLE_ADDRESS, fullmatch=True))
def test_a_plain_address_is_split_as_getaddresses_splits_it(value: str) -> None:
    # `Words <local@domain>` or a bare address, taken apart without the parser.
    assert _address(value) == _parsed_address(value)


def test_a_plain_from_line_gives_its_name_and_lower_cased_address() -> None:
    assert _address("Resident 5 <Resident5@Residents.example>") == (
        "Resident 5",
        "resident5@residents.example",
    )
    assert _address("resident5@residents.example") == (None, "resident5@residents.example")
