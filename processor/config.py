"""The configuration: TOML in, one validated frozen `Config` out, errors naming the key.

Every key is declared once below with its type, default and help text; the loader
rejects unknown keys and wrong types, and `tests/test_config.py` fails when
`config.example.toml` leaves a declared key undocumented.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from processor.deadlines import parse_rule
from processor.deadlines import resolve as resolve_deadline
from processor.errors import ConfigError
from processor.models import Meeting

Security = Literal["ssl", "starttls", "none"]
Auth = Literal["password", "oauth2"]


@dataclass(frozen=True)
class Secret:
    """A secret named by an environment variable or a file; read only when used."""

    key: str  # config path reported when it cannot be read, e.g. "mailbox.password_env"
    env: str | None = None
    file: Path | None = None

    @property
    def configured(self) -> bool:
        return bool(self.env or self.file)

    def reveal(self) -> str:
        if self.file is not None:
            try:
                return self.file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigError(self.key, f"cannot read secret file {self.file}: {exc}") from exc
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(self.key, f"environment variable {self.env} is not set")
            return value
        raise ConfigError(self.key, "no secret configured (set *_env or *_file)")


@dataclass(frozen=True)
class MailboxConfig:
    kind: Literal["imap", "maildir"]
    host: str
    port: int
    security: Security
    username: str
    auth: Auth
    password: Secret
    folder: str
    processed_folder: str
    review_folder: str
    sent_folder: str
    path: Path | None
    ca_file: Path | None
    timeout: float
    max_message_bytes: int
    fetch_chunk: int
    idle: bool
    partial_fetch_bytes: int = 1_000_000


@dataclass(frozen=True)
class SmtpConfig:
    kind: Literal["smtp", "graph", "file"]
    host: str
    port: int
    security: Security
    username: str
    auth: Auth
    password: Secret
    path: Path | None
    ca_file: Path | None
    timeout: float
    server_files_sent: bool = False


@dataclass(frozen=True)
class GraphConfig:
    enabled: bool
    dry_run: bool
    dry_run_path: Path
    tenant_id: str
    client_id: str
    client_secret: Secret
    certificate_file: Path | None
    certificate_thumbprint: str
    certificate_password: Secret
    authority: str
    base_url: str
    organiser: str
    ca_file: Path | None
    timeout: float
    max_retry_after: float


@dataclass(frozen=True)
class CommitteeConfig:
    name: str
    address: str
    timezone: ZoneInfo
    contact: str  # whom residents ask about access needs
    replies_per_sender_per_day: int

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2] or "localhost"


@dataclass(frozen=True)
class StorageConfig:
    path: Path


@dataclass(frozen=True)
class WorkerConfig:
    poll_seconds: float
    understand_timeout: float
    max_attempts: int
    reminder_hours: float
    digest_time: time | None = None
    digest_to: str = ""
    reply_process_from: int = 100


@dataclass(frozen=True)
class Config:
    source: Path | None
    mailbox: MailboxConfig
    smtp: SmtpConfig
    graph: GraphConfig
    committee: CommitteeConfig
    meetings: tuple[Meeting, ...]
    storage: StorageConfig
    worker: WorkerConfig

    def meeting(self, meeting_id: str | None) -> Meeting | None:
        return next((m for m in self.meetings if m.id == meeting_id), None)


# --- declarations ---------------------------------------------------------------------

_REQUIRED = object()


@dataclass(frozen=True)
class Key:
    type: str  # "str", "int", "float", "bool", "path", "datetime", "deadline", "choice"
    default: Any
    help: str
    choices: tuple[str, ...] = ()


def _k(type_: str, default: Any, help_: str, choices: tuple[str, ...] = ()) -> Key:
    return Key(type_, default, help_, choices)


SECURITY = ("ssl", "starttls", "none")
AUTH = ("password", "oauth2")

SCHEMA: dict[str, dict[str, Key]] = {
    "mailbox": {
        "kind": _k("choice", "imap", "Where requests arrive.", ("imap", "maildir")),
        "host": _k("str", "", "IMAP server host name."),
        "port": _k("int", 0, "IMAP port; 0 picks 993 for ssl, 143 otherwise."),
        "security": _k("choice", "ssl", "Transport security.", SECURITY),
        "username": _k("str", "", "IMAP login (the committee mailbox)."),
        "auth": _k("choice", "password", "password or oauth2 (XOAUTH2 via msal).", AUTH),
        "password_env": _k("str", "", "Environment variable holding the IMAP password."),
        "password_file": _k("path", None, "File holding the IMAP password."),
        "folder": _k("str", "INBOX", "Folder to read requests from."),
        "processed_folder": _k("str", "Processed", "Folder for handled messages."),
        "review_folder": _k("str", "Review", "Folder for messages referred to staff."),
        "sent_folder": _k("str", "Sent", "Folder holding copies of our replies."),
        "path": _k("path", None, "Maildir directory (kind = maildir)."),
        "ca_file": _k("path", None, "Extra CA certificate (PEM) to trust."),
        "timeout": _k("float", 30.0, "Socket timeout in seconds."),
        "max_message_bytes": _k("int", 50_000_000, "Larger messages are referred to staff unread."),
        "partial_fetch_bytes": _k(
            "int", 1_000_000, "Larger messages are read without their attachments."
        ),
        "fetch_chunk": _k("int", 100, "UIDs per FETCH command."),
        "idle": _k("bool", False, "Wait in IMAP IDLE between polls when supported."),
    },
    "smtp": {
        "kind": _k("choice", "smtp", "How replies leave.", ("smtp", "graph", "file")),
        "host": _k("str", "", "SMTP server host name."),
        "port": _k("int", 0, "SMTP port; 0 picks 465 for ssl, 587 starttls, 25 none."),
        "security": _k("choice", "starttls", "Transport security.", SECURITY),
        "username": _k("str", "", "SMTP login; empty for no login."),
        "auth": _k("choice", "password", "password or oauth2 (XOAUTH2 via msal).", AUTH),
        "password_env": _k("str", "", "Environment variable holding the SMTP password."),
        "password_file": _k("path", None, "File holding the SMTP password."),
        "path": _k("path", None, "Folder for .eml files (kind = file)."),
        "ca_file": _k("path", None, "Extra CA certificate (PEM) to trust."),
        "timeout": _k("float", 30.0, "Socket timeout in seconds."),
        "server_files_sent": _k(
            "bool",
            False,
            "The server files each sent message in Sent (Exchange Online does); replies then "
            "go out while the worker is still deciding.",
        ),
    },
    "graph": {
        "enabled": _k("bool", False, "Add online attendees to a Teams event."),
        "dry_run": _k("bool", False, "Write Graph requests as JSON files, send nothing."),
        "dry_run_path": _k("path", Path("graph-dry-run"), "Folder for dry-run JSON files."),
        "tenant_id": _k("str", "", "Entra ID tenant id."),
        "client_id": _k("str", "", "App registration (client) id."),
        "client_secret_env": _k("str", "", "Environment variable holding the client secret."),
        "client_secret_file": _k("path", None, "File holding the client secret."),
        "certificate_file": _k("path", None, "PEM private key + certificate, or a PFX."),
        "certificate_thumbprint": _k("str", "", "SHA-1 thumbprint of the PEM certificate."),
        "certificate_password_env": _k("str", "", "Environment variable: PFX/PEM password."),
        "authority": _k("str", "https://login.microsoftonline.com", "Identity authority."),
        "base_url": _k("str", "https://graph.microsoft.com/v1.0", "Graph API base URL."),
        "organiser": _k("str", "", "Mailbox whose calendar holds the Teams events."),
        "ca_file": _k("path", None, "Extra CA certificate (PEM) to trust."),
        "timeout": _k("float", 30.0, "HTTP timeout in seconds."),
        "max_retry_after": _k("float", 30.0, "Longest Retry-After honoured inline (s)."),
    },
    "committee": {
        "name": _k("str", _REQUIRED, "The committee's name, as residents know it."),
        "address": _k("str", _REQUIRED, "The published address; replies come from it."),
        "timezone": _k("str", "Europe/London", "IANA time zone of the meetings."),
        "contact": _k("str", "", "Whom to contact about access needs (default: address)."),
        "replies_per_sender_per_day": _k("int", 5, "Reply budget per sender (loop guard)."),
    },
    "meetings": {
        "id": _k("str", _REQUIRED, "Stable id, used in the log and the CLI."),
        "title": _k("str", _REQUIRED, "Title, as in the published agenda."),
        "start": _k("datetime", _REQUIRED, "Start, local time of committee.timezone."),
        "end": _k("datetime", _REQUIRED, "End, local time of committee.timezone."),
        "venue": _k("str", "Council Chamber", "Where the in-person meeting is held."),
        "in_person_capacity": _k("int", 0, "Seats for the public (party sizes count)."),
        "online_capacity": _k("int", 0, "Online places (people)."),
        "registration_closes": _k(
            "deadline", None, 'Last moment to register, or a rule: "12:00, 3 working days before".'
        ),
        "teams_event_id": _k("str", "", "Adopt this existing Graph event id."),
    },
    "storage": {
        "path": _k("path", Path("attendance.sqlite3"), "SQLite database file."),
    },
    "worker": {
        "poll_seconds": _k("float", 60.0, "Seconds between mailbox polls."),
        "understand_timeout": _k("float", 10.0, "Time limit for understanding a message (s)."),
        "max_attempts": _k("int", 8, "Attempts before a side effect is referred to staff."),
        "reminder_hours": _k("float", 24.0, "Remind confirmed residents this long before; 0: off."),
        "digest_time": _k("str", "", 'Send staff the daily digest at this local time ("08:00").'),
        "digest_to": _k("str", "", "Where the digest goes (default: committee.contact)."),
        "reply_process_from": _k(
            "int",
            100,
            "Plain SMTP: a cycle of at least this many messages sends replies from a "
            "second process while it decides; 0: never.",
        ),
    },
}


def _convert(path: str, key: Key, value: Any, base: Path) -> Any:
    if key.type == "str":
        if not isinstance(value, str):
            raise ConfigError(path, f"expected a string, got {type(value).__name__}")
        return value
    if key.type == "choice":
        if value not in key.choices:
            raise ConfigError(path, f"expected one of {', '.join(key.choices)}, got {value!r}")
        return value
    if key.type == "bool":
        if not isinstance(value, bool):
            raise ConfigError(path, f"expected true or false, got {value!r}")
        return value
    if key.type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(path, f"expected a whole number, got {value!r}")
        if value < 0:
            raise ConfigError(path, f"must not be negative, got {value}")
        return value
    if key.type == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(path, f"expected a number, got {value!r}")
        if value < 0:
            raise ConfigError(path, f"must not be negative, got {value}")
        return float(value)
    if key.type == "path":
        if not isinstance(value, str) or not value:
            raise ConfigError(path, f"expected a path string, got {value!r}")
        p = Path(os.path.expanduser(value))
        return p if p.is_absolute() else base / p
    if key.type == "deadline" and isinstance(value, str) and parse_rule(value) is not None:
        return value
    if key.type in ("datetime", "deadline"):
        if isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value)
            except ValueError:
                pass
        if isinstance(value, date | time):
            raise ConfigError(path, "expected a date and time, e.g. 2026-12-10T18:30:00")
        raise ConfigError(path, f"expected a date and time, got {value!r}")
    raise AssertionError(key.type)


def _section(path: str, raw: Any, schema: dict[str, Key], base: Path) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(path, "expected a table")
    for name in raw:
        if name not in schema:
            raise ConfigError(f"{path}.{name}", "unknown key")
    out: dict[str, Any] = {}
    for name, key in schema.items():
        where = f"{path}.{name}"
        if name in raw:
            out[name] = _convert(where, key, raw[name], base)
        elif key.default is _REQUIRED:
            raise ConfigError(where, "is required")
        elif key.type == "path" and key.default is not None:
            out[name] = base / key.default
        else:
            out[name] = key.default
    return out


def _secret(section: str, values: dict[str, Any], stem: str) -> Secret:
    return Secret(
        key=f"{section}.{stem}_env",
        env=values.get(f"{stem}_env") or None,
        file=values.get(f"{stem}_file"),
    )


def _aware(path: str, value: datetime, tz: ZoneInfo) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


def _meetings(raw: Any, tz: ZoneInfo, base: Path) -> tuple[Meeting, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError("meetings", "expected [[meetings]] tables")
    seen: set[str] = set()
    meetings = []
    for index, item in enumerate(raw):
        path = f"meetings[{index}]"
        v = _section(path, item, SCHEMA["meetings"], base)
        if not v["id"].strip():
            raise ConfigError(f"{path}.id", "must not be empty")
        if v["id"] in seen:
            raise ConfigError(f"{path}.id", f"duplicate meeting id {v['id']!r}")
        seen.add(v["id"])
        start = _aware(f"{path}.start", v["start"], tz)
        end = _aware(f"{path}.end", v["end"], tz)
        if end <= start:
            raise ConfigError(f"{path}.end", "must be after start")
        closes = v["registration_closes"]
        if isinstance(closes, str):
            closes = resolve_deadline(closes, start, tz)
        meetings.append(
            Meeting(
                id=v["id"],
                title=v["title"],
                start=start,
                end=end,
                venue=v["venue"],
                in_person_capacity=v["in_person_capacity"],
                online_capacity=v["online_capacity"],
                registration_closes=_aware(f"{path}.registration_closes", closes, tz)
                if closes
                else None,
                teams_event_id=v["teams_event_id"] or None,
            )
        )
    return tuple(sorted(meetings, key=lambda m: m.start))


def _clock_time(key: str, text: str) -> time | None:
    if not text:
        return None
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ConfigError(key, f'expected a time of day such as "08:00", got {text!r}') from None


def _default_port(security: str, ssl: int, starttls: int, none: int) -> int:
    return {"ssl": ssl, "starttls": starttls, "none": none}[security]


def parse_config(data: Mapping[str, Any], source: Path | None = None) -> Config:
    """Validate a parsed TOML document; relative paths are relative to its folder."""
    base = source.parent if source is not None else Path.cwd()
    for name in data:
        if name not in SCHEMA:
            raise ConfigError(name, "unknown section")
    mb = _section("mailbox", data.get("mailbox"), SCHEMA["mailbox"], base)
    sm = _section("smtp", data.get("smtp"), SCHEMA["smtp"], base)
    gr = _section("graph", data.get("graph"), SCHEMA["graph"], base)
    if "committee" not in data:
        raise ConfigError("committee", "section is required")
    co = _section("committee", data.get("committee"), SCHEMA["committee"], base)
    st = _section("storage", data.get("storage"), SCHEMA["storage"], base)
    wk = _section("worker", data.get("worker"), SCHEMA["worker"], base)

    try:
        tz = ZoneInfo(co["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError("committee.timezone", f"unknown time zone {co['timezone']!r}") from exc
    if "@" not in co["address"]:
        raise ConfigError("committee.address", "expected an email address")

    if mb["kind"] == "imap" and not mb["host"]:
        raise ConfigError("mailbox.host", "is required when kind = imap")
    if mb["kind"] == "maildir" and mb["path"] is None:
        raise ConfigError("mailbox.path", "is required when kind = maildir")
    if sm["kind"] == "smtp" and not sm["host"]:
        raise ConfigError("smtp.host", "is required when kind = smtp")
    if sm["kind"] == "file" and sm["path"] is None:
        raise ConfigError("smtp.path", "is required when kind = file")
    graph_needed = (gr["enabled"] and not gr["dry_run"]) or sm["kind"] == "graph"
    if graph_needed:
        for name in ("organiser", "tenant_id", "client_id"):
            if not gr[name]:
                raise ConfigError(f"graph.{name}", "is required when Graph is used")
    if gr["enabled"] and not gr["organiser"]:
        raise ConfigError("graph.organiser", "is required when graph.enabled = true")
    if wk["poll_seconds"] <= 0:
        raise ConfigError("worker.poll_seconds", "must be greater than 0")

    return Config(
        source=source,
        mailbox=MailboxConfig(
            kind=mb["kind"],
            host=mb["host"],
            port=mb["port"] or _default_port(mb["security"], 993, 143, 143),
            security=mb["security"],
            username=mb["username"],
            auth=mb["auth"],
            password=_secret("mailbox", mb, "password"),
            folder=mb["folder"],
            processed_folder=mb["processed_folder"],
            review_folder=mb["review_folder"],
            sent_folder=mb["sent_folder"],
            path=mb["path"],
            ca_file=mb["ca_file"],
            timeout=mb["timeout"],
            max_message_bytes=mb["max_message_bytes"],
            partial_fetch_bytes=mb["partial_fetch_bytes"],
            fetch_chunk=max(1, mb["fetch_chunk"]),
            idle=mb["idle"],
        ),
        smtp=SmtpConfig(
            kind=sm["kind"],
            host=sm["host"],
            port=sm["port"] or _default_port(sm["security"], 465, 587, 25),
            security=sm["security"],
            username=sm["username"],
            auth=sm["auth"],
            password=_secret("smtp", sm, "password"),
            path=sm["path"],
            ca_file=sm["ca_file"],
            timeout=sm["timeout"],
            server_files_sent=sm["server_files_sent"],
        ),
        graph=GraphConfig(
            enabled=gr["enabled"],
            dry_run=gr["dry_run"],
            dry_run_path=gr["dry_run_path"],
            tenant_id=gr["tenant_id"],
            client_id=gr["client_id"],
            client_secret=_secret("graph", gr, "client_secret"),
            certificate_file=gr["certificate_file"],
            certificate_thumbprint=gr["certificate_thumbprint"],
            certificate_password=Secret(
                key="graph.certificate_password_env", env=gr["certificate_password_env"] or None
            ),
            authority=gr["authority"].rstrip("/"),
            base_url=gr["base_url"].rstrip("/"),
            organiser=gr["organiser"],
            ca_file=gr["ca_file"],
            timeout=gr["timeout"],
            max_retry_after=gr["max_retry_after"],
        ),
        committee=CommitteeConfig(
            name=co["name"],
            address=co["address"].lower(),
            timezone=tz,
            contact=co["contact"] or co["address"],
            replies_per_sender_per_day=co["replies_per_sender_per_day"],
        ),
        meetings=_meetings(data.get("meetings"), tz, base),
        storage=StorageConfig(path=st["path"]),
        worker=WorkerConfig(
            poll_seconds=wk["poll_seconds"],
            understand_timeout=wk["understand_timeout"],
            max_attempts=max(1, wk["max_attempts"]),
            reminder_hours=wk["reminder_hours"],
            digest_time=_clock_time("worker.digest_time", wk["digest_time"]),
            digest_to=wk["digest_to"],
            reply_process_from=wk["reply_process_from"],
        ),
    )


def load_config(path: Path) -> Config:
    """Read and validate a TOML file."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError("--config", f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc
    return parse_config(data, source=path.resolve())
