"""The maildir mailbox in temporary Maildir++ trees: order, bytes, filing, sent copies."""

from __future__ import annotations

import mailbox
import os
from pathlib import Path

import pytest

from processor.config import MailboxConfig, Secret
from processor.errors import PermanentError
from processor.maildir import MaildirMailbox
from processor.ports import MessageRef


def message(n: int, body: str = "Please book me a seat.") -> bytes:
    return (
        f"From: Resident {n} <resident{n}@example.net>\r\n"
        f"Subject: Attendance {n}\r\n"
        f"Message-ID: <m{n}@example.net>\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def make_config(path: Path, folder: str = "INBOX") -> MailboxConfig:
    return MailboxConfig(
        kind="maildir",
        host="",
        port=143,
        security="none",
        username="",
        auth="password",
        password=Secret(key="mailbox.password_env"),
        folder=folder,
        processed_folder="Processed",
        review_folder="Review",
        sent_folder="Sent",
        path=path,
        ca_file=None,
        timeout=5.0,
        max_message_bytes=15_000_000,
        fetch_chunk=100,
        idle=False,
    )


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "Maildir"
    mailbox.Maildir(path, create=True)
    return path


def deliver(root: Path, raw: bytes, mtime: float, subdir: str = "new") -> str:
    """Put a message where a delivery agent would, with a chosen arrival time."""
    box = mailbox.Maildir(root, factory=None, create=False)
    key = box.add(raw)
    path = root / "new" / key
    if subdir == "cur":
        path = path.rename(root / "cur" / f"{key}:2,S")
    os.utime(path, (mtime, mtime))
    return key


def folder_keys(root: Path, folder: str) -> set[str]:
    path = root / f".{folder}"
    if not path.exists():
        return set()
    return {name.split(":")[0] for sub in ("new", "cur") for name in os.listdir(path / sub)}


def test_it_lists_messages_oldest_first_with_sizes(root: Path) -> None:
    late = deliver(root, message(1), mtime=2_000_000)
    early = deliver(root, message(22), mtime=1_000_000, subdir="cur")

    refs = MaildirMailbox(make_config(root)).list_messages()

    assert refs == [MessageRef(early, len(message(22))), MessageRef(late, len(message(1)))]


def test_it_orders_messages_of_the_same_time_by_key(root: Path) -> None:
    keys = [deliver(root, message(n), mtime=1_000_000) for n in range(3)]

    refs = MaildirMailbox(make_config(root)).list_messages()

    assert [ref.key for ref in refs] == sorted(keys)


def test_it_reports_a_constant_sync_token(root: Path) -> None:
    box = MaildirMailbox(make_config(root))
    first = box.sync_token()
    deliver(root, message(1), mtime=1_000_000)

    assert first == box.sync_token() == "maildir"


def test_it_fetches_the_exact_bytes(root: Path) -> None:
    raws = [message(1), b"Subject: bare\n\nlf only\n", message(3, body="café")]
    for n, raw in enumerate(raws):
        deliver(root, raw, mtime=1_000_000 + n)
    box = MaildirMailbox(make_config(root))

    assert [raw for _, raw in box.fetch(box.list_messages())] == raws


def test_it_skips_a_message_gone_since_listing(root: Path) -> None:
    gone = deliver(root, message(1), mtime=1_000_000)
    kept = deliver(root, message(2), mtime=1_000_001)
    box = MaildirMailbox(make_config(root))
    refs = box.list_messages()
    (root / "new" / gone).unlink()

    assert [ref.key for ref, _ in box.fetch(refs)] == [kept]


def test_it_fetches_only_the_header(root: Path) -> None:
    big = message(1, body="x" * 1_000_000)
    deliver(root, big, mtime=1_000_000)
    box = MaildirMailbox(make_config(root))
    (ref,) = box.list_messages()

    assert box.fetch_header(ref) == big.split(b"\r\n\r\n")[0] + b"\r\n\r\n"


def test_it_moves_to_processed_and_review_creating_the_folders(root: Path) -> None:
    keys = [deliver(root, message(n), mtime=1_000_000 + n) for n in range(3)]
    box = MaildirMailbox(make_config(root))
    refs = box.list_messages()

    box.move(refs[:2], "processed")
    box.move(refs[2:], "review")

    assert box.list_messages() == []
    assert folder_keys(root, "Processed") == set(keys[:2])
    assert folder_keys(root, "Review") == {keys[2]}
    assert (root / ".Processed" / "maildirfolder").exists()  # Maildir++ marker


def test_it_keeps_bytes_and_flags_when_moving(root: Path) -> None:
    key = deliver(root, message(1), mtime=1_000_000, subdir="cur")
    box = MaildirMailbox(make_config(root))

    box.move(box.list_messages(), "processed")

    assert os.listdir(root / ".Processed" / "cur") == [f"{key}:2,S"]
    assert (root / ".Processed" / "cur" / f"{key}:2,S").read_bytes() == message(1)


def test_it_ignores_a_move_of_a_message_already_filed(root: Path) -> None:
    deliver(root, message(1), mtime=1_000_000)
    box = MaildirMailbox(make_config(root))
    refs = box.list_messages()
    box.move(refs, "processed")

    box.move(refs, "processed")

    assert len(folder_keys(root, "Processed")) == 1


def test_it_reads_a_subfolder_as_the_source(root: Path) -> None:
    mailbox.Maildir(root, create=False).add_folder("Requests")
    key = deliver(root / ".Requests", message(1), mtime=1_000_000)
    box = MaildirMailbox(make_config(root, folder="Requests"))

    assert [ref.key for ref in box.list_messages()] == [key]
    box.move(box.list_messages(), "processed")
    assert folder_keys(root, "Processed") == {key}


def test_it_refuses_a_missing_source_folder(root: Path) -> None:
    with pytest.raises(PermanentError, match=r"'Requests'.*mailbox\.folder"):
        MaildirMailbox(make_config(root, folder="Requests")).list_messages()


def test_it_refuses_a_path_that_is_not_a_maildir(tmp_path: Path) -> None:
    with pytest.raises(PermanentError, match=r"not a maildir.*mailbox\.path"):
        MaildirMailbox(make_config(tmp_path / "missing")).list_messages()


def test_it_appends_a_seen_copy_to_sent_and_finds_it(root: Path) -> None:
    box = MaildirMailbox(make_config(root))
    reply = message(9).replace(b"<m9@example.net>", b"<reply-1@example.org>")

    assert not box.find_in_sent("<reply-1@example.org>")  # no Sent folder yet
    box.append_sent(reply)

    assert box.find_in_sent("<reply-1@example.org>")
    assert not box.find_in_sent("<ply-1@example.org>")
    (name,) = os.listdir(root / ".Sent" / "cur")
    assert name.endswith(":2,S")
    assert (root / ".Sent" / "cur" / name).read_bytes() == reply
    assert box.list_messages() == []  # the sent copy is not a request
