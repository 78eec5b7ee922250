"""Pytest fixtures: `graph_fake`, the HTTPS Graph + identity fake; bad bodies fail the test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.graphfake import GraphFake, Validator


@pytest.fixture(scope="session")
def graph_fake_server(
    shared_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GraphFake]:
    schema = json.loads((shared_dir / "graph" / "v1.0-types.json").read_text(encoding="utf-8"))
    zones_doc = json.loads(
        (shared_dir / "graph" / "windows-timezones.json").read_text(encoding="utf-8")
    )
    zones: dict[str, str] = zones_doc["windowsToIana"]
    ca = trustme.CA()
    ca_file = tmp_path_factory.mktemp("graphfake") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    fake = GraphFake(Validator(schema, zones), zones, ca, ca_file)
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def graph_fake(graph_fake_server: GraphFake) -> Iterator[GraphFake]:
    """A clean fake per test; teardown fails the test if any body broke the Graph schema."""
    graph_fake_server.reset()
    yield graph_fake_server
    errors = graph_fake_server.validation_errors()
    if errors:
        graph_fake_server.clear_violations()
        pytest.fail(
            "the Graph fake received invalid request bodies:\n"
            + "\n".join(f"  {error}" for error in errors),
            pytrace=False,
        )
