"""The fake's HTTP plumbing: a received request, a reply, Graph's error envelope."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Call:
    """One request the fake received, as the request log keeps it."""

    method: str
    path: str  # without the query string
    query: dict[str, str]
    headers: dict[str, str]  # names lower-case
    body: bytes
    port: int = 0

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Reply:
    status: int
    body: Any = None  # dict/list -> JSON; bytes -> as is; None -> empty
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> tuple[bytes, dict[str, str]]:
        headers = dict(self.headers)
        if self.body is None:
            return b"", headers
        if isinstance(self.body, bytes):
            return self.body, headers
        headers.setdefault("Content-Type", "application/json; odata.metadata=minimal")
        return json.dumps(self.body).encode("utf-8"), headers


def graph_error(
    call: Call, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Reply:
    """Graph's error envelope (learn.microsoft.com/graph/errors)."""
    request_id = str(uuid.uuid4())
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": call.header("client-request-id") or request_id,
            },
        }
    }
    return Reply(status, body, {"request-id": request_id, **(headers or {})})
