"""Microsoft Graph: the one HTTP wrapper all requests go through, and the Teams calendar."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests

from processor.auth import TokenProvider
from processor.config import Config, GraphConfig
from processor.errors import PermanentError, ProcessorError, TransientError
from processor.graph_dryrun import DryRunCalendar
from processor.graph_events import EventRequests, new_attendees
from processor.https import default_session
from processor.models import Meeting
from processor.ports import Attendee, Calendar, EventRef

_THROTTLED = frozenset({429, 503, 504})
_MAX_ATTEMPTS = 4  # requests per call, throttling retries included
_MAX_CONFLICTS = 3  # If-Match re-read-and-retry rounds

# Graph error codes (error.code), from learn.microsoft.com/graph/errors and the Outlook
# REST codes. Codes, not messages, decide: messages are localised and change.
TRANSIENT_CODES = frozenset(
    {
        "TooManyRequests",
        "ApplicationThrottled",
        "activityLimitReached",
        "serviceNotAvailable",
        "ServiceUnavailable",
        "ErrorServerBusy",
        "ErrorTimeoutExpired",
        "ErrorInternalServerError",
        "InternalServerError",
        "UnknownError",
        "generalException",
        "ErrorMailboxStoreUnavailable",
        "ErrorConnectionFailed",
        "MailboxConcurrency",
        "ErrorTooManyObjectsOpened",
        "ErrorIrresolvableConflict",
    }
)
PERMANENT_HINTS: Mapping[str, str] = {
    "InvalidAuthenticationToken": "Graph rejected the access token; check graph.tenant_id "
    "and graph.base_url",
    "ErrorAccessDenied": "the app lacks permission on this mailbox (Calendars.ReadWrite / "
    "Mail.Send application permissions, or an application access policy)",
    "Authorization_RequestDenied": "the app lacks the Graph permission for this request",
    "ErrorItemNotFound": "the item does not exist (deleted in Outlook?)",
    "ResourceNotFound": "the mailbox or item does not exist",
    "ErrorInvalidUser": "graph.organiser is not a mailbox in this tenant",
    "MailboxNotEnabledForRESTAPI": "the mailbox is not in Exchange Online",
    "ErrorInvalidIdMalformed": "the event id is malformed (check teams_event_id)",
    "RequestBodyRead": "Graph could not read the request body",
    "ErrorInvalidRequest": "Graph rejected the request",
    "BadRequest": "Graph rejected the request",
    "ErrorSendAsDenied": "the app may not send as this address",
    "ErrorMessageSizeExceeded": "the message is too large for Graph",
    "ErrorQuotaExceeded": "the mailbox is over quota",
}


class ConcurrentChange(TransientError):
    """412: the event changed between our read and our write (its ETag moved)."""


def error_for(response: requests.Response, what: str) -> ProcessorError:
    """Classify a failed Graph response by its envelope's error.code, then by status."""
    code, message, request_id = "", "", ""
    try:
        envelope = response.json()
        error = envelope.get("error", {}) if isinstance(envelope, dict) else {}
        if isinstance(error, dict):
            code = str(error.get("code", ""))
            message = str(error.get("message", ""))
            inner = error.get("innerError") or {}
            request_id = str(inner.get("request-id", "")) if isinstance(inner, dict) else ""
    except ValueError:
        pass
    detail = f"{what}: HTTP {response.status_code} {code or 'no error code'}"
    if message:
        detail += f" ({message})"
    if request_id:
        detail += f" [request-id {request_id}]"
    if response.status_code == 412:
        return ConcurrentChange(detail)
    if code in TRANSIENT_CODES:
        return TransientError(detail)
    if code in PERMANENT_HINTS:
        return PermanentError(f"{detail}: {PERMANENT_HINTS[code]}")
    if response.status_code >= 500 or response.status_code == 408:
        return TransientError(detail)
    return PermanentError(detail)


def _retry_after(response: requests.Response, attempt: int) -> float:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        # Graph sends Retry-After with 429; a bare 503/504 gets a short exponential backoff.
        return float(2**attempt)


class GraphClient:
    """Every Graph request: bearer token, timeout, throttling honoured, errors classified."""

    def __init__(
        self,
        config: GraphConfig,
        tokens: TokenProvider,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._session = session or default_session(config.ca_file)
        self._sleep = sleep

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def request(
        self,
        method: str,
        path: str,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        *,
        params: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> requests.Response:
        """Send one logical request (throttled retries included); raise on any error status."""
        what = f"{method} {path}"
        for attempt in range(_MAX_ATTEMPTS):
            sent = {
                "Authorization": f"Bearer {self._tokens.token(self._tokens.graph_scope)}",
                "Accept": "application/json",
                "client-request-id": str(uuid.uuid4()),  # quoted in Microsoft support cases
                **(headers or {}),
            }
            try:
                response = self._session.request(
                    method,
                    self._config.base_url + path,
                    json=json,
                    data=data,
                    params=params,
                    headers=sent,
                    timeout=self._config.timeout,
                )
            except requests.RequestException as exc:
                raise TransientError(f"{what}: Graph unreachable: {exc}") from exc
            if response.status_code < 400:
                return response
            if response.status_code not in _THROTTLED:
                raise error_for(response, what)
            delay = _retry_after(response, attempt)
            # Throttling: wait inline when the wait is short, else hand the wait to the outbox.
            if delay > self._config.max_retry_after or attempt == _MAX_ATTEMPTS - 1:
                error = error_for(response, what)
                raise TransientError(str(error), retry_after=delay)
            self._sleep(delay)
        raise AssertionError("unreachable")


def _instant(value: Any) -> datetime | None:
    """A dateTimeTimeZone read with Prefer outlook.timezone="UTC" as an aware datetime."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        return None
    text = value["dateTime"]
    head, dot, fraction = text.partition(".")
    try:  # Graph sends seven fractional digits; datetime takes six.
        moment = datetime.fromisoformat(head + (dot + fraction[:6] if dot else ""))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _differs(event: Mapping[str, Any], wanted: Mapping[str, Any], meeting: Meeting) -> bool:
    location = event.get("location") or {}
    # The body is rendered from these same fields; Exchange rewrites HTML bodies, so
    # comparing bodies would PATCH on every run.
    return (
        event.get("subject") != wanted["subject"]
        or location.get("displayName") != wanted["location"]["displayName"]
        or _instant(event.get("start")) != meeting.start
        or _instant(event.get("end")) != meeting.end
    )


def ref_of(event: Mapping[str, Any]) -> EventRef:
    online = event.get("onlineMeeting") or {}
    return EventRef(
        event_id=str(event["id"]),
        etag=str(event.get("@odata.etag", "")),
        join_url=online.get("joinUrl") if isinstance(online, dict) else None,
    )


_READ_HEADERS = {"Prefer": 'outlook.timezone="UTC"'}


class GraphCalendar:
    """The organiser's calendar through Graph: one Teams event per meeting."""

    dry_run = False

    def __init__(self, client: GraphClient, requests_: EventRequests) -> None:
        self._client = client
        self._requests = requests_

    def ensure_event(self, meeting: Meeting, known: EventRef | None) -> EventRef:
        if meeting.teams_event_id:
            # An event named in config belongs to staff: adopt it as it is, never rewrite it.
            event = self._get(meeting.teams_event_id)
        elif known is not None:
            event = self._get(known.event_id)
            wanted = self._requests.details(meeting)
            if _differs(event, wanted, meeting):
                event = self._patch(event["id"], wanted, str(event.get("@odata.etag", "")))
        else:
            response = self._client.request(
                "POST", self._requests.events_path, json=self._requests.create(meeting)
            )
            event = response.json()
        ref = ref_of(event)
        if not ref.join_url:
            raise PermanentError(
                f"event {ref.event_id} for meeting {meeting.id!r} has no Teams join link: the "
                "organiser's calendar does not allow Teams meetings "
                "(allowedOnlineMeetingProviders); allow teamsForBusiness, delete the event "
                "and retry"
            )
        return ref

    def update_attendees(
        self, event: EventRef, add: Sequence[Attendee], remove: Sequence[str]
    ) -> EventRef:
        for _ in range(_MAX_CONFLICTS):
            current = self._get(event.event_id)
            attendees = new_attendees(current.get("attendees") or [], add, remove)
            if attendees is None:
                return ref_of(current)
            try:
                # Only `attendees`: Exchange then notifies only the attendees who changed.
                return ref_of(
                    self._patch(
                        event.event_id, {"attendees": attendees}, current.get("@odata.etag", "")
                    )
                )
            except ConcurrentChange:
                continue
        raise ConcurrentChange(
            f"event {event.event_id} kept changing under us ({_MAX_CONFLICTS} ETag conflicts)"
        )

    def allowed_providers(self) -> list[str]:
        """The organiser calendar's allowedOnlineMeetingProviders (for `check`)."""
        path = f"/users/{quote(self._requests.organiser, safe='@')}/calendar"
        body = self._client.request(
            "GET", path, params={"$select": "allowedOnlineMeetingProviders"}
        ).json()
        return [str(p) for p in body.get("allowedOnlineMeetingProviders") or []]

    def _get(self, event_id: str) -> dict[str, Any]:
        response = self._client.request(
            "GET", self._requests.event_path(event_id), headers=_READ_HEADERS
        )
        event: dict[str, Any] = response.json()
        return event

    def _patch(self, event_id: str, body: Mapping[str, Any], etag: str) -> dict[str, Any]:
        response = self._client.request(
            "PATCH",
            self._requests.event_path(event_id),
            json=dict(body),
            headers={"If-Match": etag, **_READ_HEADERS},
        )
        event: dict[str, Any] = response.json()
        return event


def build_calendar(config: Config, tokens: TokenProvider | None = None) -> Calendar:
    """The calendar adapter config asks for: dry-run files, or Graph."""
    graph = config.graph
    requests_ = EventRequests(graph.organiser, config.committee.name, config.committee.contact)
    if graph.dry_run:
        return DryRunCalendar(graph.dry_run_path, graph.base_url, requests_)
    return GraphCalendar(GraphClient(graph, tokens or TokenProvider(graph)), requests_)
