"""`report`: one printable, self-contained HTML page in which residents' words stay inert."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

from processor.store import Store
from tests.staff_support import MEETING, offline_config, run_cli, seed

SCRIPT = "<script>alert(1)</script>"
CURLY = "{{ 7*7 }}"


class Tags(HTMLParser):
    """Every start tag and its attributes, as a browser would see them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


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
            name=f"Jane {SCRIPT}",
            outcome="confirmed",
            mode="online",
            status="confirmed",
            subject=f"Online {CURLY}",
        )
        seed(
            store,
            3,
            "hostile@residents.example",
            name=SCRIPT,
            outcome="referred",
            subject=f"{CURLY} {SCRIPT}",
            reason=f"Wants to speak about {SCRIPT} {CURLY}.",
            meeting_id=None,
        )
        seed(
            store,
            40,
            "later@residents.example",
            name="Late Larry",
            outcome="referred",
            subject="Bins",
            reason="Unrelated.",
            meeting_id=None,
        )
    finally:
        store.close()
    return config


def test_it_writes_one_self_contained_printable_page(tmp_path: Path) -> None:
    config = seeded(tmp_path)
    out = tmp_path / "report.html"

    result = run_cli(config, "report", "--output", str(out), "--meeting", MEETING)

    assert result.returncode == 0, result.stderr
    html = out.read_text(encoding="utf-8")
    parser = Tags()
    parser.feed(html)
    names = [tag for tag, _ in parser.tags]
    assert "script" not in names and "link" not in names and "img" not in names
    assert all("src" not in attrs and "href" not in attrs for _, attrs in parser.tags)
    assert "@media print" in html
    assert not re.search(r"https?://", html)
    assert "Bob Jones" in html and "wheelchair" in html
    assert re.search(r"In person \(2 people\)", html)


def test_it_shows_hostile_resident_text_literally(tmp_path: Path) -> None:
    config = seeded(tmp_path)
    out = tmp_path / "report.html"

    result = run_cli(config, "report", "--output", str(out))

    assert result.returncode == 0, result.stderr
    html = out.read_text(encoding="utf-8")
    assert SCRIPT not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert CURLY in html  # shown as typed, never evaluated
    assert html.count(CURLY) >= 3  # the subjects and the reason
    parser = Tags()
    parser.feed(html)
    assert "script" not in [tag for tag, _ in parser.tags]
    referred = html.split("Referred to staff", 1)[1].split("<h2>Log</h2>", 1)[0]
    assert "Wants to speak about &lt;script&gt;" in referred
    assert "hostile@residents.example" in referred


def test_it_counts_outcomes_and_keeps_to_the_date_range(tmp_path: Path) -> None:
    config = seeded(tmp_path)
    out = tmp_path / "report.html"

    # Seeds 1-3 arrive at 10:01-10:03 on 30 November; seed 40 at 10:40 the same day,
    # so a range ending on 29 November holds nothing and one on the 30th all four.
    empty = run_cli(config, "report", "--output", str(out), "--until", "2026-11-29")
    assert empty.returncode == 0, empty.stderr
    assert "No messages." in out.read_text(encoding="utf-8")

    full = run_cli(
        config, "report", "--output", str(out), "--since", "2026-11-30", "--until", "2026-11-30"
    )
    assert full.returncode == 0, full.stderr
    html = out.read_text(encoding="utf-8")
    assert "4 message(s)" in html
    assert re.search(r"<td>confirmed</td><td class=\"num\">2</td>", html)
    assert re.search(r"<td>referred</td><td class=\"num\">2</td>", html)
    assert "Late Larry" in html


def test_it_refuses_a_date_that_is_not_one(tmp_path: Path) -> None:
    config = offline_config(tmp_path)

    result = run_cli(config, "report", "--since", "last tuesday")

    assert result.returncode == 2
    assert "expected a date like 2026-12-10" in result.stderr
