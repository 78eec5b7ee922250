"""`attendees MEETING`: the door list, the online list and the waiting list, via the CLI."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from processor.store import Store
from tests.staff_support import MEETING, offline_config, run_cli, seed


def seeded(tmp_path: Path) -> Path:
    config = offline_config(tmp_path)
    store = Store(tmp_path / "store.sqlite3")
    try:
        seed(
            store,
            1,
            "bob@residents.example",
            name="Bob Jones",
            outcome="confirmed",
            mode="in_person",
            party_size=2,
            status="confirmed",
            access_needs=("wheelchair",),
        )
        seed(
            store,
            2,
            "jane@residents.example",
            name="Jane Smith",
            outcome="confirmed",
            mode="online",
            status="confirmed",
            access_needs=("hearing_loop",),
        )
        seed(
            store,
            3,
            "wait@residents.example",
            name="Wendy Wait",
            outcome="waitlisted",
            mode="in_person",
            party_size=3,
            status="waitlisted",
        )
        seed(
            store,
            4,
            "gone@residents.example",
            name="Carl Cancel",
            outcome="cancelled",
            mode="in_person",
            status="cancelled",
        )
        seed(
            store,
            5,
            "ann@residents.example",
            name=None,
            outcome="confirmed",
            mode="in_person",
            party_size=1,
            status="confirmed",
        )
    finally:
        store.close()
    return config


def test_it_prints_the_door_list_online_list_and_waiting_list_apart(tmp_path: Path) -> None:
    config = seeded(tmp_path)

    result = run_cli(config, "attendees", MEETING)

    assert result.returncode == 0, result.stderr
    door, rest = result.stdout.split("Online", 1)
    online, waiting = rest.split("Waiting list", 1)
    assert "In person, 3 people (2)" in door
    assert "Bob Jones" in door and "bob@residents.example" in door and "wheelchair" in door
    assert "ann@residents.example" in door
    assert "jane@residents.example" in online and "hearing loop" in online
    assert "Jane" not in door and "Bob" not in online
    assert "Wendy Wait" in waiting and "Wendy" not in door
    assert "Carl Cancel" not in result.stdout  # cancelled places are not on any list


def test_it_exports_the_lists_as_csv_with_one_row_per_person(tmp_path: Path) -> None:
    config = seeded(tmp_path)

    result = run_cli(config, "attendees", MEETING, "--format", "csv")

    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    by_sender = {row["sender"]: row for row in rows}
    assert set(by_sender) == {
        "bob@residents.example",
        "jane@residents.example",
        "wait@residents.example",
        "ann@residents.example",
    }
    assert by_sender["bob@residents.example"]["list"] == "door"
    assert by_sender["bob@residents.example"]["party_size"] == "2"
    assert by_sender["bob@residents.example"]["access_needs"] == "wheelchair"
    assert by_sender["jane@residents.example"]["list"] == "online"
    assert by_sender["wait@residents.example"]["list"] == "waitlisted"


def test_it_escapes_csv_cells_a_spreadsheet_would_run_as_formulas(tmp_path: Path) -> None:
    config = offline_config(tmp_path)
    store = Store(tmp_path / "store.sqlite3")
    hostile = {
        "eq@residents.example": '=HYPERLINK("http://evil.example","x")',
        "plus@residents.example": "+44 1234 567890",
        "minus@residents.example": "-2+3",
        "at@residents.example": "@SUM(A1:A9)",
    }
    try:
        for n, (sender, name) in enumerate(hostile.items(), start=1):
            seed(
                store,
                n,
                sender,
                name=name,
                outcome="confirmed",
                mode="in_person",
                status="confirmed",
            )
    finally:
        store.close()

    result = run_cli(config, "attendees", MEETING, "--format", "csv")

    assert result.returncode == 0, result.stderr
    rows = {row["sender"]: row for row in csv.DictReader(io.StringIO(result.stdout))}
    for sender, name in hostile.items():
        assert rows[sender]["name"] == "'" + name
    for line in result.stdout.splitlines()[1:]:
        for cell in next(csv.reader([line])):
            assert cell[:1] not in ("=", "+", "-", "@")


def test_it_names_the_known_meetings_when_given_an_unknown_one(tmp_path: Path) -> None:
    config = offline_config(tmp_path)

    result = run_cli(config, "attendees", "no-such-meeting")

    assert result.returncode == 1
    assert "unknown meeting 'no-such-meeting'" in result.stderr
    assert MEETING in result.stderr
