"""The store: one worker at a time, and a dead worker never leaves it locked."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from processor.errors import LockHeldError
from processor.store import Store


def test_it_lets_only_one_worker_hold_the_lock(tmp_path: Path) -> None:
    first, second = Store(tmp_path / "s.sqlite3"), Store(tmp_path / "s.sqlite3")
    first.acquire_lock()
    with pytest.raises(LockHeldError, match="locked by worker"):
        second.acquire_lock()
    first.release_lock()
    second.acquire_lock()
    second.close()
    first.close()


def test_it_frees_the_lock_of_a_killed_worker(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from processor.store import Store; "
            f"s = Store(Path({str(path)!r})); s.acquire_lock(); "
            "print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    store = Store(path)
    with pytest.raises(LockHeldError):
        store.acquire_lock()
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    deadline = time.monotonic() + 5
    while True:
        try:
            store.acquire_lock()
            break
        except LockHeldError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    store.close()
