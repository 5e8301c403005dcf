"""A private Postfix instance on loopback, for the tests and the benchmarks.

Its configuration and queue live in a fresh temporary folder, its smtpd
listens on one free port of 127.0.0.1, and ``stop`` (or leaving the ``with``)
stops the master and removes the folder. Starting one needs root: the
master runs as root and drops to the ``postfix`` user, as a system instance
does. The settings that make it private (paths, the listening address, no
DNS) are applied last, over whatever configuration the caller passes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

BINARY = Path("/usr/sbin/postfix")
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold")

# No chroot (a throw-away queue directory has no chroot jail), only the
# services an instance that receives, relays or discards uses; the smtpd
# listens on one port. Callers append their own services (a pipe).
MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n -  0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n -  - trivial-rewrite
bounce    unix  - - n -  0 bounce
defer     unix  - - n -  0 bounce
trace     unix  - - n -  0 bounce
verify    unix  - - n -  1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -  - proxymap
showq     unix  n - n -  - showq
smtp      unix  - - n -  - smtp
relay     unix  - - n -  - smtp
error     unix  - - n -  - error
retry     unix  - - n -  - error
discard   unix  - - n -  - discard
anvil     unix  - - n -  1 anvil
scache    unix  - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_main_cf(text: str) -> dict[str, str]:
    """``name = value`` settings of a main.cf, as postconf(5) reads it.

    A line starting with ``#`` is a comment (there are no trailing comments:
    a ``#`` after a value is part of it); a line starting with white space
    continues the one before.
    """
    settings: dict[str, str] = {}
    name = ""
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace():
            if not name:
                raise ValueError(f"continuation line with nothing to continue: {line!r}")
            settings[name] += " " + line.strip()
            continue
        name, sep, value = line.partition("=")
        if not sep:
            raise ValueError(f"not a setting: {line!r}")
        name = name.strip()
        settings[name] = value.strip()
    return settings


class Postfix:
    """``with Postfix(settings, services) as pf:``; ``pf.port`` is its smtpd on 127.0.0.1.

    ``start`` returns False and says why in ``why_not`` when the instance
    cannot run here (not installed, not root, a start that fails).
    """

    def __init__(self, settings: Mapping[str, str], services: str = "") -> None:
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="digest-postfix-"))
        self.etc = self.base / "etc"
        self.exe = str(BINARY) if BINARY.exists() else None
        self.settings = {
            "compatibility_level": "3.6",
            **settings,
            # what makes the instance private, whatever the caller's settings say
            "queue_directory": f"{self.base}/queue",
            "data_directory": f"{self.base}/data",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "disable_dns_lookups": "yes",
            "smtp_host_lookup": "native",
            "biff": "no",
            "syslog_name": "postfix-digesttest",
            "maillog_file": f"{self.base}/maillog",
            "maillog_file_prefixes": str(self.base),
        }
        self.services = services
        self.running = False
        self.why_not = ""

    def __enter__(self) -> Postfix:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> bool:
        if self.exe is None:
            self.why_not = "postfix is not installed (Debian package postfix)"
            return False
        if os.geteuid() != 0:
            self.why_not = "a private Postfix instance must be started as root"
            return False
        # The postfix user must reach the queue below this directory.
        self.base.chmod(0o755)
        for sub in ("etc", "queue", "data"):
            (self.base / sub).mkdir()
        shutil.chown(self.base / "data", user="postfix")
        main = "".join(f"{k} = {v}\n" for k, v in self.settings.items())
        (self.etc / "main.cf").write_text(main)
        (self.etc / "master.cf").write_text(MASTER_CF.format(port=self.port) + self.services)
        done = subprocess.run(
            [self.exe, "-c", str(self.etc), "start"], capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            self.why_not = f"postfix start failed: {done.stderr.strip()} {self.log()[-500:]}"
            return False
        self.running = True
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=1),
            ):
                return True
            time.sleep(0.05)
        self.why_not = "postfix started but its smtpd did not listen within 10 s"
        return False

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def queued(self) -> int:
        """Messages still in the queue (one file each)."""
        return sum(len(files) for q in QUEUES for _, _, files in os.walk(self.base / "queue" / q))

    def wait_drained(self, timeout: float = 120) -> float:
        start = time.monotonic()
        while self.queued() and time.monotonic() - start < timeout:
            time.sleep(0.005)
        return time.monotonic() - start

    def stop(self) -> None:
        if self.running and self.exe is not None:
            subprocess.run([self.exe, "-c", str(self.etc), "stop"], capture_output=True, timeout=30)
            self.running = False
        shutil.rmtree(self.base, ignore_errors=True)
