"""An HTTPS fake of Microsoft Graph and the identity endpoint that validates every body."""

from tests.graphfake.schema import Validator, Violation
from tests.graphfake.server import CLIENT_ID, CLIENT_SECRET, TENANT, Fault, GraphFake, graph_config

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "TENANT",
    "Fault",
    "GraphFake",
    "Validator",
    "Violation",
    "graph_config",
]
