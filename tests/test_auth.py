"""msal client-credentials tokens against the fake identity endpoint over HTTPS."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from processor.auth import OUTLOOK_SCOPE, TokenProvider, graph_scope
from processor.config import Secret
from processor.errors import PermanentError, TransientError
from tests.graphfake import GraphFake, graph_config
from tests.graphfake.identity import Client


def test_it_derives_the_graph_scope_from_the_base_url() -> None:
    assert graph_scope("https://graph.microsoft.com/v1.0") == "https://graph.microsoft.com/.default"
    assert graph_scope("https://graph.microsoft.us/v1.0/") == "https://graph.microsoft.us/.default"


def test_it_gets_a_token_the_fake_graph_accepts(graph_fake: GraphFake, tmp_path: Path) -> None:
    tokens = TokenProvider(graph_config(graph_fake, tmp_path), http_client=graph_fake.session())

    token = tokens.token(tokens.graph_scope)

    assert token in graph_fake.tokens
    assert graph_fake.tokens[token].scope == graph_fake.graph_scope
    form = graph_fake.token_requests()[0].body.decode()
    assert "grant_type=client_credentials" in form
    assert f"client_id={graph_fake.client_id}" in form


def test_it_serves_a_repeat_from_the_cache_without_asking_again(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    tokens = TokenProvider(graph_config(graph_fake, tmp_path), http_client=graph_fake.session())

    first = tokens.token(tokens.graph_scope)
    second = tokens.token(tokens.graph_scope)

    assert first == second
    assert len(graph_fake.token_requests()) == 1
    assert len(graph_fake.requests("GET", "openid-configuration")) == 1


def test_it_asks_separately_for_the_outlook_scope(graph_fake: GraphFake, tmp_path: Path) -> None:
    tokens = TokenProvider(graph_config(graph_fake, tmp_path), http_client=graph_fake.session())

    graph = tokens.token(tokens.graph_scope)
    outlook = tokens.token(OUTLOOK_SCOPE)

    assert graph != outlook
    assert graph_fake.tokens[outlook].scope == OUTLOOK_SCOPE
    assert len(graph_fake.token_requests()) == 2


def test_it_reports_a_wrong_secret_as_permanent_with_the_fix(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    config = graph_config(graph_fake, tmp_path)
    assert config.client_secret.file is not None
    config.client_secret.file.write_text("not-the-secret", encoding="utf-8")
    tokens = TokenProvider(config, http_client=graph_fake.session())

    with pytest.raises(PermanentError, match=r"invalid_client.*Check graph.client_id"):
        tokens.token(tokens.graph_scope)


def test_it_reports_an_unknown_tenant_as_permanent(graph_fake: GraphFake, tmp_path: Path) -> None:
    config = graph_config(graph_fake, tmp_path, tenant_id="no-such-tenant")
    tokens = TokenProvider(config, http_client=graph_fake.session())

    with pytest.raises(PermanentError, match=r"graph\.tenant_id"):
        tokens.token(tokens.graph_scope)


def test_it_reports_an_unreachable_authority_as_transient(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    config = graph_config(graph_fake, tmp_path, authority="https://127.0.0.1:9", timeout=2.0)
    tokens = TokenProvider(config, http_client=graph_fake.session())

    with pytest.raises(TransientError, match="unreachable"):
        tokens.token(tokens.graph_scope)


def test_it_refuses_an_untrusted_certificate_as_transient(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    # Without the fake's CA, TLS verification fails: never silently trusted.
    config = graph_config(graph_fake, tmp_path, ca_file=None)
    tokens = TokenProvider(config)

    with pytest.raises(TransientError):
        tokens.token(tokens.graph_scope)


def test_it_trusts_the_configured_ca_file_in_production_mode(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    tokens = TokenProvider(graph_config(graph_fake, tmp_path))

    assert tokens.token(tokens.graph_scope) in graph_fake.tokens


def test_it_signs_in_with_a_pem_certificate(graph_fake: GraphFake, tmp_path: Path) -> None:
    ca = trustme.CA(key_type=trustme.KeyType.RSA)
    leaf = ca.issue_cert("attendance-processor.example", key_type=trustme.KeyType.RSA)
    pem = tmp_path / "app.pem"
    pem.write_bytes(leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes())
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    thumbprint = hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    graph_fake.clients["cert-app"] = Client(
        "cert-app", certificate_pem=leaf.cert_chain_pems[0].bytes()
    )
    config = graph_config(
        graph_fake,
        tmp_path,
        client_id="cert-app",
        client_secret=Secret(key="graph.client_secret_env"),
        certificate_file=pem,
        certificate_thumbprint=thumbprint,
    )
    tokens = TokenProvider(config, http_client=graph_fake.session())

    token = tokens.token(tokens.graph_scope)

    assert graph_fake.tokens[token].client_id == "cert-app"
    assert "client_assertion=" in graph_fake.token_requests()[0].body.decode()


def test_it_signs_in_with_a_password_protected_pfx(
    graph_fake: GraphFake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    leaf = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert(
        "app.example", key_type=trustme.KeyType.RSA
    )
    key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), password=None)
    cert = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes())
    pfx = tmp_path / "app.pfx"
    pfx.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"app",
            key,  # type: ignore[arg-type]
            cert,
            None,
            serialization.BestAvailableEncryption(b"pfx-password"),
        )
    )
    monkeypatch.setenv("TEST_PFX_PASSWORD", "pfx-password")
    graph_fake.clients["pfx-app"] = Client(
        "pfx-app", certificate_pem=leaf.cert_chain_pems[0].bytes()
    )
    config = graph_config(
        graph_fake,
        tmp_path,
        client_id="pfx-app",
        certificate_file=pfx,
        certificate_password=Secret(key="graph.certificate_password_env", env="TEST_PFX_PASSWORD"),
    )
    tokens = TokenProvider(config, http_client=graph_fake.session())

    token = tokens.token(tokens.graph_scope)

    assert graph_fake.tokens[token].client_id == "pfx-app"


def test_it_rejects_a_certificate_the_app_does_not_hold(
    graph_fake: GraphFake, tmp_path: Path
) -> None:
    registered = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert(
        "a.example", key_type=trustme.KeyType.RSA
    )
    other = trustme.CA(key_type=trustme.KeyType.RSA).issue_cert(
        "b.example", key_type=trustme.KeyType.RSA
    )
    graph_fake.clients["cert-app"] = Client(
        "cert-app", certificate_pem=registered.cert_chain_pems[0].bytes()
    )
    pem = tmp_path / "wrong.pem"
    pem.write_bytes(other.private_key_pem.bytes() + other.cert_chain_pems[0].bytes())
    cert = x509.load_pem_x509_certificate(other.cert_chain_pems[0].bytes())
    config = graph_config(
        graph_fake,
        tmp_path,
        client_id="cert-app",
        certificate_file=pem,
        certificate_thumbprint=hashlib.sha1(
            cert.public_bytes(serialization.Encoding.DER)
        ).hexdigest(),
    )
    tokens = TokenProvider(config, http_client=graph_fake.session())

    with pytest.raises(PermanentError, match="invalid_client"):
        tokens.token(tokens.graph_scope)


def test_it_introspects_a_token_for_dovecot(graph_fake: GraphFake, tmp_path: Path) -> None:
    graph_fake.token_username = "committee@council.example"
    tokens = TokenProvider(graph_config(graph_fake, tmp_path), http_client=graph_fake.session())
    token = tokens.token(OUTLOOK_SCOPE)

    session = graph_fake.session()
    answer = session.post(graph_fake.introspect_url, data={"token": token}, timeout=5).json()
    unknown = session.post(graph_fake.introspect_url, data={"token": "forged"}, timeout=5).json()

    assert answer["active"] == "true"
    assert answer["username"] == "committee@council.example"
    assert unknown["active"] == "false"
