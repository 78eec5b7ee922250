"""A real, private Dovecot 2.3 per test: temporary dir, free loopback port, started in ms."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
from imapclient import IMAPClient

from processor.config import MailboxConfig, Secret

DOVECOT = shutil.which("dovecot") or (
    "/usr/sbin/dovecot" if Path("/usr/sbin/dovecot").exists() else None
)
USERNAME = "committee@example.org"
PASSWORD = "secret"
START_TIMEOUT = 5.0
STOP_GRACE = 0.3

# Same as the shared test.conf template (its README explains each choice); embedded
# because a user's clone has no shared directory. @USERS@ lets non-root runs work.
CONFIG_TEMPLATE = """\
protocols = imap
listen = 127.0.0.1
base_dir = @DIR@/run
state_dir = @DIR@/run/state
log_path = @DIR@/dovecot.log
ssl = @SSL@
disable_plaintext_auth = no
# Tests log in wrongly on purpose: no need for the 2 s brute-force delay.
auth_failure_delay = 0
auth_mechanisms = plain login@MECHS@
mail_location = maildir:@DIR@/mail/%u
@USERS@
@EXTRA@
@OAUTH2_PASSDB@
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u @DIR@/users
}
userdb {
  driver = static
  args = uid=@UID@ gid=@GID@ home=@DIR@/mail/%u
}
service imap-login {
  inet_listener imap {
    port = @PORT@
    address = 127.0.0.1
  }
  inet_listener imaps {
    port = @SSL_PORT@
    address = 127.0.0.1
  }
}
service stats {
  unix_listener stats-reader {
    mode = 0666
  }
  unix_listener stats-writer {
    mode = 0666
  }
}
"""

# Dovecot POSTs the bearer token here and trusts the JSON answer (oauth2-passdb.conf).
OAUTH2_PASSDB = """\
passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = @DIR@/oauth2.conf
}
"""
OAUTH2_ARGS = """\
introspection_mode = post
introspection_url = @URL@
username_attribute = username
active_attribute = active
active_value = true
"""


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _greets(port: int) -> bool:
    """Whether an IMAP greeting comes: the master listens before its login processes
    run, and a SIGTERM in that gap leaves it hanging for seconds."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            return sock.recv(4).startswith(b"* OK")
    except OSError:
        return False


@dataclass
class Dovecot:
    """A running Dovecot: where it listens, who may log in, and helpers for tests."""

    dir: Path
    port: int
    ssl_port: int | None = None
    ca_file: Path | None = None  # set when started with TLS: trust this to reach it
    host: str = "127.0.0.1"
    username: str = USERNAME
    password: str = PASSWORD
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def conf(self) -> Path:
        return self.dir / "dovecot.conf"

    def log(self) -> str:
        path = self.dir / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> None:
        """Start the master in the foreground (so we own its pid) and wait for the port."""
        if self._process is not None:
            return
        assert DOVECOT is not None
        # Start-up errors go to stderr (a file: a pipe nobody reads could fill up).
        with (self.dir / "stderr.log").open("ab") as stderr:
            self._process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.conf)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # its own process group, whose id is the master's pid
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not _greets(self.port):
            if self._process.poll() is not None:
                self._process = None
                err = (self.dir / "stderr.log").read_text(errors="replace")
                raise RuntimeError(f"dovecot exited at start: {err}\n{self.log()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not listen within {START_TIMEOUT}s\n{self.log()}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Kill the master's process group (its id is the master pid) and wait."""
        process, self._process = self._process, None
        if process is None:
            return
        # Signalling the master alone makes it wait about a second for its children;
        # the whole group mostly stops at once, but now and then anvil lingers and
        # the master waits for it for seconds: a throwaway server may be killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=START_TIMEOUT)
        # The listener is gone once the master is; wait so a restart can bind again.
        deadline = time.monotonic() + START_TIMEOUT
        while _accepts(self.port) and time.monotonic() < deadline:
            time.sleep(0.01)

    def client(self) -> IMAPClient:
        """A logged-in IMAPClient, for tests to look into folders."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=5.0)
        client.login(self.username, self.password)
        return client

    def append(self, folder: str, raw: bytes, flags: tuple[bytes, ...] = ()) -> int:
        """Deliver one message to `folder` (created when missing); return its UID."""
        client = self.client()
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=flags)
            # Dovecot has UIDPLUS: "[APPENDUID <validity> <uid>] Append completed."
            return int(response.split(b"]")[0].split()[-1])
        finally:
            client.logout()

    def uids(self, folder: str) -> list[int]:
        """Every UID now in `folder` ([] when it does not exist)."""
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in client.search("ALL"))
        finally:
            client.logout()


def _identity() -> dict[str, str]:
    """Users Dovecot switches to: the usual ones as root, ourselves otherwise."""
    if os.geteuid() == 0:
        return {
            "@UID@": "nobody",
            "@GID@": grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name,
            "@USERS@": "",
        }
    me = pwd.getpwuid(os.getuid()).pw_name
    users = f"default_login_user = {me}\ndefault_internal_user = {me}"
    return {"@UID@": str(os.getuid()), "@GID@": str(os.getgid()), "@USERS@": users}


def _tls_files(root: Path) -> tuple[Path, Path, Path]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = root / "ca.pem", root / "cert.pem", root / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.private_key_pem.write_to_path(str(key_file))
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    key_file.chmod(0o600)
    return ca_file, cert_file, key_file


def build_dovecot(
    oauth2_introspection_url: str | None = None,
    imap_capability: str | None = None,
    tls: bool = False,
) -> Dovecot:
    """Write a config into a fresh world-reachable temporary dir and start Dovecot."""
    if DOVECOT is None:
        pytest.skip("dovecot is not installed (Debian: apt-get install dovecot-imapd)")
    # mkdtemp makes a 0700 dir; Dovecot's unprivileged login and mail processes
    # must traverse it, so open it up (the mail dir itself is 0777 below).
    root = Path(tempfile.mkdtemp(prefix="dovecot-test-"))
    root.chmod(0o755)
    (root / "run").mkdir()
    (root / "mail").mkdir()
    (root / "mail").chmod(0o777)
    (root / "users").write_text(f"{USERNAME}:{{PLAIN}}{PASSWORD}\n")
    extra: list[str] = []
    if imap_capability is not None:
        # Replaces the advertised post-login list: how tests hide MOVE or IDLE.
        extra.append(f"imap_capability = {imap_capability}")
    ssl_port, ca_file = 0, None
    if tls:
        ca_file, cert_file, key_file = _tls_files(root)
        extra += [f"ssl_cert = <{cert_file}", f"ssl_key = <{key_file}"]
        ssl_port = free_port()
    mechs, oauth2_passdb = "", ""
    if oauth2_introspection_url is not None:
        mechs = " xoauth2 oauthbearer"
        oauth2_passdb = OAUTH2_PASSDB
        (root / "oauth2.conf").write_text(OAUTH2_ARGS.replace("@URL@", oauth2_introspection_url))
    port = free_port()
    values = {
        **_identity(),
        "@SSL@": "yes" if tls else "no",
        "@MECHS@": mechs,
        "@EXTRA@": "\n".join(extra),
        "@OAUTH2_PASSDB@": oauth2_passdb,
        "@PORT@": str(port),
        "@SSL_PORT@": str(ssl_port),
    }
    text = CONFIG_TEMPLATE
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    text = text.replace("@DIR@", str(root))
    (root / "dovecot.conf").write_text(text)
    server = Dovecot(dir=root, port=port, ssl_port=ssl_port or None, ca_file=ca_file)
    server.start()
    return server


MakeDovecot = Callable[..., Dovecot]


@pytest.fixture
def make_dovecot() -> Iterator[MakeDovecot]:
    """Start Dovecots with options (oauth2 introspection URL, capabilities, TLS)."""
    started: list[Dovecot] = []

    def make(
        oauth2_introspection_url: str | None = None,
        imap_capability: str | None = None,
        tls: bool = False,
    ) -> Dovecot:
        server = build_dovecot(oauth2_introspection_url, imap_capability, tls)
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture
def dovecot(make_dovecot: MakeDovecot) -> Dovecot:
    """A fresh Dovecot with an empty mailbox for committee@example.org / secret."""
    return make_dovecot()


def mailbox_config(server: Dovecot, tmp_path: Path, **changes: object) -> MailboxConfig:
    """The worker's [mailbox] settings for this server (password from a file), changed."""
    secret = tmp_path / "imap-password"
    secret.write_text(server.password + "\n")
    config = MailboxConfig(
        kind="imap",
        host=server.host,
        port=server.port,
        security="none",
        username=server.username,
        auth="password",
        password=Secret(key="mailbox.password_file", file=secret),
        folder="INBOX",
        processed_folder="Processed",
        review_folder="Review",
        sent_folder="Sent",
        path=None,
        ca_file=None,
        timeout=5.0,
        max_message_bytes=15_000_000,
        fetch_chunk=100,
        idle=False,
    )
    return replace(config, **changes)  # type: ignore[arg-type]
