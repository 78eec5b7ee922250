"""SmtpTransport against a real aiosmtpd server; FileTransport against a temporary folder."""

from __future__ import annotations

import socket
from collections.abc import Callable
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP, default
from pathlib import Path

import pytest

from processor.config import Secret, SmtpConfig
from processor.errors import ConfigError, PermanentError, TransientError
from processor.ports import Transport
from processor.transport import FileTransport, SmtpTransport
from tests.plugins.smtpd import SMTP_PASSWORD, SMTP_TOKEN, SMTP_USER, SmtpServer

MakeSmtpd = Callable[..., SmtpServer]


def _message(number: int, to: str = "resident@example.org") -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = "Committee <committee@example.gov.uk>"
    message["To"] = to
    message["Subject"] = f"Re: reply {number}"
    message["Message-ID"] = f"<reply-{number}@example.gov.uk>"
    message.set_content(f"Reply number {number}.\n")
    return message


def _config(
    server: SmtpServer,
    *,
    security: str = "none",
    username: str = "",
    auth: str = "password",
    password_env: str | None = None,
    timeout: float = 5.0,
    port: int | None = None,
) -> SmtpConfig:
    return SmtpConfig(
        kind="smtp",
        host=server.host,
        port=port if port is not None else server.port,
        security=security,  # type: ignore[arg-type]
        username=username,
        auth=auth,  # type: ignore[arg-type]
        password=Secret(key="smtp.password_env", env=password_env),
        path=None,
        ca_file=server.ca_file,
        timeout=timeout,
    )


def test_it_satisfies_the_transport_protocol(tmp_path: Path, smtpd: SmtpServer) -> None:
    transports: list[Transport] = [SmtpTransport(_config(smtpd)), FileTransport(tmp_path)]
    assert len(transports) == 2


def test_it_delivers_several_messages_over_one_connection(smtpd: SmtpServer) -> None:
    transport = SmtpTransport(_config(smtpd))
    with transport.connect() as connection:
        for number in range(3):
            connection.send(_message(number))

    assert [m.message["Message-ID"] for m in smtpd.messages] == [
        "<reply-0@example.gov.uk>",
        "<reply-1@example.gov.uk>",
        "<reply-2@example.gov.uk>",
    ]
    assert len({m.peer for m in smtpd.messages}) == 1
    first = smtpd.messages[0]
    assert first.mail_from == "committee@example.gov.uk"
    assert first.rcpt_tos == ("resident@example.org",)
    assert first.message.get_content() == "Reply number 0.\n"


def test_it_logs_in_with_a_password(make_smtpd: MakeSmtpd, monkeypatch: pytest.MonkeyPatch) -> None:
    server = make_smtpd(auth=True)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    transport = SmtpTransport(
        _config(server, username=SMTP_USER, password_env="TEST_SMTP_PASSWORD")
    )
    with transport.connect() as connection:
        connection.send(_message(1))
        connection.send(_message(2))

    assert [m.login for m in server.messages] == [SMTP_USER, SMTP_USER]
    assert len({m.peer for m in server.messages}) == 1


def test_it_reports_a_refused_login_as_permanent(
    make_smtpd: MakeSmtpd, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_smtpd(auth=True)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong")
    transport = SmtpTransport(
        _config(server, username=SMTP_USER, password_env="TEST_SMTP_PASSWORD")
    )
    with pytest.raises(PermanentError, match="login refused"), transport.connect():
        pass
    assert server.messages == []


def test_it_is_refused_by_a_server_requiring_auth_when_not_logged_in(
    make_smtpd: MakeSmtpd,
) -> None:
    server = make_smtpd(auth=True)
    with (
        pytest.raises(PermanentError, match="530"),
        SmtpTransport(_config(server)).connect() as connection,
    ):
        connection.send(_message(1))


def test_it_logs_in_with_xoauth2(make_smtpd: MakeSmtpd) -> None:
    server = make_smtpd(auth=True)
    calls: list[int] = []

    def token() -> str:
        calls.append(1)
        return SMTP_TOKEN

    transport = SmtpTransport(_config(server, username=SMTP_USER, auth="oauth2"), token)
    with transport.connect() as connection:
        connection.send(_message(1))

    assert calls == [1]
    assert [m.login for m in server.messages] == [SMTP_USER]


def test_it_reports_a_rejected_oauth_token_as_permanent(make_smtpd: MakeSmtpd) -> None:
    server = make_smtpd(auth=True)
    transport = SmtpTransport(_config(server, username=SMTP_USER, auth="oauth2"), lambda: "expired")
    with pytest.raises(PermanentError, match="login refused"), transport.connect():
        pass


def test_it_needs_a_token_provider_for_oauth2(make_smtpd: MakeSmtpd) -> None:
    server = make_smtpd(auth=True)
    transport = SmtpTransport(_config(server, username=SMTP_USER, auth="oauth2"))
    with pytest.raises(ConfigError, match=r"smtp\.auth"), transport.connect():
        pass


def test_it_upgrades_with_starttls_and_verifies_the_certificate(
    make_smtpd: MakeSmtpd, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_smtpd(auth=True, starttls=True)
    monkeypatch.setenv("TEST_SMTP_PASSWORD", SMTP_PASSWORD)
    config = _config(
        server, security="starttls", username=SMTP_USER, password_env="TEST_SMTP_PASSWORD"
    )
    with SmtpTransport(config).connect() as connection:
        connection.send(_message(1))
        connection.send(_message(2))

    assert [m.tls for m in server.messages] == [True, True]
    assert len({m.peer for m in server.messages}) == 1


def test_it_rejects_an_untrusted_certificate_as_permanent(make_smtpd: MakeSmtpd) -> None:
    server = make_smtpd(starttls=True)
    config = _config(server, security="starttls")
    untrusted = SmtpConfig(**{**config.__dict__, "ca_file": None})
    with pytest.raises(PermanentError, match="certificate"), SmtpTransport(untrusted).connect():
        pass


def test_it_speaks_implicit_tls(make_smtpd: MakeSmtpd) -> None:
    server = make_smtpd(tls=True)
    with SmtpTransport(_config(server, security="ssl")).connect() as connection:
        connection.send(_message(1))

    assert [m.tls for m in server.messages] == [True]


def test_it_sends_stored_bytes_as_they_are_to_the_envelope_recipient(smtpd: SmtpServer) -> None:
    raw = _message(1, to="Resident <resident@example.org>").as_bytes()
    with SmtpTransport(_config(smtpd)).connect() as connection:
        connection.send_raw(
            raw,
            sender="committee@example.gov.uk",
            recipient="reply-to@example.org",  # Reply-To, not the To header
            message_id="<reply-1@example.gov.uk>",
        )

    [received] = smtpd.messages
    assert received.mail_from == "committee@example.gov.uk"
    assert received.rcpt_tos == ("reply-to@example.org",)
    assert received.raw.rstrip(b"\r\n") == raw.rstrip(b"\r\n")


def test_it_sends_to_an_address_beyond_ascii_with_smtputf8(smtpd: SmtpServer) -> None:
    # aiosmtpd's Controller offers SMTPUTF8 (RFC 6531); smtplib asks for it by option.
    with SmtpTransport(_config(smtpd)).connect() as connection:
        connection.send_raw(
            _message(1).as_bytes(),
            sender="committee@example.gov.uk",
            recipient="zoë@example.org",
            message_id="<reply-1@example.gov.uk>",
        )
    assert [m.rcpt_tos for m in smtpd.messages] == [("zoë@example.org",)]


def test_it_maps_a_451_to_transient_and_keeps_the_connection(smtpd: SmtpServer) -> None:
    smtpd.fail_next(1, "451 4.3.0 Try again later")
    with SmtpTransport(_config(smtpd)).connect() as connection:
        with pytest.raises(TransientError, match="451"):
            connection.send(_message(1))
        connection.send(_message(2))

    assert [m.message["Subject"] for m in smtpd.messages] == ["Re: reply 2"]


def test_it_maps_a_refused_recipient_to_permanent(smtpd: SmtpServer) -> None:
    smtpd.fail_next(1, "550 5.1.1 No such user", stage="rcpt")
    with (
        SmtpTransport(_config(smtpd)).connect() as connection,
        pytest.raises(PermanentError, match=r"recipient refused.*550"),
    ):
        connection.send(_message(1))
    assert smtpd.messages == []


def test_it_maps_a_deferred_recipient_to_transient(smtpd: SmtpServer) -> None:
    smtpd.fail_next(1, "450 4.2.1 Mailbox busy", stage="rcpt")
    with (
        SmtpTransport(_config(smtpd)).connect() as connection,
        pytest.raises(TransientError, match="450"),
    ):
        connection.send(_message(1))


def test_it_maps_a_554_at_data_to_permanent(smtpd: SmtpServer) -> None:
    smtpd.fail_next(1, "554 5.6.0 Message rejected")
    with (
        SmtpTransport(_config(smtpd)).connect() as connection,
        pytest.raises(PermanentError, match="554"),
    ):
        connection.send(_message(1))


def test_it_maps_a_refused_connection_to_transient(smtpd: SmtpServer) -> None:
    smtpd.stop()
    with pytest.raises(TransientError, match="connecting"), SmtpTransport(_config(smtpd)).connect():
        pass

    smtpd.start()
    with SmtpTransport(_config(smtpd)).connect() as connection:
        connection.send(_message(1))
    assert len(smtpd.messages) == 1


def test_it_times_out_on_a_silent_server(smtpd: SmtpServer) -> None:
    # A listener that accepts but never greets: the timeout must end the wait.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        config = _config(smtpd, port=silent.getsockname()[1], timeout=0.5)
        with pytest.raises(TransientError, match="timed out"), SmtpTransport(config).connect():
            pass


def test_it_writes_parseable_eml_files(tmp_path: Path) -> None:
    folder = tmp_path / "outbox" / "replies"
    with FileTransport(folder).connect() as connection:
        connection.send(_message(1))
        connection.send(_message(2, to="other@example.org"))

    files = sorted(folder.iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]
    assert all("reply-" in f.name and "<" not in f.name for f in files)
    parsed = [message_from_bytes(f.read_bytes(), policy=default) for f in files]
    assert sorted(str(p["To"]) for p in parsed) == ["other@example.org", "resident@example.org"]
    assert not list(folder.glob(".*"))  # no temporary files left behind


def test_it_writes_stored_bytes_as_they_are(tmp_path: Path) -> None:
    raw = _message(4).as_bytes()
    with FileTransport(tmp_path).connect() as connection:
        connection.send_raw(
            raw, sender="", recipient="resident@example.org", message_id="<reply-4@example.gov.uk>"
        )

    [written] = tmp_path.glob("*.eml")
    assert written.read_bytes() == raw
    assert written.name.endswith("-reply-4@example.gov.uk.eml")


def test_it_makes_hostile_message_ids_safe_file_names(tmp_path: Path) -> None:
    message = _message(1)
    message.replace_header("Message-ID", "<../../etc/passwd@x>")
    with FileTransport(tmp_path).connect() as connection:
        connection.send(message)

    (written,) = list(tmp_path.iterdir())
    assert written.parent == tmp_path
    assert "/" not in written.name and ".." not in written.name


def test_it_finds_a_reply_it_already_wrote(tmp_path: Path) -> None:
    transport = FileTransport(tmp_path / "out")
    with transport.connect() as connection:
        connection.send(_message(7))

    assert transport.find_sent("<reply-7@example.gov.uk>")
    assert not transport.find_sent("<reply-8@example.gov.uk>")


def test_it_reports_an_unwritable_folder_as_permanent(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    with (
        pytest.raises(PermanentError, match="cannot create"),
        FileTransport(blocker / "x").connect(),
    ):
        pass


def test_it_calls_before_content_once_the_envelope_is_taken(smtpd: SmtpServer) -> None:
    # The reply sender puts its last journal line on disk here (journal.py): after the
    # server took the recipient, before it has anything it could accept.
    raw = _message(1).as_bytes()
    calls: list[int] = []
    smtpd.fail_next(1, "550 5.1.1 No such user", stage="rcpt")
    with SmtpTransport(_config(smtpd)).connect() as connection:
        with pytest.raises(PermanentError, match="550"):
            connection.send_raw(
                raw,
                sender="committee@example.gov.uk",
                recipient="nobody@example.org",
                message_id="<reply-1@example.gov.uk>",
                before_content=lambda: calls.append(-1),
            )
        connection.send_raw(
            raw,
            sender="committee@example.gov.uk",
            recipient="resident@example.org",
            message_id="<reply-1@example.gov.uk>",
            before_content=lambda: calls.append(len(smtpd.messages)),
        )

    assert calls == [0]  # not for the refused recipient; before the message arrived
    assert [m.rcpt_tos for m in smtpd.messages] == [("resident@example.org",)]


def test_a_failing_before_content_hands_nothing_over_and_is_not_the_servers_fault(
    smtpd: SmtpServer,
) -> None:
    def disk_failed() -> None:
        raise OSError(5, "Input/output error")

    with (
        SmtpTransport(_config(smtpd)).connect() as connection,
        pytest.raises(OSError, match="Input/output error") as raised,
    ):
        connection.send_raw(
            _message(1).as_bytes(),
            sender="committee@example.gov.uk",
            recipient="resident@example.org",
            message_id="<reply-1@example.gov.uk>",
            before_content=disk_failed,
        )
    assert not isinstance(raised.value, TransientError | PermanentError)
    assert smtpd.messages == []
