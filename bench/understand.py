"""Throughput of read+classify+understand over the corpora, and accuracy per labelled field.

Run: .venv/bin/python bench/understand.py [--seconds N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from processor.classify import classify  # noqa: E402
from processor.decide import decide  # noqa: E402
from processor.models import Meeting, Situation  # noqa: E402
from processor.reading import read_message  # noqa: E402
from processor.understand import understand  # noqa: E402
from tests.corpus_labels import CORPUS, LABELS, MEETINGS, NOW, OWN, TZ  # noqa: E402

SHARED = Path(os.environ.get("PROCESSOR_SHARED_DIR", REPO.parent / "shared")) / "corpus"
FIELDS = ("intent", "mode", "meeting", "name", "party_size", "outcome")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum time per corpus")
    args = parser.parse_args()
    labels, tz, now, own, meetings = LABELS, TZ, NOW, OWN, MEETINGS

    ours = {p.name: p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))}
    _throughput("tests/corpus", list(ours.values()), meetings, tz, now, own, args.seconds)
    if SHARED.is_dir():
        shared = [
            p.read_bytes()
            for p in sorted(SHARED.rglob("*"))
            if p.is_file() and p.name not in ("LICENSE", "README.md")
        ]
        _throughput("shared corpus", shared, meetings, tz, now, own, args.seconds)
    _accuracy(labels["messages"], ours, meetings, tz, now, own)


def _throughput(
    label: str,
    messages: list[bytes],
    meetings: tuple[Meeting, ...],
    tz: ZoneInfo,
    now: datetime,
    own: str,
    seconds: float,
) -> None:
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for raw in messages:
            email = read_message(raw)
            if not classify(email, own).automated:
                understand(email, meetings, tz, now)
        count += len(messages)
    elapsed = time.perf_counter() - started
    megabytes = sum(map(len, messages)) / 1e6
    print(
        f"{label}: {len(messages)} messages ({megabytes:.1f} MB), {count} processed in "
        f"{elapsed:.2f}s = {count / elapsed:.0f} messages/s"
    )


def _accuracy(
    expected: dict[str, dict[str, Any]],
    raws: dict[str, bytes],
    meetings: tuple[Meeting, ...],
    tz: ZoneInfo,
    now: datetime,
    own: str,
) -> None:
    right: Counter[str] = Counter()
    wrong: dict[str, list[str]] = {field: [] for field in FIELDS}
    situation = Situation(now=now, meetings=meetings, registrations=(), occupancy={})
    for name, want in expected.items():
        email = read_message(raws[name])
        classification = classify(email, own)
        request = None if classification.automated else understand(email, meetings, tz, now)
        decision = decide(email, classification, request, situation)
        got = {
            "intent": request.intent if request else "automated",
            "mode": request.mode if request else None,
            "meeting": decision.meeting_id,
            "name": request.name if request else None,
            "party_size": request.party_size if request else None,
            "outcome": decision.outcome,
        }
        for field in FIELDS:
            if got[field] == want[field]:
                right[field] += 1
            else:
                wrong[field].append(f"{name}: got {got[field]!r}, want {want[field]!r}")
    total = len(expected)
    print(f"accuracy over {total} labelled messages:")
    for field in FIELDS:
        print(f"  {field:<10} {right[field] / total:7.1%}")
        for line in wrong[field]:
            print(f"      {line}")


if __name__ == "__main__":
    main()
