"""Config: every key documented, errors name the key, secrets never from the file."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from processor.config import SCHEMA, load_config, parse_config
from processor.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "config.example.toml"

MINIMAL = {
    "mailbox": {"kind": "maildir", "path": "mail"},
    "smtp": {"kind": "file", "path": "out"},
    "committee": {"name": "Committee", "address": "committee@example.org"},
}


def test_it_documents_every_declared_key_in_the_example() -> None:
    text = EXAMPLE.read_text()
    sections = re.split(r"^\[\[?(\w+)\]\]?\s*$", text, flags=re.M)
    documented: dict[str, str] = {}
    for name, body in zip(sections[1::2], sections[2::2], strict=True):
        documented[name] = documented.get(name, "") + body
    missing = [
        f"{section}.{key}"
        for section, keys in SCHEMA.items()
        for key in keys
        if not re.search(rf"^#?\s*{key}\s*=", documented.get(section, ""), flags=re.M)
    ]
    assert missing == []


def test_it_loads_the_example(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(EXAMPLE)
    assert config.meetings[0].id == "cdc-2026-12-10"
    assert config.meetings[0].start.tzinfo is not None
    assert config.mailbox.port == 993
    assert config.smtp.port == 587
    assert config.graph.client_secret.env == "GRAPH_CLIENT_SECRET"
    monkeypatch.setenv("GRAPH_CLIENT_SECRET", "s3cret")
    assert config.graph.client_secret.reveal() == "s3cret"


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"mailbox": {"kind": "maildir", "path": "m", "hostt": "x"}}, "mailbox.hostt"),
        ({"mailbox": {"kind": "imap"}}, "mailbox.host"),
        ({"mailbox": {"kind": "pop3"}}, "mailbox.kind"),
        ({"mailbox": {"kind": "maildir", "path": "m", "port": "993"}}, "mailbox.port"),
        ({"mailbox": {"kind": "maildir", "path": "m", "idle": "yes"}}, "mailbox.idle"),
        ({"committee": {"name": "C"}}, "committee.address"),
        (
            {"committee": {"name": "C", "address": "c@x.org", "timezone": "Mars/Base"}},
            "committee.timezone",
        ),
        ({"storage": {"path": 5}}, "storage.path"),
        ({"smtpp": {}}, "smtpp"),
        (
            {"meetings": [{"id": "a", "title": "T", "start": "2026-12-10T18:30:00"}]},
            "meetings[0].end",
        ),
        (
            {
                "meetings": [
                    {
                        "id": "a",
                        "title": "T",
                        "start": "2026-12-10T18:30:00",
                        "end": "2026-12-10T17:00:00",
                    }
                ]
            },
            "meetings[0].end",
        ),
        (
            {"meetings": [{"id": "a", "title": "T", "start": "soon", "end": "later"}]},
            "meetings[0].start",
        ),
        (
            {
                "meetings": [
                    {
                        "id": "a",
                        "title": "T",
                        "start": "2026-12-10T18:30:00",
                        "end": "2026-12-10T19:30:00",
                        "in_person_capacity": -1,
                    }
                ]
            },
            "meetings[0].in_person_capacity",
        ),
        ({"graph": {"enabled": True}}, "graph.organiser"),
        ({"graph": {"enabled": True, "organiser": "o@x.org", "tenant_id": "t"}}, "graph.client_id"),
    ],
)
def test_it_names_the_key_of_a_bad_value(change: dict[str, object], key: str) -> None:
    data = {**MINIMAL, **change}
    with pytest.raises(ConfigError) as caught:
        parse_config(data, Path("/srv/config.toml"))
    assert caught.value.key == key


def test_it_reads_secrets_from_files_and_says_which_key_is_missing(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    data = {
        **MINIMAL,
        "mailbox": {"kind": "imap", "host": "h", "password_file": str(secret)},
        "smtp": {"kind": "smtp", "host": "h", "password_env": "NO_SUCH_VAR_XYZ"},
    }
    config = parse_config(data, tmp_path / "c.toml")
    assert config.mailbox.password.reveal() == "hunter2"
    with pytest.raises(ConfigError) as caught:
        config.smtp.password.reveal()
    assert caught.value.key == "smtp.password_env"


def test_it_resolves_relative_paths_against_the_config_folder() -> None:
    config = parse_config(MINIMAL, Path("/srv/attendance/config.toml"))
    assert config.mailbox.path == Path("/srv/attendance/mail")
    assert config.storage.path == Path("/srv/attendance/attendance.sqlite3")


def test_it_exits_2_with_one_line_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text(EXAMPLE.read_text().replace("[storage]\n", "[storage]\npaht = 'x'\n"))
    result = subprocess.run(
        [sys.executable, "-m", "processor", "--config", str(bad), "log"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["config error: storage.paht: unknown key"]


def test_it_rejects_a_file_that_is_not_toml(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text("[mailbox\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad)
    assert caught.value.key == "--config"
    assert tomllib is not None


def test_it_turns_a_deadline_rule_into_a_time() -> None:
    meeting = {
        "id": "a",
        "title": "T",
        "start": "2026-12-07T18:30:00",
        "end": "2026-12-07T20:30:00",
        "registration_closes": "16:00 the working day before",
    }
    config = parse_config({**MINIMAL, "meetings": [meeting]}, Path("/srv/c.toml"))
    closes = config.meetings[0].registration_closes
    assert closes is not None
    assert closes.isoformat() == "2026-12-04T16:00:00+00:00"
    with pytest.raises(ConfigError) as caught:
        parse_config(
            {**MINIMAL, "meetings": [{**meeting, "registration_closes": "soonish"}]},
            Path("/srv/c.toml"),
        )
    assert caught.value.key == "meetings[0].registration_closes"
