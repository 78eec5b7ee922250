"""One error family: adapters translate library exceptions into these."""

from __future__ import annotations


class ProcessorError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(ProcessorError):
    """The configuration is wrong; `key` is the dotted path of the culprit."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


class TransientError(ProcessorError):
    """Worth retrying later: a timeout, a dropped connection, throttling."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ProcessorError):
    """Retrying will not help: refer the item to staff with this message."""


class LockHeldError(ProcessorError):
    """Another worker holds the store's processing lock."""
