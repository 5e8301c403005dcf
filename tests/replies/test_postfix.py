"""The README's Postfix configuration, run: replies reach ``digest ingest``, the rest relays.

A private Postfix instance on loopback runs the ``main.cf`` and the
``master.cf`` service exactly as README.md ("Sending for real") writes them;
only what a test machine cannot have is replaced (``machine_specific``). The
pipe runs the real ``digest ingest`` against a test config and database; an
aiosmtpd server on loopback stands for the provider's relay.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from pathlib import Path
from typing import Any

import pytest
import yaml

from digest.models import ReaderState
from digest.replies import ReplySecret, is_suppressed, reader_links
from digest.store.store import Store
from tests.support.configs import config_dict
from tests.support.mail_clients import gmail
from tests.support.paths import MAIL, ROOT
from tests.support.postfix import Postfix, parse_main_cf
from tests.support.programs import marks
from tests.support.smtp_server import SmtpServer

pytestmark = marks("postfix")

FROM = "papers@digest.example.org"
OPERATOR = Address("Daily Papers", "papers", "digest.example.org")
SECRET = b"test-secret-0123456789abcdef"  # the mail fixtures' links are made with it
ALICE, FRANK = "alice@example.org", "frank@contoso.example"
# pipe(8) runs no command as root or as the postfix user; the README's user is "digest"
PIPE_USER = "nobody"
WAIT = 60.0  # seconds: the most any message may take to be delivered


def readme_block(first_line: str) -> str:
    """The README's fenced code block that starts with ``first_line``."""
    blocks: list[list[str]] = []
    inside = False
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.lstrip().startswith("```"):
            inside = not inside
            if inside:
                blocks.append([])
        elif inside:
            blocks[-1].append(line)
    (block,) = [b for b in blocks if b and b[0] == first_line]
    return "\n".join(block) + "\n"


def machine_specific(relay_port: int) -> dict[str, str]:
    """The README's settings a test machine cannot honour, and nothing else."""
    return {
        # the loopback relay stands for the provider, and takes mail without login or TLS
        "relayhost": f"[127.0.0.1]:{relay_port}",
        "smtp_sasl_auth_enable": "no",
        "smtp_tls_security_level": "none",
        # no OpenDKIM here (with milter_default_action = tempfail, nothing would pass)
        "smtpd_milters": "",
        "non_smtpd_milters": "",
    }


def digest_command(site: Path) -> str:
    """How the pipe's user runs this checkout's ``digest``.

    The venv's script when that user can run it; else this Python's version
    from the system on the venv's packages: a venv whose interpreter lives in
    root's home (pyenv's do) is out of every other user's reach. When the
    checkout itself is out of reach too (a clone in a 0700 folder, as
    ``mktemp -d`` makes), on a readable copy of the code and packages in
    ``site`` (hard links where the file system allows: no data is copied).
    """
    script = Path(sys.executable).parent / "digest"
    if _runs([str(script), "--help"]):
        return str(script)
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    if not system.exists():
        pytest.skip(f"{PIPE_USER} cannot run {script}, and there is no {system}")
    paths = [str(ROOT), *_site_packages()]
    if not _runs(
        [
            "/usr/bin/env",
            f"PYTHONPATH={os.pathsep.join(paths)}",
            str(system),
            "-c",
            "import digest.cli",
        ]
    ):
        copy = site / "code"
        for src, dst in (
            (ROOT / "digest", copy / "digest"),
            (ROOT / "templates", copy / "templates"),
        ):
            _readable_copy(src, dst)
        packages = []
        for n, src in enumerate(_site_packages()):
            _readable_copy(Path(src), site / f"packages-{n}")
            packages.append(str(site / f"packages-{n}"))
        paths = [str(copy), *packages]
    return f"/usr/bin/env PYTHONPATH={os.pathsep.join(paths)} {system} -m digest"


def _site_packages() -> list[str]:
    import site as site_module

    return site_module.getsitepackages()


def _runs(argv: list[str]) -> bool:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        tried = subprocess.run(argv, user=PIPE_USER, capture_output=True, timeout=60)
        return tried.returncode == 0
    return False


def _readable_copy(src: Path, dst: Path) -> None:
    def link_or_copy(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:  # another file system
            shutil.copy2(a, b)

    shutil.copytree(
        src, dst, copy_function=link_or_copy, ignore=shutil.ignore_patterns("__pycache__")
    )
    for folder in (dst, *(p for p in dst.rglob("*") if p.is_dir())):
        folder.chmod(0o755)


def pipe_service(config: Path, site: Path) -> str:
    """The README's master.cf service, running this checkout's ``digest`` on the test config."""
    service = readme_block("# /etc/postfix/master.cf (added)")
    for old, new in (
        ("user=digest", f"user={PIPE_USER}"),
        ("/opt/digest/venv/bin/digest", digest_command(site)),
        ("/etc/digest/subscribers.yaml", str(config)),
    ):
        assert old in service, f"the README's pipe service no longer has {old!r}"
        service = service.replace(old, new)
    return service


@dataclass
class Host:
    """This host as the README sets it up: Postfix, the relay behind it, digest's state."""

    postfix: Postfix
    relay: SmtpServer
    database: Path

    def send(self, raw: bytes, recipient: str, sender: str = "") -> None:
        with smtplib.SMTP("127.0.0.1", self.postfix.port, timeout=10) as client:
            client.sendmail(sender, [recipient], raw)

    def reader(self, address: str) -> ReaderState:
        with Store.open(self.database, readonly=True) as store:
            return store.reader_state(address)

    def wait_for(self, done: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not done():
            failed = re.findall(r"status=(?:bounced|deferred).*", self.postfix.log())
            assert not failed, f"{what}: {failed}"
            assert time.monotonic() < deadline, f"{what}: not within {WAIT} s\n{self.postfix.log()}"
            time.sleep(0.1)

    def piped(self) -> int:
        """Messages the digest service took (pipe(8) logs ``relay=digest`` per delivery)."""
        return len(re.findall(r"relay=digest, .*status=sent", self.postfix.log()))


@pytest.fixture(scope="module")
def host() -> Iterator[Host]:
    if os.geteuid() != 0:
        pytest.skip("a private Postfix instance must be started as root")
    site = Path(tempfile.mkdtemp(prefix="digest-site-"))
    try:
        site.chmod(0o755)  # the pipe's user must reach the config and the state below
        state = site / "state"
        state.mkdir()
        (state / "reply-secret").write_bytes(SECRET + b"\n")
        (state / "reply-secret").chmod(0o600)
        config = site / "subscribers.yaml"
        data: dict[str, Any] = config_dict(
            "http://127.0.0.1:9/api/query",
            subscribers=[
                {"email": ALICE, "keywords": ["proton"]},
                {"email": FRANK, "keywords": ["reinforcement learning"]},
            ],
            database=str(state / "digest.json"),
            smtp={"from": f"Daily Papers <{FROM}>"},
        )
        config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        for path in (state, *state.iterdir()):
            shutil.chown(path, user=PIPE_USER)
        with SmtpServer() as relay:
            settings = parse_main_cf(readme_block("# /etc/postfix/main.cf"))
            settings.update(machine_specific(relay.port))
            with Postfix(settings, pipe_service(config, site)) as postfix:
                assert postfix.start(), postfix.why_not
                yield Host(postfix, relay, state / "digest.json")
    finally:
        shutil.rmtree(site, ignore_errors=True)


def test_a_reply_to_the_from_address_reaches_digest_ingest_and_pauses_the_reader(
    host: Host,
) -> None:
    pause = reader_links(
        ReplySecret(SECRET), OPERATOR, ALICE, issued=datetime.now(UTC).date()
    ).pause
    host.send(gmail(pause, f"Alice <{ALICE}>"), FROM, sender=ALICE)
    host.wait_for(
        lambda: host.database.exists() and host.reader(ALICE).paused_until is not None,
        "alice paused by her reply",
    )
    assert is_suppressed(host.reader(ALICE), datetime.now(UTC))


def test_out_of_office_replies_through_postfix_leave_the_reader_subscribed(host: Host) -> None:
    # As Exchange sends it: a null envelope sender. Postfix adds the
    # Return-Path and Delivered-To the fixture carries, so they go first.
    raw = (MAIL / "exchange_automatic_reply.eml").read_bytes()
    raw = raw[raw.index(b"Received: from DM6PR11MB4593") :]
    before = host.piped()
    for day in range(3):
        host.send(raw.replace(b"<a5b1e0f2", f"<day{day}.a5b1e0f2".encode()), FROM)
    host.wait_for(lambda: host.piped() == before + 3, "three out-of-office replies piped")
    assert host.reader(FRANK) == ReaderState()


def test_mail_to_anyone_else_relays(host: Host) -> None:
    raw = b"From: papers@digest.example.org\r\nSubject: a digest\r\n\r\nnew papers\r\n"
    host.send(raw, "bob@example.com", sender=FROM)
    host.wait_for(
        lambda: any(r.rcpt_tos == ["bob@example.com"] for r in host.relay.received),
        "mail to bob@example.com relayed",
    )


def test_postmaster_at_the_from_domain_reaches_the_operator(host: Host) -> None:
    raw = b"From: someone@example.net\r\nSubject: hello\r\n\r\nabuse report\r\n"
    host.send(raw, "postmaster@digest.example.org", sender="someone@example.net")
    host.wait_for(
        lambda: any(r.rcpt_tos == ["you@example.org"] for r in host.relay.received),
        "postmaster mail relayed to the operator",
    )


def test_other_addresses_at_the_from_domain_are_refused_at_rcpt(host: Host) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        host.send(b"Subject: hi\r\n\r\nhi\r\n", "nobody@digest.example.org", sender=ALICE)
    ((code, _),) = refused.value.recipients.values()
    assert code == 550
