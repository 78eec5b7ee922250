"""HTTPS sessions for Graph and the identity endpoint: the system store plus a private CA.

Kept apart from auth.py so that a process with no use for HTTP (the reply process
over plain SMTP) never imports requests.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import requests
import requests.adapters
import requests.utils

from processor.tls import env_bundle, trust_context


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
    """Verifies servers against one SSLContext per process: the system store, the
    private CA, and the bundle requests adds itself (the one REQUESTS_CA_BUNDLE or
    CURL_CA_BUNDLE names, or else certifi's).

    requests names that bundle for every pool, and urllib3 then loads it into the
    context again for every new connection, 20 ms each; the context holds it already."""

    def __init__(self, ca_file: Path | None) -> None:
        self._named = env_bundle() or os.environ.get("CURL_CA_BUNDLE")  # as requests reads
        bundle = self._named or requests.utils.DEFAULT_CA_BUNDLE_PATH
        self._context = trust_context(ca_file, "graph.ca_file", bundle=bundle)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["ssl_context"] = self._context
        super().init_poolmanager(*args, **kwargs)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        if self._named is not None and verify == self._named:
            verify = True  # not a pool of its own that loads the bundle again
        return super().send(request, stream, timeout, verify, cert, proxies)

    def cert_verify(self, conn: Any, url: str, verify: bool | str, cert: Any) -> None:
        super().cert_verify(conn, url, verify, cert)  # type: ignore[no-untyped-call]
        if verify is True:  # requests named certifi's bundle: in the context already
            conn.ca_certs = conn.ca_cert_dir = None


def default_session(ca_file: Path | None) -> requests.Session:
    """A Session trusting the system store, plus `ca_file` when configured and the
    bundle REQUESTS_CA_BUNDLE names, as the contract promises.

    `session.verify = ca_file` would not do: it replaces the system store, and requests
    lets REQUESTS_CA_BUNDLE override a Session's verify (psf/requests#3829).
    """
    session = requests.Session()
    session.mount("https://", _TrustAdapter(ca_file))
    return session
