"""The fake identity endpoint: OpenID discovery, client-credentials tokens, introspection."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from tests.graphfake.http import Call, Reply

if TYPE_CHECKING:
    from tests.graphfake.server import GraphFake


@dataclass(frozen=True)
class Client:
    """An app registration: a secret, or a certificate (PEM) whose key signs assertions."""

    client_id: str
    secret: str | None = None
    certificate_pem: bytes | None = None


@dataclass(frozen=True)
class Token:
    client_id: str
    scope: str
    expires: float
    username: str | None  # for introspection (Dovecot's oauth2 passdb)


def _oauth_error(status: int, error: str, description: str) -> Reply:
    return Reply(
        status,
        {
            "error": error,
            "error_description": description,
            "error_codes": [int(code) for code in re.findall(r"^AADSTS(\d+)", description)],
            "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": secrets.token_hex(8),
            "correlation_id": secrets.token_hex(8),
        },
    )


def openid_configuration(fake: GraphFake, call: Call, tenant: str) -> Reply:
    if tenant != fake.tenant:
        return _oauth_error(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found.")
    base = f"{fake.authority}/{tenant}"
    return Reply(
        200,
        {
            "issuer": f"{fake.authority}/{tenant}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "token id_token", "token"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "introspection_endpoint": fake.introspect_url,
        },
    )


def token(fake: GraphFake, call: Call, tenant: str) -> Reply:
    form = {k: v[0] for k, v in parse_qs(call.body.decode("utf-8")).items()}
    if tenant != fake.tenant:
        return _oauth_error(400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found.")
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "AADSTS70003: only client_credentials")
    client = fake.clients.get(form.get("client_id", ""))
    if client is None:
        return _oauth_error(
            400,
            "unauthorized_client",
            f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not "
            f"found in the directory '{tenant}'.",
        )
    if not _authenticated(client, form, f"{fake.authority}/{tenant}/oauth2/v2.0/token"):
        return _oauth_error(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
    scope = form.get("scope", "")
    scopes = scope.split()
    # Client credentials take exactly one resource's `.default` scope.
    if len([s for s in scopes if s.endswith("/.default")]) != 1:
        return _oauth_error(
            400,
            "invalid_scope",
            f"AADSTS1002012: The provided value for scope {scope} is not valid.",
        )
    resource = next(s for s in scopes if s.endswith("/.default"))
    access_token = secrets.token_urlsafe(24)
    with fake.lock:
        fake.tokens[access_token] = Token(
            client.client_id, resource, time.time() + 3599, fake.token_username
        )
    return Reply(
        200,
        {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access_token,
        },
    )


def _authenticated(client: Client, form: dict[str, str], audience: str) -> bool:
    if "client_secret" in form:
        return client.secret is not None and secrets.compare_digest(
            form["client_secret"], client.secret
        )
    if (
        form.get("client_assertion_type")
        == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ):
        return client.certificate_pem is not None and _assertion_ok(
            form.get("client_assertion", ""), client, audience
        )
    return False


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _assertion_ok(assertion: str, client: Client, audience: str) -> bool:
    """Checks a private_key_jwt assertion as Entra does: x5t/x5t#S256, signature, claims."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    assert client.certificate_pem is not None
    try:
        head, payload, signature = assertion.split(".")
        header: dict[str, Any] = json.loads(_b64url(head))
        claims: dict[str, Any] = json.loads(_b64url(payload))
        cert = x509.load_pem_x509_certificate(client.certificate_pem)
        der = cert.public_bytes(serialization.Encoding.DER)
        thumbs = {
            "x5t": base64.urlsafe_b64encode(hashlib.sha1(der).digest()).rstrip(b"=").decode(),
            "x5t#S256": base64.urlsafe_b64encode(hashlib.sha256(der).digest())
            .rstrip(b"=")
            .decode(),
        }
        if not any(str(header.get(k, "")).rstrip("=") == v for k, v in thumbs.items()):
            return False
        key = cert.public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            return False
        algorithm = hashes.SHA256()
        scheme: padding.AsymmetricPadding = (
            padding.PSS(padding.MGF1(algorithm), padding.PSS.DIGEST_LENGTH)
            if header.get("alg") == "PS256"
            else padding.PKCS1v15()
        )
        key.verify(_b64url(signature), f"{head}.{payload}".encode(), scheme, algorithm)
    except (ValueError, InvalidSignature):
        return False
    return (
        claims.get("iss") == client.client_id
        and claims.get("sub") == client.client_id
        and claims.get("aud") == audience
        and float(claims.get("exp", 0)) > time.time()
    )


def introspect(fake: GraphFake, call: Call) -> Reply:
    """RFC 7662-ish, as Dovecot's oauth2 passdb reads it (active + username)."""
    value = call.query.get("token")
    if value is None and call.body:
        value = parse_qs(call.body.decode("utf-8")).get("token", [None])[0]
    auth = call.header("authorization") or ""
    if value is None and auth.lower().startswith("bearer "):
        value = auth[7:]
    if value is None and call.path.startswith("/introspect/"):
        value = call.path.removeprefix("/introspect/")
    with fake.lock:
        found = fake.tokens.get(value or "")
    if found is None or found.expires < time.time():
        return Reply(200, {"active": "false"})
    return Reply(
        200,
        {
            "active": "true",
            "username": found.username or "",
            "client_id": found.client_id,
            "scope": found.scope,
        },
    )
