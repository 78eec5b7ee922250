"""The fake Graph v1.0 routes: events (create, read, PATCH under If-Match), calendar, sendMail."""

from __future__ import annotations

import base64
import binascii
import copy
import re
import secrets
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from tests.graphfake.http import Call, Reply, graph_error
from tests.graphfake.schema import Violation, parse_local

if TYPE_CHECKING:
    from tests.graphfake.server import GraphFake

_NO_TIME = "0001-01-01T00:00:00Z"
_HTML_HEAD = (
    '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8"></head><body>'
)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _new_change_key(event: dict[str, Any]) -> None:
    event["changeKey"] = base64.b64encode(secrets.token_bytes(12)).decode()
    event["@odata.etag"] = f'W/"{event["changeKey"]}"'
    event["lastModifiedDateTime"] = _now()


def _invalid(call: Call, violations: list[Violation]) -> Reply | None:
    errors = [v for v in violations if v.severity == "error"]
    if not errors:
        return None
    code = (
        "TimeZoneNotSupportedException" if "time zone" in errors[0].message else "RequestBodyRead"
    )
    return graph_error(call, 400, code, "; ".join(str(e) for e in errors))


def _attendee(item: dict[str, Any]) -> dict[str, Any]:
    email = item.get("emailAddress") or {}
    return {
        "type": item.get("type", "required"),
        "status": {"response": "none", "time": _NO_TIME},
        "emailAddress": {
            "name": email.get("name") or email.get("address"),
            "address": email.get("address"),
        },
    }


def _apply(fake: GraphFake, event: dict[str, Any], body: dict[str, Any]) -> None:
    """Set the writable members a POST or PATCH names (PATCH of attendees replaces the list)."""
    props = fake.validator.properties("event")
    for key, value in body.items():
        name = next((p for p in props if p.lower() == key.lower()), key)
        if name == "attendees":
            event["attendees"] = [_attendee(a) for a in value or []]
        elif name in ("start", "end") and value is not None:
            event[f"_{name}"] = parse_local(value, fake.zones)
            event[f"_{name}Zone"] = value.get("timeZone") or "UTC"
        elif name == "body" and value is not None:
            content = str(value.get("content", ""))
            if str(value.get("contentType", "text")).lower() == "html":
                # Exchange wraps HTML bodies in a full document.
                content = f"{_HTML_HEAD}{content}</body></html>"
                event["body"] = {"contentType": "html", "content": content}
            else:
                event["body"] = {"contentType": "text", "content": content}
        elif name == "location" and value is not None:
            event["location"] = {
                "displayName": value.get("displayName", ""),
                "locationType": value.get("locationType", "default"),
                "uniqueIdType": "unknown",
            }
            event["locations"] = [event["location"]]
        else:
            event[name] = value


def _render(fake: GraphFake, event: dict[str, Any], call: Call) -> dict[str, Any]:
    """The event as Graph returns it: times in UTC unless Prefer outlook.timezone names a zone."""
    out = {k: copy.deepcopy(v) for k, v in event.items() if not k.startswith("_")}
    prefer = re.search(r'outlook\.timezone="([^"]+)"', call.header("prefer") or "")
    zone_name = prefer.group(1) if prefer else "UTC"
    zone = ZoneInfo(fake.zones.get(zone_name, zone_name))
    for name in ("start", "end"):
        moment = event[f"_{name}"].astimezone(zone).replace(tzinfo=None)
        out[name] = {
            "dateTime": moment.isoformat(timespec="microseconds") + "0",
            "timeZone": zone_name,
        }
    select = call.query.get("$select")
    if select:
        wanted = {s.strip().lower() for s in select.split(",")} | {"id", "@odata.etag"}
        out = {k: v for k, v in out.items() if k.lower() in wanted}
    out["@odata.context"] = f"{fake.base_url}/$metadata#users('{event['_user']}')/events/$entity"
    return out


def _event_reply(fake: GraphFake, call: Call, status: int, event: dict[str, Any]) -> Reply:
    return Reply(status, _render(fake, event, call), {"ETag": event["@odata.etag"]})


def create_event(fake: GraphFake, call: Call, user: str) -> Reply:
    body = call.json()
    invalid = _invalid(call, fake.check("event", body))
    if invalid:
        return invalid
    with fake.lock:
        transaction = body.get("transactionId")
        if transaction and (user, transaction) in fake.transactions:
            # transactionId: the server avoids a redundant POST when a client retries.
            existing = fake.events[user][fake.transactions[(user, transaction)]]
            return _event_reply(fake, call, 201, existing)
        event_id = "AAMkA" + secrets.token_urlsafe(48)
        event: dict[str, Any] = {
            "id": event_id,
            "_user": user,
            "createdDateTime": _now(),
            "iCalUId": "040000008200E00074C5B7101A82E008" + secrets.token_hex(28).upper(),
            "subject": None,
            "isOnlineMeeting": False,
            "onlineMeetingProvider": "unknown",
            "onlineMeeting": None,
            "hideAttendees": False,
            "allowNewTimeProposals": True,
            "responseRequested": True,
            "attendees": [],
            "type": "singleInstance",
            "isOrganizer": True,
            "isCancelled": False,
            "organizer": {"emailAddress": {"name": user, "address": user}},
            "webLink": f"https://outlook.office365.com/owa/?itemid={event_id}",
        }
        _apply(fake, event, body)
        teams = event.get("onlineMeetingProvider") == "teamsForBusiness"
        allowed = "teamsForBusiness" in fake.allowed_providers(user)
        if event.get("isOnlineMeeting") and teams and allowed and not fake.take_fault_no_join_url():
            conference = secrets.token_hex(16)
            event["onlineMeeting"] = {
                "joinUrl": f"https://teams.microsoft.com/l/meetup-join/19%3ameeting_{conference}%40thread.v2/0"
            }
        elif event.get("isOnlineMeeting") and not allowed:
            event["isOnlineMeeting"] = False  # Exchange silently drops what policy forbids
        _new_change_key(event)
        fake.events.setdefault(user, {})[event_id] = event
        if transaction:
            fake.transactions[(user, transaction)] = event_id
        return _event_reply(fake, call, 201, event)


def _find(fake: GraphFake, call: Call, user: str, event_id: str) -> dict[str, Any] | Reply:
    event = fake.events.get(user, {}).get(event_id)
    if event is None:
        return graph_error(
            call, 404, "ErrorItemNotFound", "The specified object was not found in the store."
        )
    return event


def get_event(fake: GraphFake, call: Call, user: str, event_id: str) -> Reply:
    with fake.lock:
        found = _find(fake, call, user, event_id)
        return found if isinstance(found, Reply) else _event_reply(fake, call, 200, found)


def patch_event(fake: GraphFake, call: Call, user: str, event_id: str) -> Reply:
    body = call.json()
    invalid = _invalid(call, fake.check("event", body))
    if invalid:
        return invalid
    with fake.lock:
        found = _find(fake, call, user, event_id)
        if isinstance(found, Reply):
            return found
        if fake.conflicts > 0:
            # Someone else (a clerk in Outlook) edits the event just before our write.
            fake.conflicts -= 1
            _new_change_key(found)
        if_match = call.header("if-match")
        if if_match is not None and if_match not in ("*", found["@odata.etag"]):
            return graph_error(
                call,
                412,
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key "
                "passed in the request does not match the current change key for the item.",
            )
        _apply(fake, found, body)
        _new_change_key(found)
        return _event_reply(fake, call, 200, found)


def delete_event(fake: GraphFake, call: Call, user: str, event_id: str) -> Reply:
    with fake.lock:
        found = _find(fake, call, user, event_id)
        if isinstance(found, Reply):
            return found
        del fake.events[user][event_id]
        for key in [k for k, v in fake.transactions.items() if v == event_id]:
            del fake.transactions[key]
        return Reply(204)


def get_calendar(fake: GraphFake, call: Call, user: str) -> Reply:
    providers = fake.allowed_providers(user)
    calendar = {
        "id": "AAMkAGI2TGuLAAA=",
        "name": "Calendar",
        "isDefaultCalendar": True,
        "canEdit": True,
        "allowedOnlineMeetingProviders": providers,
        "defaultOnlineMeetingProvider": providers[0] if providers else "none",
    }
    select = call.query.get("$select")
    if select:
        wanted = {s.strip() for s in select.split(",")} | {"id"}
        calendar = {k: v for k, v in calendar.items() if k in wanted}
    return Reply(200, calendar)


def send_mail(fake: GraphFake, call: Call, user: str) -> Reply:
    content_type = (call.header("content-type") or "").split(";")[0].strip().lower()
    if content_type == "text/plain":
        try:
            raw = base64.b64decode(call.body, validate=True)
        except (binascii.Error, ValueError):
            return graph_error(
                call,
                400,
                "ErrorMimeContentInvalidBase64String",
                "Invalid base64 string for MIME content.",
            )
        parsed = message_from_bytes(raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        message_id = parsed["Message-ID"] or f"<{uuid.uuid4()}@fake.outlook.com>"
        record = {
            "mime": raw,
            "message": parsed,
            "internetMessageId": str(message_id),
            "saved": True,
        }
    else:
        body = call.json()
        invalid = _invalid(call, fake.check_action("user.sendMail", body))
        if invalid:
            return invalid
        params = {k.lower(): v for k, v in body.items()}
        record = {
            "json": params["message"],
            "internetMessageId": f"<{uuid.uuid4()}@fake.outlook.com>",
            "saved": params.get("savetosentitems", True) is not False,
        }
    with fake.lock:
        fake.sent.setdefault(user, []).append(record)
    return Reply(202)


def sent_items(fake: GraphFake, call: Call, user: str) -> Reply:
    flt = call.query.get("$filter", "")
    match = re.fullmatch(r"internetMessageId eq '((?:[^']|'')*)'", flt.strip())
    if flt and match is None:
        return graph_error(call, 400, "ErrorInvalidUrlQueryFilter", f"Unsupported $filter: {flt}")
    wanted = match.group(1).replace("''", "'") if match else None
    with fake.lock:
        saved = [r for r in fake.sent.get(user, []) if r["saved"]]
    value = [
        {"id": f"AAMkAmsg{index}", "internetMessageId": r["internetMessageId"]}
        for index, r in enumerate(saved)
        if wanted is None or r["internetMessageId"] == wanted
    ]
    return Reply(200, {"value": value})
