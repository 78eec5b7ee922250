"""Turn raw RFC 5322 bytes into an InboundEmail, whatever the bytes are: it never raises."""

from __future__ import annotations

import email
import email.header
import email.policy
import hashlib
import re
from email.message import Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from functools import lru_cache
from typing import Any

from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from mailparser_reply import EmailMessage as ReplyText

from processor.addrspec import ATOM, PLAIN_ADDR_SPEC
from processor.models import InboundEmail

# A body this long is already more than any resident writes; beyond it we would only
# spend time on quoted history, attachments pasted inline or hostile padding.
MAX_TEXT_CHARS = 200_000
_ADDRESS_RE = re.compile(r"^[^@\s<>()\[\],;:\"]+@[^@\s<>()\[\],;:\"]+\.[^@\s<>()\[\],;:\"]+$")
_FORWARD_RE = re.compile(
    r"^\s*(?:-{2,}\s*Forwarded message\s*-{2,}"
    r"|Begin forwarded message:"
    r"|-{2,}\s*Original Message\s*-{2,}"
    r"|_{10,}\s*$)",
    re.IGNORECASE | re.MULTILINE,
)
# Outlook's quoted header block: "From: ..." followed within two lines by "Sent: ...".
_OUTLOOK_HEADER_RE = re.compile(
    r"^\s*\*?From:\*?[^\n]*\n(?:[^\n]*\n){0,2}?\s*\*?(?:Sent|Date):\*?", re.MULTILINE
)
_ON_WROTE_RE = re.compile(r"^\s*On\b[^\n]{0,200}(?:\n[^\n]{0,200})?\bwrote:\s*$", re.MULTILINE)
_PARSED_HEADERS = frozenset({"from", "reply-to", "subject"})
# An address header the full parser would give back as it is: atoms for a name, one
# dot-atom address with a dotted domain, no quotes, comments, groups or encoded words.
_SIMPLE_ADDRESS = re.compile(rf"(?:(?:{ATOM} )+<{PLAIN_ADDR_SPEC}>|{PLAIN_ADDR_SPEC})")
_HTML_CONFIG = ParserConfig(display_links=False, display_images=False)
_REPLY_LANGUAGES = ("en",)


def _reply_patterns() -> dict[str, Any]:
    """mail-parser-reply's three patterns (headers, disclaimers, signatures), built once.

    Its EmailMessage builds them anew for every text it reads, 13 of its 31 µs a short
    message; they depend only on the languages, and it takes them ready-made through
    the fields it caches them in.
    """
    prototype = ReplyText(text="", languages=list(_REPLY_LANGUAGES))
    return {
        "_header_regex": prototype.HEADER_REGEX,
        "_disclaimers_regex": prototype.DISCLAIMERS_REGEX,
        "_signature_regex": prototype.SIGNATURE_REGEX,
    }


_REPLY_PATTERNS = _reply_patterns()


def read_replies(text: str) -> ReplyText:
    """`text` split into replies, as mail-parser-reply's EmailReplyParser would."""
    return ReplyText(text=text, languages=list(_REPLY_LANGUAGES), **_REPLY_PATTERNS).read()


class _CachingPolicy(email.policy.EmailPolicy):
    """The modern policy (email.policy.default), remembering the headers it has parsed.

    A part's Content-Type is parsed afresh on every read, about six times between the
    parser and us, and parsing was most of the cost of reading a message. Header
    objects are immutable, so one parse serves every read of the same value, in this
    message and the next ('text/plain; charset="utf-8"' comes again and again).
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        # A parsed header can take a quarter of a megabyte for a hostile 256-character
        # value, so only short values are kept, and only a few of them.
        if type(value) is str and len(value) <= 256:
            return _fetched_header(name, value)
        return super().header_fetch_parse(name, value)


_POLICY = _CachingPolicy()


@lru_cache(maxsize=64)
def _fetched_header(name: str, value: str) -> Any:
    return email.policy.default.header_fetch_parse(name, value)


def _decoded_header(name: str, value: Any) -> str:
    # RFC 5322 section 2.1.1: a line is at most 998 characters; only the decoded text
    # is kept, so a few hundred values cost little.
    if type(value) is str and len(value) <= 998:
        return _decoded_str_header(name, value)
    return str(email.policy.default.header_factory(name, value))


@lru_cache(maxsize=512)
def _decoded_str_header(name: str, value: str) -> str:
    return str(email.policy.default.header_factory(name, value))


def read_message(raw: bytes) -> InboundEmail:
    """Decode `raw`; malformed input yields a best-effort InboundEmail and defect sentences."""
    digest = hashlib.sha256(raw).hexdigest()
    defects: list[str] = []
    try:
        message = _parse(raw, defects)
        return _build(message, raw, digest, defects)
    except Exception as exc:  # the worker must never crash on bad mail
        defects.append(f"The message could not be parsed ({type(exc).__name__}).")
        return InboundEmail(
            message_id=_missing_id(digest),
            sender="",
            display_name=None,
            reply_to="",
            subject="",
            date=None,
            in_reply_to=None,
            references=(),
            headers=(),
            content_type="text/plain",
            text="",
            new_text="",
            signature=None,
            defects=tuple(defects),
            size=len(raw),
            sha256=digest,
        )


def _parse(raw: bytes, defects: list[str]) -> Message:
    try:
        return email.message_from_bytes(raw, policy=_POLICY)
    except Exception:  # the modern policy is strict on some headers
        defects.append("The headers were malformed; they were read with the legacy parser.")
        return email.message_from_bytes(raw, policy=email.policy.compat32)


def _build(message: Message, raw: bytes, digest: str, defects: list[str]) -> InboundEmail:
    headers = tuple((str(k).lower(), _header(message, k, v)) for k, v in _raw_items(message))
    first = dict(reversed(headers))  # first occurrence wins
    display_name, sender = _address(first.get("from", ""))
    if not sender:
        defects.append("The From address is missing or unreadable.")
    _, reply_addr = _address(first.get("reply-to", ""))
    message_id = _message_id(first.get("message-id", ""))
    if not message_id:
        defects.append("The message had no Message-ID; one was made from its content.")
        message_id = _missing_id(digest)
    text = _body(message, defects)[:MAX_TEXT_CHARS]
    new_text, signature = _split_reply(text)
    for defect in getattr(message, "defects", []):
        defects.append(f"MIME defect: {type(defect).__name__}.")
    return InboundEmail(
        message_id=message_id,
        sender=sender,
        display_name=display_name,
        reply_to=reply_addr or sender,
        subject=first.get("subject", ""),
        date=_date(first.get("date", "")),
        in_reply_to=_message_id(first.get("in-reply-to", "")) or None,
        references=tuple(re.findall(r"<[^<>\s]+>", first.get("references", ""))),
        headers=headers,
        content_type=_safe(lambda: message.get_content_type().lower(), "text/plain"),
        text=text,
        new_text=new_text,
        signature=signature,
        defects=tuple(dict.fromkeys(defects)),
        size=len(raw),
        sha256=digest,
    )


def _raw_items(message: Message) -> list[tuple[str, Any]]:
    # raw_items keeps header values unparsed so one bad header cannot break the rest.
    try:
        return list(message.raw_items())
    except AttributeError:
        return list(message.items())


def _header(message: Message, name: str, value: Any) -> str:
    """Decode a header (RFC 2047) and collapse CR/LF so it cannot inject new headers."""
    decoded = ""
    lowered = str(name).lower()
    if lowered in _PARSED_HEADERS and not _needs_parsing(lowered, value):
        decoded = value  # what the parser would return, at a hundredth of the cost
    elif lowered in _PARSED_HEADERS:
        # The full parser re-quotes a decoded display name holding a comma, so
        # getaddresses() still sees one address; it is slow, so only where it matters.
        decoded = _safe(lambda: _decoded_header(name, value), "")
    if not decoded and "=?" in str(value):
        decoded = _safe(
            lambda: str(email.header.make_header(email.header.decode_header(str(value)))), ""
        )
    decoded = decoded or str(value)
    return " ".join(decoded.replace("\x00", " ").split())


def _needs_parsing(name: str, value: Any) -> bool:
    """False for the values most mail has, which the full parser returns unchanged: an
    ASCII subject without encoded words, an address as `Words <local@domain>` or bare."""
    if type(value) is not str or not value.isascii() or "=?" in value:
        return True
    return name != "subject" and _SIMPLE_ADDRESS.fullmatch(value) is None


def _address(value: str) -> tuple[str | None, str]:
    if not value:  # most mail has no Reply-To
        return None, ""
    if _SIMPLE_ADDRESS.fullmatch(value):  # most From lines: as getaddresses would split it
        name, _, spec = value.rpartition("<")
        return _first_address([(name, spec.removesuffix(">"))])
    return _parsed_address(value)


def _parsed_address(value: str) -> tuple[str | None, str]:
    try:
        pairs = getaddresses([value])
    except Exception:
        pairs = [parseaddr(value)]
    return _first_address(pairs)


def _first_address(pairs: list[tuple[str, str]]) -> tuple[str | None, str]:
    for name, addr in pairs:
        addr = addr.strip().lower()
        if _ADDRESS_RE.match(addr):
            return (name.strip() or None), addr
    return None, ""


def _message_id(value: str) -> str:
    match = re.search(r"<[^<>\s]+>", value)
    return match.group(0) if match else ""


def _missing_id(digest: str) -> str:
    return f"<{digest}@missing-message-id.invalid>"


def _date(value: str) -> Any:
    try:
        parsed = parsedate_to_datetime(value) if value else None
    except Exception:  # an unreadable Date is just unknown
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    return parsed


def _body(message: Message, defects: list[str]) -> str:
    plain, html = _find_parts(message)
    if plain is not None:
        return _decode(plain, defects).strip()
    if html is not None:
        return _html_to_text(_decode(html, defects), defects).strip()
    return ""


def _find_parts(message: Message) -> tuple[Message | None, Message | None]:
    plain: Message | None = None
    html: Message | None = None
    for part in _safe(lambda: list(message.walk()), [message]):
        if _safe(part.is_multipart, False):
            continue
        if _is_attachment(part):
            continue
        kind = _safe(lambda p=part: p.get_content_type().lower(), "text/plain")
        if kind in ("text/plain", "text") and plain is None:
            plain = part
        elif kind == "text/html" and html is None:
            html = part
        if plain is not None:
            break
    return plain, html


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("content-disposition", "") or "").lower()
    return disposition.startswith("attachment") or bool(_safe(part.get_filename, None))


def _decode(part: Message, defects: list[str]) -> str:
    payload = _safe(lambda: part.get_payload(decode=True), None)
    if not isinstance(payload, bytes):
        fallback = _safe(part.get_payload, "")
        return fallback if isinstance(fallback, str) else ""
    charset = str(_safe(part.get_content_charset, None) or "utf-8")
    try:
        return payload.decode(charset)
    except LookupError:
        defects.append(f"Unknown charset {charset[:40]!r}; read as UTF-8.")
    except UnicodeDecodeError:
        defects.append(f"The body was not valid {charset[:40]}; undecodable bytes were replaced.")
    text = payload.decode("utf-8", errors="replace")
    if text.count("\ufffd") > max(3, len(text) // 20):
        return payload.decode("latin-1")
    return text


def _html_to_text(html: str, defects: list[str]) -> str:
    try:
        return str(get_text(html, _HTML_CONFIG))
    except Exception:  # hostile HTML: fall back to stripping tags
        defects.append("The HTML body could not be rendered; its tags were stripped.")
        stripped = re.sub(r"(?is)<(script|style)\b.*?</\1\s*>", " ", html)
        return re.sub(r"<[^>]*>", " ", stripped)


def _split_reply(text: str) -> tuple[str, str | None]:
    """The new text above any quoted reply or forwarded notice, and the signature."""
    cut = len(text)
    for pattern in (_FORWARD_RE, _OUTLOOK_HEADER_RE, _ON_WROTE_RE):
        match = pattern.search(text)
        if match:
            cut = min(cut, match.start())
    head = text[:cut]
    try:
        replies = read_replies(head).replies
        if replies:
            body = replies[0].body.strip()
            signature = replies[0].signatures.strip() or None
            if body or signature:
                return body, signature
    except Exception:  # the library is heuristic; keep our own cut
        pass
    lines = [ln for ln in head.splitlines() if not ln.lstrip().startswith(">")]
    return "\n".join(lines).strip(), None


def _safe(func: Any, default: Any) -> Any:
    try:
        return func()
    except Exception:  # one bad part must not lose the message
        return default
