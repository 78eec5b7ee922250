"""The fake's server: one threaded HTTPS listener for Graph and identity, its state and faults."""

from __future__ import annotations

import json
import re
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import requests
import trustme

from processor.config import GraphConfig, Secret
from tests.graphfake import graph_api, identity
from tests.graphfake.http import Call, Reply, graph_error
from tests.graphfake.identity import Client, Token
from tests.graphfake.schema import Validator, Violation

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
CLIENT_SECRET = "fake-client-secret"


@dataclass(frozen=True)
class Fault:
    """A canned failure for the next matching Graph request."""

    status: int
    code: str
    retry_after: int | None = None
    method: str | None = None
    path_contains: str | None = None

    def matches(self, call: Call) -> bool:
        return (self.method is None or self.method == call.method) and (
            self.path_contains is None or self.path_contains in call.path
        )


Route = Callable[..., Reply]
_GRAPH_ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("POST", re.compile(r"/v1\.0/users/([^/]+)/events"), graph_api.create_event),
    ("GET", re.compile(r"/v1\.0/users/([^/]+)/events/([^/]+)"), graph_api.get_event),
    ("PATCH", re.compile(r"/v1\.0/users/([^/]+)/events/([^/]+)"), graph_api.patch_event),
    ("DELETE", re.compile(r"/v1\.0/users/([^/]+)/events/([^/]+)"), graph_api.delete_event),
    ("GET", re.compile(r"/v1\.0/users/([^/]+)/calendar"), graph_api.get_calendar),
    ("POST", re.compile(r"/v1\.0/users/([^/]+)/sendMail"), graph_api.send_mail),
    (
        "GET",
        re.compile(r"/v1\.0/users/([^/]+)/mailFolders/sentitems/messages", re.IGNORECASE),
        graph_api.sent_items,
    ),
]


class GraphFake:
    """Graph v1.0 and the identity endpoint over HTTPS on loopback, with inspectable state."""

    def __init__(
        self, validator: Validator, zones: dict[str, str], ca: trustme.CA, ca_file: Path
    ) -> None:
        self.validator = validator
        self.zones = zones
        self.ca = ca
        self.ca_file = ca_file
        self.tenant = TENANT
        self.client_id = CLIENT_ID
        self.client_secret = CLIENT_SECRET
        self.lock = threading.RLock()
        self._https: ThreadingHTTPServer | None = None
        self._http: ThreadingHTTPServer | None = None
        self.reset()

    # --- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._https = _server(self, context)
        self._http = _server(self, None)  # introspection for Dovecot, which wants plain http

    def stop(self) -> None:
        for server in (self._https, self._http):
            if server is not None:
                server.shutdown()
                server.server_close()

    def reset(self) -> None:
        with self.lock:
            self.clients: dict[str, Client] = {CLIENT_ID: Client(CLIENT_ID, secret=CLIENT_SECRET)}
            self.tokens: dict[str, Token] = {}
            self.token_username: str | None = None
            self.events: dict[str, dict[str, dict[str, Any]]] = {}
            self.transactions: dict[tuple[str, str], str] = {}
            self.sent: dict[str, list[dict[str, Any]]] = {}
            self.providers: dict[str, list[str]] = {}
            self.log: list[Call] = []
            self.violations: list[Violation] = []
            self.faults: deque[Fault] = deque()
            self.conflicts = 0
            self.no_join_url = 0

    # --- addresses ----------------------------------------------------------------

    @staticmethod
    def port_of(server: Any) -> int:
        return int(server.server_address[1])

    @property
    def port(self) -> int:
        assert self._https is not None
        return self.port_of(self._https)

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}/v1.0"

    @property
    def graph_scope(self) -> str:
        return f"https://127.0.0.1:{self.port}/.default"

    @property
    def introspect_url(self) -> str:
        assert self._http is not None
        return f"http://127.0.0.1:{self._http.server_address[1]}/introspect"

    def session(self) -> requests.Session:
        """A Session that trusts only the fake's CA and ignores proxy/CA environment."""
        session = requests.Session()
        session.trust_env = False
        session.verify = str(self.ca_file)
        return session

    # --- faults -------------------------------------------------------------------

    def fail_next(
        self,
        status: int,
        times: int = 1,
        retry_after: int | None = None,
        code: str | None = None,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """The next `times` matching Graph requests get `status` (429/503 with Retry-After)."""
        default = {429: "TooManyRequests", 503: "ServiceUnavailable", 504: "GatewayTimeout"}
        fault = Fault(
            status, code or default.get(status, "UnknownError"), retry_after, method, path_contains
        )
        with self.lock:
            self.faults.extend([fault] * times)

    def conflict_next(self, times: int = 1) -> None:
        """The next `times` event PATCHes find the event changed by someone else (412)."""
        with self.lock:
            self.conflicts += times

    def omit_join_url_next(self, times: int = 1) -> None:
        with self.lock:
            self.no_join_url += times

    def take_fault_no_join_url(self) -> bool:
        with self.lock:
            if self.no_join_url > 0:
                self.no_join_url -= 1
                return True
            return False

    def set_allowed_providers(self, user: str, providers: list[str]) -> None:
        with self.lock:
            self.providers[user.lower()] = providers

    def allowed_providers(self, user: str) -> list[str]:
        with self.lock:
            return list(self.providers.get(user.lower(), ["teamsForBusiness"]))

    # --- inspection ---------------------------------------------------------------

    def requests(self, method: str | None = None, path_contains: str = "") -> list[Call]:
        with self.lock:
            return [
                c
                for c in self.log
                if (method is None or c.method == method) and path_contains in c.path
            ]

    def token_requests(self) -> list[Call]:
        return self.requests("POST", "/oauth2/v2.0/token")

    def user_events(self, user: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.events.get(user.lower(), {}).values())

    def attendees(self, user: str, event_id: str) -> list[str]:
        with self.lock:
            event = self.events[user.lower()][event_id]
            return [a["emailAddress"]["address"] for a in event["attendees"]]

    def validation_errors(self) -> list[Violation]:
        with self.lock:
            return [v for v in self.violations if v.severity == "error"]

    def clear_violations(self) -> list[Violation]:
        """Take the recorded violations (a test that expects them must clear them)."""
        with self.lock:
            taken, self.violations = self.violations, []
            return taken

    def check(self, type_name: str, body: Any) -> list[Violation]:
        found = self.validator.entity(type_name, body)
        with self.lock:
            self.violations.extend(found)
        return found

    def record_crash(self, call: Call, exc: Exception) -> None:
        with self.lock:
            self.violations.append(
                Violation("error", f"{call.method} {call.path}", f"the fake crashed: {exc!r}")
            )

    def check_action(self, name: str, body: Any) -> list[Violation]:
        found = self.validator.action(name, body)
        with self.lock:
            self.violations.extend(found)
        return found

    # --- dispatch -----------------------------------------------------------------

    def handle(self, call: Call) -> Reply:
        with self.lock:
            self.log.append(call)
        path = call.path
        if path.rstrip("/").endswith("/introspect") or path.startswith("/introspect"):
            return identity.introspect(self, call)
        if self._http is not None and call.port == self._http.server_address[1]:
            return Reply(404, {"error": "not_found"})
        if not path.startswith("/v1.0/"):
            return self._identity(call)
        return self._graph(call)

    def _identity(self, call: Call) -> Reply:
        match = re.fullmatch(r"/([^/]+)/v2\.0/\.well-known/openid-configuration", call.path)
        if match and call.method == "GET":
            return identity.openid_configuration(self, call, match.group(1))
        match = re.fullmatch(r"/([^/]+)/oauth2/v2\.0/token", call.path)
        if match and call.method == "POST":
            return identity.token(self, call, match.group(1))
        return Reply(404, {"error": "not_found", "error_description": call.path})

    def _graph(self, call: Call) -> Reply:
        auth = call.header("authorization") or ""
        with self.lock:
            token = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if token is None or token.expires < time.time() or token.scope != self.graph_scope:
            return graph_error(
                call,
                401,
                "InvalidAuthenticationToken",
                "Access token is empty or invalid.",
                {"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
            )
        with self.lock:
            fault = next((f for f in self.faults if f.matches(call)), None)
            if fault is not None:
                self.faults.remove(fault)
        if fault is not None:
            headers = (
                {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            )
            return graph_error(call, fault.status, fault.code, "Injected fault.", headers)
        for method, pattern, route in _GRAPH_ROUTES:
            match = pattern.fullmatch(call.path)
            if match:
                if method != call.method:
                    continue
                args = [unquote(g) for g in match.groups()]
                args[0] = args[0].lower()
                try:
                    return route(self, call, *args)
                except (ValueError, json.JSONDecodeError) as exc:
                    return graph_error(call, 400, "BadRequest", f"Unreadable request: {exc}")
        return graph_error(
            call, 400, "BadRequest", f"Resource not found for the segment {call.path}"
        )


def _server(fake: GraphFake, context: ssl.SSLContext | None) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            call = Call(
                method=self.command,
                path=parts.path,
                query=dict(parse_qsl(parts.query)),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                port=fake.port_of(self.server),
            )
            try:
                reply = fake.handle(call)
            except Exception as exc:  # a bug in the fake must fail the test, not hang it
                fake.record_crash(call, exc)
                reply = graph_error(call, 500, "FakeCrashed", repr(exc))
            data, headers = reply.encode()
            self.send_response(reply.status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request log on the fake replaces stderr noise

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def graph_config(fake: GraphFake, tmp_path: Path, **overrides: Any) -> GraphConfig:
    """A GraphConfig pointing at the fake, the client secret in a file under `tmp_path`."""
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(fake.client_secret + "\n", encoding="utf-8")
    values: dict[str, Any] = {
        "enabled": True,
        "dry_run": False,
        "dry_run_path": tmp_path / "dry-run",
        "tenant_id": fake.tenant,
        "client_id": fake.client_id,
        "client_secret": Secret(key="graph.client_secret_file", file=secret_file),
        "certificate_file": None,
        "certificate_thumbprint": "",
        "certificate_password": Secret(key="graph.certificate_password_env"),
        "authority": fake.authority,
        "base_url": fake.base_url,
        "organiser": "committee-organiser@council.example",
        "ca_file": fake.ca_file,
        "timeout": 5.0,
        "max_retry_after": 30.0,
    }
    values.update(overrides)
    return GraphConfig(**values)
