"""App-only OAuth2 tokens (msal client credentials) for Graph and for IMAP/SMTP XOAUTH2."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from processor.config import GraphConfig
from processor.errors import ConfigError, PermanentError, TransientError

# msal and requests take a tenth of a second to import: only a process that asks for a
# token pays for them.
if TYPE_CHECKING:
    import msal
    import requests

# Exchange Online's resource for IMAP/SMTP XOAUTH2 with client credentials (learn.microsoft.com,
# "Authenticate an IMAP, POP or SMTP connection using OAuth", client credentials grant flow).
OUTLOOK_SCOPE = "https://outlook.office365.com/.default"

# msal validates authorities on these hosts through Microsoft's instance discovery;
# any other host (a sovereign-cloud proxy, the test fake) must skip that round trip.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoft.com",
        "login.windows.net",
        "login.microsoftonline.us",
        "login.partner.microsoftonline.cn",
        "login.chinacloudapi.cn",
        "login.microsoftonline.de",
        "sts.windows.net",
    }
)

# AADSTS codes that mean the app registration or its credential is wrong: retrying won't help.
_CREDENTIAL_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_scope", "invalid_request", "invalid_grant"}
)


def graph_scope(base_url: str) -> str:
    """The `.default` scope of the Graph host in `base_url` (app-only permissions)."""
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}/.default"


class TokenProvider:
    """One msal ConfidentialClientApplication per process; its cache serves repeat requests."""

    def __init__(self, config: GraphConfig, http_client: requests.Session | None = None) -> None:
        self._config = config
        self._session = http_client  # or a default one, made with the app
        self._app: msal.ConfidentialClientApplication | None = None
        self._lock = threading.Lock()

    @property
    def graph_scope(self) -> str:
        return graph_scope(self._config.base_url)

    def token(self, scope: str) -> str:
        """An access token for `scope` (e.g. graph_scope, OUTLOOK_SCOPE)."""
        import requests

        try:
            result = self._application().acquire_token_for_client(scopes=[scope])
        except requests.RequestException as exc:
            raise TransientError(f"identity endpoint unreachable: {exc}") from exc
        except ValueError as exc:  # a non-JSON answer, e.g. a proxy's error page
            raise TransientError(f"identity endpoint answered nonsense: {exc}") from exc
        if not isinstance(result, Mapping):
            raise TransientError("identity endpoint gave no answer")
        if "access_token" in result:
            return str(result["access_token"])
        raise _token_error(result, self._config)

    def _application(self) -> msal.ConfidentialClientApplication:
        with self._lock:
            if self._app is None:
                self._app = self._build()
            return self._app

    def _build(self) -> msal.ConfidentialClientApplication:
        import msal
        import requests

        from processor.https import TimedHttpClient, default_session

        config = self._config
        session = self._session or default_session(config.ca_file)
        host = (urlsplit(config.authority).hostname or "").lower()
        extra: dict[str, Any] = {}
        if host not in MICROSOFT_AUTHORITY_HOSTS:
            extra["instance_discovery"] = False
        credential = self._credential()
        try:
            # Building the app fetches the tenant's OpenID configuration over the network.
            return msal.ConfidentialClientApplication(
                config.client_id,
                client_credential=credential,
                authority=f"{config.authority}/{config.tenant_id}",
                http_client=TimedHttpClient(session, config.timeout),
                **extra,
            )
        except requests.RequestException as exc:
            raise TransientError(
                f"identity endpoint {config.authority} unreachable: {exc}"
            ) from exc
        except ValueError as exc:
            raise PermanentError(
                f"msal could not set up app {config.client_id!r}: {exc}. "
                "Check graph.tenant_id, graph.authority and the certificate file."
            ) from exc

    def _credential(self) -> str | dict[str, str]:
        config = self._config
        if config.certificate_file is None:
            return config.client_secret.reveal()
        password = (
            config.certificate_password.reveal() if config.certificate_password.configured else ""
        )
        if config.certificate_file.suffix.lower() in (".pfx", ".p12"):
            credential = {"private_key_pfx_path": str(config.certificate_file)}
        else:
            if not config.certificate_thumbprint:
                raise ConfigError(
                    "graph.certificate_thumbprint", "is required with a PEM certificate_file"
                )
            try:
                pem = config.certificate_file.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError("graph.certificate_file", f"cannot read: {exc}") from exc
            credential = {"private_key": pem, "thumbprint": config.certificate_thumbprint}
        if password:
            credential["passphrase"] = password
        return credential


def _token_error(result: Mapping[str, Any], config: GraphConfig) -> Exception:
    code = str(result.get("error", "unknown_error"))
    description = str(result.get("error_description", "")).splitlines()[0:1]
    detail = f"{code}: {description[0] if description else 'no description'}"
    if code in _CREDENTIAL_ERRORS:
        return PermanentError(
            f"the identity endpoint refused app {config.client_id!r} in tenant "
            f"{config.tenant_id!r} ({detail}). Check graph.client_id, the client secret or "
            "certificate, and that the app has admin-consented application permissions."
        )
    return TransientError(f"token request failed ({detail})")
