"""Delivery throughput: digest's Mailer against a slow relay, a naive loop and Postfix.

Every figure is printed beside its baseline from the same run:

* (a) digest's ``Mailer`` with 1, 2, 4 and 8 connections to an aiosmtpd relay
  on 127.0.0.1 that answers every command after ``--delay`` (20 ms). A
  message costs three delayed round trips (MAIL, RCPT, end of DATA; the 354
  comes at once), so the latency bound is ``connections / (3 × delay)``.
* (a') the same pool shape sending bytes serialised once (what the Mailer
  would do after the change this benchmark argues for), straight through
  aiosmtplib, so the difference is the per-attempt ``flatten_message``.
* (b) naive ``smtplib`` loops to the same relay: one connection, one message
  after another; and the classic snippet that opens a connection per message.
* (c) a private Postfix on loopback that accepts and discards: accept rate
  with 1 and 8 connections and how long its queue takes to drain.

The relay runs in a child process, so the client CPU per message (this
process's CPU time) is the client's alone. The messages are a realistic day
(``tests/support/spam.py``: 143 recorded papers, eight readers, 3-151 kB),
composed once and reused round-robin for N recipients.

    .venv/bin/python benchmarks/send_throughput.py            # full, ~2 minutes
    .venv/bin/python benchmarks/send_throughput.py --quick    # CI smoke, seconds
    .venv/bin/python benchmarks/send_throughput.py --profile  # where client CPU goes
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import email
import email.policy
import functools
import os
import pstats
import signal
import smtplib
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# aiosmtplib is imported here as well as in digest/mailer.py on purpose: (a')
# measures sending pre-serialised bytes, which the Mailer cannot do yet.
import aiosmtplib  # noqa: E402

from digest.compose.render import build_message, compose  # noqa: E402
from digest.mail.smtp import Mailer  # noqa: E402
from digest.matching.rules import match_all  # noqa: E402
from digest.models import Settings, SmtpSettings  # noqa: E402
from digest.ranking import build_corpus, rank  # noqa: E402
from tests.support.postfix import Postfix  # noqa: E402
from tests.support.spam import CREATED, SUBSCRIBERS, day_papers  # noqa: E402

SENDER = "Daily Papers <papers@digest.example.org>"
ENVELOPE = "papers@digest.example.org"
HELO = "digest.example.org"

Batch = list[tuple[str, str, EmailMessage]]


# --------------------------------------------------------------------------
# The messages


def day_digests() -> list[EmailMessage]:
    """The realistic day's digests as ``digest once`` builds them."""
    settings = Settings(smtp=SmtpSettings(sender=SENDER))
    papers = day_papers()
    corpus = build_corpus(papers)
    out: list[EmailMessage] = []
    for sub in SUBSCRIBERS:
        matches = match_all(papers, sub)
        if not matches and not sub.send_empty:
            continue
        digest, rendered = compose(
            sub,
            rank(matches, corpus),
            settings,
            cycle_id="20261130.send",
            created=CREATED,
            empty_reason=None if matches else "no paper matched your keywords",
        )
        # build_message serialises once (bytes); the EmailMessage paths parse it back
        raw = build_message(digest, rendered, settings)
        out.append(email.message_from_bytes(raw, policy=email.policy.default))
    return out


def serialise(msg: EmailMessage) -> bytes:
    """What aiosmtplib's ``flatten_message`` produces, done once."""
    return msg.as_bytes(policy=email.policy.SMTP)


def batch_of(messages: Sequence[EmailMessage], n: int) -> Batch:
    return [(f"r{i}", f"reader{i}@example.org", messages[i % len(messages)]) for i in range(n)]


# --------------------------------------------------------------------------
# (a) the slow relay, in a child process


class _SlowHandler:
    """Answers every command ``delay`` seconds late and throws the message away."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.accepted = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        await asyncio.sleep(self.delay)
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(self.delay)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(self.delay)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        self.accepted += 1
        return "250 2.0.0 accepted"

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return "250 OK"

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return "221 Bye"


def relay_main(delay: float) -> None:
    """Child process: serve on a free port, print it, stop when stdin closes."""
    from aiosmtpd.smtp import SMTP

    handler = _SlowHandler(delay)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> asyncio.base_events.Server:
        return await loop.create_server(
            lambda: SMTP(handler, hostname="relay.test", data_size_limit=0),
            "127.0.0.1",
            0,
        )

    server = asyncio.run_coroutine_threadsafe(start(), loop).result(5)
    print(server.sockets[0].getsockname()[1], flush=True)
    sys.stdin.read()
    cpu = time.process_time()
    print(f"{handler.accepted} {cpu:.3f}", flush=True)


class Relay:
    """``with Relay(0.02) as r: r.port``; ``r.cpu()`` is the relay's CPU seconds so far."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Relay:
        self._proc = subprocess.Popen(
            [sys.executable, __file__, "--relay-child", str(self.delay)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.port = int(self._proc.stdout.readline())
        return self

    def cpu(self) -> float:
        """User + system CPU seconds of the relay process (from /proc)."""
        assert self._proc is not None
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def __exit__(self, *exc: object) -> None:
        assert self._proc is not None
        with contextlib.suppress(OSError):
            self._proc.communicate(timeout=10)
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


# --------------------------------------------------------------------------
# Senders: each returns after the whole batch; the caller times it


def send_mailer(port: int, batch: Batch, connections: int) -> None:
    """(a) digest's Mailer, exactly as a cycle calls it."""
    settings = SmtpSettings(host="127.0.0.1", port=port, sender=SENDER, timeout=30)
    mailer = Mailer(settings, connections=connections)
    outcomes = asyncio.run(mailer.send_all(batch))
    bad = [o for o in outcomes if o.status != "accepted"]
    if bad:
        raise RuntimeError(f"{len(bad)} not accepted, e.g. {bad[0]}")


async def _bytes_pool(port: int, items: Sequence[tuple[str, bytes]], connections: int) -> None:
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(
            hostname="127.0.0.1", port=port, start_tls=False, local_hostname=HELO, timeout=30
        )
        await smtp.connect()
        try:
            while True:
                try:
                    recipient, raw = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                errors, _ = await smtp.sendmail(ENVELOPE, [recipient], raw)
                if errors:
                    raise RuntimeError(f"refused: {errors}")
        finally:
            await smtp.quit()

    await asyncio.gather(*(worker() for _ in range(min(connections, len(items)))))


def send_bytes(port: int, items: Sequence[tuple[str, bytes]], connections: int) -> None:
    """(a') the Mailer's pool shape, each message serialised once beforehand."""
    asyncio.run(_bytes_pool(port, items, connections))


def send_naive(port: int, batch: Batch, _connections: int = 1) -> None:
    """(b) one smtplib connection, one message after another."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname=HELO, timeout=30) as smtp:
        for _, recipient, msg in batch:
            smtp.send_message(msg, ENVELOPE, [recipient])


def send_naive_per_message(port: int, batch: Batch, _connections: int = 1) -> None:
    """(b') the snippet most scripts start from: a connection per message."""
    for _, recipient, msg in batch:
        with smtplib.SMTP("127.0.0.1", port, local_hostname=HELO, timeout=30) as smtp:
            smtp.send_message(msg, ENVELOPE, [recipient])


# --------------------------------------------------------------------------
# (c) a private Postfix on loopback


# Accept from loopback, discard everything, never look anything up.
DISCARD = {
    "myhostname": "digest-bench.localdomain",
    "mydomain": "localdomain",
    "mydestination": "",
    "relay_domains": "",
    "local_recipient_maps": "",
    "mynetworks": "127.0.0.0/8",
    "smtpd_relay_restrictions": "permit_mynetworks, reject",
    "default_transport": "discard",
    "relay_transport": "discard",
}


# --------------------------------------------------------------------------
# Measuring


@dataclass(frozen=True, slots=True)
class Run:
    messages: int
    wall: float
    cpu: float  # this process (the client)
    server_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.wall

    @property
    def cpu_ms(self) -> float:
        return 1000 * self.cpu / self.messages

    @property
    def server_cpu_ms(self) -> float:
        return 1000 * self.server_cpu / self.messages


def timed(send: Callable[[], None], n: int, server_cpu: Callable[[], float] = lambda: 0.0) -> Run:
    s0 = server_cpu()
    c0, w0 = time.process_time(), time.perf_counter()
    send()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    return Run(n, wall, cpu, server_cpu() - s0)


def median_run(runs: Sequence[Run]) -> Run:
    """The run with the median rate (its CPU figures belong to it)."""
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


def row(label: str, runs: Sequence[Run], extra: str = "") -> Run:
    m = median_run(runs)
    spread = " ".join(f"{r.rate:.1f}" for r in runs)
    server = f", relay CPU {m.server_cpu_ms:.2f} ms/msg" if m.server_cpu else ""
    # What the client's CPU alone would allow on one free core.
    ceiling = f" (≤ {1000 / m.cpu_ms:.0f}/s per core)" if m.cpu_ms else ""
    print(
        f"  {label:<34} {m.rate:7.1f} msg/s  (runs: {spread})  "
        f"client CPU {m.cpu_ms:.2f} ms/msg{ceiling}{server}{extra}"
    )
    return m


# --------------------------------------------------------------------------
# The benchmark


def bench_relay(args: argparse.Namespace, messages: list[EmailMessage], raw: list[bytes]) -> None:
    d = args.delay
    print(
        f"(a) relay on 127.0.0.1 answering each command after {d * 1000:.0f} ms "
        f"(child process); bound = connections / (3 × {d * 1000:.0f} ms); "
        f"median of {args.runs} runs"
    )
    with Relay(d) as relay:
        # (b) first: the baselines every other figure is divided by.
        n_naive = args.per_connection
        naive = row(
            "naive smtplib, 1 connection",
            [
                timed(
                    lambda: send_naive(relay.port, batch_of(messages, n_naive)),
                    n_naive,
                    relay.cpu,
                )
                for _ in range(args.runs)
            ],
        )
        per_msg = row(
            "naive smtplib, connection/message",
            [
                timed(
                    lambda: send_naive_per_message(relay.port, batch_of(messages, n_naive)),
                    n_naive,
                    relay.cpu,
                )
                for _ in range(args.runs)
            ],
        )
        print(
            f"  (bound for one connection: {1 / (3 * d):.1f} msg/s; "
            f"naive one-connection {100 * naive.rate * 3 * d:.0f}% of it)"
        )
        for label, sender, conns in (
            ("Mailer (EmailMessage)", "mailer", args.connections),
            ("bytes once (aiosmtplib)", "bytes", args.connections),
        ):
            for c in conns:
                n = args.per_connection * c
                go: Callable[[], None]
                if sender == "mailer":
                    go = functools.partial(send_mailer, relay.port, batch_of(messages, n), c)
                else:
                    items = [(f"reader{i}@example.org", raw[i % len(raw)]) for i in range(n)]
                    go = functools.partial(send_bytes, relay.port, items, c)

                bound = c / (3 * d)
                runs = [timed(go, n, relay.cpu) for _ in range(args.runs)]
                m = median_run(runs)
                row(
                    f"{label}, {c} conn",
                    runs,
                    f"; {100 * m.rate / bound:.0f}% of {bound:.0f}/s bound, "
                    f"{m.rate / naive.rate:.1f}× naive, {m.rate / per_msg.rate:.1f}× "
                    f"conn/message",
                )
    # The same relay answering at once: what the client's and the relay's CPU
    # allow on this machine right now, whatever the latency. A rate above is
    # bounded by this as much as by the latency bound.
    c = max(args.connections)
    n = args.per_connection * c
    print(f"(a0) the same relay answering at once, {c} connections: this machine's ceiling")
    with Relay(0.0) as fast:
        row(
            f"Mailer (EmailMessage), {c} conn",
            [
                timed(
                    functools.partial(send_mailer, fast.port, batch_of(messages, n), c),
                    n,
                    fast.cpu,
                )
                for _ in range(args.runs)
            ],
        )
        items = [(f"reader{i}@example.org", raw[i % len(raw)]) for i in range(n)]
        row(
            f"bytes once (aiosmtplib), {c} conn",
            [
                timed(functools.partial(send_bytes, fast.port, items, c), n, fast.cpu)
                for _ in range(args.runs)
            ],
        )


def bench_postfix(args: argparse.Namespace, messages: list[EmailMessage], raw: list[bytes]) -> None:
    print("(c) private Postfix on loopback (accept, queue, discard)")
    pf = Postfix(DISCARD)
    try:
        if not pf.start():
            print(f"  skipped: {pf.why_not}")
            return
        version = subprocess.run(
            [
                str(Path(pf.exe or "postfix").with_name("postconf")),
                "-c",
                str(pf.etc),
                "-h",
                "mail_version",
            ],
            capture_output=True,
            text=True,
        ).stdout.strip()
        print(f"  Postfix {version}, smtpd on 127.0.0.1:{pf.port}, queue in {pf.base}/queue")
        n = args.postfix_messages
        cases: list[tuple[str, int, Callable[[int], None]]] = [
            ("naive smtplib, 1 connection", 1, lambda p: send_naive(p, batch_of(messages, n))),
            (
                "Mailer (EmailMessage), 1 conn",
                1,
                lambda p: send_mailer(p, batch_of(messages, n), 1),
            ),
            (
                "Mailer (EmailMessage), 8 conn",
                8,
                lambda p: send_mailer(p, batch_of(messages, n), 8),
            ),
            (
                "bytes once (aiosmtplib), 8 conn",
                8,
                lambda p: send_bytes(
                    p, [(f"reader{i}@example.org", raw[i % len(raw)]) for i in range(n)], 8
                ),
            ),
        ]
        for label, _c, send in cases:
            runs, drains = [], []
            for _ in range(args.runs):
                pf.wait_drained()
                runs.append(timed(functools.partial(send, pf.port), n))
                drains.append(pf.wait_drained())
            m = median_run(runs)
            total = m.wall + statistics.median(drains)
            row(
                label,
                runs,
                f"; queue empty {statistics.median(drains):.2f} s after the last accept "
                f"({n / total:.0f} msg/s accepted-to-discarded)",
            )
    finally:
        pf.stop()


def regex_cost(raw: Sequence[bytes]) -> float:
    """CPU ms per message of what aiosmtplib's ``sendmail`` does to the bytes.

    The line-ending regex runs twice (once to compute the SIZE option, once
    before DATA), the dot-stuffing regex once.
    """
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    c0 = time.process_time()
    for r in list(raw) * 10:
        len(normalize_message_line_endings(r))
        PERIOD_REGEX.sub(b"..", normalize_message_line_endings(r))
    return 1000 * (time.process_time() - c0) / (10 * len(raw))


def profile(
    args: argparse.Namespace,
    messages: list[EmailMessage],
    raw: list[bytes],
    flatten_ms: float,
    regex_ms: float,
) -> None:
    """Where the client's CPU goes in an 8-connection run, Mailer vs bytes once.

    First without a profiler (cProfile's per-call cost inflates the email
    generator's many small calls), splitting the measured CPU per message by
    the directly timed parts; then cProfile with a CPU clock for the detail.
    """
    n = args.per_connection * 8
    with Relay(args.delay) as relay:
        mailer = median_run(
            [
                timed(functools.partial(send_mailer, relay.port, batch_of(messages, n), 8), n)
                for _ in range(args.runs)
            ]
        )
        items = [(f"reader{i}@example.org", raw[i % len(raw)]) for i in range(n)]
        once = median_run(
            [
                timed(functools.partial(send_bytes, relay.port, items, 8), n)
                for _ in range(args.runs)
            ]
        )
        cases: tuple[tuple[str, Callable[[], None]], ...] = (
            (
                "Mailer (EmailMessage)",
                functools.partial(send_mailer, relay.port, batch_of(messages, n), 8),
            ),
            ("bytes once", functools.partial(send_bytes, relay.port, items, 8)),
        )
        regex_s = []
        for label, go in cases:
            # CPU time, not wall: waiting in epoll is not the client's cost.
            prof = cProfile.Profile(time.process_time)
            prof.enable()
            go()
            prof.disable()
            print(f"\nprofile of the client, {label}, 8 connections, {n} messages:")
            stats = pstats.Stats(prof)
            print_split(stats)
            regex_s.append(_regex_time(stats.stats, "aiosmtplib/protocol.py"))  # type: ignore[attr-defined]

    # The split that holds without a profiler: flatten_message is what the
    # bytes path saves (same run, same machine state); the regexes are one C
    # call each, which cProfile times without distortion.
    regex_in_run = 1000 * statistics.mean(regex_s) / n
    flatten_in_run = mailer.cpu_ms - once.cpu_ms
    rest = mailer.cpu_ms - flatten_in_run - regex_in_run
    print(
        f"\nclient CPU per message, 8 connections, {n} messages "
        f"(median of {args.runs}, no profiler):"
    )
    print(f"  Mailer (EmailMessage)        {mailer.cpu_ms:.2f} ms")
    for name, ms in (
        ("flatten_message (Mailer - bytes)", flatten_in_run),
        ("line-ending + dot regexes", regex_in_run),
        ("the rest (asyncio, aiosmtplib)", rest),
    ):
        print(f"    {name:<34} {ms:.2f} ms  {100 * ms / mailer.cpu_ms:3.0f}%")
    print(
        f"  bytes once                   {once.cpu_ms:.2f} ms "
        f"({100 * (1 - once.cpu_ms / mailer.cpu_ms):.0f}% less; regexes now "
        f"{100 * regex_in_run / once.cpu_ms:.0f}% of it)"
    )
    print(
        f"  isolated, for reference: flatten_message {flatten_ms:.2f} ms, regexes "
        f"{regex_ms:.2f} ms (a loop over the same messages; noisier on a shared machine)"
    )


def _cum(stats: dict[Any, Any], file_part: str, name: str) -> float:
    return float(sum(v[3] for (f, _line, fn), v in stats.items() if file_part in f and fn == name))


def _regex_time(stats: dict[Any, Any], caller_file: str) -> float:
    """Own time of re.Pattern.sub called from ``caller_file`` (aiosmtplib's protocol)."""
    total = 0.0
    for (_f, _l, fn), v in stats.items():
        if fn == "<method 'sub' of 're.Pattern' objects>":
            for (cf, _cl, _cfn), cv in v[4].items():
                if caller_file in cf:
                    total += cv[2]
    return total


def print_split(st: pstats.Stats) -> None:
    stats: dict[Any, Any] = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values())  # own times add up to the whole
    parts = {
        "flatten_message (email generator)": _cum(stats, "aiosmtplib/email.py", "flatten_message"),
        "line-ending + dot-stuffing regexes": _regex_time(stats, "aiosmtplib/protocol.py"),
        "socket send/recv (kernel copy)": sum(
            v[2]
            for (f, _l, fn), v in stats.items()
            if "socket" in fn and ("send" in fn or "recv" in fn)
        ),
        "select/epoll": sum(
            v[2] for (_f, _l, fn), v in stats.items() if "poll" in fn or "select" in fn
        ),
    }
    for name, t in parts.items():
        print(f"  {name:<40} {t:6.3f} s  {100 * t / total:5.1f}%")
    rest = total - sum(parts.values())
    print(
        f"  {'everything else (asyncio, aiosmtplib)':<40} {rest:6.3f} s  {100 * rest / total:5.1f}%"
    )
    print(f"  {'total (profiled)':<40} {total:6.3f} s")
    print("  top own-time functions:")
    for (f, line, fn), v in sorted(stats.items(), key=lambda kv: -kv[1][2])[:8]:
        print(f"    {v[2]:6.3f} s  {fn}  ({Path(f).name}:{line})")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a few seconds, for CI")
    p.add_argument("--profile", action="store_true", help="profile the client, 8 connections")
    p.add_argument("--delay", type=float, default=0.020, help="relay latency per command (s)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--per-connection", type=int, default=50, help="messages per connection")
    p.add_argument("--postfix-messages", type=int, default=400)
    p.add_argument("--no-postfix", action="store_true")
    p.add_argument("--connections", type=int, nargs="+", default=[1, 2, 4, 8])
    p.add_argument("--relay-child", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.relay_child is not None:
        relay_main(args.relay_child)
        return
    if args.quick:
        args.runs, args.per_connection, args.postfix_messages = 1, 6, 40
        args.connections = (1, 8)

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (1 / 5 / 15 min)")
    t0 = time.perf_counter()
    messages = day_digests()
    raw = [serialise(m) for m in messages]
    sizes = sorted(len(r) for r in raw)
    print(
        f"messages: {len(messages)} digests of a realistic day, "
        f"{sizes[0] / 1000:.0f}-{sizes[-1] / 1000:.0f} kB (median "
        f"{statistics.median(sizes) / 1000:.0f} kB), reused round-robin; "
        f"composed in {time.perf_counter() - t0:.1f} s"
    )
    from aiosmtplib.email import flatten_message

    c0 = time.process_time()
    for m in messages * 10:
        flatten_message(m)  # what send_message does on every attempt
    flatten_ms = 1000 * (time.process_time() - c0) / (10 * len(messages))
    print(f"aiosmtplib's flatten_message per message: {flatten_ms:.2f} ms CPU")
    regex_ms = regex_cost(raw)
    print(
        f"aiosmtplib's line-ending regex (twice: SIZE, then DATA) + dot-stuffing on those "
        f"bytes: {regex_ms:.2f} ms CPU"
    )
    if args.profile:
        profile(args, messages, raw, flatten_ms, regex_ms)
        return
    bench_relay(args, messages, raw)
    if not args.no_postfix:
        bench_postfix(args, messages, raw)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
