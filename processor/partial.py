"""A large message without its attachments: only the parts understanding reads.

For a message over `mailbox.partial_fetch_bytes` the IMAP adapter fetches its
BODYSTRUCTURE, then the header and the text/plain and text/html parts (RFC 3501
section 6.4.5 part numbers); every other part becomes a small placeholder naming
what was left out. The original stays in the mailbox, filed like any other.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

TEXT_SUBTYPES = (b"plain", b"html")
MAX_TEXT_PART = 1_000_000  # a text part larger than this is no letter from a resident


@dataclass(frozen=True)
class Section:
    """One leaf part of a message: its IMAP section number, type and size."""

    number: str  # "1", "1.2", ...
    content_type: str  # "text/plain"
    size: int
    wanted: bool  # fetched for understanding


def _text(value: Any) -> str:
    return value.decode("ascii", "replace").lower() if isinstance(value, bytes) else ""


def sections(structure: Any, prefix: str = "") -> list[Section]:
    """The leaf parts of an imapclient BODYSTRUCTURE, numbered as FETCH BODY[n] wants."""
    if getattr(structure, "is_multipart", False):
        found = []
        for index, part in enumerate(structure[0], start=1):
            found += sections(part, f"{prefix}{index}.")
        return found
    number = f"{prefix}1" if not prefix else prefix.rstrip(".")
    maintype, subtype = _text(structure[0]), _text(structure[1])
    size = structure[6] if len(structure) > 6 and isinstance(structure[6], int) else 0
    wanted = maintype == "text" and subtype.encode() in TEXT_SUBTYPES and size <= MAX_TEXT_PART
    return [Section(number, f"{maintype}/{subtype}", size, wanted)]


def assemble(header: bytes, parts: Sequence[tuple[Section, bytes, bytes]]) -> bytes:
    """A multipart/mixed message: the original header, the text parts, placeholders.

    `parts` holds (section, MIME header, body) with the body still transfer-encoded,
    as FETCH returns it; for a part left out, both are empty.
    """
    boundary = f"partial-{uuid.uuid4().hex}".encode()
    kept = [
        line
        for line in _unfold(header)
        if not line.lower().startswith((b"content-type:", b"content-transfer-encoding:"))
    ]
    out = [*kept, b'Content-Type: multipart/mixed; boundary="' + boundary + b'"', b"", b""]
    for section, mime, body in parts:
        out.append(b"--" + boundary)
        if section.wanted:
            out.append(mime.rstrip(b"\r\n") + b"\r\n\r\n" + body)
        else:
            # An attachment-shaped stand-in: readers skip it, staff see what was there.
            out.append(
                b"Content-Type: application/octet-stream\r\n"
                b'Content-Disposition: attachment; filename="part-'
                + section.number.encode()
                + b'-not-downloaded"\r\n\r\n'
                + f"[{section.content_type}, {section.size} bytes, left in the mailbox]".encode()
            )
    out.append(b"--" + boundary + b"--")
    return b"\r\n".join(out) + b"\r\n"


def _unfold(header: bytes) -> list[bytes]:
    """Header lines with continuation lines joined, so a folded Content-Type goes whole."""
    lines: list[bytes] = []
    for line in header.replace(b"\r\n", b"\n").split(b"\n"):
        if not line:
            continue
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b"\r\n" + line
        else:
            lines.append(line)
    return lines
