"""Sending replies: one SMTP connection per cycle, or .eml files in a folder.

Library exceptions become TransientError (try again later) or PermanentError
(refer to staff), judged by the SMTP reply code: 4xx is temporary, 5xx is not
(RFC 5321 section 4.2.1).
"""

from __future__ import annotations

import os
import re
import smtplib
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

from processor.config import SmtpConfig
from processor.errors import ConfigError, PermanentError, TransientError
from processor.tls import env_bundle, trust_context

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


def _is_temporary(code: int) -> bool:
    return 400 <= code < 500


def _reply_text(code: int, detail: bytes | str) -> str:
    text = detail.decode("utf-8", "replace") if isinstance(detail, bytes) else detail
    return f"{code} {' '.join(text.split())}"


def _translate(exc: Exception, where: str) -> TransientError | PermanentError:
    """Map one smtplib/socket exception to the error family."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [(addr, code, msg) for addr, (code, msg) in exc.recipients.items()]
        refused = "; ".join(f"{addr}: {_reply_text(code, msg)}" for addr, code, msg in codes)
        if codes and all(_is_temporary(code) for _, code, _ in codes):
            return TransientError(f"{where}: recipient deferred ({refused})")
        return PermanentError(f"{where}: recipient refused ({refused})")
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        detail = _reply_text(exc.smtp_code, exc.smtp_error)
        if _is_temporary(exc.smtp_code):
            return TransientError(f"{where}: login temporarily failed ({detail})")
        return PermanentError(f"{where}: login refused, check the SMTP credentials ({detail})")
    if isinstance(exc, smtplib.SMTPResponseException):
        # SMTPSenderRefused, SMTPDataError, SMTPConnectError, SMTPHeloError...
        detail = _reply_text(exc.smtp_code, exc.smtp_error)
        if _is_temporary(exc.smtp_code) or exc.smtp_code == -1:
            return TransientError(f"{where}: server said {detail}")
        return PermanentError(f"{where}: server refused: {detail}")
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentError(f"{where}: server does not support it: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentError(f"{where}: TLS certificate not trusted ({exc.verify_message})")
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return TransientError(f"{where}: server closed the connection ({exc})")
    if isinstance(exc, TimeoutError | socket.timeout):
        return TransientError(f"{where}: timed out")
    if isinstance(exc, OSError):  # refused, unreachable, reset, TLS errors
        return TransientError(f"{where}: {exc.strerror or exc}")
    return PermanentError(f"{where}: {exc}")


_CAUGHT = (smtplib.SMTPException, OSError)


class _SMTP(smtplib.SMTP):
    """smtplib's SMTP, with a call between the envelope (MAIL, RCPT) and DATA."""

    before_data: Callable[[], None] | None = None
    before_data_failure: BaseException | None = None

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        if self.before_data is not None:
            try:
                self.before_data()
            except BaseException as exc:
                self.before_data_failure = exc
                raise
        return super().data(msg)


class _SMTP_SSL(smtplib.SMTP_SSL, _SMTP):
    """The same, over implicit TLS."""


class _SmtpConnection:
    """One open SMTP session; `send` may be called many times."""

    def __init__(self, smtp: _SMTP, where: str) -> None:
        self._smtp = smtp
        self._where = where

    def send(self, message: EmailMessage) -> None:
        try:
            refused = self._smtp.send_message(message)
        except _CAUGHT as exc:
            raise _translate(exc, f"sending {message['Message-ID']} via {self._where}") from exc
        if refused:
            # Some recipients took it, so a retry would send it twice: staff decide.
            raise PermanentError(f"sent {message['Message-ID']}, but refused for {refused}")

    def send_raw(
        self,
        raw: bytes,
        *,
        sender: str,
        recipient: str,
        message_id: str,
        before_content: Callable[[], None] | None = None,
    ) -> None:
        # An address beyond ASCII needs SMTPUTF8 (RFC 6531); a server without it refuses.
        options = [] if sender.isascii() and recipient.isascii() else ["SMTPUTF8"]
        self._smtp.before_data = before_content
        try:
            self._smtp.sendmail(sender, [recipient], raw, mail_options=options)
        except _CAUGHT as exc:
            if exc is self._smtp.before_data_failure:
                raise  # ours, not the server's: the message was never handed over
            raise _translate(exc, f"sending {message_id} via {self._where}") from exc
        finally:
            self._smtp.before_data = self._smtp.before_data_failure = None


class SmtpTransport:
    """Submits replies over SMTP (ssl, starttls or none), password or XOAUTH2 login."""

    def __init__(self, config: SmtpConfig, token_provider: Callable[[], str] | None = None) -> None:
        self.config = config
        self.token_provider = token_provider

    @property
    def where(self) -> str:
        return f"SMTP {self.config.host}:{self.config.port}"

    @contextmanager
    def connect(self) -> Iterator[_SmtpConnection]:
        smtp = self._open()
        try:
            yield _SmtpConnection(smtp, self.where)
        finally:
            try:
                smtp.quit()
            except _CAUGHT:
                smtp.close()

    def _open(self) -> _SMTP:
        cfg = self.config
        try:
            if cfg.security == "ssl":
                smtp: _SMTP = _SMTP_SSL(
                    cfg.host, cfg.port, timeout=cfg.timeout, context=self._trust()
                )
            else:
                smtp = _SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        except _CAUGHT as exc:
            raise _translate(exc, f"connecting to {self.where}") from exc
        try:
            smtp.ehlo()
            if cfg.security == "starttls":
                smtp.starttls(context=self._trust())
                smtp.ehlo()
            self._login(smtp)
        except BaseException as exc:
            smtp.close()
            if isinstance(exc, _CAUGHT):
                raise _translate(exc, f"opening {self.where}") from exc
            raise
        return smtp

    def _trust(self) -> ssl.SSLContext:
        return trust_context(self.config.ca_file, "smtp.ca_file", bundle=env_bundle())

    def _login(self, smtp: _SMTP) -> None:
        cfg = self.config
        if cfg.auth == "oauth2":
            if self.token_provider is None:
                raise ConfigError("smtp.auth", "oauth2 needs a token provider (graph settings)")
            token = self.token_provider()
            # XOAUTH2 (Microsoft / Google): base64 of user=..^Aauth=Bearer ..^A^A.
            # On failure the server sends a JSON challenge; the client answers empty.
            initial = f"user={cfg.username}\x01auth=Bearer {token}\x01\x01"
            smtp.auth(
                "XOAUTH2",
                lambda challenge=None: initial if challenge is None else "",
                initial_response_ok=True,
            )
        elif cfg.username:
            smtp.login(cfg.username, cfg.password.reveal())


_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def _safe_id(message_id: str) -> str:
    raw_id = message_id.strip().strip("<>")
    return _UNSAFE.sub("_", raw_id).strip("._")[:120] or "no-message-id"


def eml_name(message_id: str, now: datetime) -> str:
    """`<timestamp>-<message-id>.eml`, with the id reduced to characters safe in a file name."""
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%S.%fZ}-{_safe_id(message_id)}.eml"


# A misconfigured folder stays wrong until someone fixes it; a full disk may clear.
_FOLDER_WRONG = (PermissionError, NotADirectoryError, FileExistsError)


class _FileConnection:
    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def send(self, message: EmailMessage) -> None:
        message_id = str(message.get("Message-ID", ""))
        self.send_raw(message.as_bytes(), sender="", recipient="", message_id=message_id)

    def send_raw(
        self,
        raw: bytes,
        *,
        sender: str,
        recipient: str,
        message_id: str,
        before_content: Callable[[], None] | None = None,
    ) -> None:
        """The file is the message as sent; its header names the recipient."""
        if before_content is not None:
            before_content()
        target = self._folder / eml_name(message_id, datetime.now(UTC))
        try:
            # Write beside the target, then rename: a reader never sees half a message.
            fd, temp = tempfile.mkstemp(dir=self._folder, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(raw)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temp, target)
            except BaseException:
                Path(temp).unlink(missing_ok=True)
                raise
        except _FOLDER_WRONG as exc:
            raise PermanentError(f"cannot write {target}: {exc.strerror}") from exc
        except OSError as exc:
            raise TransientError(f"cannot write {target}: {exc.strerror or exc}") from exc


class FileTransport:
    """Writes each reply as an .eml file in a folder (for tests, demos and dry runs)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connect(self) -> Iterator[_FileConnection]:
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except _FOLDER_WRONG as exc:
            raise PermanentError(f"cannot create {self.path}: {exc.strerror}") from exc
        except OSError as exc:
            raise TransientError(f"cannot create {self.path}: {exc.strerror or exc}") from exc
        yield _FileConnection(self.path)

    def find_sent(self, message_id: str) -> bool:
        """Whether a reply with this Message-ID was written (crash recovery asks)."""
        return any(self.path.glob(f"*-{_safe_id(message_id)}.eml"))
