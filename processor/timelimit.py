"""A time limit for understanding one message, so a pathological email cannot stall the queue.

CPython cannot interrupt a thread, so the limit is a SIGALRM timer, which works in
the main thread only; the worker runs its cycles there (see worker.run_forever).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from processor.errors import PermanentError


class TimeLimitExceeded(PermanentError):
    """Understanding one message took longer than worker.understand_timeout."""


@contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise TimeLimitExceeded in the block after `seconds` (0, or off the main thread: none)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeLimitExceeded(f"{what} took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
