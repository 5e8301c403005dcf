"""A real aiosmtpd SMTP server on 127.0.0.1, with fault injection.

aiosmtpd's Controller cannot bind port 0 (aio-libs/aiosmtpd#388), so the
server runs on its own event loop in a thread, created with
``loop.create_server`` on port 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import ssl
import threading
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    smtputf8: bool = False  # the client asked for SMTPUTF8 (RFC 6531) in MAIL FROM

    @property
    def message(self) -> EmailMessage:
        return email.message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]


@dataclass
class Behaviour:
    refuse: dict[str, str] = field(default_factory=dict)  # rcpt -> "550 ..." / "450 ..."
    close_after: int | None = None  # answer 421 (once) at DATA when this many were accepted
    close_always: bool = False  # ... and keep answering 421 from then on
    drop_at_data: int = 0  # drop the connection at DATA this many times
    logins: dict[str, str] = field(default_factory=dict)
    data_delay: float = 0.0  # seconds to wait before answering DATA


class _Handler:
    def __init__(self, server: SmtpServer) -> None:
        self.srv = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.srv.behaviour.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        b = self.srv.behaviour
        if b.data_delay:
            await asyncio.sleep(b.data_delay)
        if b.drop_at_data > 0:
            b.drop_at_data -= 1
            server.transport.close()
            return "421 4.3.2 connection dropped"
        if b.close_after is not None and len(self.srv.received) >= b.close_after:
            if not b.close_always:
                b.close_after = None
            asyncio.get_running_loop().call_soon(server.transport.close)
            return "421 4.3.2 Service shutting down"
        self.srv.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                bool(envelope.smtp_utf8),
            )
        )
        return "250 2.0.0 Message accepted"


class SmtpServer:
    """``with SmtpServer() as smtp: smtp.port; smtp.received``."""

    def __init__(
        self,
        *,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        auth: dict[str, str] | None = None,
        offer_starttls: bool = True,
        smtputf8: bool = False,
    ) -> None:
        self.behaviour = Behaviour(logins=dict(auth or {}))
        self.received: list[Received] = []
        self.connections = 0
        self._tls = tls_context if offer_starttls else None
        self._require_starttls = require_starttls
        self._auth = auth
        self._smtputf8 = smtputf8  # offer SMTPUTF8 (RFC 6531) in the EHLO answer
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    def _authenticator(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            user = auth_data.login.decode()
            if self.behaviour.logins.get(user) == auth_data.password.decode():
                return AuthResult(success=True)
        # handled=False makes aiosmtpd answer 535 (with True it stays silent)
        return AuthResult(success=False, handled=False)

    def _factory(self) -> SMTP:
        self.connections += 1
        kwargs: dict[str, Any] = {
            "hostname": "test.localhost",
            "enable_SMTPUTF8": self._smtputf8,
        }
        if self._tls is not None:
            kwargs.update(tls_context=self._tls, require_starttls=self._require_starttls)
        if self._auth is not None:
            kwargs.update(
                authenticator=self._authenticator,
                auth_required=True,
                auth_require_tls=self._tls is not None,
            )
        return SMTP(_Handler(self), **kwargs)

    def __enter__(self) -> SmtpServer:
        self._thread.start()

        async def start() -> asyncio.base_events.Server:
            return await self._loop.create_server(self._factory, "127.0.0.1", 0)

        self._server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await asyncio.wait_for(self._server.wait_closed(), 2)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
