"""A real, throw-away Dovecot IMAP server on 127.0.0.1 (Debian package dovecot-imapd).

Everything lives in one temporary folder: the config, a passwd-file with one
user and a ``{PLAIN}`` password, the maildirs, the runtime sockets, the log,
and (unless ``ssl="no"``) a self-signed certificate for 127.0.0.1/localhost.
``dovecot -c CONF -F`` runs in the foreground as a child process, so stopping
it is a signal to a pid we own.

Run as root (CI, containers), Dovecot drops privileges: its login processes
run as ``dovenull`` and its internal ones as ``dovecot`` (both created by the
package), and the mail user gets the uid of ``nobody`` (Dovecot refuses uid
0 for mail). Run as anyone else, every process stays that user.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Literal

from tests.support.network import free_port
from tests.support.programs import make_certificate

BINARY = Path("/usr/sbin/dovecot")
START_TIMEOUT = 10.0

SslMode = Literal["no", "yes", "required"]


class Dovecot:
    """``with Dovecot() as imap: imap.port, imap.tls_port, imap.certificate, imap.append(...)``."""

    user = "reader"
    password = "correct horse"

    def __init__(self, *, ssl_mode: SslMode = "yes", extra: str = "") -> None:
        self.ssl_mode = ssl_mode
        self.extra = extra  # more dovecot.conf lines, e.g. an imap_capability without MOVE
        self.root = Path(tempfile.mkdtemp(prefix="digest-dovecot-"))
        # The mail user (nobody, when we are root) must reach its maildir.
        self.root.chmod(0o755)
        self.port = free_port()  # plain IMAP, with STARTTLS unless ssl_mode is "no"
        self.tls_port = free_port()  # implicit TLS (only when ssl_mode is not "no")
        self.certificate: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle

    def __enter__(self) -> Dovecot:
        try:
            self.start()
        except BaseException:
            shutil.rmtree(self.root, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def start(self) -> None:
        conf = self._write_config()
        self.process = subprocess.Popen(
            [str(BINARY), "-c", str(conf), "-F"],
            start_new_session=True,  # its own process group: crash() reaches every child
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "stderr.log", "wb"),  # noqa: SIM115 - lives as long as dovecot
        )
        deadline = time.monotonic() + START_TIMEOUT
        ports = [self.port] + ([self.tls_port] if self.ssl_mode != "no" else [])
        while not all(self._listening(p) for p in ports):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dovecot did not start:\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM: Dovecot's master ends its children, which drops every client."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def crash(self) -> None:
        """SIGKILL to the whole process group: the server vanishes mid-session.

        (A plain stop lets a logged-in imap process finish its session.)
        """
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def log(self) -> str:
        parts = []
        for name in ("dovecot.log", "stderr.log"):
            path = self.root / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def wait_for_log(self, text: str, timeout: float = 5.0) -> str:
        """The log once it mentions ``text`` (Dovecot writes it a moment after the fact)."""
        deadline = time.monotonic() + timeout
        while text not in (log := self.log()):
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not in the Dovecot log:\n{log}")
            time.sleep(0.02)
        return log

    @staticmethod
    def _listening(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False

    def _write_config(self) -> Path:
        root = self.root
        (root / "run").mkdir()
        mail = root / "mail"
        mail.mkdir()
        unprivileged = ""
        if os.geteuid() == 0:
            mail_uid = mail_gid = pwd.getpwnam("nobody").pw_uid
            internal, login = "dovecot", "dovenull"
            os.chown(mail, mail_uid, mail_gid)
        else:
            mail_uid, mail_gid = os.getuid(), os.getgid()
            internal = login = pwd.getpwuid(mail_uid).pw_name
            # These sockets default to group dovecot, which only root can chown to.
            unprivileged = "".join(
                f"service {svc} {{\n  unix_listener {svc if sock is None else sock} {{\n"
                "    group =\n  }\n}\n"
                for svc, sock in (
                    ("stats", "stats-writer"),
                    ("imap-hibernate", None),
                    ("dict", None),
                    ("dict-async", None),
                )
            )
        (root / "passwd").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{mail_uid}:{mail_gid}::{mail}/{self.user}\n"
        )
        tls = ""
        listeners = f"  inet_listener imap {{\n    port = {self.port}\n  }}\n"
        if self.ssl_mode != "no":
            self.certificate, key = make_certificate(root)
            tls = f"ssl_cert = <{self.certificate}\nssl_key = <{key}\n"
            listeners += (
                f"  inet_listener imaps {{\n    port = {self.tls_port}\n    ssl = yes\n  }}\n"
            )
        conf = root / "dovecot.conf"
        conf.write_text(
            f"""\
base_dir = {root}/run
state_dir = {root}/run
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = 1
ssl = {self.ssl_mode}
{tls}disable_plaintext_auth = no
auth_mechanisms = plain login
# Tests try wrong passwords on purpose: no 2 s delay, and no growing per-IP
# penalty (Dovecot's documented switch: an unusable anvil-auth-penalty socket).
auth_failure_delay = 0
# No chroots: only root may chroot, and these tests may run as anyone.
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/passwd
}}
userdb {{
  driver = passwd-file
  args = {root}/passwd
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
{listeners}}}
{unprivileged}{self.extra}
"""
        )
        return conf

    # -- the mailbox, as a mail client sees it

    def client(self) -> imaplib.IMAP4:
        """A logged-in plain connection, for putting mail in and looking at it."""
        conn = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        conn.login(self.user, self.password)
        return conn

    def create(self, folder: str) -> None:
        conn = self.client()
        try:
            typ, data = conn.create(f'"{folder}"')
            assert typ == "OK", data
        finally:
            conn.logout()

    def append(self, folder: str, raw: bytes, flags: str = "") -> None:
        conn = self.client()
        try:
            typ, data = conn.append(f'"{folder}"', f"({flags})" if flags else None, None, raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def contents(self, folder: str) -> list[tuple[frozenset[str], bytes]]:
        """Every message in ``folder`` as (flags, raw), in UID order; [] if it does not exist."""
        conn = self.client()
        try:
            typ, _ = conn.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return []
            typ, data = conn.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[])")
            out = []
            for item in data:
                if isinstance(item, tuple):
                    head = item[0].decode()
                    flags = head[head.index("FLAGS (") + 7 :].split(")", 1)[0].split()
                    # \Recent belongs to the session, not to the message
                    out.append((frozenset(flags) - {"\\Recent"}, item[1]))
            return out
        finally:
            conn.logout()
