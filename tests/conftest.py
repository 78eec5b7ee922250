"""Shared fixtures. Server fixtures live in tests/plugins/, one module per real server."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.plugins.dovecot", "tests.plugins.smtpd", "tests.plugins.graphfake"]

REPO = Path(__file__).resolve().parents[1]
# The public fixtures and Graph schema sit beside the repository in CI; a user's
# clone has none, so tests that read them skip with the reason.
SHARED = Path(os.environ.get("PROCESSOR_SHARED_DIR", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "PRODUCT.md").is_file():
        pytest.skip(f"shared fixtures not found at {SHARED} (set PROCESSOR_SHARED_DIR)")
    return SHARED
