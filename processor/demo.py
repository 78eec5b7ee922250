"""`attendance-processor demo`: the real worker over a bundled sample mailbox.

Copies the sample messages into a fresh Maildir under --out, writes the demo config
there (SQLite, replies as .eml files, Graph in dry-run), runs one cycle with the
clock fixed at DEMO_NOW so the output is the same every day, and prints the log.
"""

from __future__ import annotations

import os
import shutil
import sys
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path

from processor import stafflog
from processor.config import load_config
from processor.services import build_services
from processor.worker import run_once

DEMO_NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MARKER = ".attendance-processor-demo"


def prepare(out: Path) -> Path:
    """A fresh demo folder; only a folder an earlier demo made is ever removed."""
    if out.exists():
        if not (out / MARKER).exists():
            raise SystemExit(f"{out} exists and was not made by the demo; choose another --out")
        shutil.rmtree(out)
    bundle = resources.files("processor") / "sample"
    for sub in ("new", "cur", "tmp"):
        (out / "maildir" / sub).mkdir(parents=True)
    (out / MARKER).write_text("made by attendance-processor demo\n")
    samples = sorted(
        (p for p in (bundle / "mail").iterdir() if p.name.endswith(".eml")), key=lambda p: p.name
    )
    for index, sample in enumerate(samples):
        target = out / "maildir" / "new" / f"{1796000000 + index}.demo{index:02d}.localhost"
        target.write_bytes(sample.read_bytes())
        # Maildir order is delivery order: give each file its own mtime.
        os.utime(target, (1796000000 + index, 1796000000 + index))
    config = out / "config.toml"
    config.write_text((bundle / "config.toml").read_text())
    return config


def run_demo(out: Path) -> int:
    config = load_config(prepare(out))
    svc = build_services(config, clock=lambda: DEMO_NOW)
    try:
        report = run_once(svc)
        entries = stafflog.log_entries(svc.store)
    finally:
        svc.store.close()
    print(f"Demo: {report.seen} messages read from {out / 'maildir'}")
    print(
        f"  {report.decided} decided, {report.replies_sent} replies written to "
        f"{out / 'outbox'}, {report.calendar_changes} Teams changes as dry-run JSON in "
        f"{out / 'graph-requests'}, {report.filed} messages filed"
    )
    print()
    print(stafflog.as_table(entries))
    print()
    print(f"Try: attendance-processor --config {out / 'config.toml'} log --format json")
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    return 0
