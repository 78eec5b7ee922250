"""The IMAP mailbox against a real Dovecot: listing, peeking, filing, sent copies, failures."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processor.errors import PermanentError, TransientError
from processor.imap import ImapMailbox, uid_sets
from processor.ports import MessageRef
from tests.plugins.dovecot import Dovecot, MakeDovecot, mailbox_config

# Dovecot 2.3's post-login capabilities, less MOVE (and, for another test, IDLE).
CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT UNSELECT CHILDREN NAMESPACE "
    "UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE ESEARCH SEARCHRES LIST-STATUS BINARY LITERAL+"
)


def message(n: int, body: str = "Please book me a seat.") -> bytes:
    return (
        f"From: Resident {n} <resident{n}@example.net>\r\n"
        f"To: committee@example.org\r\n"
        f"Subject: Attendance {n}\r\n"
        f"Message-ID: <m{n}@example.net>\r\n"
        f"\r\n{body}\r\n"
    ).encode()


make_config = mailbox_config


@pytest.fixture
def mailbox(dovecot: Dovecot, tmp_path: Path) -> Iterator[ImapMailbox]:
    box = ImapMailbox(make_config(dovecot, tmp_path))
    yield box
    box.close()


def flags(server: Dovecot, folder: str) -> dict[int, tuple[bytes, ...]]:
    client = server.client()
    try:
        client.select_folder(folder, readonly=True)
        return dict(client.get_flags(client.search("ALL")))
    finally:
        client.logout()


def test_it_lists_messages_in_uid_order_with_sizes(dovecot: Dovecot, mailbox: ImapMailbox) -> None:
    raws = [message(n) for n in range(3)]
    uids = [dovecot.append("INBOX", raw) for raw in raws]

    refs = mailbox.list_messages()

    assert refs == [MessageRef(str(uid), len(raw)) for uid, raw in zip(uids, raws, strict=True)]


def test_it_lists_nothing_in_an_empty_folder(mailbox: ImapMailbox) -> None:
    assert mailbox.list_messages() == []


def test_it_reports_uidvalidity_as_the_sync_token(dovecot: Dovecot, mailbox: ImapMailbox) -> None:
    client = dovecot.client()
    expected = client.select_folder("INBOX")[b"UIDVALIDITY"]
    client.logout()

    assert mailbox.sync_token() == str(expected)


def test_it_fetches_raw_bytes_without_setting_seen(dovecot: Dovecot, mailbox: ImapMailbox) -> None:
    raws = {dovecot.append("INBOX", message(n)): message(n) for n in range(2)}

    fetched = list(mailbox.fetch(mailbox.list_messages()))

    assert [(int(ref.key), raw) for ref, raw in fetched] == list(raws.items())
    assert [b"\\Seen" in f for f in flags(dovecot, "INBOX").values()] == [False, False]


def test_it_fetches_more_messages_than_one_chunk(dovecot: Dovecot, tmp_path: Path) -> None:
    raws = [message(n) for n in range(7)]
    for raw in raws:
        dovecot.append("INBOX", raw)
    box = ImapMailbox(make_config(dovecot, tmp_path, fetch_chunk=3))

    refs = box.list_messages()
    fetched = [raw for _, raw in box.fetch(refs)]
    box.close()

    assert len(refs) == 7
    assert fetched == raws


def test_it_fetches_one_chunk_at_a_time(dovecot: Dovecot, tmp_path: Path) -> None:
    uids = [dovecot.append("INBOX", message(n)) for n in range(4)]
    box = ImapMailbox(make_config(dovecot, tmp_path, fetch_chunk=2))
    stream = box.fetch(box.list_messages())
    first = next(stream)

    # Expunged after the first chunk was fetched: an eager fetch would still yield it.
    client = dovecot.client()
    client.select_folder("INBOX")
    client.delete_messages([uids[3]])
    client.uid_expunge([uids[3]])
    client.logout()
    rest = list(stream)
    box.close()

    assert [int(ref.key) for ref, _ in [first, *rest]] == uids[:3]


def test_it_fetches_only_the_header_of_an_oversized_message(
    dovecot: Dovecot, mailbox: ImapMailbox
) -> None:
    big = message(1, body="x" * 2_000_000)
    dovecot.append("INBOX", big)
    (ref,) = mailbox.list_messages()

    header = mailbox.fetch_header(ref)

    assert ref.size == len(big)
    assert header == big.split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert [b"\\Seen" in f for f in flags(dovecot, "INBOX").values()] == [False]


def test_it_moves_to_processed_creating_the_folder(dovecot: Dovecot, mailbox: ImapMailbox) -> None:
    for n in range(3):
        dovecot.append("INBOX", message(n))
    refs = mailbox.list_messages()

    mailbox.move(refs[:2], "processed")

    assert [ref.key for ref in mailbox.list_messages()] == [refs[2].key]
    assert len(dovecot.uids("Processed")) == 2
    assert dovecot.uids("Review") == []


@pytest.mark.parametrize("server_moves", [True, False])
def test_a_move_names_only_the_messages_given(
    server_moves: bool, make_dovecot: MakeDovecot, tmp_path: Path
) -> None:
    # Five UIDs in a row, the middle one not ours to move: the UID set is "1:2,4:5",
    # never "1:5". Both with MOVE and with the COPY fallback.
    server = make_dovecot(**({} if server_moves else {"imap_capability": CAPABILITIES}))
    for n in range(5):
        server.append("INBOX", message(n))
    box = ImapMailbox(make_config(server, tmp_path))
    refs = box.list_messages()

    box.move([*refs[:2], *refs[3:]], "review")

    assert server.uids("INBOX") == [int(refs[2].key)]
    assert len(server.uids("Review")) == 4
    box.close()


def test_uid_sets_run_consecutive_uids_together() -> None:
    assert list(uid_sets([9, 5, 3, 4, 6, 7, 1, 4])) == ["1,3:7,9"]
    assert list(uid_sets([])) == []
    assert list(uid_sets([10, 12, 14], most=5)) == ["10,12", "14"]


@given(st.sets(st.integers(1, 300)), st.integers(8, 40))
def test_uid_sets_name_each_uid_given_and_no_other(uids: set[int], most: int) -> None:
    sets = list(uid_sets(uids, most=most))

    named: list[int] = []
    for text in sets:
        assert len(text) <= most
        for part in text.split(","):
            first, _, last = part.partition(":")
            named += range(int(first), int(last or first) + 1)
    assert named == sorted(uids)


def test_it_moves_with_copy_and_expunge_when_the_server_lacks_move(
    make_dovecot: MakeDovecot, tmp_path: Path
) -> None:
    server = make_dovecot(imap_capability=CAPABILITIES)
    raws = [message(n) for n in range(3)]
    for raw in raws:
        server.append("INBOX", raw)
    box = ImapMailbox(make_config(server, tmp_path))
    refs = box.list_messages()

    box.move(refs[:2], "processed")

    assert [ref.key for ref in box.list_messages()] == [refs[2].key]
    assert server.uids("INBOX") == [int(refs[2].key)]  # expunged, not just flagged
    assert len(server.uids("Processed")) == 2
    box.close()


def test_it_moves_with_plain_expunge_when_the_server_lacks_uidplus(
    make_dovecot: MakeDovecot, tmp_path: Path
) -> None:
    server = make_dovecot(imap_capability=CAPABILITIES.replace(" UIDPLUS", ""))
    for n in range(2):
        server.append("INBOX", message(n))
    box = ImapMailbox(make_config(server, tmp_path))

    box.move(box.list_messages(), "review")

    assert server.uids("INBOX") == []
    assert len(server.uids("Review")) == 2
    box.close()


def test_it_moves_into_a_folder_that_already_exists(dovecot: Dovecot, mailbox: ImapMailbox) -> None:
    dovecot.append("Processed", message(0))
    dovecot.append("INBOX", message(1))

    mailbox.move(mailbox.list_messages(), "processed")

    assert len(dovecot.uids("Processed")) == 2


def test_it_does_not_list_a_message_flagged_deleted_but_not_expunged(
    dovecot: Dovecot, mailbox: ImapMailbox
) -> None:
    # What a crash between COPY and EXPUNGE in the no-MOVE fallback leaves behind.
    dovecot.append("INBOX", message(1), flags=(b"\\Deleted",))
    kept = dovecot.append("INBOX", message(2))

    assert [ref.key for ref in mailbox.list_messages()] == [str(kept)]


def test_it_appends_a_seen_copy_to_sent_and_finds_it(
    dovecot: Dovecot, mailbox: ImapMailbox
) -> None:
    reply = message(9).replace(b"<m9@example.net>", b"<reply-1@example.org>")

    mailbox.append_sent(reply)

    assert mailbox.find_in_sent("<reply-1@example.org>")
    assert not mailbox.find_in_sent("<reply-2@example.org>")
    assert not mailbox.find_in_sent("<ply-1@example.org>")  # a substring is not a match
    assert [b"\\Seen" in f for f in flags(dovecot, "Sent").values()] == [True]


def test_it_files_several_sent_copies_in_one_multiappend(
    dovecot: Dovecot, mailbox: ImapMailbox
) -> None:
    mailbox.append_sent(message(1), message(2), message(3))

    assert all(mailbox.find_in_sent(f"<m{n}@example.net>") for n in (1, 2, 3))
    assert [b"\\Seen" in f for f in flags(dovecot, "Sent").values()] == [True, True, True]


def test_it_keeps_the_source_folder_selected_after_searching_sent(
    dovecot: Dovecot, mailbox: ImapMailbox
) -> None:
    dovecot.append("INBOX", message(1))
    mailbox.append_sent(message(2))

    assert mailbox.find_in_sent("<m2@example.net>")
    assert len(mailbox.list_messages()) == 1


def test_it_finds_nothing_when_there_is_no_sent_folder(mailbox: ImapMailbox) -> None:
    assert not mailbox.find_in_sent("<reply-1@example.org>")


def test_it_refuses_a_wrong_password_naming_the_fix(dovecot: Dovecot, tmp_path: Path) -> None:
    box = ImapMailbox(make_config(dovecot, tmp_path))
    (tmp_path / "imap-password").write_text("wrong")

    with pytest.raises(PermanentError, match=r"login .* refused.*mailbox\.password_file"):
        box.list_messages()


def test_it_refuses_a_missing_source_folder(dovecot: Dovecot, tmp_path: Path) -> None:
    box = ImapMailbox(make_config(dovecot, tmp_path, folder="Nowhere"))

    with pytest.raises(PermanentError, match=r"'Nowhere'.*mailbox\.folder"):
        box.list_messages()


def test_it_reports_a_stopped_server_as_transient(dovecot: Dovecot, tmp_path: Path) -> None:
    box = ImapMailbox(make_config(dovecot, tmp_path))
    dovecot.stop()

    with pytest.raises(TransientError, match="connecting"):
        box.list_messages()


def test_it_reconnects_after_the_server_comes_back(dovecot: Dovecot, tmp_path: Path) -> None:
    dovecot.append("INBOX", message(1))
    box = ImapMailbox(make_config(dovecot, tmp_path))
    assert len(box.list_messages()) == 1
    dovecot.stop()

    with pytest.raises(TransientError):
        box.list_messages()
    dovecot.start()

    assert len(box.list_messages()) == 1
    box.close()


def test_it_reconnects_when_the_server_dropped_an_idle_connection(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    box = ImapMailbox(make_config(dovecot, tmp_path))
    assert box.list_messages() == []
    dovecot.stop()  # the open connection dies with the server
    dovecot.start()
    dovecot.append("INBOX", message(1))

    assert len(box.list_messages()) == 1
    box.close()


def test_it_refuses_listed_uids_after_uidvalidity_changed(dovecot: Dovecot, tmp_path: Path) -> None:
    dovecot.append("INBOX", message(1))
    box = ImapMailbox(make_config(dovecot, tmp_path))
    refs = box.list_messages()
    before = box.sync_token()
    # Losing its UID list and index makes Dovecot renumber the folder under a new UIDVALIDITY.
    dovecot.stop()
    for state in (dovecot.dir / "mail" / dovecot.username).glob("dovecot*"):
        state.unlink()
    time.sleep(1.1)  # UIDVALIDITY is a timestamp in seconds
    dovecot.start()
    with pytest.raises(TransientError, match="connection failed"):
        list(box.fetch(refs))  # the old connection died with the server

    with pytest.raises(TransientError, match="UIDVALIDITY"):
        list(box.fetch(refs))
    with pytest.raises(TransientError, match="UIDVALIDITY"):
        box.move(refs, "processed")
    assert box.sync_token() != before
    assert len(box.list_messages()) == 1
    box.close()


def test_it_times_out_on_a_silent_server(dovecot: Dovecot, tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = make_config(dovecot, tmp_path, port=silent.getsockname()[1], timeout=0.3)
        started = time.monotonic()

        with pytest.raises(TransientError, match="timed out"):
            ImapMailbox(config).list_messages()

    assert time.monotonic() - started < 3


def test_it_connects_over_tls_trusting_the_ca_file(
    make_dovecot: MakeDovecot, tmp_path: Path
) -> None:
    server = make_dovecot(tls=True)
    server.append("INBOX", message(1))
    assert server.ssl_port is not None
    implicit = ImapMailbox(
        make_config(server, tmp_path, security="ssl", port=server.ssl_port, ca_file=server.ca_file)
    )
    starttls = ImapMailbox(
        make_config(server, tmp_path, security="starttls", ca_file=server.ca_file)
    )

    assert len(implicit.list_messages()) == 1
    assert len(starttls.list_messages()) == 1
    implicit.close()
    starttls.close()


def test_it_refuses_an_untrusted_certificate_naming_the_fix(
    make_dovecot: MakeDovecot, tmp_path: Path
) -> None:
    server = make_dovecot(tls=True)
    assert server.ssl_port is not None
    box = ImapMailbox(make_config(server, tmp_path, security="ssl", port=server.ssl_port))

    with pytest.raises(PermanentError, match=r"not trusted.*mailbox\.ca_file"):
        box.list_messages()


def test_it_refuses_tls_spoken_to_a_plain_port_naming_the_fix(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    box = ImapMailbox(make_config(dovecot, tmp_path, security="ssl"))

    with pytest.raises(PermanentError, match=r"mailbox\.security and mailbox\.port"):
        box.list_messages()


class Introspection(BaseHTTPRequestHandler):
    """The identity endpoint Dovecot asks about a bearer token (RFC 7662 style)."""

    valid_token = "good-token"

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        active = form.get("token") == [self.valid_token]
        body = json.dumps(
            {"active": "true" if active else "false", "username": "committee@example.org"}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def introspection_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Introspection)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/introspect"
    server.shutdown()
    server.server_close()


def test_it_logs_in_with_xoauth2(
    make_dovecot: MakeDovecot, introspection_url: str, tmp_path: Path
) -> None:
    server = make_dovecot(oauth2_introspection_url=introspection_url)
    server.append("INBOX", message(1))
    box = ImapMailbox(make_config(server, tmp_path, auth="oauth2"), lambda: "good-token")

    assert len(box.list_messages()) == 1
    box.close()


def test_it_refuses_a_rejected_token_naming_the_fix(
    make_dovecot: MakeDovecot, introspection_url: str, tmp_path: Path
) -> None:
    server = make_dovecot(oauth2_introspection_url=introspection_url)
    box = ImapMailbox(make_config(server, tmp_path, auth="oauth2"), lambda: "stale-token")

    with pytest.raises(PermanentError, match=r"IMAP\.AccessAsApp"):
        box.list_messages()


def test_it_returns_true_from_idle_when_mail_arrives(
    dovecot: Dovecot, mailbox: ImapMailbox
) -> None:
    mailbox.list_messages()
    timer = threading.Timer(0.2, dovecot.append, ("INBOX", message(1)))
    timer.start()

    arrived = mailbox.idle_wait(5.0)
    timer.join()

    assert arrived
    assert len(mailbox.list_messages()) == 1


def test_it_returns_false_from_idle_after_the_timeout(mailbox: ImapMailbox) -> None:
    started = time.monotonic()

    assert not mailbox.idle_wait(0.3)
    assert 0.25 < time.monotonic() - started < 3
    assert mailbox.list_messages() == []


def test_it_returns_false_at_once_without_idle(make_dovecot: MakeDovecot, tmp_path: Path) -> None:
    server = make_dovecot(imap_capability=CAPABILITIES.replace(" IDLE", ""))
    box = ImapMailbox(make_config(server, tmp_path))
    started = time.monotonic()

    assert not box.idle_wait(5.0)
    assert time.monotonic() - started < 2
    box.close()
