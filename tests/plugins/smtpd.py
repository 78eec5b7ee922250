"""A real SMTP server (aiosmtpd) for transport tests: records every message it accepts.

`smtpd` is a plain server on 127.0.0.1; `make_smtpd(auth=..., starttls=..., tls=...)`
builds variants with AUTH (PLAIN, LOGIN and XOAUTH2 for one fixed user), STARTTLS or
implicit TLS (certificates from trustme). `fail_next` makes the next messages fail
with a chosen reply; `stop()` / `start()` simulate an outage on the same port.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any, Literal

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SMTP_USER = "committee@example.gov.uk"
SMTP_PASSWORD = "correct horse battery staple"
SMTP_TOKEN = "test-oauth-token"

Stage = Literal["rcpt", "data"]


@dataclass(frozen=True)
class ReceivedMessage:
    """One accepted message, as the server saw it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    peer: tuple[str, int]  # client (host, port): equal peers mean one TCP connection
    login: str | None  # the authenticated user, if any
    tls: bool

    @property
    def message(self) -> EmailMessage:
        # SMTP carries CRLF; the parsed view uses \n like any message read from disk.
        return message_from_bytes(self.raw.replace(b"\r\n", b"\n"), policy=default)


@dataclass
class _Failure:
    stage: Stage
    reply: str


class _Handler:
    """aiosmtpd handler: accept, record, or fail on demand."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def handle_RCPT(
        self, smtp: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        failure = self.server._take_failure("rcpt")
        if failure is not None:
            return failure
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self.server._take_failure("data")
        if failure is not None:
            return failure
        auth = session.auth_data
        login = auth.login if isinstance(auth, LoginPassword) else None
        self.server.messages.append(
            ReceivedMessage(
                mail_from=str(envelope.mail_from),
                rcpt_tos=tuple(envelope.rcpt_tos),
                raw=envelope.original_content or b"",
                peer=_peer(session.peer),
                login=login.decode() if isinstance(login, bytes) else login,
                # After STARTTLS, and with implicit TLS, the transport is the TLS one.
                tls=smtp.transport is not None
                and smtp.transport.get_extra_info("ssl_object") is not None,
            )
        )
        if self.server.file_sent_copy is not None:
            # As Exchange Online does for SMTP AUTH submissions: the copy in Sent Items
            # is filed before the server says 250, so acceptance and record are one step.
            self.server.file_sent_copy(envelope.original_content or b"")
        return "250 2.0.0 Message accepted"

    async def auth_XOAUTH2(self, smtp: SMTP, args: list[str]) -> AuthResult:
        """XOAUTH2 as Exchange Online speaks it: a bearer token for one user."""
        if len(args) < 2:
            return AuthResult(success=False, handled=False)
        try:
            decoded = base64.b64decode(args[1]).decode()
        except ValueError:
            return AuthResult(success=False, handled=False)
        fields = dict(part.split("=", 1) for part in decoded.split("\x01") if "=" in part)
        good = fields.get("user") == SMTP_USER and fields.get("auth") == f"Bearer {SMTP_TOKEN}"
        if not good:
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(SMTP_USER.encode(), b""))


def _peer(peer: Any) -> tuple[str, int]:
    host, port = peer[:2]
    return str(host), int(port)


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    good = auth_data.login == SMTP_USER.encode() and auth_data.password == SMTP_PASSWORD.encode()
    return AuthResult(success=good, handled=False, auth_data=auth_data if good else None)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SmtpServer:
    """A running aiosmtpd server and what it received."""

    auth: bool = False
    starttls: bool = False
    tls: bool = False  # implicit TLS (SMTPS, port 465 style)
    ca_file: Path | None = None  # trust this to verify the server certificate
    host: str = "127.0.0.1"
    port: int = field(default_factory=_free_port)
    messages: list[ReceivedMessage] = field(default_factory=list)
    username: str = SMTP_USER
    password: str = SMTP_PASSWORD
    token: str = SMTP_TOKEN
    server_context: ssl.SSLContext | None = None
    file_sent_copy: Callable[[bytes], object] | None = None  # e.g. APPEND to a Sent folder
    _failures: list[_Failure] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Controller | None = None

    def fail_next(
        self, count: int = 1, reply: str = "451 4.3.0 Try again later", *, stage: Stage = "data"
    ) -> None:
        """Answer the next `count` messages with `reply` at RCPT or DATA."""
        with self._lock:
            self._failures.extend(_Failure(stage, reply) for _ in range(count))

    def _take_failure(self, stage: Stage) -> str | None:
        with self._lock:
            if self._failures and self._failures[0].stage == stage:
                return self._failures.pop(0).reply
        return None

    def start(self) -> None:
        if self._controller is not None:
            return
        kwargs: dict[str, Any] = {"server_hostname": "localhost"}
        if self.starttls:
            kwargs.update(tls_context=self.server_context, require_starttls=True)
        if self.auth:
            kwargs.update(
                authenticator=_authenticate,
                auth_required=True,
                # Plain AUTH without TLS only so the no-TLS variant can test logins.
                auth_require_tls=self.starttls or self.tls,
            )
        controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            ssl_context=self.server_context if self.tls else None,
            ready_timeout=10,
            **kwargs,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture(scope="session")
def smtpd_ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def make_smtpd(
    smtpd_ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., SmtpServer]]:
    """A factory: make_smtpd(auth=False, starttls=False, tls=False) -> a started server."""
    servers: list[SmtpServer] = []

    def make(auth: bool = False, starttls: bool = False, tls: bool = False) -> SmtpServer:
        server = SmtpServer(auth=auth, starttls=starttls, tls=tls)
        if starttls or tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            smtpd_ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
            ca_file = tmp_path_factory.mktemp("smtpd-ca") / "ca.pem"
            smtpd_ca.cert_pem.write_to_path(str(ca_file))
            server.server_context = context
            server.ca_file = ca_file
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def smtpd(make_smtpd: Callable[..., SmtpServer]) -> SmtpServer:
    """A plain SMTP server on 127.0.0.1, no AUTH, no TLS."""
    return make_smtpd()


def pytest_configure(config: pytest.Config) -> None:
    # The no-TLS AUTH variant is deliberate (loopback only); aiosmtpd warns about it.
    config.addinivalue_line(
        "filterwarnings", "ignore:Requiring AUTH while not requiring TLS:UserWarning"
    )
