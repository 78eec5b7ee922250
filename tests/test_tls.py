"""One trust store per process and connection kind, private CAs added, never reloaded."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from processor.auth import TokenProvider, graph_scope
from processor.errors import ConfigError
from processor.imap import ImapMailbox
from processor.tls import BUNDLE_VARIABLE, trust_context
from tests.graphfake import GraphFake, graph_config
from tests.plugins.dovecot import MakeDovecot, mailbox_config


def _ca_file(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """The CA files loaded into any SSLContext from now on."""
    loaded: list[object] = []
    load = ssl.SSLContext.load_verify_locations

    def counted(context: ssl.SSLContext, *args: object, **kwargs: object) -> None:
        loaded.append(kwargs.get("cafile") or args[0])
        load(context, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counted)
    return loaded


def test_each_kind_of_connection_gets_one_context_of_its_own(tmp_path: Path) -> None:
    ca_file = _ca_file(tmp_path, "ca.pem")

    imap = trust_context(ca_file, "mailbox.ca_file", bundle=None)

    assert trust_context(ca_file, "mailbox.ca_file", bundle=None) is imap  # built once
    # urllib3 sets options on the context it is given: Graph's is never the mailbox's.
    assert trust_context(ca_file, "graph.ca_file", bundle=None) is not imap
    assert trust_context(None, "mailbox.ca_file", bundle=None) is not imap
    assert imap.verify_mode == ssl.CERT_REQUIRED and imap.check_hostname


def test_a_ca_file_that_will_not_load_is_a_config_error_naming_it(tmp_path: Path) -> None:
    not_pem = tmp_path / "ca.pem"
    not_pem.write_text("not a certificate", encoding="utf-8")

    with pytest.raises(ConfigError, match="cannot load CA file") as raised:
        trust_context(not_pem, "smtp.ca_file", bundle=None)
    assert raised.value.key == "smtp.ca_file"

    with pytest.raises(ConfigError) as raised:
        trust_context(None, "smtp.ca_file", bundle=str(not_pem))
    assert raised.value.key == BUNDLE_VARIABLE


def test_a_bundle_that_is_the_system_store_is_not_loaded_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loads: list[object]
) -> None:
    system = _ca_file(tmp_path, "system.pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(system))  # the system store, for OpenSSL
    copy = tmp_path / "copy.pem"
    copy.write_bytes(system.read_bytes())

    trust_context(None, "smtp.ca_file", bundle=str(system))
    assert loads == []
    trust_context(None, "smtp.ca_file", bundle=str(copy))
    assert loads == [str(copy)]


def test_the_bundle_the_environment_names_is_trusted_for_imap_too(
    make_dovecot: MakeDovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PRODUCT.md: REQUESTS_CA_BUNDLE adds a private CA, for every connection.
    server = make_dovecot(tls=True)
    server.append(
        "INBOX", b"From: r@example.net\r\nMessage-ID: <m1@example.net>\r\n\r\nA seat.\r\n"
    )
    assert server.ssl_port is not None
    monkeypatch.setenv(BUNDLE_VARIABLE, str(server.ca_file))
    box = ImapMailbox(mailbox_config(server, tmp_path, security="ssl", port=server.ssl_port))

    assert len(box.list_messages()) == 1
    box.close()


@pytest.mark.parametrize("trusted_by", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "graph.ca_file"])
def test_graph_sessions_load_no_bundle_per_connection(
    trusted_by: str,
    graph_fake: GraphFake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    # requests names a bundle file for every pool (REQUESTS_CA_BUNDLE's, or else
    # certifi's), and urllib3 loaded it into the context on each new connection: 20 ms.
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    if trusted_by.endswith("_BUNDLE"):
        monkeypatch.setenv(trusted_by, str(graph_fake.ca_file))
        config = graph_config(graph_fake, tmp_path, ca_file=None)
    else:
        config = graph_config(graph_fake, tmp_path)
    TokenProvider(config).token(graph_scope(config.base_url))  # the context, built once
    loads = request.getfixturevalue("loads")  # counting from here on

    # Two more providers: two sessions, each with connections of its own.
    for _ in range(2):
        tokens = TokenProvider(config)
        assert tokens.token(tokens.graph_scope) in graph_fake.tokens

    assert loads == []
