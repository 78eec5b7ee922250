"""Who wrote: the resident's name from the text, the signature or the From display name."""

from __future__ import annotations

import re

from processor.models import Evidence, InboundEmail

_F = re.IGNORECASE

_SIGN_OFF = re.compile(
    r"^\s*(?:many thanks|thanks(?: again| very much| so much)?|thank you(?: very much)?|"
    r"kind regards|best regards|warm regards|regards|best wishes|best|cheers|yours|"
    r"yours sincerely|yours faithfully|sincerely|all the best|with thanks|take care|"
    r"thx|ta)[\s,.!-]*$",
    _F,
)
_MY_NAME = re.compile(
    r"\b(?i:my name is|my name's|name:)\s+([A-Z][\w'.-]+(?:[ \t]+[A-Z][\w'.-]+){0,3})", re.UNICODE
)
_NAME_WORD = re.compile(r"^[A-Z][^\W\d_]*(?:['’-][^\W\d_]+)*\.?$", re.UNICODE)
# Words that a line holding a name never contains (footers, greetings, our own words).
_NOT_NAME_TEXT = (
    "sent from my iphone android mobile thanks regards best council committee mr mrs "
    "ms dr the dear hi hello get outlook samsung galaxy please phone tel email re "
    "fwd yes no ok online in person meeting"
)
_NOT_NAME_WORDS = frozenset(_NOT_NAME_TEXT.split())


def read_name(email: InboundEmail, evidence: list[Evidence]) -> str | None:
    """The resident's name: "my name is", a sign-off, the signature, the display name.

    Never invented from an address; the first source that looks like a name wins,
    and the rule and phrase go into `evidence`."""
    match = _MY_NAME.search(email.new_text)
    if match and _name_like(match.group(1)):
        return _named(evidence, "name.my_name_is", match.group(1))
    lines = [ln.strip() for ln in f"{email.new_text}\n{email.signature or ''}".splitlines()]
    for i, line in enumerate(lines):
        if _SIGN_OFF.match(line):
            following = next((ln for ln in lines[i + 1 :] if ln), "")
            candidate = following.strip(" ,.-")
            if _name_like(candidate):
                return _named(evidence, "name.sign_off", candidate)
    sig_lines = [ln.strip() for ln in (email.signature or "").splitlines() if ln.strip()]
    sig_lines = [ln for ln in sig_lines if ln not in ("--", "-- ") and not _SIGN_OFF.match(ln)]
    if sig_lines and _name_like(sig_lines[0].strip(" ,.-")):
        return _named(evidence, "name.signature", sig_lines[0].strip(" ,.-"))
    display = (email.display_name or "").strip().strip("\"'")
    if "," in display:
        last, _, first = display.partition(",")
        display = f"{first.strip()} {last.strip()}"
    if _name_like(display):
        return _named(evidence, "name.display_name", display)
    return None


def _name_like(candidate: str) -> bool:
    words = candidate.split()
    if not 1 <= len(words) <= 4 or len(candidate) > 60 or "@" in candidate:
        return False
    if any(w.lower().strip(".,") in _NOT_NAME_WORDS for w in words):
        return False
    return all(_NAME_WORD.match(w) for w in words)


def _named(evidence: list[Evidence], rule: str, name: str) -> str:
    evidence.append(Evidence("name", rule, name.strip()[:120]))
    return name.strip()
