"""Named fault points for crash and failure tests, switched on by an environment variable.

`PROCESSOR_FAULTS="after_decision=kill"` makes the worker SIGKILL itself when it
passes that point; `after_send=kill:3` on the third pass; `understand=raise:<text>`
raises there for subjects (Message-IDs) containing <text>, `die:<text>` SIGKILLs
there for them (a message that crashes the worker every time), and `hang:<text>`
sleeps there for an hour. Unset in production,
each point costs one dict lookup.

A kill is the worker's death: in the reply process (reply_process.py) it takes the
worker down first, as a crash of the machine or the service would.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

POINTS = (
    "after_store_raw",
    "understand",
    "mid_decision",
    "after_decision",
    "after_calendar",
    "before_send",
    "after_send",
    "before_move",
)

_FAULTS: dict[str, str] = dict(
    item.split("=", 1) for item in os.environ.get("PROCESSOR_FAULTS", "").split(",") if "=" in item
)
_passes: Counter[str] = Counter()
_worker: int | None = None  # set in the reply process: the worker it sends for


class InjectedFault(RuntimeError):
    """Raised at a fault point configured with `raise`."""


def serve(worker: int) -> None:
    """This process works for `worker`: a kill here kills it too."""
    global _worker
    _worker = worker


def _kill() -> None:
    if _worker is not None:
        os.kill(_worker, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def point(name: str, subject: str = "") -> None:
    """Pass a named point: do nothing unless a test asked for a fault here."""
    action = _FAULTS.get(name)
    if action is None:
        return
    verb, _, argument = action.partition(":")
    if verb == "kill":
        _passes[name] += 1
        if _passes[name] >= int(argument or 1):
            _kill()
    elif verb == "die" and argument in subject:
        _kill()
    elif verb == "raise" and argument in subject:
        raise InjectedFault(f"fault injected at {name}")
    elif verb == "hang" and argument in subject:
        time.sleep(3600)
