"""Nothing gets in, nothing leaks: hostile papers and names, a marker password, file modes, TLS.

Everything is judged on what leaves digest: the bytes the SMTP server
received, the process output, and the files digest wrote.
"""

from __future__ import annotations

import email
import re
import signal
import ssl
import stat
from collections.abc import Callable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from email import policy
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import run_side_by_side
from tests.faults.world import READERS, World, make_entry
from tests.support.waiting import wait_for

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

MARKER = "pw-MARKER-b71e0d"
SCRIPT = "<script>alert(1)</script>"
ZED = {"email": "zed@example.org", "keywords": ["oversized", "proton"]}
EVE = {
    "email": "eve@example.org",
    "name": 'Eve "<evil@attacker.test>", Mallory <m@evil.test>; =?utf-8?q?x?=',
    "keywords": ["proton"],
}
HEADERS = {
    "From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe",
    "Auto-Submitted", "X-Auto-Response-Suppress", "Precedence", "MIME-Version", "Content-Type",
}  # fmt: skip
TAGS = {
    "html", "head", "meta", "title", "style", "body", "table", "tbody", "thead", "tr", "td",
    "th", "a", "p", "span", "div", "br", "strong", "em", "b", "i", "h1", "h2", "h3", "hr",
    "ul", "li", "mark", "small", "center", "img",
}  # fmt: skip


def hostile_entries() -> list[bytes]:
    t = datetime.now(UTC) - timedelta(minutes=30)
    crlf = "\r\nBcc: victim@evil.test\r\n"
    entries = [
        make_entry(
            "2611.70001",
            f"Proton {SCRIPT}{crlf}</td></tr></table><iframe src=//evil.test>",
            "A proton study <img src=x onerror=alert(2)> <a href='javascript:alert(3)'>x</a> "
            "{{ 7*7 }} {% raw %} \u202etxt.exe\u202c \u2066bidi\u2069 \x7f\x85",
            authors=(f"<b>Bold</b> {SCRIPT}", f"Eve{crlf}", "=?utf-8?b?PHNjcmlwdD4=?="),
            comment=f'</td></tr></table>"><svg onload=alert(4)>{crlf}',
            published=t,
        ),
        make_entry(
            "2611.70002", "Oversized " + "T" * 100_000, "oversized " + "A" * 500_000, published=t
        ),
        make_entry(
            "2611.70003", "Electron [x](javascript:alert(5)) | pipe", "electron", published=t
        ),
    ]
    # an id and a date with markup in them (raw bytes: make_entry would escape them)
    odd_id = make_entry("2611.70004", "Proton odd id", "proton", published=t).replace(
        b"2611.70004v1</id>", b"2611.70004v1&quot;&gt;&lt;script&gt;alert(6)&lt;/script&gt;</id>"
    )
    odd_date = make_entry("2611.70005", "Proton odd date", "proton", published=t).replace(
        b"</published>", b"&lt;b&gt;bold&lt;/b&gt;</published>"
    )
    return [*entries, odd_id, odd_date]


class _Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.handlers: list[str] = []
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name.startswith("on"):
                self.handlers.append(f"{tag} {name}={value}")
            if name in ("href", "src"):
                self.hrefs.append(value or "")


def hostile(tmp: Path) -> World:
    with World(tmp, readers=[*[dict(r) for r in READERS], EVE, ZED]) as w:
        w.script.entries[:0] = hostile_entries()
        w.script.ever[:0] = w.script.entries[:5]
        w.once()
    return w


def marker_everywhere(tmp: Path) -> World:
    with World(tmp, settings={"archive": str(tmp / "papers.md")}) as w:
        w.smtp_script.logins = {"digest": MARKER}
        w.env_extra.update(DIGEST_SMTP_USERNAME="digest", DIGEST_SMTP_PASSWORD=MARKER)
        w.once("-v")
        w.run("check", "--smtp", "-v")
        w.run("status", "-v")
        w.run("preview", "alice@example.org", "-o", str(tmp / "preview.html"), "-v")
        proc = w.daemon(tmp / "daemon.log")
        wait_for(lambda: "cycle ok" in (tmp / "daemon.log").read_text(), 60)
        w.stop(proc, signal.SIGTERM)
        w.smtp_script.logins = {"digest": "another"}  # now the marker is a wrong password
        w.script.entries[:0] = hostile_entries()[2:3]  # something new to send
        w.once("-v")
        w.once()
        w.run("check", "--smtp")
        w.run("check", "--smtp", "-v")
    return w


def tls(with_ca: bool) -> Callable[[Path], World]:
    def scenario(tmp: Path) -> World:
        cert, key = CERT
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(cert), str(key))
        smtp: dict[str, Any] = {"security": "starttls"}
        with World(tmp, smtp_tls=ctx, settings={"smtp": smtp}) as w:
            w.env_extra["DIGEST_SMTP_HOST"] = "localhost"
            w.once()
            smtp["ca_file"] = str(cert)
            w.write_config()
            w.once()
        return w.settle()

    return scenario


CERT: tuple[Path, Path] = (Path(), Path())


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, certificate) -> dict[str, Future[World]]:
    global CERT
    CERT = certificate
    scenarios = {"hostile": hostile, "marker": marker_everywhere, "tls": tls(True)}
    return run_side_by_side(scenarios, tmp_path_factory)


def test_hostile_paper_fields_and_names_inject_no_header(outcomes) -> None:
    w = outcomes["hostile"].result(timeout=300)
    assert w.runs[0].code == 0, str(w.runs[0])
    assert len(w.smtp_script.accepted) == 6
    for a in w.smtp_script.accepted:
        head = a.raw.split(b"\r\n\r\n", 1)[0]
        msg = email.message_from_bytes(a.raw, policy=policy.default)
        assert set(msg.keys()) == HEADERS, sorted(msg.keys())
        assert not re.search(rb"^bcc:", head, re.I | re.M)
        (to,) = msg["To"].addresses
        assert [to.addr_spec] == a.rcpt_tos
        assert all(len(line) <= 998 for line in a.raw.split(b"\r\n"))  # RFC 5322 line limit


def test_hostile_paper_fields_inject_no_markup(outcomes) -> None:
    w = outcomes["hostile"].result(timeout=300)
    for a in w.smtp_script.accepted:
        msg = email.message_from_bytes(a.raw, policy=policy.default)
        html = msg.get_body(("html",)).get_content()
        parser = _Markup()
        parser.feed(html)
        assert parser.tags <= TAGS, parser.tags - TAGS
        assert parser.handlers == []
        assert all(h.startswith(("https://", "mailto:", "#")) for h in parser.hrefs), parser.hrefs
        assert len(html.encode()) < 100_000
        if a.rcpt_tos == ["alice@example.org"]:
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown, as text
            assert "7*7" in msg.get_body(("plain",)).get_content()  # a template? not evaluated


def test_one_oversized_paper_does_not_push_the_others_out_of_the_digest(outcomes) -> None:
    w = outcomes["hostile"].result(timeout=300)
    (zed,) = [a for a in w.smtp_script.accepted if a.rcpt_tos == [ZED["email"]]]
    text = zed.message.get_body(("plain",)).get_content()
    html = zed.message.get_body(("html",)).get_content()
    assert not re.search(r"and \d+ more", text) and len(html.encode()) < 100_000


def test_the_marker_password_appears_in_no_output_file_or_mail(outcomes) -> None:
    w = outcomes["marker"].result(timeout=300)
    codes = [r.code for r in w.runs]
    assert codes[:4] == [0, 0, 0, 0], "\n".join(map(str, w.runs))
    assert codes[-4:-2] == [75, 75] and codes[-2:] == [78, 78], "\n".join(map(str, w.runs))
    assert "refused the login" in w.runs[-1].stderr
    places = {f"digest {' '.join(r.args)}": r.stdout + r.stderr for r in w.runs}
    for path in w.tmp.rglob("*"):
        if path.is_file() and path.name != "subscribers.yaml":
            places[str(path)] = path.read_bytes().decode("utf-8", "replace")
    places.update({f"message {a.number}": a.raw.decode("utf-8", "replace") for a in
                   w.smtp_script.accepted})  # fmt: skip
    assert len(places) > 10
    assert [where for where, text in places.items() if MARKER in text] == []


def test_a_self_signed_server_is_refused_unless_its_ca_is_configured(outcomes) -> None:
    w = outcomes["tls"].result(timeout=300)
    refused, trusted = w.runs[:2]
    assert refused.code == 75 and "CERTIFICATE_VERIFY_FAILED" in refused.stderr, str(refused)
    assert trusted.code == 0, str(trusted)
    assert all(a.number > 0 for a in w.smtp_script.accepted) and len(w.smtp_script.accepted) == 4
    w.check()  # nothing was recorded by the refused run, everything went out once after


# -- who may read what digest writes -------------------------------------------------


def owner_only(path: Path) -> bool:
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> World:
    tmp = tmp_path_factory.mktemp("modes")
    with World(tmp, settings={"archive": str(tmp / "papers.md")}) as w:
        assert w.once("--dry-run", "--outbox", str(tmp / "outbox")).code == 0
        assert w.run("preview", "alice@example.org", "-o", str(tmp / "preview.html")).code == 0
        assert w.run("preview", "alice@example.org").code == 0
        assert w.once().code == 0
        assert w.once().code == 0  # a second open keeps the backup
    return w


@pytest.mark.parametrize("name", ["digest.json", "digest.json.bak", "digest.json.lock"])
def test_the_database_and_its_backup_are_owner_only(written, name) -> None:
    assert owner_only(written.db.with_name(name))


def test_the_temporary_preview_is_owner_only(written) -> None:
    (run,) = [r for r in written.runs if r.args == ("preview", "alice@example.org")]
    printed = Path(run.stdout.strip().splitlines()[-1])
    try:
        assert owner_only(printed)
    finally:
        printed.unlink()


def test_the_daily_papers_page_is_public_and_names_no_reader(written) -> None:
    page = (written.tmp / "papers.md").read_text()
    assert "| **Title** |" in page
    assert not any(r["email"] in page for r in READERS)


def test_outbox_messages_are_owner_only(written) -> None:
    files = list((written.tmp / "outbox").glob("*.eml"))
    assert len(files) == 4 and all(owner_only(f) for f in files)


def test_a_preview_written_to_a_file_is_owner_only(written) -> None:
    assert owner_only(written.tmp / "preview.html")
