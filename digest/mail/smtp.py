"""Sending digests over SMTP (aiosmtplib): one connection per batch, every outcome classified.

Rules that follow from aiosmtplib 5.x's behaviour:

* TLS is mapped explicitly. aiosmtplib's default ``start_tls=None`` upgrades
  only when the server offers STARTTLS, so a stripped EHLO would send the
  password in clear; ``starttls`` here fails instead.
* A send that returns normally can still carry refused recipients: the
  returned dict is checked. A total refusal raises ``SMTPRecipientsRefused``,
  which is *not* an ``SMTPResponseException``.
* 5xx is permanent (not retried), 4xx, disconnects and timeouts are
  transient: reconnect and retry a few times, then leave it pending.
* Addresses go out as SMTP allows them (``digest.models.wire_address``): an
  internationalised domain as its A-labels (RFC 5890), which any server
  takes; a local part outside ASCII only with SMTPUTF8 (RFC 6531), asked
  for in that message's MAIL FROM when the server offers it. Where it does
  not, that one message "failed" (named, not retried, not a bounce) and
  the connection goes on with the next: aiosmtplib would otherwise raise
  ``UnicodeEncodeError`` at RCPT with MAIL FROM already sent.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from digest.errors import DeliveryError, SmtpConfigError, Stopped
from digest.models import SmtpSettings, format_sender, wire_address
from digest.stop import Stop

log = logging.getLogger(__name__)

# "failed": the message could not be offered to this server at all (its
# address cannot travel over it); not retried in the cycle, and not a bounce
Status = Literal["accepted", "refused", "deferred", "failed"]
Sleep = Callable[[float], Awaitable[None]]
OnOutcome = Callable[["Outcome"], None]
# (key, recipient, message): the message as bytes, serialised once by the
# composer; an EmailMessage is flattened once here (tests, ad-hoc callers)
Item = tuple[str, str, "bytes | EmailMessage"]

ATTEMPTS = 3  # per message, within one cycle
RETRY_DELAY = 1.0  # seconds, doubled per attempt; the next cycle is the real retry
# On a stop, the message in flight gets this long to be accepted before the
# session is cut (an interrupted message is not recorded and goes out later).
STOP_GRACE = 3.0
# Messages composed ahead of the senders, per connection: enough that a
# connection never waits for the composer, few enough that memory stays flat.
AHEAD = 2


@dataclass(frozen=True, slots=True)
class Outcome:
    recipient: str
    status: Status
    detail: str = ""
    key: str = ""  # the caller's handle for the message (e.g. the subscriber)


class _Transient(Exception):
    """Retry this message (after reconnecting if need be)."""


class _Permanent(Exception):
    """Do not retry this message in this cycle."""


class _ConnectFailed(_Transient):
    """The server could not be reached or greeted us with an error."""


class _Unusable(_Permanent):
    """The server cannot be used at all (login refused, no STARTTLS): stop the batch."""


class _Unsendable(Exception):
    """This message cannot be offered to this server (its address); the others can."""


@dataclass(frozen=True, slots=True)
class SmtpCheck:
    """What ``digest check --smtp`` learnt: the line to print, and whether SMTPUTF8 is offered."""

    text: str
    smtputf8: bool


def _code_status(code: int) -> Status:
    return "refused" if code // 100 == 5 else "deferred"


def tls_context(settings: SmtpSettings) -> ssl.SSLContext:
    """Certificates are always verified; ``ca_file`` adds a private CA."""
    if settings.ca_file is not None:
        return ssl.create_default_context(cafile=str(settings.ca_file))
    return ssl.create_default_context()


class Mailer:
    """Delivers a batch of messages; ``connections`` bounds the parallel sessions."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        connections: int = 1,
        attempts: int = ATTEMPTS,
        retry_delay: float = RETRY_DELAY,
        sleep: Sleep = asyncio.sleep,
        local_hostname: str | None = None,
        stop: Stop | None = None,
        stop_grace: float = STOP_GRACE,
        envelope_sender: str | None = None,
    ) -> None:
        self.settings = settings
        self.stop_grace = stop_grace
        self.connections = max(1, connections)
        self.attempts = max(1, attempts)
        self.retry_delay = retry_delay
        # every back-off and every SMTP exchange gives way to a stop request
        self.stop = stop if stop is not None else Stop(sleep=sleep)
        sender = format_sender(settings.sender)
        # "" is the null sender (MAIL FROM:<>) that confirmations to readers
        # use (RFC 3834 §3.3): a bounce of one can never start a loop
        given = sender.addr_spec if envelope_sender is None else envelope_sender
        try:
            self.envelope_sender = wire_address(given) if given else given
        except ValueError:
            self.envelope_sender = given  # sent only where SMTPUTF8 carries it
        # The HELO name defaults to socket.getfqdn(), often a container name:
        # use the sender's domain unless told otherwise.
        self.local_hostname = local_hostname or sender.domain
        self._unusable = ""

    def _client(self) -> aiosmtplib.SMTP:
        s = self.settings
        kwargs: dict[str, object] = {
            "hostname": s.host,
            "port": s.port,
            "timeout": s.timeout,
            "local_hostname": self.local_hostname,
        }
        if s.security == "tls":
            kwargs.update(use_tls=True, start_tls=False, tls_context=tls_context(s))
        elif s.security == "starttls":
            kwargs.update(use_tls=False, start_tls=True, tls_context=tls_context(s))
        else:
            kwargs.update(use_tls=False, start_tls=False)
        return aiosmtplib.SMTP(**kwargs)  # type: ignore[arg-type]

    async def _connect(self, smtp: aiosmtplib.SMTP) -> None:
        s = self.settings
        try:
            await self.stop.run(smtp.connect(), "connecting to the SMTP server")
            if s.username:
                if not s.password:
                    raise _Unusable(
                        "smtp.username is set but no password was given "
                        "(DIGEST_SMTP_PASSWORD or the credential smtp-password)"
                    )
                await self.stop.run(smtp.login(s.username, s.password), "the SMTP login")
        except aiosmtplib.SMTPAuthenticationError as exc:
            smtp.close()
            raise _Unusable(
                f"the SMTP server refused the login for {s.username!r}: {exc.code} {exc.message}; "
                "check smtp.username and the password (DIGEST_SMTP_PASSWORD or the "
                "credential smtp-password)"
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            smtp.close()
            raise _ConnectFailed(f"{s.host}:{s.port} answered {exc.code} {exc.message}") from exc
        except Stopped:
            smtp.close()
            raise
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            smtp.close()
            if s.security == "starttls" and "STARTTLS" in str(exc).upper():
                raise _Unusable(
                    f"{s.host}:{s.port} does not offer STARTTLS; refusing to send in clear text"
                ) from exc
            raise _ConnectFailed(
                f"cannot connect to {s.host}:{s.port}: {exc or type(exc).__name__}"
            ) from exc

    async def _envelope(self, smtp: aiosmtplib.SMTP, recipient: str) -> tuple[str, list[str]]:
        """The recipient as the wire carries it, and the MAIL FROM options that takes."""
        try:
            rcpt = wire_address(recipient)
        except ValueError as exc:
            raise _Unsendable(str(exc)) from None
        sender = self.envelope_sender
        if rcpt.isascii() and sender.isascii():
            return rcpt, []
        if smtp.is_ehlo_or_helo_needed:  # the extensions are known after EHLO only
            await self.stop.run(smtp.ehlo(), "the SMTP greeting")
        if smtp.supports_extension("smtputf8"):
            return rcpt, ["SMTPUTF8"]
        s = self.settings
        if not sender.isascii():
            raise _Unusable(
                f"the sender {sender} has a local part outside ASCII, which needs SMTPUTF8 "
                f"(RFC 6531); {s.host}:{s.port} does not offer it"
            )
        raise _Unsendable(
            f"{recipient} has a local part outside ASCII, which only an SMTP server offering "
            f"SMTPUTF8 (RFC 6531) can take; {s.host}:{s.port} does not offer it"
        )

    async def _send_one(self, smtp: aiosmtplib.SMTP, recipient: str, msg: bytes) -> str:
        if not smtp.is_connected:
            await self._connect(smtp)
        try:
            async with asyncio.timeout(self.settings.timeout * 3):
                rcpt, options = await self._envelope(smtp, recipient)
                send = smtp.sendmail(self.envelope_sender, [rcpt], msg, mail_options=options)
                errors, reply = await self.stop.run(send, "sending", grace=self.stop_grace)
        except Stopped:
            smtp.close()  # cut mid-message: the server discards it
            raise
        except aiosmtplib.SMTPRecipientsRefused as exc:
            refused = exc.recipients[0] if exc.recipients else None
            code = refused.code if refused else 550
            text = f"{code} {refused.message if refused else exc}"
            if _code_status(code) == "refused":
                raise _Permanent(text) from exc
            raise _Transient(text) from exc
        except aiosmtplib.SMTPResponseException as exc:
            text = f"{exc.code} {exc.message}"
            if not smtp.is_connected or exc.code == 421:
                smtp.close()
            if _code_status(exc.code) == "refused":
                raise _Permanent(text) from exc
            raise _Transient(text) from exc
        except ValueError as exc:
            # aiosmtplib refused to write the envelope (an address it cannot
            # encode); MAIL FROM may be out already, so the session is ended
            # rather than left half-way through a transaction
            smtp.close()
            raise _Unsendable(f"{recipient} cannot be sent: {exc}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            # A drop after the final "." may still mean delivered: retrying is
            # a deliberate at-least-once choice; losing a paper is worse.
            smtp.close()
            raise _Transient(f"connection lost: {exc or type(exc).__name__}") from exc
        if rcpt in errors:
            refusal = errors[rcpt]
            text = f"{refusal.code} {refusal.message}"
            if _code_status(refusal.code) == "refused":
                raise _Permanent(text)
            raise _Transient(text)
        return str(reply).strip()  # aiosmtplib returns the final reply as text

    async def _deliver(
        self, smtp: aiosmtplib.SMTP, key: str, recipient: str, msg: bytes, halt: asyncio.Event
    ) -> Outcome:
        if self._unusable:
            return Outcome(recipient, "deferred", self._unusable, key)
        last = ""
        server_gone = 0
        for attempt in range(self.attempts):
            if attempt and halt.is_set():
                # the batch is ending (a failure beside us): finish, do not knock again
                return Outcome(recipient, "deferred", f"not retried: {last}", key)
            try:
                if attempt:
                    await self.stop.sleep(self.retry_delay * 2 ** (attempt - 1))
                reply = await self._send_one(smtp, recipient, msg)
                return Outcome(recipient, "accepted", reply, key)
            except Stopped:
                return Outcome(recipient, "deferred", "stopping before it was accepted", key)
            except _Unusable as exc:
                self._unusable = str(exc)
                return Outcome(recipient, "deferred", str(exc), key)
            except _Permanent as exc:
                return Outcome(recipient, "refused", str(exc), key)  # always a 5xx here
            except _Unsendable as exc:
                return Outcome(recipient, "failed", str(exc), key)
            except _Transient as exc:
                last = str(exc)
                server_gone += isinstance(exc, _ConnectFailed) or last.startswith("421")
                log.info(
                    "delivery to %s deferred (%s), attempt %d of %d",
                    recipient,
                    last,
                    attempt + 1,
                    self.attempts,
                )
        if server_gone == self.attempts:
            # The server is down or keeps closing on us (421): defer the rest
            # of the batch at once rather than knocking again for everyone.
            self._unusable = last
        return Outcome(recipient, "deferred", last, key)

    async def send_all(
        self,
        batch: Iterable[Item] | AsyncIterable[Item],
        on_outcome: OnOutcome | None = None,
    ) -> tuple[Outcome, ...]:
        """Send ``(key, recipient, message)`` items; report each outcome as it happens.

        ``batch`` may be produced while it is sent (an async iterable: the
        cycle composes as the connections send): at most ``AHEAD`` messages
        per connection wait in memory, and each is dropped once its fate is
        known. ``on_outcome`` runs right after each message's fate is known,
        so the caller can record an accepted delivery before the next send.
        On a stop request the message in flight gets ``STOP_GRACE`` seconds
        to be accepted and the rest are deferred (their papers stay pending).

        If ``batch`` or ``on_outcome`` raises (a full disk, a closed output),
        no connection takes another message; those in flight are finished,
        without retries, and reported (a message the server took is never
        dropped unsaid); then the first error is raised.
        """
        queue: _Queue = asyncio.Queue(AHEAD * self.connections)
        results: dict[int, Outcome] = {}
        halt = asyncio.Event()  # a task failed: the connections take no new message
        feeder = asyncio.ensure_future(_feed(batch, queue, self.connections, halt))
        workers = [
            asyncio.ensure_future(self._work(queue, results, on_outcome, halt))
            for _ in range(self.connections)
        ]
        failure: BaseException | None = None
        pending: set[asyncio.Future[None]] = {feeder, *workers}
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for task in done:
                    if task.cancelled() or task.exception() is None:
                        continue
                    failure = failure or task.exception()  # the task set ``halt``
                    # the feeder waits for the composer and for room in the queue:
                    # neither is wanted now, so it is ended, not awaited
                    feeder.cancel()
        finally:
            # only when send_all itself is cancelled is anything still running here
            for task in (feeder, *workers):
                task.cancel()
            await asyncio.gather(feeder, *workers, return_exceptions=True)
        if failure is not None:
            raise failure
        return tuple(results[i] for i in range(len(results)))

    async def _work(
        self,
        queue: _Queue,
        results: dict[int, Outcome],
        on_outcome: OnOutcome | None,
        halt: asyncio.Event,
    ) -> None:
        """One connection: send queued items until the end mark or a halt; report each fate."""
        smtp = self._client()  # connects on its first message only
        try:
            while (got := await _take(queue, halt)) is not None:
                index, (key, recipient, msg) = got
                del got
                if self.stop.is_set():
                    outcome = Outcome(recipient, "deferred", "stopping before sending", key)
                else:
                    data = msg if isinstance(msg, bytes) else msg.as_bytes()
                    outcome = await self._deliver(smtp, key, recipient, data, halt)
                    del data
                del msg
                results[index] = outcome
                if on_outcome is not None:
                    on_outcome(outcome)
        except BaseException:
            # at once, not from send_all a turn later, and before the hang-up below
            # awaits: meanwhile another connection would take its next message
            halt.set()
            raise
        finally:
            await self._hang_up(smtp)

    async def _hang_up(self, smtp: aiosmtplib.SMTP) -> None:
        if smtp.is_connected and self.stop.is_set():
            smtp.close()  # no polite QUIT that could wait for a timeout
        elif smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()

    async def check(self) -> SmtpCheck:
        """Connect and log in once (``digest check --smtp``); raise ``DeliveryError`` if not.

        Also says whether the server offers SMTPUTF8, which readers whose
        local part is not ASCII need.
        """
        smtp = self._client()
        s = self.settings
        try:
            await self._connect(smtp)
            if smtp.is_ehlo_or_helo_needed:
                await self.stop.run(smtp.ehlo(), "the SMTP greeting")
        except _Unusable as exc:
            raise SmtpConfigError(str(exc)) from None
        except (_Transient, _Permanent) as exc:
            raise DeliveryError(str(exc)) from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            smtp.close()
            raise DeliveryError(f"{s.host}:{s.port} did not answer EHLO: {exc}") from None
        smtputf8 = smtp.supports_extension("smtputf8")
        try:
            await smtp.quit()
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()
        text = f"{s.host}:{s.port} ({s.security}) accepted the connection" + (
            f" and the login of {s.username}" if s.username else ""
        )
        offers = "offers" if smtputf8 else "does not offer"
        return SmtpCheck(f"{text}; it {offers} SMTPUTF8", smtputf8)


_Queue = asyncio.Queue[tuple[int, Item] | None]  # numbered items; None: no more


async def _feed(
    batch: Iterable[Item] | AsyncIterable[Item], queue: _Queue, ends: int, halt: asyncio.Event
) -> None:
    """Number ``batch``'s items into ``queue`` as they come, then one end mark per connection.

    The end marks follow only a complete batch. If ``batch`` fails, ``halt``
    ends the connections instead: a ``put`` into a full queue that no
    connection reads any more would never return.
    """
    index = 0
    try:
        if isinstance(batch, AsyncIterable):
            async for item in batch:
                await queue.put((index, item))
                index += 1
        else:
            for item in batch:
                await queue.put((index, item))
                index += 1
    except BaseException:
        halt.set()
        raise
    for _ in range(ends):
        await queue.put(None)


async def _take(queue: _Queue, halt: asyncio.Event) -> tuple[int, Item] | None:
    """The next numbered item; None at an end mark, or as soon as ``halt`` is set.

    Waiting for the feeder must end when the feeder (or another connection)
    fails: the end marks never come then.
    """
    if halt.is_set():
        return None
    if not queue.empty():
        return queue.get_nowait()
    get = asyncio.ensure_future(queue.get())
    halted = asyncio.ensure_future(halt.wait())
    try:
        await asyncio.wait({get, halted}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        halted.cancel()
        get.cancel()  # a no-op once it has its item
    if halt.is_set() or get.cancelled():
        return None  # an item taken in the same instant stays unsent: its papers stay pending
    return get.result()
