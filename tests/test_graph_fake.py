"""The Graph fake itself: it must refuse what Graph refuses, or adapter tests prove nothing."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.graphfake import GraphFake, Validator

pytest_plugins = ["pytester"]

ORGANISER = "organiser@council.example"
GOOD_EVENT: dict[str, Any] = {
    "subject": "Crime and Disorder Committee",
    "start": {"dateTime": "2026-12-10T18:30:00", "timeZone": "Europe/London"},
    "end": {"dateTime": "2026-12-10T20:30:00", "timeZone": "Europe/London"},
    "isOnlineMeeting": True,
    "onlineMeetingProvider": "teamsForBusiness",
    "hideAttendees": True,
}


def graph(fake: GraphFake, scope: str | None = None) -> requests.Session:
    """A session holding a bearer token from the fake identity endpoint."""
    session = fake.session()
    answer = session.post(
        f"{fake.authority}/{fake.tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "scope": scope or fake.graph_scope,
        },
        timeout=5,
    ).json()
    session.headers["Authorization"] = f"Bearer {answer['access_token']}"
    return session


def post_event(fake: GraphFake, body: dict[str, Any]) -> requests.Response:
    return graph(fake).post(f"{fake.base_url}/users/{ORGANISER}/events", json=body, timeout=5)


def messages(fake: GraphFake) -> list[str]:
    return [f"{v.path}: {v.message}" for v in fake.clear_violations() if v.severity == "error"]


# --- schema validation --------------------------------------------------------------------


def test_it_accepts_a_valid_event_and_records_nothing(graph_fake: GraphFake) -> None:
    response = post_event(graph_fake, GOOD_EVENT)

    assert response.status_code == 201
    assert graph_fake.violations == []


def test_it_rejects_an_unknown_property_like_the_live_backend(graph_fake: GraphFake) -> None:
    response = post_event(graph_fake, {**GOOD_EVENT, "colour": "red"})

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "RequestBodyRead"
    assert messages(graph_fake) == [
        "event.colour: the property 'colour' does not exist on type event"
    ]
    assert graph_fake.user_events(ORGANISER) == []


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"hideAttendees": "yes"}, "event.hideAttendees"),
        ({"reminderMinutesBeforeStart": 1.5}, "event.reminderMinutesBeforeStart"),
        ({"onlineMeetingProvider": "zoom"}, "event.onlineMeetingProvider"),
        ({"attendees": {"emailAddress": {"address": "a@b.c"}}}, "event.attendees"),
        ({"attendees": [{"emailAddress": {"name": "No address"}}]}, "event.attendees[0]"),
        ({"attendees": [{"emailAddress": {"address": "a@b.c", "x": 1}}]}, "event.attendees[0]"),
        ({"start": {"timeZone": "Europe/London"}}, "event.start.dateTime"),
        ({"start": {"dateTime": None, "timeZone": "UTC"}}, "event.start.dateTime"),
        ({"location": "Council Chamber"}, "event.location"),
        ({"instances": []}, "event.instances"),
    ],
)
def test_it_rejects_a_wrong_type_or_shape(
    graph_fake: GraphFake, change: dict[str, Any], where: str
) -> None:
    response = post_event(graph_fake, {**GOOD_EVENT, **change})

    assert response.status_code == 400
    found = messages(graph_fake)
    assert found and all(message.startswith(where) for message in found), found


@pytest.mark.parametrize("field", ["onlineMeeting", "id", "iCalUId", "organizer", "webLink"])
def test_it_rejects_a_read_only_member(graph_fake: GraphFake, field: str) -> None:
    value: Any = {"joinUrl": "https://x"} if field == "onlineMeeting" else "x"
    if field == "organizer":
        value = {"emailAddress": {"address": "someone@else.example"}}

    response = post_event(graph_fake, {**GOOD_EVENT, field: value})

    assert response.status_code == 400
    assert any("read-only" in m for m in messages(graph_fake))


def test_it_only_warns_about_a_read_only_member_graph_ignores(graph_fake: GraphFake) -> None:
    response = post_event(graph_fake, {**GOOD_EVENT, "isOrganizer": True})

    assert response.status_code == 201
    [warning] = graph_fake.clear_violations()
    assert warning.severity == "warning"


@pytest.mark.parametrize("zone", ["Pacific Standard Time", "GMT Standard Time", "Asia/Tokyo"])
def test_it_accepts_windows_and_iana_time_zones(graph_fake: GraphFake, zone: str) -> None:
    start = {"dateTime": "2026-12-10T18:30:00", "timeZone": zone}

    response = post_event(graph_fake, {**GOOD_EVENT, "start": start})

    assert response.status_code == 201


def test_it_rejects_an_unknown_time_zone(graph_fake: GraphFake) -> None:
    start = {"dateTime": "2026-12-10T18:30:00", "timeZone": "Mars/Olympus"}

    response = post_event(graph_fake, {**GOOD_EVENT, "start": start})

    assert response.json()["error"]["code"] == "TimeZoneNotSupportedException"
    assert messages(graph_fake) == ["event.start.timeZone: unknown time zone 'Mars/Olympus'"]


def test_it_returns_times_in_utc_unless_a_zone_is_preferred(graph_fake: GraphFake) -> None:
    created = post_event(graph_fake, GOOD_EVENT).json()
    url = f"{graph_fake.base_url}/users/{ORGANISER}/events/{created['id']}"
    session = graph(graph_fake)

    plain = session.get(url, timeout=5).json()
    pacific = session.get(
        url, headers={"Prefer": 'outlook.timezone="Pacific Standard Time"'}, timeout=5
    ).json()

    assert plain["start"] == {"dateTime": "2026-12-10T18:30:00.0000000", "timeZone": "UTC"}
    assert pacific["start"]["dateTime"] == "2026-12-10T10:30:00.0000000"


def test_it_validates_the_json_form_of_send_mail(graph_fake: GraphFake) -> None:
    url = f"{graph_fake.base_url}/users/{ORGANISER}/sendMail"
    session = graph(graph_fake)
    good = {
        "message": {
            "subject": "Hello",
            "body": {"contentType": "Text", "content": "Hi"},
            "toRecipients": [{"emailAddress": {"address": "resident@example.org"}}],
        },
        "saveToSentItems": False,
    }

    accepted = session.post(url, json=good, timeout=5)
    refused = session.post(url, json={"saveToSentItems": "no"}, timeout=5)

    assert accepted.status_code == 202
    assert refused.status_code == 400
    found = messages(graph_fake)
    assert "user.sendMail.saveToSentItems: expected true or false" in found
    assert "user.sendMail.Message: required parameter missing" in found


def test_it_refuses_invalid_base64_mime(graph_fake: GraphFake) -> None:
    response = graph(graph_fake).post(
        f"{graph_fake.base_url}/users/{ORGANISER}/sendMail",
        data=b"not base64 at all!",
        headers={"Content-Type": "text/plain"},
        timeout=5,
    )

    assert response.json()["error"]["code"] == "ErrorMimeContentInvalidBase64String"


def test_it_walks_base_types_for_inherited_properties(shared_dir: Path) -> None:
    schema = json.loads((shared_dir / "graph" / "v1.0-types.json").read_text(encoding="utf-8"))
    validator = Validator(schema, {})

    # categories comes from outlookItem, the base type of event.
    assert validator.entity("event", {"categories": ["Committee"]}) == []
    assert validator.entity("event", {"categories": "Committee"})[0].path == "event.categories"


# --- protocol behaviour -------------------------------------------------------------------


def test_it_requires_a_valid_bearer_token(graph_fake: GraphFake) -> None:
    url = f"{graph_fake.base_url}/users/{ORGANISER}/calendar"
    session = graph_fake.session()

    anonymous = session.get(url, timeout=5)
    forged = session.get(url, headers={"Authorization": "Bearer forged"}, timeout=5)
    outlook = graph(graph_fake, "https://outlook.office365.com/.default").get(url, timeout=5)

    for response in (anonymous, forged, outlook):
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "InvalidAuthenticationToken"
        assert set(error["innerError"]) == {"date", "request-id", "client-request-id"}


def test_it_honours_if_match_and_replaces_attendees_on_patch(graph_fake: GraphFake) -> None:
    created = post_event(
        graph_fake,
        {**GOOD_EVENT, "attendees": [{"emailAddress": {"address": "a@example.org"}}]},
    )
    event = created.json()
    url = f"{graph_fake.base_url}/users/{ORGANISER}/events/{event['id']}"
    session = graph(graph_fake)
    new_list = {"attendees": [{"emailAddress": {"address": "b@example.org"}, "type": "required"}]}

    stale = session.patch(url, json=new_list, headers={"If-Match": 'W/"stale"'}, timeout=5)
    fresh = session.patch(url, json=new_list, headers={"If-Match": event["@odata.etag"]}, timeout=5)

    assert created.headers["ETag"] == event["@odata.etag"]
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "ErrorIrresolvableConflict"
    assert fresh.status_code == 200
    assert fresh.json()["@odata.etag"] != event["@odata.etag"]
    assert graph_fake.attendees(ORGANISER, event["id"]) == ["b@example.org"]


def test_it_returns_the_existing_event_for_a_repeated_transaction_id(
    graph_fake: GraphFake,
) -> None:
    body = {**GOOD_EVENT, "transactionId": "7b1f1e0e-0000-4000-8000-000000000001"}

    first = post_event(graph_fake, body).json()
    second = post_event(graph_fake, body).json()

    assert first["id"] == second["id"]
    assert len(graph_fake.user_events(ORGANISER)) == 1
    assert first["hideAttendees"] is True
    assert first["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/")


def test_it_sends_retry_after_with_an_injected_429(graph_fake: GraphFake) -> None:
    graph_fake.fail_next(429, retry_after=7)

    throttled = post_event(graph_fake, GOOD_EVENT)
    after = post_event(graph_fake, GOOD_EVENT)

    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "7"
    assert throttled.json()["error"]["code"] == "TooManyRequests"
    assert after.status_code == 201


def test_it_serves_openid_discovery_for_its_tenant_only(graph_fake: GraphFake) -> None:
    session = graph_fake.session()
    path = "v2.0/.well-known/openid-configuration"

    known = session.get(f"{graph_fake.authority}/{graph_fake.tenant}/{path}", timeout=5)
    unknown = session.get(f"{graph_fake.authority}/other-tenant/{path}", timeout=5)

    assert known.json()["token_endpoint"].endswith(f"/{graph_fake.tenant}/oauth2/v2.0/token")
    assert unknown.status_code == 400


def test_it_fails_the_test_at_teardown_when_a_bad_body_was_left(
    pytester: pytest.Pytester, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[1]))
    pytester.makeconftest(
        textwrap.dedent(
            f"""
            import pytest
            from pathlib import Path
            pytest_plugins = ["tests.plugins.graphfake"]

            @pytest.fixture(scope="session")
            def shared_dir():
                return Path({str(shared_dir)!r})
            """
        )
    )
    pytester.makepyfile(
        textwrap.dedent(
            """
            from tests.test_graph_fake import GOOD_EVENT, post_event

            def test_sends_an_unknown_property(graph_fake):
                post_event(graph_fake, {**GOOD_EVENT, "colour": "red"})
            """
        )
    )

    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")

    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*invalid request bodies*", "*event.colour*"])
