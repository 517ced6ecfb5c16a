"""The e-mail sender of the outbox: one outbox row → one message over SMTP (aiosmtplib).

SMTP_SECURITY picks the transport: `starttls` (port 587, upgrade required), `tls` (implicit
TLS, port 465) or `none` (loopback and tests). One connection is kept open between messages and
opened again when the server has dropped it. Outcomes, as the outbox expects them:
- 4xx replies, timeouts, refused or dropped connections → `TransientFailure` (retried later);
- 5xx replies → `PermanentFailure` (marked failed, staff alerted);
- a refused login → `TransientFailure` with a long delay: a configuration error to be fixed,
  not a reason to drop every letter queued meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib

from bot.clock import Clock
from bot.config import Settings
from bot.delivery import PermanentFailure, TransientFailure
from bot.delivery.compose import compose
from bot.delivery.messages import Letter, Outbound, encode

log = logging.getLogger(__name__)

AUTH_RETRY_SECONDS = 600.0


class SmtpSender:
    channel = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: str,
        mail_from: str,
        mail_domain: str,
        clock: Clock,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if security not in ("starttls", "tls", "none"):
            raise ValueError(f"SMTP security {security!r}: expected starttls, tls or none")
        self.host, self.port, self.security = host, port, security
        self.mail_from, self.mail_domain = mail_from, mail_domain
        self.clock = clock
        self.username, self.password = username, password
        self.timeout = timeout
        self.tls_context = tls_context  # None: the system's trusted CAs
        self._smtp: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> SmtpSender | None:
        """The sender SMTP_* describes; None when SMTP_HOST is empty (mail waits queued)."""
        if not settings.smtp_host:
            return None
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            mail_from=settings.mail_from,
            mail_domain=settings.mail_domain,
            clock=clock,
            username=settings.smtp_user,
            password=password,
        )

    def build(self, message: Letter) -> EmailMessage:
        return compose(
            encode(message)[2],
            message.to,
            mail_from=self.mail_from,
            mail_domain=self.mail_domain,
            now=self.clock.now(),
        )

    async def send(self, message: Outbound) -> str | None:
        """Send one letter; return its Message-ID (`<…>`)."""
        if not isinstance(message, Letter):
            raise PermanentFailure(f"e-mail cannot send a {type(message).__name__}")
        mime = self.build(message)
        envelope_from = _address_of(self.mail_from)
        async with self._lock:
            try:
                smtp = await self._connection()
                try:
                    await smtp.send_message(
                        mime, sender=envelope_from, recipients=[message.recipient]
                    )
                except aiosmtplib.SMTPServerDisconnected:
                    # An idle connection the server closed: one fresh attempt, then give up.
                    await self._drop()
                    smtp = await self._connection()
                    await smtp.send_message(
                        mime, sender=envelope_from, recipients=[message.recipient]
                    )
            except aiosmtplib.SMTPAuthenticationError as exc:
                await self._drop()
                raise TransientFailure(
                    f"SMTP login refused: {exc.code}", retry_after=AUTH_RETRY_SECONDS
                ) from None
            except aiosmtplib.SMTPRecipientsRefused as exc:
                await self._reset()
                first = exc.recipients[0] if exc.recipients else None
                code = first.code if first else 550
                text = first.message if first else str(exc)
                raise _by_code(code, f"SMTP {code} {text} (recipient refused)") from None
            except aiosmtplib.SMTPResponseException as exc:
                await self._reset()
                raise _by_code(exc.code, f"SMTP {exc.code} {exc.message}") from None
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                await self._drop()
                raise TransientFailure(f"SMTP {type(exc).__name__}: {exc}") from None
        return str(mime["Message-ID"])

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._smtp is not None and self._smtp.is_connected:
            return self._smtp
        smtp = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.security == "tls",
            start_tls=self.security == "starttls",
            tls_context=self.tls_context,
            timeout=self.timeout,
        )
        await smtp.connect()
        try:
            if self.username:
                await smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()  # a refused login must not leave the socket open
            raise
        self._smtp = smtp
        return smtp

    async def _reset(self) -> None:
        """After a refused transaction: RSET so the connection can carry the next message."""
        if self._smtp is None or not self._smtp.is_connected:
            return
        try:
            await self._smtp.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            await self._drop()

    async def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


def _by_code(code: int, reason: str) -> TransientFailure | PermanentFailure:
    if 400 <= code < 500:
        return TransientFailure(reason)
    return PermanentFailure(reason)


def _address_of(mail_from: str) -> str:
    return parseaddr(mail_from)[1] or mail_from
