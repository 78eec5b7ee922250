"""Sending replies through Graph sendMail in MIME form, so our threading headers survive."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from email.policy import SMTP
from urllib.parse import quote

from processor.auth import TokenProvider
from processor.config import Config
from processor.errors import PermanentError
from processor.graph import GraphClient
from processor.ports import Connection, Transport

# sendMail in MIME form takes at most 4 MB of request body
# (learn.microsoft.com/graph/api/user-sendmail, "send message in MIME format").
MAX_MIME_BYTES = 4 * 1024 * 1024


class GraphConnection:
    """One cycle's sending: each message is one sendMail request."""

    def __init__(self, client: GraphClient, sender: str) -> None:
        self._client = client
        self._user = quote(sender, safe="@")

    def send(self, message: EmailMessage) -> None:
        raw = message.as_bytes(policy=SMTP)
        self.send_raw(raw, sender="", recipient="", message_id=str(message["Message-ID"]))

    def send_raw(
        self,
        raw: bytes,
        *,
        sender: str,
        recipient: str,
        message_id: str,
        before_content: Callable[[], None] | None = None,
    ) -> None:
        # The JSON form would rebuild the message and drop In-Reply-To, References and
        # Auto-Submitted; the MIME form sends our bytes as they are (recipients from
        # its header). Exchange saves a copy in Sent Items (MIME form cannot turn that
        # off), which find_sent relies on.
        raw = base64.b64encode(raw)
        if len(raw) > MAX_MIME_BYTES:
            raise PermanentError(f"message is {len(raw)} bytes encoded; sendMail takes 4 MB")
        if before_content is not None:
            before_content()
        self._client.request(
            "POST",
            f"/users/{self._user}/sendMail",
            data=raw,
            headers={"Content-Type": "text/plain"},
        )


class GraphTransport:
    """The Transport that sends as `sender` (the committee mailbox) through Graph."""

    def __init__(self, client: GraphClient, sender: str) -> None:
        self._client = client
        self._sender = sender

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        # HTTP needs no session set-up; the context keeps the Transport protocol's shape.
        yield GraphConnection(self._client, self._sender)

    def find_sent(self, internet_message_id: str) -> bool:
        """Whether Sent Items holds a message with this Message-ID (did a send land?)."""
        literal = internet_message_id.replace("'", "''")  # OData string literal quoting
        response = self._client.request(
            "GET",
            f"/users/{quote(self._sender, safe='@')}/mailFolders/sentitems/messages",
            params={"$filter": f"internetMessageId eq '{literal}'", "$select": "id"},
        )
        return bool(response.json().get("value"))


def build_graph_transport(config: Config, tokens: TokenProvider | None = None) -> Transport:
    """smtp.kind = "graph": send as the committee address with the Graph app credentials."""
    client = GraphClient(config.graph, tokens or TokenProvider(config.graph))
    return GraphTransport(client, config.committee.address)
