"""Read a resident's free text into a Request: intent, mode, meeting, name, party, needs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from processor.meeting_match import match_meetings, reference_time
from processor.models import Evidence, InboundEmail, Intent, Meeting, Mode, Request
from processor.names import read_name

_F = re.IGNORECASE

# Intent phrases, strongest first. Cancel phrases also contain "attend"/"come", so
# cancel is judged before attend, never by counting words.
_CANCEL = re.compile(
    r"\bcancel(?:l?ing|l?ed)?\b|\bcan\s*(?:'|no)?t\s+(?:make|come|attend|go)\b|"
    r"\bcannot\s+(?:make|come|attend)\b|\b(?:no longer|not be|won'?t be|unable to)\s+"
    r"(?:able to\s+)?(?:attend|attending|come|coming|make it|there)\b|\bwithdraw\b|"
    r"\bunregister\b|\bremove (?:me|my (?:name|place|booking|registration))\b|"
    r"\b(?:give up|release) my (?:place|seat)\b|\bde-?register\b",
    _F,
)
_SPEAK = re.compile(
    r"\b(?:speak|speaking|address the committee|ask (?:a|the committee a|my) question|"
    r"put a question|public question|make a statement|make representations?|deputation|"
    r"have my say|raise (?:a|an|my) (?:question|issue|point))\b",
    _F,
)
_CHANGE = re.compile(
    r"\b(?:change|switch|swap|instead|move my (?:booking|place|registration)|"
    r"update my (?:booking|place|registration)|amend)\b|"
    r"\b(?:add|bring) (?:one more|another|an extra)\b",
    _F,
)
_ATTEND = re.compile(
    r"\b(?:attend|attending|come|coming|join|joining|register|book|booking|reserve|"
    r"place|places|seat|seats|watch|observe|sit in|be there|sign me up|put me down|"
    r"(?:teams |the |a )?link|invite|invitation|in person|online)\b",
    _F,
)
_BOOK = re.compile(r"\b(?:book|register|reserve|sign me up|put me down)\b", _F)

_ONLINE = re.compile(
    r"\b(?:online|on-line|on line|(?:ms |microsoft )?teams (?:link|meeting|invite|invitation|call)|"
    r"(?:on|via|through|using|over) (?:ms |microsoft )?teams|ms teams|microsoft teams|"
    r"virtual(?:ly)?|remote(?:ly)?|live ?stream(?:ed|ing)?|stream(?:ed|ing)?|video link|"
    r"the link|send (?:me |us )?(?:a |the )?link|a link to (?:join|watch|the meeting)|"
    r"join(?:ing)? link|meeting link|from home|via video|zoom|webcast|dial in)\b",
    _F,
)
_IN_PERSON = re.compile(
    r"\b(?:in person|in-person|inperson|face to face|face-to-face|come along|"
    r"in the (?:council )?chamber|the public gallery|physically|attend in person|"
    r"come (?:in|down|to the (?:council|town hall|chamber|civic centre))|at the town hall|"
    r"a seat|seats|(?:a )?place in the (?:room|chamber))\b",
    _F,
)
_NEGATION = re.compile(
    r"(?:\bnot|n't|\bunable to|\brather than|\binstead of|\bfrom|\bno longer|\bthan|"
    r"\bwithout|\bcannot|\bcan not)\s+(?:\w+\s+){0,3}$",
    _F,
)
_MODE_AFTER = re.compile(
    r"\s*(?:it\s+|there\s+|the meeting\s+)?(?:in person|in-person|physically|online|"
    r"in the chamber|face to face)",
    _F,
)
# "if the meeting is cancelled" is about the meeting, not the resident's place.
_MEETING_ITSELF = re.compile(
    r"\b(?:meeting|it)\s+(?:is|be|was|has been|gets?|won't be|will be|isn't|is not)\s*$", _F
)
_INSTEAD = re.compile(r"\binstead\b|\bto\s+(?:\w+\s+){0,1}$", _F)

_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "a couple": 2, "a couple of": 2, "both": 2,
}  # fmt: skip
_NUM = r"(\d{1,2}|one|two|three|four|five|six|seven|eight|nine|ten)"
_COMPANION = (
    r"(?:husband|wife|partner|son|daughter|friend|neighbour|neighbor|mum|mom|mother|dad|"
    r"father|brother|sister|colleague|carer|spouse|boyfriend|girlfriend|child|kid|"
    r"grandson|granddaughter|fiance|fiancee|flatmate|aunt|uncle|cousin|niece|nephew|"
    r"support worker|assistant|guest|plus one)"
)
_PARTY_RULES: tuple[tuple[str, re.Pattern[str], int | None], ...] = (
    ("party.n_of_us", re.compile(rf"\b{_NUM} of us\b", _F), None),
    (
        "party.n_people",
        re.compile(
            rf"\b{_NUM} (?:people|persons|places|seats|tickets|adults|guests|attendees)\b", _F
        ),
        None,
    ),
    ("party.group_of", re.compile(rf"\b(?:party|group) of {_NUM}\b", _F), None),
    ("party.me_and_n", re.compile(rf"\b(?:me|myself) (?:and|plus|\+) {_NUM} others?\b", _F), -1),
    (
        "party.with_n_companions",
        re.compile(rf"\b(?:with|bring(?:ing)?) (?:my |)?{_NUM} {_COMPANION}s?\b", _F),
        -1,
    ),
    (
        "party.me_and_companion",
        re.compile(
            rf"\b(?:me|myself|i) (?:and|&|plus) (?:my |a )?{_COMPANION}\b|"
            rf"\bmy {_COMPANION} and (?:i|me|myself)\b",
            _F,
        ),
        2,
    ),
    (
        "party.with_companion",
        re.compile(
            rf"\b(?:with|bring(?:ing)?|accompanied by|along with) (?:my|a|our) {_COMPANION}\b",
            _F,
        ),
        2,
    ),
    ("party.plus_one", re.compile(r"\bplus one\b|\+ ?1\b", _F), 2),
    ("party.just_me", re.compile(r"\b(?:just|only) (?:me|myself)\b|\bon my own\b", _F), 1),
)

_ACCESS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("wheelchair", re.compile(r"\bwheel ?chair|mobility scooter\b", _F)),
    (
        "step_free",
        re.compile(
            r"\bstep[- ]free|no steps|can'?t (?:manage|do|climb) (?:the )?stairs|"
            r"\blift access|\bramp\b",
            _F,
        ),
    ),
    ("hearing_loop", re.compile(r"\bhearing loop|induction loop|loop system|hearing aid", _F)),
    ("bsl", re.compile(r"\bbsl\b|british sign language|sign language", _F)),
    ("large_print", re.compile(r"\blarge[- ]print", _F)),
    ("captions", re.compile(r"\bcaptions?\b|\bsubtitles?\b", _F)),
    ("assistance_dog", re.compile(r"\b(?:guide|assistance|hearing) dog\b", _F)),
    ("accessible_parking", re.compile(r"\bblue badge|disabled parking", _F)),
)
_UNRELATED = re.compile(
    r"\b(?:bins?|bin collection|recycling|rubbish|fly[- ]?tipping|council tax|parking|"
    r"pothole|planning (?:application|permission)|housing benefit|street ?lights?|"
    r"missed collection|parking (?:fine|permit|ticket))\b",
    _F,
)
_UNRELATED_EXCEPT = re.compile(r"\bblue badge|disabled parking\b", _F)


def _wordset(words: str) -> frozenset[str]:
    return frozenset(words.split())


_ENGLISH = _wordset(
    "the and i to a of in for is it my me be on would like please you we at this "
    "that with can will meeting thanks attend come online person"
)
_FOREIGN = _wordset(
    "je voudrais assister réunion bonjour merci le la les des est et pour une vous "
    "quiero asistir reunión gracias el los las que por para hola usted ich möchte "
    "teilnehmen sitzung danke und der die das nicht für ein eine mit bitte chciałbym "
    "chciałabym spotkanie dziękuję się jest nie dzień dobry hoffwn diolch cyfarfod "
    "yn ac gyda vorrei partecipare riunione grazie il di per sono gostaria reunião "
    "obrigado obrigada não uma com"
)


def understand(
    email: InboundEmail, meetings: Sequence[Meeting], tz: ZoneInfo, now: datetime
) -> Request:
    """What the resident asked for; every field carries the rule and phrase that set it."""
    text = _clean(f"{email.subject}\n{email.new_text}")
    evidence: list[Evidence] = []
    refer: list[str] = []
    reference = reference_time(email.date, now).astimezone(tz)

    intent, conflict = _intent(text, evidence)
    if conflict:
        refer.append(conflict)
    mode = _mode(text, evidence)
    if intent == "other" and mode is not None and not conflict:
        intent = "attend"
        evidence.append(Evidence("intent", "intent.attend.mode_only", mode))
    matched = match_meetings(text, meetings, tz, reference)
    for rule, phrase in matched.found:
        _add(evidence, "meeting", rule, phrase)
    named, candidates = matched.named, matched.candidates
    if not named:
        candidates = tuple(m.id for m in meetings if now < m.closes_at())
    name = read_name(email, evidence)
    party = _party(text, evidence)
    needs = _access_needs(text, evidence)
    wants_to_speak = intent == "speak" or bool(_SPEAK.search(text))
    refer.extend(_refer_reasons(text, evidence))
    return Request(
        intent=intent,
        mode=mode,
        meeting_id=candidates[0] if named and len(candidates) == 1 else None,
        meeting_candidates=candidates,
        meeting_named=named,
        name=name,
        party_size=party,
        access_needs=needs,
        wants_to_speak=wants_to_speak,
        refer_reasons=tuple(refer),
        evidence=tuple(evidence),
    )


def merge_requests(original: Request, follow_up: Request) -> Request:
    """Fill what the original request lacked from the resident's answer to our question."""
    intent: Intent = original.intent
    if follow_up.intent in ("cancel", "speak") or original.intent == "other":
        intent = follow_up.intent
    meeting = follow_up if follow_up.meeting_named else original
    return replace(
        original,
        intent=intent,
        mode=follow_up.mode or original.mode,
        meeting_id=meeting.meeting_id,
        meeting_candidates=meeting.meeting_candidates,
        meeting_named=meeting.meeting_named,
        name=original.name or follow_up.name,
        party_size=follow_up.party_size or original.party_size,
        access_needs=tuple(dict.fromkeys(original.access_needs + follow_up.access_needs)),
        wants_to_speak=original.wants_to_speak or follow_up.wants_to_speak,
        refer_reasons=tuple(dict.fromkeys(original.refer_reasons + follow_up.refer_reasons)),
        evidence=original.evidence + follow_up.evidence,
    )


def _clean(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\xa0", " ")
    return re.sub(r"[ \t]+", " ", text)[:20_000]


def _intent(text: str, evidence: list[Evidence]) -> tuple[Intent, str | None]:
    cancel, speak = _cancel(text), _SPEAK.search(text)
    change, attend = _CHANGE.search(text), _ATTEND.search(text)
    book = _BOOK.search(text)
    if cancel and speak:
        _add(evidence, "intent", "intent.conflict.cancel_speak", cancel.group(0))
        return "other", "The message both cancels and asks to speak."
    if cancel and change and re.search(r"\binstead\b", text, _F):
        _add(evidence, "intent", "intent.change.cancel_instead", change.group(0))
        return "change", None
    if (
        cancel
        and book
        and book.start() > cancel.start()
        and not _NEGATION.search(text[: book.start()])
    ):
        _add(evidence, "intent", "intent.conflict.cancel_book", book.group(0))
        return "other", "The message both cancels a place and books one."
    if cancel:
        _add(evidence, "intent", "intent.cancel", cancel.group(0))
        return "cancel", None
    if speak:
        _add(evidence, "intent", "intent.speak", speak.group(0))
        return "speak", None
    if change:
        _add(evidence, "intent", "intent.change", change.group(0))
        return "change", None
    if attend:
        _add(evidence, "intent", "intent.attend", attend.group(0))
        return "attend", None
    return "other", None


def _cancel(text: str) -> re.Match[str] | None:
    """A cancel phrase, unless it only rules out a mode ("can't attend in person, so online")."""
    for match in _CANCEL.finditer(text):
        before = text[max(0, match.start() - 30) : match.start()]
        if _MODE_AFTER.match(text, match.end()) or _MEETING_ITSELF.search(before):
            continue
        return match
    return None


def _mode(text: str, evidence: list[Evidence]) -> Mode | None:
    """The mode asked for; a negated mention ("not in person") does not count."""
    found: dict[Mode, re.Match[str]] = {}
    preferred: Mode | None = None
    for mode, pattern in (("online", _ONLINE), ("in_person", _IN_PERSON)):
        for match in pattern.finditer(text):
            before = text[max(0, match.start() - 40) : match.start()]
            if _NEGATION.search(before):
                continue
            found.setdefault(mode, match)  # type: ignore[arg-type]
            after = text[match.end() : match.end() + 12]
            if _INSTEAD.search(before[-8:]) or re.match(r"\s*instead", after, _F):
                preferred = mode  # type: ignore[assignment]
    if len(found) == 1:
        mode = next(iter(found))
    elif preferred is not None:
        mode = preferred
    else:
        return None
    match = found[mode]
    rule = "mode.online" if mode == "online" else "mode.in_person"
    _add(evidence, "mode", f"{rule}.{_slug(match.group(0))}", match.group(0))
    return mode


def _party(text: str, evidence: list[Evidence]) -> int | None:
    for rule, pattern, fixed in _PARTY_RULES:
        match = pattern.search(text)
        if not match:
            continue
        if fixed is not None and fixed > 0:
            size = fixed
        else:
            word = next(g for g in match.groups() if g).lower()
            size = int(word) if word.isdigit() else _NUMBERS.get(word, 0)
            size += 1 if fixed == -1 else 0
        if 1 <= size <= 50:
            _add(evidence, "party_size", rule, match.group(0))
            return size
    return None


def _access_needs(text: str, evidence: list[Evidence]) -> tuple[str, ...]:
    needs: list[str] = []
    for need, pattern in _ACCESS:
        match = pattern.search(text)
        if match:
            needs.append(need)
            _add(evidence, "access_needs", f"access.{need}", match.group(0))
    return tuple(needs)


def _refer_reasons(text: str, evidence: list[Evidence]) -> list[str]:
    reasons: list[str] = []
    unrelated = _UNRELATED.search(_UNRELATED_EXCEPT.sub(" ", text))
    if unrelated:
        _add(evidence, "refer", "refer.unrelated", unrelated.group(0))
        reasons.append(f"The message also asks about an unrelated matter ({unrelated.group(0)}).")
    language = _foreign_language(text)
    if language:
        _add(evidence, "refer", "refer.language", language)
        reasons.append("The message is not in English.")
    return reasons


def _foreign_language(text: str) -> str | None:
    if not text.isascii():  # ASCII holds no letter past Latin Extended-B (U+024F)
        letters = [c for c in text if c.isalpha()]
        if letters and sum(ord(c) > 0x24F for c in letters) > 0.3 * len(letters):
            return "non-Latin script"
    words = re.findall(r"[^\W\d_]+", text.lower())
    foreign = [w for w in words if w in _FOREIGN]
    english = sum(w in _ENGLISH for w in words)
    if len(foreign) >= 3 and len(foreign) > english:
        return " ".join(foreign[:5])
    return None


def _add(evidence: list[Evidence], field: str, rule: str, phrase: str) -> None:
    evidence.append(Evidence(field, rule, phrase.strip()[:120]))


def _slug(phrase: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")
