"""XOAUTH2 for real (Dovecot asks the fake identity endpoint), and `check` against the fakes."""

from __future__ import annotations

from pathlib import Path

from tests.graphfake import GraphFake
from tests.plugins.dovecot import MakeDovecot
from tests.plugins.smtpd import SmtpServer
from tests.support import NOW, request, run_cli, staff_log, write_config


def test_it_logs_in_to_imap_with_a_msal_token(
    tmp_path: Path, make_dovecot: MakeDovecot, smtpd: SmtpServer, graph_fake: GraphFake
) -> None:
    dovecot = make_dovecot(oauth2_introspection_url=graph_fake.introspect_url)
    graph_fake.token_username = dovecot.username  # whom the token stands for
    dovecot.append(
        "INBOX",
        request(
            1,
            "Ann <ann@residents.example>",
            "Committee",
            "Please send me the Teams link for 10 December.\n\nAnn",
        ),
    )
    config = write_config(tmp_path, dovecot, smtpd, graph_fake)
    text = config.read_text().replace('password_env = "TEST_IMAP_PASSWORD"', 'auth = "oauth2"')
    config.write_text(text)

    result = run_cli(config, "run", "--once", "--now", NOW)

    assert result.returncode == 0, result.stderr
    assert staff_log(config)["<e2e-1@residents.example>"]["outcome"] == "confirmed"
    assert dovecot.uids("INBOX") == []
    # One token for IMAP (the Outlook scope) and one for Graph: msal caches per scope.
    bodies = [c.body.decode() for c in graph_fake.token_requests()]
    assert len(bodies) == 2
    assert any("outlook.office365.com" in body for body in bodies)
    assert graph_fake.requests("POST", "/introspect")


def test_it_reports_every_connection_ok_against_the_fakes(
    tmp_path: Path, make_dovecot: MakeDovecot, smtpd: SmtpServer, graph_fake: GraphFake
) -> None:
    dovecot = make_dovecot()
    config = write_config(tmp_path, dovecot, smtpd, graph_fake)

    result = run_cli(config, "check")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split("]")[0] for line in lines] == ["[ok  "] * len(lines)
    assert any("teams calendar" in line for line in lines)


def test_it_names_the_fix_when_a_connection_fails(
    tmp_path: Path, make_dovecot: MakeDovecot, smtpd: SmtpServer, graph_fake: GraphFake
) -> None:
    dovecot = make_dovecot()
    config = write_config(tmp_path, dovecot, smtpd, graph_fake)
    graph_fake.set_allowed_providers("committee-organiser@council.example", ["unknown"])
    smtpd.stop()

    result = run_cli(config, "check")

    assert result.returncode == 1
    assert "[FAIL] transport" in result.stdout
    assert "[FAIL] teams calendar" in result.stdout
    assert result.stdout.count("fix:") == 2
    assert "[ok  ] mailbox" in result.stdout
