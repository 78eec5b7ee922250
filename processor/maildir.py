"""The maildir mailbox: a local Maildir++ tree standing in for IMAP (demos, tests, pipes)."""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path

from processor.config import MailboxConfig
from processor.errors import PermanentError, TransientError
from processor.ports import Destination, MessageRef

SUBDIRS = ("new", "cur")
SYNC_TOKEN = "maildir"  # maildir keys never get renumbered, unlike IMAP UIDs


@dataclass(frozen=True)
class _Entry:
    key: str
    path: Path
    size: int
    mtime: float


def _key_of(name: str) -> str:
    # Maildir file names are "<unique>:2,<flags>"; the unique part is the key.
    return name.split(mailbox.Maildir.colon, 1)[0]


def _scan(root: Path) -> list[_Entry]:
    """The messages of one maildir, oldest first (mtime, then key)."""
    entries: list[_Entry] = []
    for sub in SUBDIRS:
        try:
            names = os.listdir(root / sub)
        except FileNotFoundError:
            continue
        for name in names:
            if name.startswith("."):
                continue
            path = root / sub / name
            try:
                stat = path.stat()
            except FileNotFoundError:  # moved by someone else meanwhile
                continue
            entries.append(_Entry(_key_of(name), path, stat.st_size, stat.st_mtime))
    return sorted(entries, key=lambda e: (e.mtime, e.key))


def _read_header(path: Path) -> bytes:
    """The header block and its blank line, read line by line (the body may be huge)."""
    lines: list[bytes] = []
    with path.open("rb") as handle:
        for line in handle:
            lines.append(line)
            if line in (b"\n", b"\r\n"):
                break
    return b"".join(lines)


class MaildirMailbox:
    """A Mailbox over a Maildir++ tree: the root (or a subfolder) is the source."""

    def __init__(self, config: MailboxConfig) -> None:
        if config.path is None:
            raise PermanentError("mailbox.path is required when mailbox.kind = maildir")
        self._config = config
        self._path = config.path

    def sync_token(self) -> str:
        return SYNC_TOKEN

    def list_messages(self) -> list[MessageRef]:
        return [MessageRef(e.key, e.size) for e in _scan(self._source())]

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        # Maildir.get_bytes gives the file unchanged on POSIX (it only rewrites os.linesep).
        source = mailbox.Maildir(self._source(), factory=None, create=False)
        for ref in refs:
            try:
                raw = source.get_bytes(ref.key)
            except KeyError:
                continue  # gone since listing, like an expunged IMAP message
            except OSError as exc:
                raise TransientError(f"cannot read maildir message {ref.key}: {exc}") from exc
            yield ref, raw

    def fetch_header(self, ref: MessageRef) -> bytes:
        entry = _find(self._source(), [ref.key]).get(ref.key)
        if entry is None:
            raise PermanentError(f"message {ref.key} has gone from the maildir")
        try:
            return _read_header(entry.path)
        except OSError as exc:
            raise TransientError(f"cannot read maildir message {ref.key}: {exc}") from exc

    def move(self, refs: Sequence[MessageRef], destination: Destination) -> None:
        name = (
            self._config.processed_folder
            if destination == "processed"
            else self._config.review_folder
        )
        target = self._folder(name, create=True)
        found = _find(self._source(), [ref.key for ref in refs])
        for ref in refs:
            entry = found.get(ref.key)
            if entry is None:
                continue  # already filed
            # A rename within one file system is atomic: the message is in exactly
            # one folder at every instant, byte for byte, flags and all.
            try:
                os.rename(entry.path, target / entry.path.parent.name / entry.path.name)
            except OSError as exc:
                raise TransientError(f"cannot move maildir message {ref.key}: {exc}") from exc

    def close(self) -> None:
        """Nothing stays open between calls."""

    def append_sent(self, *raws: bytes) -> None:
        """Keep copies of replies in the sent folder, marked seen (flag S in cur/)."""
        folder = self._folder(self._config.sent_folder, create=True)
        try:
            sent = mailbox.Maildir(folder, factory=None, create=False)
            for raw in raws:
                key = sent.add(raw)
                seen = f"{key}{mailbox.Maildir.colon}2,S"
                os.rename(folder / "new" / key, folder / "cur" / seen)
        except OSError as exc:
            raise TransientError(f"cannot write to the sent maildir: {exc}") from exc

    def find_in_sent(self, message_id: str) -> bool:
        """Whether a reply with this Message-ID is in the sent folder."""
        folder = self._folder_path(self._config.sent_folder)
        wanted = message_id.strip()
        parser = BytesHeaderParser()
        for entry in _scan(folder):
            try:
                header = parser.parsebytes(_read_header(entry.path))
            except OSError:
                continue
            if str(header.get("Message-ID", "")).strip() == wanted:
                return True
        return False

    # --- folders ------------------------------------------------------------------------

    def _source(self) -> Path:
        return self._folder(self._config.folder)

    def _folder_path(self, name: str) -> Path:
        # INBOX is the root itself; other names are Maildir++ ".Name" subfolders.
        return self._path if name.upper() == "INBOX" else self._path / f".{name}"

    def _folder(self, name: str, create: bool = False) -> Path:
        """A folder that exists: created on request, else refused naming the setting."""
        if not (self._path / "cur").is_dir():
            raise PermanentError(
                f"mailbox.path {self._path} is not a maildir (no cur/ inside): check mailbox.path"
            )
        path = self._folder_path(name)
        if (path / "cur").is_dir():
            return path
        if not create:
            raise PermanentError(
                f"maildir folder {name!r} does not exist in {self._path}: check mailbox.folder"
            )
        try:
            mailbox.Maildir(self._path, factory=None, create=False).add_folder(name)
        except OSError as exc:
            raise TransientError(f"cannot create maildir folder {name!r}: {exc}") from exc
        return path


def _find(root: Path, keys: Sequence[str]) -> dict[str, _Entry]:
    wanted = set(keys)
    return {e.key: e for e in _scan(root) if e.key in wanted}
