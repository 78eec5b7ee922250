"""The README keeps up: every command and every outcome the CLI knows is documented."""

from __future__ import annotations

import argparse
from pathlib import Path

from processor.cli import build_parser
from processor.models import OUTCOMES

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def commands(parser: argparse.ArgumentParser) -> list[str]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(name)
                found += [f"{name} {inner}" for inner in commands(sub)]
    return found


def test_it_documents_every_command_in_the_readme() -> None:
    missing = [
        c
        for c in commands(build_parser())
        if f"attendance-processor {c}" not in README and f"] {c}" not in README
    ]
    assert missing == []


def test_it_names_every_outcome_in_the_readme() -> None:
    text = README.replace("_", " ").lower()
    assert [o for o in OUTCOMES if o.replace("_", " ") not in text] == []


def test_it_opens_the_readme_with_the_two_commands() -> None:
    code = README.split("```sh", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in code.strip().splitlines()] == [
        ["make", "demo"],
        ["make", "test"],
    ]
