"""Named fault points for crash and failure tests, switched on by an environment variable.

`PROCESSOR_FAULTS="after_decision=kill"` makes the worker SIGKILL itself the first
time it passes that point; `understand=raise:<text>` raises there for messages whose
Message-ID contains <text>. Unset in production, each point costs one dict lookup.
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("PROCESSOR_FAULTS", "")
_FAULTS: dict[str, str] = dict(item.split("=", 1) for item in _SPEC.split(",") if "=" in item)


class InjectedFault(RuntimeError):
    """Raised at a fault point configured with `raise`."""


def point(name: str, subject: str = "") -> None:
    """Pass a named point: do nothing unless a test asked for a fault here."""
    action = _FAULTS.get(name)
    if action is None:
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action.startswith("raise") and action.partition(":")[2] in subject:
        raise InjectedFault(f"fault injected at {name}")
