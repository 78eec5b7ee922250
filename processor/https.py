"""HTTPS sessions for Graph and the identity endpoint: the system store plus a private CA.

Kept apart from auth.py so that a process with no use for HTTP (the reply process
over plain SMTP) never imports requests.
"""

from __future__ import annotations

import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any

import requests
import requests.adapters

from processor.errors import ConfigError


class TimedHttpClient:
    """msal's HttpClient over a requests.Session, with a timeout on every call."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.post(url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self._timeout)
        return self._session.get(url, **kwargs)

    def close(self) -> None:
        self._session.close()


class _TrustAdapter(requests.adapters.HTTPAdapter):
    """Verifies servers against an SSLContext (system store plus a private CA)."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)


def default_session(ca_file: Path | None) -> requests.Session:
    """A Session trusting the system store, plus `ca_file` when configured.

    `session.verify = ca_file` would not do: it replaces the system store, and requests
    lets REQUESTS_CA_BUNDLE override a Session's verify (psf/requests#3829). A CA bundle
    named by REQUESTS_CA_BUNDLE is still added per request, as the contract promises.
    """
    session = requests.Session()
    if ca_file is not None:
        session.mount("https://", _TrustAdapter(_trust_context(ca_file)))
    return session


@lru_cache(maxsize=4)
def _trust_context(ca_file: Path) -> ssl.SSLContext:
    """One context per CA file and process, shared by its sessions: loading the system
    store takes about 60 ms, and the worker has a session for tokens and one for Graph."""
    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError("graph.ca_file", f"cannot load CA certificate {ca_file}: {exc}") from exc
    return context
