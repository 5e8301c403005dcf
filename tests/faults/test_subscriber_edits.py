"""The operator edits subscribers.yaml: an address re-spelt is one reader; none stops another.

End to end on the real CLI, against the loopback arXiv and SMTP servers:

* re-spelling an address (its case, or its domain's other IDNA form) keeps the
  reader's history: nothing they had is sent again, and what is new still comes;
* it keeps their unsubscribe (made by a reply from their digest's own link);
* a database written before readers had one identity, holding one reader under
  two spellings, opens with both records as one;
* no address that ``digest check`` accepts, in any position in the file, stops
  another reader's mail: internationalised addresses go out as SMTP allows,
  and one the server cannot take fails alone, named, until a server can;
* neither does a reader's ``library`` file that cannot be read.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import run_side_by_side
from tests.faults.world import READERS, Run, World
from tests.support.mail_clients import gmail


def publish_fresh(w: World) -> None:
    """Three new submissions (for alice, bob and dave) appear on arXiv before the next run."""
    w.script.entries[:0] = w.script.fresh
    w.script.ever.extend(w.script.fresh)


def respell(w: World, old: str, new: str) -> None:
    """The operator writes ``old``'s address as ``new`` in subscribers.yaml."""
    for reader in w.readers:
        if reader["email"] == old:
            reader["email"] = new
    w.write_config()


def ingest(w: World, raw: bytes) -> subprocess.CompletedProcess[bytes]:
    """``digest ingest`` as an MTA pipe runs it: the message on stdin."""
    return subprocess.run(
        [sys.executable, "-m", "digest", "ingest", "--config", str(w.cfg)],
        input=raw,
        capture_output=True,
        timeout=60,
        cwd=w.tmp,
        env=w.env(),
    )


def unsubscribe_link(w: World, reader: str) -> str:
    (msg,) = [a.message for a in w.smtp_script.accepted if a.rcpt_tos == [reader]]
    raw = str(msg["List-Unsubscribe"])
    assert raw.startswith("<mailto:") and raw.endswith(">"), raw
    return raw[1:-1]


# -- re-spelling an address -----------------------------------------------------------------


def case_edit(tmp: Path) -> World:
    with World(tmp) as w:
        w.once()
        respell(w, "alice@example.org", "Alice@Example.ORG")
        respell(w, "bob@example.org", "BOB@example.org")
        w.once()  # nothing new: nobody is mailed, above all not the re-spelt
        publish_fresh(w)
        w.once()
    return w.settle()


UNICODE_READERS = [
    *READERS,
    {"email": "ulla@xn--bcher-kva.example", "keywords": ["deep learning", "proton"]},
]


def idna_edit(tmp: Path) -> World:
    with World(tmp, readers=[dict(r) for r in UNICODE_READERS]) as w:
        w.once()
        respell(w, "ulla@xn--bcher-kva.example", "Ulla@BÜCHER.example")
        w.once()
        publish_fresh(w)
        w.once()
    return w.settle()


def unsubscribe_then_respell(tmp: Path) -> dict[str, Any]:
    with World(tmp) as w:
        w.once()
        link = unsubscribe_link(w, "bob@example.org")
        # from his mail client, which writes his address its own way
        done = ingest(w, gmail(link, "Bob <Bob@Example.ORG>"))
        respell(w, "bob@example.org", "Bob@Example.org")
        publish_fresh(w)  # "Electron beams" is his
        after_case = w.once()
        respell(w, "Bob@Example.org", "BOB@EXAMPLE.ORG")
        after_again = w.once()
        w.settle()
    return {"world": w, "ingest": done, "runs": (after_case, after_again)}


def store_written_before(tmp: Path) -> World:
    """A schema-2 database: alice's history under one spelling, her unsubscribe under another."""
    with World(tmp) as w:
        w.once()
        data = json.loads(w.db.read_text(encoding="utf-8"))
        data["meta"]["1"]["schema"] = 2
        docs = data["subscribers"]
        (key,) = [k for k, d in docs.items() if d["email"] == "alice@example.org"]
        docs[key]["email"] = "Alice@Example.org"  # how the file spelt her then
        twin = {"email": "alice@example.org", "watermarks": {}, "batches": []}
        twin["replies"] = {"unsubscribed_at": "2026-01-01T00:00:00+00:00"}
        docs[str(len(docs) + 1)] = twin  # the record her case edit made, with her unsubscribe
        w.db.write_text(json.dumps(data), encoding="utf-8")
        publish_fresh(w)
        w.once()
    return w.settle()


# -- no address stops another reader's mail ----------------------------------------------------

# first in the file, before everyone they could hold up; all pass `digest check`
INTERNATIONAL = [
    {"email": "jörg@example.org", "keywords": ["proton", "testing"]},
    {"email": "zoë@xn--bcher-kva.example", "keywords": ["electron"]},
    {"email": "ulla@bücher.example", "keywords": ["deep learning"]},
    *READERS,
]


def international(tmp: Path) -> dict[str, Any]:
    settings = {"smtp": {"connections": 2}}
    with World(tmp, readers=[dict(r) for r in INTERNATIONAL], settings=settings) as w:
        check = w.run("check")
        check_smtp = w.run("check", "--smtp")
        without = w.once()
        status = w.status()
        w.smtp.smtputf8 = True  # the operator moves to a relay that offers SMTPUTF8
        with_utf8 = w.once()
        w.settle()
    return {
        "world": w,
        "check": check,
        "check_smtp": check_smtp,
        "without": without,
        "status": status,
        "with": with_utf8,
    }


def unreadable_library(tmp: Path) -> dict[str, Any]:
    readers = [dict(r) for r in READERS]
    readers[0]["library"] = "alice.bib"  # the first reader's export is not there (yet)
    with World(tmp, readers=readers) as w:
        broken = w.once()
        (tmp / "alice.bib").write_text("@misc{x, title = {Deep learning}}\n", encoding="utf-8")
        fixed = w.once()
        w.settle()
    return {"world": w, "broken": broken, "fixed": fixed}


SCENARIOS = {
    "case edit": case_edit,
    "idna edit": idna_edit,
    "unsubscribe, then re-spelt": unsubscribe_then_respell,
    "a store written before": store_written_before,
    "internationalised addresses": international,
    "an unreadable library": unreadable_library,
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[Any]]:
    return run_side_by_side(SCENARIOS, tmp_path_factory)


def outcome(outcomes: dict[str, Future[Any]], name: str) -> Any:
    return outcomes[name].result(timeout=300)


def rcpts(w: World) -> list[str]:
    """The recipients of the digests (not of the null-sender acknowledgements of replies)."""
    return [a.rcpt_tos[0] for a in w.smtp_script.accepted if a.mail_from not in ("", "<>")]


def test_a_case_edit_keeps_the_readers_history(outcomes) -> None:
    w = outcome(outcomes, "case edit")
    assert [r.code for r in w.runs] == [0, 0, 0, 0]
    # the run after the edit sent nothing (nothing new), the next only the new papers,
    # to the re-spelt readers under the address as now written
    assert len(rcpts(w)) == 4 + 3
    assert sorted(rcpts(w)[4:]) == ["Alice@example.org", "BOB@example.org", "dave@example.org"]
    w.check()  # every paper once: nothing repeated to the re-spelt, nothing lost


def test_a_domain_in_its_other_idna_form_keeps_the_readers_history(outcomes) -> None:
    w = outcome(outcomes, "idna edit")
    assert [r.code for r in w.runs] == [0, 0, 0, 0]
    ulla = [a for a in w.smtp_script.accepted if a.rcpt_tos[0].startswith(("ulla@", "Ulla@"))]
    # A-labels on the wire, before and after the edit; her local part as written
    assert [a.rcpt_tos for a in ulla] == [
        ["ulla@xn--bcher-kva.example"],
        ["Ulla@xn--bcher-kva.example"],
    ]
    w.check()


def test_an_unsubscribe_survives_re_spelling_the_address(outcomes) -> None:
    out = outcome(outcomes, "unsubscribe, then re-spelt")
    w: World = out["world"]
    assert out["ingest"].returncode == 0, out["ingest"].stderr
    assert [r.code for r in out["runs"]] == [0, 0]
    to_bob = [r for r in rcpts(w) if r.lower() == "bob@example.org"]
    assert to_bob == ["bob@example.org"]  # his first digest only: never mailed again
    assert re.search(r"(?i)bob@example\.org: not mailed \(unsubscribed", out["runs"][0].stderr)
    assert w.settled is not None
    assert re.search(r"^  BOB@example\.org: .*; unsubscribed", w.settled.stdout, re.M)
    w.check(complete=False)  # nothing twice, nothing unwanted


def test_a_store_written_before_merges_one_readers_two_records(outcomes) -> None:
    w = outcome(outcomes, "a store written before")
    assert [r.code for r in w.runs] == [0, 0, 0]
    after = rcpts(w)[4:]
    # her history kept (nothing resent) and her unsubscribe kept (nothing new either)
    assert sorted(after) == ["bob@example.org", "dave@example.org"]
    data = json.loads(w.db.read_text(encoding="utf-8"))
    assert data["meta"]["1"]["schema"] == 3
    assert sorted(d["email"] for d in data["subscribers"].values()) == sorted(
        r["email"] for r in READERS
    )
    assert w.settled is not None
    alice = r"^  alice@example\.org: \d+ delivered, 1 pending; unsubscribed"
    assert re.search(alice, w.settled.stdout, re.M)
    w.check(complete=False)  # nothing twice, nothing unwanted


def test_check_says_in_advance_what_it_does_with_each_address(outcomes) -> None:
    out = outcome(outcomes, "internationalised addresses")
    check: Run = out["check"]
    assert check.code == 0, str(check)
    assert "  jörg@example.org: its local part is not ASCII" in check.stdout
    assert "  zoë@bücher.example: its local part is not ASCII" in check.stdout
    assert "  ulla@bücher.example: sent to ulla@xn--bcher-kva.example" in check.stdout
    smtp: Run = out["check_smtp"]
    assert smtp.code == 78, str(smtp)
    assert "subscribers[0].email: jörg@example.org: its local part is not ASCII and" in smtp.stderr
    assert "subscribers[1].email: zoë@bücher.example:" in smtp.stderr
    assert "Traceback" not in smtp.stderr


def test_no_address_that_passes_check_stops_another_readers_mail(outcomes) -> None:
    out = outcome(outcomes, "internationalised addresses")
    w: World = out["world"]
    without: Run = out["without"]
    assert without.code == 75, str(without)
    assert "Traceback" not in without.stderr
    first = [a for a in w.smtp_script.accepted if not a.smtputf8]
    assert sorted(a.rcpt_tos[0] for a in first) == sorted(
        ["ulla@xn--bcher-kva.example", *(r["email"] for r in READERS)]
    )
    for name in ("jörg@example.org", "zoë@bücher.example"):
        line = rf"^{name}: failed, \d+ papers stay pending \(.*SMTPUTF8"
        assert re.search(line, without.stderr, re.M)
    status: Run = out["status"]
    assert ", partial:" in status.stdout
    assert re.search(r"^    jörg@example\.org: failed, .*SMTPUTF8", status.stdout, re.M)
    # once the server offers SMTPUTF8, theirs go out too, with it
    assert out["with"].code == 0, str(out["with"])
    later = {a.rcpt_tos[0]: a.smtputf8 for a in w.smtp_script.accepted[len(first) :]}
    assert later == {"jörg@example.org": True, "zoë@xn--bcher-kva.example": True}
    w.check()  # and everyone got every paper exactly once


def test_a_library_that_cannot_be_read_fails_only_its_reader(outcomes) -> None:
    out = outcome(outcomes, "an unreadable library")
    w: World = out["world"]
    assert out["broken"].code == 75 and "Traceback" not in out["broken"].stderr
    line = r"^alice@example\.org: failed, .*alice\.bib: cannot read the file"
    assert re.search(line, out["broken"].stderr, re.M)
    assert "alice@example.org" not in rcpts(w)[:3] and len(rcpts(w)) == 4
    assert out["fixed"].code == 0
    w.check()
