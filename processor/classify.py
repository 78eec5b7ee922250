"""Tell automated mail (RFC 3834) and our own mail apart from residents' requests."""

from __future__ import annotations

import re

from processor.models import Classification, InboundEmail

# Our replies carry this header (with Auto-Submitted: auto-replied), so a reply that
# comes back to the committee mailbox (a forwarding loop, a misconfigured autoreply)
# is recognised as ours even when Auto-Submitted was stripped on the way.
LOOP_HEADER = "X-Attendance-Processor"

_ROBOT_LOCAL_PARTS = re.compile(
    r"^(mailer-daemon|postmaster|no-?reply|do-?not-?reply|donotreply|bounces?|"
    r"auto-?reply|autoresponder|noreply-[\w.+-]*|[\w.+-]*-noreply)$"
)
_AUTOREPLY_HEADERS = ("x-autoreply", "x-autorespond", "x-autoresponder")
_BULK_PRECEDENCE = ("bulk", "junk", "list")


def classify(email: InboundEmail, own_address: str) -> Classification:
    """Automated when any RFC 3834 sign, robot sender or loop marker is present."""
    own = own_address.strip().lower()
    own_domain = own.rpartition("@")[2]
    for check in _CHECKS:
        found = check(email, own, own_domain)
        if found is not None:
            return found
    return Classification(automated=False, rule="human", reason="No sign of automated mail.")


def _own_reply(email: InboundEmail, own: str, own_domain: str) -> Classification | None:
    # RFC 3834 section 2: our own message must never trigger another reply.
    mid_domain = email.message_id.strip("<>").rpartition("@")[2].lower()
    if email.header(LOOP_HEADER) is not None and (not own_domain or mid_domain == own_domain):
        return _auto("own_reply", "This is one of our own replies coming back.")
    if own and email.sender == own:
        return _auto("own_address", "The message comes from the committee's own address.")
    return None


def _auto_submitted(email: InboundEmail, own: str, own_domain: str) -> Classification | None:
    value = (email.header("auto-submitted") or "").strip().lower()
    if value and value.split(";")[0].strip() != "no":
        return _auto("auto_submitted", f"Auto-Submitted is {value[:40]!r} (RFC 3834).")
    return None


def _null_return_path(email: InboundEmail, own: str, own_domain: str) -> Classification | None:
    value = email.header("return-path")
    if value is not None and value.replace(" ", "") in ("<>", ""):
        return _auto("return_path_null", "The Return-Path is empty, as on a bounce.")
    return None


def _report(email: InboundEmail, own: str, own_domain: str) -> Classification | None:
    if email.content_type == "multipart/report":
        return _auto("multipart_report", "The message is a delivery or read report.")
    return None


def _precedence(email: InboundEmail, own: str, own_domain: str) -> Classification | None:
    value = (email.header("precedence") or "").strip().lower()
    if value in _BULK_PRECEDENCE:
        return _auto("precedence_bulk", f"Precedence is {value!r}: bulk or list mail.")
    return None


def _list_headers(email: InboundEmail, own: str, own_domain: str) -> Classification | None:
    for name, _ in email.headers:
        if name.startswith("list-"):
            return _auto("list_header", f"The {name} header marks mailing-list mail.")
    return None


def _autoreply_headers(email: InboundEmail, own: str, own_domain: str) -> Classification | None:
    for name in _AUTOREPLY_HEADERS:
        if email.header(name) is not None:
            return _auto("autoreply_header", f"The {name} header marks an automatic reply.")
    # Exchange puts X-Auto-Response-Suppress on its own out-of-office replies; a
    # resident's client never sets it (it asks others not to autoreply).
    if email.header("x-auto-response-suppress") is not None:
        return _auto("auto_response_suppress", "X-Auto-Response-Suppress marks automated mail.")
    return None


def _robot_sender(email: InboundEmail, own: str, own_domain: str) -> Classification | None:
    local = email.sender.rpartition("@")[0]
    if local and _ROBOT_LOCAL_PARTS.match(local):
        return _auto("robot_sender", f"The sender {email.sender} is an automated address.")
    return None


def _auto(rule: str, reason: str) -> Classification:
    return Classification(automated=True, rule=rule, reason=reason)


_CHECKS = (
    _own_reply,
    _auto_submitted,
    _null_return_path,
    _report,
    _precedence,
    _list_headers,
    _autoreply_headers,
    _robot_sender,
)
