"""The trust store of every TLS connection: the system's, plus the private CAs given.

Loading the system store takes about 20 ms of CPU, and a cycle opens several
connections (IMAP, SMTP, Graph and its token endpoint; the reply process its own
IMAP sessions), so a process builds each context once and shares it between those
connections and threads, which an SSLContext allows.

Each config key gets a context of its own, never shared with another kind of
connection: urllib3 sets options on the context it is handed (its verify mode, and in
some setups `check_hostname`), which must not leak into the IMAP or SMTP sessions.
"""

from __future__ import annotations

import os
import ssl
from functools import lru_cache
from pathlib import Path

from processor.errors import ConfigError

# The variable the contract names for adding a private CA (PRODUCT.md), beside the
# config's own `*.ca_file` keys; OpenSSL itself reads SSL_CERT_FILE and SSL_CERT_DIR.
BUNDLE_VARIABLE = "REQUESTS_CA_BUNDLE"


def env_bundle() -> str | None:
    """The CA bundle REQUESTS_CA_BUNDLE names, if any."""
    return os.environ.get(BUNDLE_VARIABLE) or None


@lru_cache(maxsize=16)
def trust_context(ca_file: Path | None, key: str, *, bundle: str | None) -> ssl.SSLContext:
    """The system store, plus `ca_file` (the config's `key`) and `bundle` (as a rule
    `env_bundle()`) when given; built once per process for each key, file and bundle.

    A CA file that cannot be loaded is a ConfigError naming its key, or the variable.
    """
    context = ssl.create_default_context()  # SSL_CERT_FILE and SSL_CERT_DIR honoured
    system = ssl.get_default_verify_paths().cafile
    for path, source in ((ca_file, key), (bundle, BUNDLE_VARIABLE)):
        if path is None or _same_file(path, system):
            continue  # often so: REQUESTS_CA_BUNDLE names the system's bundle
        try:
            context.load_verify_locations(cafile=str(path))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(source, f"cannot load CA file {path}: {exc}") from exc
    return context


def _same_file(path: Path | str, other: str | None) -> bool:
    try:
        return other is not None and os.path.samefile(path, other)
    except OSError:
        return False
