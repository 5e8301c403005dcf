"""A real aiosmtpd server on 127.0.0.1 whose every command can be scripted to misbehave.

Each step of a session is an *event*: CONNECT, EHLO, STARTTLS, AUTH, MAIL,
RCPT, DATA (the command), EOD (the end of the data, before the reply),
ACCEPTED (just after "250" went out) and QUIT. Events are numbered by the
message they belong to: MAIL starts message n (1-based, over the server's
whole life, so across several digest runs). ``on_event(event, n)`` is
called at every one, from the server's loop, so a test can kill the client
at that exact moment; ``rule(event, n, arg)`` may answer instead of the
server:

* a reply line ("421 ...", "550 ...", "454 ..."): sent instead (421 also
  closes the connection);
* ``"drop"``: the connection is closed without a word;
* ``"hang"``: no answer at all (the client must time out);
* ``"pause"``: wait ``pause_seconds``, then carry on normally;
* ``"mid-data"`` (at DATA): "354", a few lines of the message read, then the
  connection is closed;
* ``"tls-abort"`` (at STARTTLS): "220 go ahead", then the connection closes.

The port comes from ``loop.create_server(..., 0)`` (aiosmtpd's Controller
cannot bind port 0, aio-libs/aiosmtpd#388).
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

Rule = Callable[[str, int, str], str | None]
OnEvent = Callable[[str, int], None]


@dataclass
class Accepted:
    number: int  # the message number (see the module docstring)
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    smtputf8: bool = False  # MAIL FROM asked for SMTPUTF8 (RFC 6531)

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


@dataclass
class SmtpScript:
    rule: Rule | None = None
    on_event: OnEvent | None = None
    logins: dict[str, str] | None = None  # AUTH required when set
    accepted: list[Accepted] = field(default_factory=list)
    events: list[tuple[str, int]] = field(default_factory=list)
    auth_attempts: int = 0
    connections: int = 0
    messages: int = 0  # MAIL commands seen


def _wrap(name: str) -> Any:
    original = getattr(SMTP, f"smtp_{name}")

    async def method(self: _FaultSMTP, arg: str) -> None:
        if await self.fault(name, arg or ""):
            return
        await original(self, arg)

    for attr in ("__smtp_syntax__", "__smtp_syntax_extended__", "__smtp_syntax_when__"):
        if hasattr(original, attr):
            setattr(method, attr, getattr(original, attr))
    return method


class _FaultSMTP(SMTP):
    def __init__(self, owner: FaultSmtp, **kwargs: Any) -> None:
        super().__init__(_Handler(owner), **kwargs)
        self.owner = owner

    async def fault(self, event: str, arg: str) -> bool:
        """Run the event; True when the script answered instead of the server."""
        script = self.owner.script
        if event == "MAIL":
            script.messages += 1
        action = self.owner.event(event, arg)
        if action is None:
            return False
        transport = self.transport
        if action == "drop":
            if transport is not None:
                transport.close()
        elif action == "pause":
            await asyncio.sleep(self.owner.pause_seconds)
            return False
        elif action == "hang":
            await asyncio.sleep(60)  # cancelled when the server stops
        elif action == "mid-data":
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            for _ in range(3):
                await self._reader.readuntil(b"\r\n")
            if self.transport is not None:
                self.transport.close()
        elif action == "tls-abort":
            await self.push("220 Ready to start TLS")
            if transport is not None:
                transport.close()
        else:
            await self.push(action)
            if action.startswith("421") and self.transport is not None:
                self.transport.close()
        return True

    smtp_EHLO = _wrap("EHLO")
    smtp_STARTTLS = _wrap("STARTTLS")
    smtp_AUTH = _wrap("AUTH")
    smtp_MAIL = _wrap("MAIL")
    smtp_RCPT = _wrap("RCPT")
    smtp_DATA = _wrap("DATA")
    smtp_QUIT = _wrap("QUIT")


class _Handler:
    def __init__(self, owner: FaultSmtp) -> None:
        self.owner = owner

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        action = self.owner.event("EOD", "")
        if action == "drop":
            server.transport.close()
            return "421 4.3.2 dropped"
        if action is not None:
            return action
        script = self.owner.script
        script.accepted.append(
            Accepted(
                script.messages,
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content,
                bool(envelope.smtp_utf8),
            )
        )
        # runs once this hook has returned and "250" has been written out
        asyncio.get_running_loop().call_soon(self.owner.event, "ACCEPTED", "")
        return "250 2.0.0 Message accepted"


class FaultSmtp:
    """``with FaultSmtp(script) as smtp: smtp.port``; stops by itself on exit."""

    def __init__(
        self,
        script: SmtpScript | None = None,
        *,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.script = script or SmtpScript()
        self.pause_seconds = 3.0
        self.smtputf8 = False  # offer SMTPUTF8 (RFC 6531) to the connections made from now on
        self._tls = tls_context
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    def event(self, name: str, arg: str) -> str | None:
        script = self.script
        n = script.messages
        script.events.append((name, n))
        if script.on_event is not None:
            script.on_event(name, n)
        return script.rule(name, n, arg) if script.rule is not None else None

    def _authenticator(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        self.script.auth_attempts += 1
        logins = self.script.logins or {}
        if (
            isinstance(auth_data, LoginPassword)
            and logins.get(auth_data.login.decode()) == auth_data.password.decode()
        ):
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)  # handled=False: answer 535

    def _factory(self) -> SMTP:
        self.script.connections += 1
        self.event("CONNECT", "")
        kwargs: dict[str, Any] = {
            "hostname": "faults.localhost",
            "enable_SMTPUTF8": self.smtputf8,
        }
        if self._tls is not None:
            kwargs.update(tls_context=self._tls, require_starttls=True)
        if self.script.logins is not None:
            kwargs.update(
                authenticator=self._authenticator,
                auth_required=True,
                auth_require_tls=self._tls is not None,
            )
        return _FaultSMTP(self, **kwargs)

    def __enter__(self) -> FaultSmtp:
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
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        with contextlib.suppress(RuntimeError):
            self._loop.close()
