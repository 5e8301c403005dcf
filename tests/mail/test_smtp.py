"""The mailer against a real aiosmtpd server on 127.0.0.1: TLS, AUTH, every failure class."""

from __future__ import annotations

import asyncio
import errno
import ssl
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from digest.errors import DeliveryError, SmtpConfigError
from digest.mail.smtp import Mailer
from digest.models import SmtpSettings
from digest.stop import Stop
from tests.support.smtp_server import SmtpServer


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(certificate[0]), str(certificate[1]))
    return ctx


def message(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "papers@digest.test"
    msg["To"] = to
    msg["Subject"] = "test"
    msg.set_content("hello")
    return msg


class NoSleep:
    async def __call__(self, seconds: float) -> None:
        pass


def send(settings: SmtpSettings, recipients: list[str], **kw):
    mailer = Mailer(settings, sleep=NoSleep(), **kw)
    batch = [(r, r, message(r)) for r in recipients]
    return asyncio.run(mailer.send_all(batch))


def plain(port: int, **kw) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1", port=port, sender="P <papers@digest.test>", timeout=5, **kw
    )


def test_one_connection_for_the_whole_batch(smtp: SmtpServer) -> None:
    outcomes = send(plain(smtp.port), [f"u{i}@example.org" for i in range(5)])
    assert [o.status for o in outcomes] == ["accepted"] * 5
    assert smtp.connections == 1
    assert [r.rcpt_tos for r in smtp.received] == [[f"u{i}@example.org"] for i in range(5)]
    assert smtp.received[0].mail_from == "papers@digest.test"


def test_parallel_connections_are_bounded(smtp: SmtpServer) -> None:
    outcomes = send(plain(smtp.port), [f"u{i}@example.org" for i in range(6)], connections=2)
    assert all(o.status == "accepted" for o in outcomes)
    assert smtp.connections == 2 and len(smtp.received) == 6


def test_550_is_refused_and_others_still_go(smtp: SmtpServer) -> None:
    smtp.behaviour.refuse["bad@example.org"] = "550 5.1.1 No such user"
    outcomes = send(plain(smtp.port), ["a@example.org", "bad@example.org", "c@example.org"])
    assert [o.status for o in outcomes] == ["accepted", "refused", "accepted"]
    assert outcomes[1].detail == "550 5.1.1 No such user"


def test_450_is_deferred_after_retries(smtp: SmtpServer) -> None:
    smtp.behaviour.refuse["busy@example.org"] = "450 4.2.1 Mailbox busy"
    (o,) = send(plain(smtp.port), ["busy@example.org"])
    assert o.status == "deferred" and o.detail == "450 4.2.1 Mailbox busy"


def test_421_mid_batch_reconnects_and_continues(smtp: SmtpServer) -> None:
    smtp.behaviour.close_after = 2  # the third message meets "421 shutting down"
    outcomes = send(plain(smtp.port), ["a@x.org", "b@x.org", "c@x.org", "d@x.org"])
    assert [o.status for o in outcomes] == ["accepted"] * 4
    assert [r.rcpt_tos[0] for r in smtp.received] == ["a@x.org", "b@x.org", "c@x.org", "d@x.org"]
    assert smtp.connections == 2


def test_persistent_421_defers_the_rest(smtp: SmtpServer) -> None:
    smtp.behaviour.close_after = 1
    smtp.behaviour.close_always = True
    outcomes = send(plain(smtp.port), ["a@x.org", "b@x.org", "c@x.org"])
    assert [o.status for o in outcomes] == ["accepted", "deferred", "deferred"]
    assert outcomes[1].detail.startswith("421")


def test_dropped_connection_is_retried(smtp: SmtpServer) -> None:
    smtp.behaviour.drop_at_data = 1
    (o,) = send(plain(smtp.port), ["a@example.org"])
    assert o.status == "accepted" and len(smtp.received) == 1


def test_unreachable_server_defers_everything_quickly() -> None:
    outcomes = send(plain(9), ["a@example.org", "b@example.org"])
    assert [o.status for o in outcomes] == ["deferred", "deferred"]
    assert "cannot connect to 127.0.0.1:9" in outcomes[1].detail


def starttls(port: int, **kw) -> SmtpSettings:
    """STARTTLS to ``localhost`` (the certificate's name); ``kw`` adds login and CA."""
    return SmtpSettings(
        host="localhost",
        port=port,
        security="starttls",
        sender="P <papers@digest.test>",
        timeout=5,
        **kw,
    )


def test_starttls_with_auth_and_a_verified_certificate(certificate) -> None:
    with SmtpServer(
        tls_context=server_tls(certificate), require_starttls=True, auth={"digest": "s3cret"}
    ) as srv:
        s = starttls(srv.port, username="digest", password="s3cret", ca_file=certificate[0])
        (o,) = send(s, ["a@example.org"])
        assert o.status == "accepted" and len(srv.received) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_starttls_refuses_to_fall_back_to_clear_text() -> None:
    with SmtpServer(offer_starttls=False, auth={"digest": "s3cret"}) as srv:
        settings = plain(srv.port, security="starttls", username="digest", password="s3cret")
        outcomes = send(settings, ["a@example.org", "b@example.org"])
        assert [o.status for o in outcomes] == ["deferred", "deferred"]
        assert "does not offer STARTTLS" in outcomes[0].detail
        assert srv.received == []


def test_unverifiable_certificate_is_refused(certificate) -> None:
    with SmtpServer(tls_context=server_tls(certificate), require_starttls=True) as srv:
        s = starttls(srv.port)  # no ca_file
        (o,) = send(s, ["a@example.org"])
        assert o.status == "deferred" and "CERTIFICATE_VERIFY_FAILED" in o.detail
        assert srv.received == []


def test_wrong_password_is_a_config_error_for_check(certificate) -> None:
    with SmtpServer(
        tls_context=server_tls(certificate), require_starttls=True, auth={"digest": "s3cret"}
    ) as srv:
        s = starttls(srv.port, username="digest", password="wrong", ca_file=certificate[0])
        with pytest.raises(SmtpConfigError, match="refused the login for 'digest': 535"):
            asyncio.run(Mailer(s).check())
        outcomes = send(s, ["a@example.org", "b@example.org"])
        assert [o.status for o in outcomes] == ["deferred", "deferred"]
        assert "wrong" not in outcomes[0].detail  # the password never shows


def test_check_reports_an_unreachable_server() -> None:
    with pytest.raises(DeliveryError, match="cannot connect"):
        asyncio.run(Mailer(plain(9)).check())


def test_a_stop_cuts_a_slow_send_after_the_grace_and_defers_the_rest(smtp: SmtpServer) -> None:
    smtp.behaviour.data_delay = 5.0

    async def go():
        stop = Stop(sleep=NoSleep())
        mailer = Mailer(plain(smtp.port), stop=stop, stop_grace=0.2)
        batch = [(r, r, message(r)) for r in ("a@example.org", "b@example.org")]
        task = asyncio.ensure_future(mailer.send_all(batch))
        await asyncio.sleep(0.3)  # a's DATA is in flight
        t0 = time.monotonic()
        stop.event.set()
        outcomes = await task
        return outcomes, time.monotonic() - t0

    outcomes, took = asyncio.run(go())
    assert took < 1.0
    assert [o.status for o in outcomes] == ["deferred", "deferred"]
    assert "stopping" in outcomes[0].detail and "stopping" in outcomes[1].detail


def test_a_stop_ends_the_back_off_between_attempts(smtp: SmtpServer) -> None:
    smtp.behaviour.refuse["a@example.org"] = "450 try later"

    async def go():
        stop = Stop()  # the real sleep: without the stop this would wait 1 + 2 s
        mailer = Mailer(plain(smtp.port), stop=stop)
        task = asyncio.ensure_future(mailer.send_all([("a", "a@example.org", message("a"))]))
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        stop.event.set()
        (outcome,) = await task
        return outcome, time.monotonic() - t0

    outcome, took = asyncio.run(go())
    assert took < 0.5 and outcome.status == "deferred" and "stopping" in outcome.detail


# -- the batch ends, whatever fails beside the senders -------------------------------


def bounded(work, seconds: float = 10.0):
    """Run ``work()`` (a coroutine function) to its end in a thread; fail if it hangs.

    ``asyncio.wait_for`` cannot bound a hang in ``send_all``'s own clean-up: it
    waits for the cancelled task to finish, so the loop runs in a thread instead.
    """
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["result"] = asyncio.run(work())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"send_all still running after {seconds} s: it hangs"
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["result"]


def test_a_failing_record_ends_the_batch_with_its_error_instead_of_hanging(
    smtp: SmtpServer,
) -> None:
    reported: list[str] = []

    def record(outcome) -> None:
        reported.append(outcome.recipient)
        raise OSError(errno.ENOSPC, "No space left on device")

    async def go():
        mailer = Mailer(plain(smtp.port), sleep=NoSleep())
        batch = [(f"r{i}", f"r{i}@example.org", message(f"r{i}@example.org")) for i in range(30)]
        return await mailer.send_all(batch, record)

    with pytest.raises(OSError, match="No space left"):
        bounded(go)
    # the one whose record failed reached the caller, and nothing was sent after it
    assert reported == ["r0@example.org"]
    assert [r.rcpt_tos for r in smtp.received] == [["r0@example.org"]]


def test_after_a_failing_record_the_other_connections_finish_and_report_their_message(
    smtp: SmtpServer,
) -> None:
    smtp.behaviour.data_delay = 0.3  # every message is in flight on both connections at once
    reported: list[str] = []

    def record(outcome) -> None:
        reported.append(outcome.recipient)
        if len(reported) == 1:
            raise OSError(errno.EIO, "Input/output error")

    async def go():
        mailer = Mailer(plain(smtp.port), sleep=NoSleep(), connections=3)
        batch = [(f"r{i}", f"r{i}@example.org", message(f"r{i}@example.org")) for i in range(30)]
        return await mailer.send_all(batch, record)

    with pytest.raises(OSError, match="Input/output error"):
        bounded(go)
    accepted = [r.rcpt_tos[0] for r in smtp.received]
    # nothing the server took goes unreported, and no new message started after the failure
    assert sorted(reported) == sorted(accepted)
    assert 1 <= len(accepted) <= 3


def test_a_failing_composer_ends_the_batch_once_the_message_in_flight_is_reported(
    smtp: SmtpServer,
) -> None:
    smtp.behaviour.data_delay = 0.5
    reported: list[str] = []

    async def compose():
        yield "a", "a@example.org", message("a@example.org")
        await asyncio.sleep(0.2)  # a's DATA is in flight
        raise RuntimeError("the composer broke")

    async def go():
        mailer = Mailer(plain(smtp.port), sleep=NoSleep())
        return await mailer.send_all(compose(), lambda o: reported.append(o.status))

    with pytest.raises(RuntimeError, match="the composer broke"):
        bounded(go)
    assert reported == ["accepted"] and len(smtp.received) == 1


# -- internationalised addresses (RFC 5890, RFC 6531) -----------------------------------


def test_an_idna_domain_goes_out_in_a_labels_to_a_server_without_smtputf8(
    smtp: SmtpServer,
) -> None:
    outcomes = send(plain(smtp.port), ["user@bücher.example", "ann@example.org"])
    assert [o.status for o in outcomes] == ["accepted", "accepted"]
    assert [r.rcpt_tos for r in smtp.received] == [
        ["user@xn--bcher-kva.example"],
        ["ann@example.org"],
    ]
    assert not any(r.smtputf8 for r in smtp.received)


def test_a_non_ascii_local_part_goes_out_with_smtputf8_where_the_server_offers_it() -> None:
    with SmtpServer(smtputf8=True) as srv:
        outcomes = send(plain(srv.port), ["jörg@bücher.example", "ann@example.org"])
        assert [o.status for o in outcomes] == ["accepted", "accepted"]
        assert [(r.rcpt_tos, r.smtputf8) for r in srv.received] == [
            (["jörg@xn--bcher-kva.example"], True),
            (["ann@example.org"], False),  # only the message that needs it asks for it
        ]


def test_a_non_ascii_local_part_fails_alone_where_the_server_lacks_smtputf8(
    smtp: SmtpServer,
) -> None:
    outcomes = send(plain(smtp.port), ["jörg@example.org", "ann@example.org"])
    assert [o.status for o in outcomes] == ["failed", "accepted"]
    assert "jörg@example.org" in outcomes[0].detail
    assert "SMTPUTF8" in outcomes[0].detail
    # nothing half-sent was left on the connection: the next reader used it
    assert smtp.connections == 1
    assert [r.rcpt_tos for r in smtp.received] == [["ann@example.org"]]


_LOCALS = st.sampled_from(
    ["jörg", "JÖRG", "用户", "ñ", "o'brien", "user+tag", "a.b", "Z", "ä.ö", "x" * 64]
)
_DOMAINS = st.sampled_from(
    [
        "example.org",
        "EXAMPLE.ORG",
        "bücher.example",
        "BÜCHER.example",
        "xn--bcher-kva.example",
        "straße.de",
        "xn--fa-hia.de",
        "例え.テスト",
        "münchen.xn--fa-hia.de",
    ]
)


def _configurable(address: str) -> bool:
    """Whether ``digest check`` would accept ``address`` as a subscriber's email."""
    from pydantic import ValidationError

    from digest.config.schema import SubscriberModel

    try:
        SubscriberModel.model_validate({"email": address, "keywords": ["x"]})
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("smtputf8", [False, True], ids=["plain server", "SMTPUTF8 server"])
def test_no_address_the_configuration_accepts_stops_the_next_readers_mail(smtputf8: bool) -> None:
    with SmtpServer(smtputf8=smtputf8) as srv:

        @settings(max_examples=25, deadline=None)
        @given(local=_LOCALS, domain=_DOMAINS)
        def one(local: str, domain: str) -> None:
            address = f"{local}@{domain}"
            assume(_configurable(address))
            srv.received.clear()
            outcomes = send(plain(srv.port), [address, "next@example.org"])
            assert outcomes[1].status == "accepted", outcomes
            assert outcomes[0].status in ("accepted", "failed"), outcomes
            if outcomes[0].status == "failed":
                assert address in outcomes[0].detail and "SMTPUTF8" in outcomes[0].detail
            assert srv.received[-1].rcpt_tos == ["next@example.org"]

        one()
