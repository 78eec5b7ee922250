"""The IMAP mailbox: the only module that speaks IMAP (through imapclient)."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from email.parser import BytesHeaderParser

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from processor import partial
from processor.config import MailboxConfig
from processor.errors import PermanentError, ProcessorError, TransientError
from processor.ports import Destination, MessageRef
from processor.tls import env_bundle, trust_context

log = logging.getLogger(__name__)

SEEN = b"\\Seen"
DELETED = b"\\Deleted"
# RFC 5530 response codes that say "try again later" rather than "this is wrong".
TRANSIENT_CODES = (b"[UNAVAILABLE]", b"[INUSE]", b"[LIMIT]", b"[SERVERBUG]")
# Exchange Online answers this when it throttles or a backend is moving; it clears.
EXCHANGE_NOT_CONNECTED = b"User is authenticated but not connected"
# A UID set per command at most this long: RFC 7162 section 4 asks clients to keep
# command lines under 8192 octets.
MAX_SET_CHARS = 4000


def _buffered(client: IMAPClient) -> bool:
    """Whether imaplib has read more from the server than it has parsed yet.

    imapclient's idle_check polls the socket. When a change was waiting as IDLE began,
    Dovecot sends it in the same packet as the "+ idling" continuation, so it sits in
    imaplib's read buffer and the poll never fires: the notice is missed until the next
    packet, up to a whole poll interval later (bench/latency.py caught it).
    """
    sock = client.socket()
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return bool(client._imap.file.peek(1))  # the buffer, or one non-blocking read
    except (BlockingIOError, ssl.SSLWantReadError):
        return False
    finally:
        sock.settimeout(timeout)


def uid_sets(uids: Iterable[int], most: int = MAX_SET_CHARS) -> Iterator[str]:
    """`uids` as RFC 3501 sequence sets ("3:7,9"), none longer than `most` characters.

    A range holds only UIDs given, every integer between its ends being one of them,
    so no other message (one that came in since, or one left \\Deleted) is ever named.
    A backlog's UIDs mostly run on: its moves are a command or two, not one a hundred.
    """
    ranges: list[str] = []
    length = 0
    for first, last in _runs(sorted(set(uids))):
        text = str(first) if first == last else f"{first}:{last}"
        if ranges and length + 1 + len(text) > most:
            yield ",".join(ranges)
            ranges, length = [], 0
        length += len(text) + (1 if ranges else 0)
        ranges.append(text)
    if ranges:
        yield ",".join(ranges)


def _runs(ordered: Sequence[int]) -> Iterator[tuple[int, int]]:
    """(first, last) of each run of consecutive integers in `ordered`."""
    start = 0
    for end in range(1, len(ordered) + 1):
        if end == len(ordered) or ordered[end] != ordered[end - 1] + 1:
            yield ordered[start], ordered[end - 1]
            start = end


def _chunks(refs: Sequence[MessageRef], size: int) -> Iterator[list[MessageRef]]:
    for start in range(0, len(refs), size):
        yield list(refs[start : start + size])


def _is_busy(exc: BaseException) -> bool:
    """Whether a NO/BAD answer means "later" rather than "never"."""
    text = str(exc).encode("utf-8", "replace")
    return EXCHANGE_NOT_CONNECTED in text or any(code in text for code in TRANSIENT_CODES)


class ImapMailbox:
    """A Mailbox over IMAP: connects on first use, keys are UIDs under UIDVALIDITY."""

    def __init__(
        self, config: MailboxConfig, token_provider: Callable[[], str] | None = None
    ) -> None:
        self._config = config
        self._token_provider = token_provider
        self._client: IMAPClient | None = None
        self._uidvalidity = ""
        self._listed_under = ""  # the UIDVALIDITY of the last listing: refs' validity
        self._known_folders: set[str] = set()  # checked to exist on this connection

    # --- Mailbox ----------------------------------------------------------------------

    def sync_token(self) -> str:
        self._connected()
        return self._uidvalidity

    def list_messages(self) -> list[MessageRef]:
        client = self._fresh()
        with self._translated("listing messages"):
            # UNDELETED: a message flagged \Deleted by the COPY fallback of move() but
            # not yet expunged has already been filed.
            uids = sorted(int(uid) for uid in client.search(["UNDELETED"]))
            refs: list[MessageRef] = []
            for start in range(0, len(uids), self._config.fetch_chunk):
                chunk = uids[start : start + self._config.fetch_chunk]
                data = client.fetch(chunk, ["RFC822.SIZE"])
                # A message expunged between SEARCH and FETCH is simply absent.
                refs += [
                    MessageRef(str(uid), int(data[uid][b"RFC822.SIZE"]))
                    for uid in chunk
                    if uid in data
                ]
        self._listed_under = self._uidvalidity
        return refs

    def fetch(self, refs: Sequence[MessageRef]) -> Iterator[tuple[MessageRef, bytes]]:
        for chunk in _chunks(refs, self._config.fetch_chunk):
            client = self._connected_for_refs()
            with self._translated("fetching messages"):
                # BODY.PEEK, not BODY: reading must not mark residents' mail \Seen.
                data = client.fetch([int(ref.key) for ref in chunk], ["BODY.PEEK[]"])
            for ref in chunk:
                body = data.get(int(ref.key), {}).get(b"BODY[]")
                if body is None:
                    log.warning("message UID %s has gone from %s", ref.key, self._config.folder)
                    continue
                yield ref, bytes(body)
            del data  # so at most one chunk is held while the next is fetched

    def fetch_header(self, ref: MessageRef) -> bytes:
        client = self._connected_for_refs()
        with self._translated("fetching a header"):
            data = client.fetch([int(ref.key)], ["BODY.PEEK[HEADER]"])
        header = data.get(int(ref.key), {}).get(b"BODY[HEADER]")
        if header is None:
            raise PermanentError(f"message UID {ref.key} has gone from {self._config.folder}")
        return bytes(header)

    def fetch_text_parts(self, ref: MessageRef) -> bytes:
        """The message without its attachments (see partial.py): BODYSTRUCTURE first."""
        client = self._connected_for_refs()
        uid = int(ref.key)
        with self._translated("reading a message's structure"):
            structure = client.fetch([uid], ["BODYSTRUCTURE"]).get(uid, {}).get(b"BODYSTRUCTURE")
            if structure is None:
                raise PermanentError(f"message UID {ref.key} has gone from {self._config.folder}")
            leaves = partial.sections(structure)
            items = ["BODY.PEEK[HEADER]"]
            for leaf in leaves:
                if leaf.wanted:
                    items += [f"BODY.PEEK[{leaf.number}.MIME]", f"BODY.PEEK[{leaf.number}]"]
            data = client.fetch([uid], items).get(uid, {})
        if not getattr(structure, "is_multipart", False):
            # A single-part message has no part header of its own: its header says it all.
            leaves = [
                partial.Section(leaf.number, leaf.content_type, leaf.size, False) for leaf in leaves
            ]
        parts = [
            (
                leaf,
                bytes(data.get(f"BODY[{leaf.number}.MIME]".encode()) or b""),
                bytes(data.get(f"BODY[{leaf.number}]".encode()) or b""),
            )
            for leaf in leaves
        ]
        return partial.assemble(bytes(data.get(b"BODY[HEADER]") or b""), parts)

    def move(self, refs: Sequence[MessageRef], destination: Destination) -> None:
        folder = (
            self._config.processed_folder
            if destination == "processed"
            else self._config.review_folder
        )
        client = self._connected_for_refs()
        with self._translated(f"moving messages to {folder}"):
            self._ensure_folder(client, folder)
            use_move = client.has_capability("MOVE")
            for uids in uid_sets(int(ref.key) for ref in refs):
                if use_move:
                    client.move(uids, folder)
                else:
                    self._copy_and_expunge(client, uids, folder)

    def close(self) -> None:
        client, self._client = self._client, None
        self._known_folders = set()
        if client is None:
            return
        try:
            client.logout()
        except (IMAPClientError, OSError) as exc:
            log.info("IMAP logout failed (%s); closing the socket", exc)
            with suppress(OSError):
                client.shutdown()

    # --- beyond the Protocol: sent copies and waiting -------------------------------

    def append_sent(self, *raws: bytes) -> None:
        """Keep copies of replies in the sent folder, marked \\Seen: one MULTIAPPEND.

        RFC 3502 makes the batch atomic: all of it is filed or none. A server without
        MULTIAPPEND gets one APPEND each.
        """
        if not raws:
            return
        client = self._connected()
        folder = self._config.sent_folder
        with self._translated(f"appending to {folder}"):
            if folder not in self._known_folders:  # one LIST per connection, not per reply
                self._ensure_folder(client, folder)
                self._known_folders.add(folder)
            if len(raws) > 1 and client.has_capability("MULTIAPPEND"):
                client.multiappend(folder, [{"msg": raw, "flags": [SEEN]} for raw in raws])
            else:
                for raw in raws:
                    client.append(folder, raw, flags=[SEEN])

    def find_in_sent(self, message_id: str) -> bool:
        """Whether a reply with this Message-ID is in the sent folder (in-doubt sends)."""
        client = self._connected()
        folder = self._config.sent_folder
        with self._translated(f"searching {folder}"):
            if not client.folder_exists(folder):
                return False
            client.select_folder(folder, readonly=True)
            try:
                # SEARCH HEADER matches substrings (RFC 3501 6.4.4): confirm exactly.
                hits = client.search(["HEADER", "Message-ID", message_id])
                if not hits:
                    return False
                data = client.fetch(hits, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
                wanted = message_id.strip()
                for item in data.values():
                    header = item.get(b"BODY[HEADER.FIELDS (MESSAGE-ID)]", b"")
                    found = BytesHeaderParser().parsebytes(bytes(header)).get("Message-ID", "")
                    if str(found).strip() == wanted:
                        return True
                return False
            finally:
                self._select_source(client)

    def idle_wait(self, timeout: float) -> bool:
        """Wait up to `timeout` s in IDLE; True when the folder changed.

        Without IDLE it returns False at once and the caller polls. RFC 2177 asks
        clients to re-issue IDLE within 29 minutes: the caller's loop does that.
        """
        client = self._connected()
        with self._translated("waiting in IDLE"):
            if not client.has_capability("IDLE"):
                return False
            client.idle()
            try:
                # A change already read with IDLE's continuation is ended at once and
                # parsed by idle_done: idle_check would wait on the socket for it.
                responses = [] if _buffered(client) else client.idle_check(timeout=timeout)
            finally:
                _, more = client.idle_done()
        changes = [r for r in [*responses, *more] if len(r) > 1 and r[1] in (b"EXISTS", b"RECENT")]
        return bool(changes)

    # --- connection -------------------------------------------------------------------

    def _connected(self) -> IMAPClient:
        if self._client is not None:
            return self._client
        cfg = self._config
        where = f"{cfg.host}:{cfg.port}"
        with self._translated(f"connecting to {where}"):
            context = None
            if cfg.security != "none":
                context = trust_context(cfg.ca_file, "mailbox.ca_file", bundle=env_bundle())
            client = IMAPClient(
                cfg.host,
                cfg.port,
                ssl=cfg.security == "ssl",
                ssl_context=context,
                timeout=cfg.timeout,
            )
            try:
                if cfg.security == "starttls":
                    client.starttls(context)
                self._login(client)
                self._select_source(client)
            except BaseException:
                with suppress(OSError):
                    client.shutdown()
                raise
        self._client = client
        return client

    def _fresh(self) -> IMAPClient:
        """A connection known to work: servers drop idle ones between polls (Dovecot
        after 30 minutes, RFC 3501 5.4), and a cycle should not fail for that."""
        if self._client is not None:
            try:
                self._client.noop()
            except (IMAPClientError, OSError) as exc:
                log.info("IMAP connection went stale (%s); reconnecting", exc)
                self._drop()
        return self._connected()

    def _connected_for_refs(self) -> IMAPClient:
        """A connection under which listed UIDs still mean the same messages."""
        client = self._connected()
        if self._listed_under and self._uidvalidity != self._listed_under:
            # RFC 3501 2.3.1.1: a new UIDVALIDITY invalidates every UID we hold.
            raise TransientError(
                f"IMAP folder {self._config.folder} changed UIDVALIDITY "
                f"({self._listed_under} -> {self._uidvalidity}); list it again"
            )
        return client

    def _login(self, client: IMAPClient) -> None:
        cfg = self._config
        try:
            if cfg.auth == "oauth2":
                if self._token_provider is None:
                    raise PermanentError("mailbox.auth = oauth2 but no token provider was given")
                client.oauth2_login(cfg.username, self._token_provider())
            else:
                client.login(cfg.username, cfg.password.reveal())
        except LoginError as exc:
            if cfg.auth == "oauth2":
                fix = (
                    "check graph.tenant_id/client_id and that the app has IMAP.AccessAsApp "
                    "and mailbox access for this user"
                )
            else:
                fix = f"check mailbox.username and the password in {cfg.password.key}"
            raise PermanentError(
                f"IMAP login as {cfg.username} on {cfg.host} was refused ({exc}): {fix}"
            ) from exc

    def _select_source(self, client: IMAPClient) -> None:
        folder = self._config.folder
        try:
            status = client.select_folder(folder)
        except IMAPClientAbortError:
            raise
        except IMAPClientError as exc:
            if _is_busy(exc):
                raise
            raise PermanentError(
                f"cannot open IMAP folder {folder!r} ({exc}): check mailbox.folder"
            ) from exc
        self._uidvalidity = str(status[b"UIDVALIDITY"])

    @staticmethod
    def _ensure_folder(client: IMAPClient, folder: str) -> None:
        if client.folder_exists(folder):
            return
        try:
            client.create_folder(folder)
        except IMAPClientError:
            # Another client may have created it meanwhile (RFC 5530 ALREADYEXISTS).
            if not client.folder_exists(folder):
                raise

    @staticmethod
    def _copy_and_expunge(client: IMAPClient, uids: str, folder: str) -> None:
        # RFC 6851's fallback for servers without MOVE. UID EXPUNGE (RFC 4315) removes
        # only these messages; without UIDPLUS a plain EXPUNGE also removes any other
        # \Deleted message, which its owner had already asked for.
        client.copy(uids, folder)
        client.add_flags(uids, [DELETED], silent=True)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)
        else:
            client.expunge()

    @contextmanager
    def _translated(self, doing: str) -> Iterator[None]:
        """Turn library, socket and TLS errors into the error family, naming the step."""
        try:
            yield
        except ProcessorError:
            raise
        except ssl.SSLCertVerificationError as exc:
            self._drop()
            raise PermanentError(
                f"IMAP TLS certificate of {self._config.host} not trusted while {doing} "
                f"({exc.verify_message}): set mailbox.ca_file to its CA"
            ) from exc
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ssl.SSLSyscallError) as exc:
            self._drop()
            raise TransientError(f"IMAP TLS connection cut while {doing}: {exc}") from exc
        except ssl.SSLError as exc:
            # Typically TLS spoken to a plain port ("wrong version number").
            self._drop()
            raise PermanentError(
                f"IMAP TLS handshake with {self._config.host}:{self._config.port} failed "
                f"while {doing} ({exc}): check mailbox.security and mailbox.port"
            ) from exc
        except TimeoutError as exc:
            self._drop()
            raise TransientError(f"IMAP timed out while {doing}") from exc
        except (IMAPClientAbortError, OSError) as exc:
            self._drop()
            raise TransientError(f"IMAP connection failed while {doing}: {exc}") from exc
        except IMAPClientError as exc:
            if _is_busy(exc):
                self._drop()
                raise TransientError(f"IMAP server busy while {doing}: {exc}") from exc
            raise PermanentError(f"IMAP server refused {doing}: {exc}") from exc

    def _drop(self) -> None:
        """Forget a broken connection; the next call reconnects."""
        client, self._client = self._client, None
        self._known_folders = set()
        if client is not None:
            with suppress(OSError):
                client.shutdown()
