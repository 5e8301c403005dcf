"""The ledger: the batch id notation, and ops that can be replayed any number of times."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.store.format import decode_ids, encode_ids
from digest.store.ledger import Ledger, LedgerError

IDS = ["2611.00001", "2611.00002", "hep-th/9901001", "solv-int/9901001"]
TIMES = [f"2026-11-{d:02d}T07:00:00+00:00" for d in (28, 29, 30)]
EMAILS = ["a@x.org", "b@x.org"]


def test_batch_ids_use_arxivs_version_notation_and_round_trip() -> None:
    ids = {"2611.00001": 1, "2611.00002": 3, "solv-int/9901001": 1, "solv-int/9901002": 2}
    text = encode_ids(ids)
    assert text == "2611.00001 2611.00002v3 solv-int/9901001 solv-int/9901002v2"
    assert decode_ids(text) == ids
    assert decode_ids("2611.00001 2611.00002") == {"2611.00001": 1, "2611.00002": 1}


def test_an_unknown_change_is_refused() -> None:
    with pytest.raises(LedgerError, match="unknown change"):
        Ledger().apply(["drop-everything"])
    with pytest.raises(LedgerError, match="malformed change"):
        Ledger().apply(["deliver", "a@x.org"])


def test_a_delivery_in_an_older_batch_keeps_the_newer_version() -> None:
    ledger = Ledger()
    ledger.apply(["deliver", "a@x.org", TIMES[2], {"2611.00001": 2}, None])
    ledger.apply(["deliver", "a@x.org", TIMES[0], {"2611.00001": 1}, None])
    reader = ledger.readers["a@x.org"]
    assert reader.delivered == {"2611.00001": 2}
    assert [at for at, _ in reader.batches] == [TIMES[0], TIMES[2]]  # kept in time order
    assert reader.fields["last_sent"] == TIMES[2]


paper_ops = st.builds(
    lambda i, v, t: [
        "paper",
        {"id": i, "version": v, "published": t, "first_seen": t, "title": f"v{v}"},
    ],
    st.sampled_from(IDS),
    st.integers(1, 3),
    st.sampled_from(TIMES),
)
deliver_ops = st.builds(
    lambda e, t, sent, slot: ["deliver", e, t, sent, slot],
    st.sampled_from(EMAILS),
    st.sampled_from(TIMES),
    st.dictionaries(st.sampled_from(IDS), st.integers(1, 3), min_size=1, max_size=3),
    st.none() | st.sampled_from(TIMES),
)
mark_ops = st.builds(
    lambda e, keys, t: ["marks", e, dict.fromkeys(keys, t), t],
    st.sampled_from(EMAILS),
    st.lists(st.sampled_from(["k:graph", "k:test"]), max_size=2),
    st.sampled_from(TIMES),
)
served_ops = st.builds(
    lambda e, slot, day: ["served", e, slot, day],
    st.sampled_from(EMAILS),
    st.none() | st.sampled_from(TIMES),
    st.none() | st.sampled_from(["2026-11-29", "2026-11-30"]),
)
meta_ops = st.builds(lambda t: ["meta", {"last_fetch": t}], st.sampled_from(TIMES))
cadence_ops = st.builds(
    lambda e, c, since: ["cadence", e, c, since],
    st.sampled_from(EMAILS),
    st.sampled_from(["daily", "weekly:mon", "weekly:wed"]),
    st.none() | st.sampled_from(TIMES),
)
ops = st.lists(
    st.one_of(paper_ops, deliver_ops, mark_ops, served_ops, meta_ops, cadence_ops), max_size=12
)


def state(ledger: Ledger) -> Any:
    data = ledger.to_data()
    for doc in data["subscribers"].values():
        # batches compare by content: encoding order inside a batch is not meaning
        doc["batches"] = [(b["at"], decode_ids(b["ids"])) for b in doc["batches"]]
    return json.loads(json.dumps(data, sort_keys=True, default=str))


@settings(max_examples=200, deadline=None)
@given(ops)
def test_replaying_a_journal_over_its_own_fold_changes_nothing(journal: list[list[Any]]) -> None:
    # the file as folded at the end of the journal, then a crash before the journal
    # was emptied: the next open replays it, maybe twice if it crashes again
    folded = Ledger()
    for op in journal:
        folded.apply(op)
    before = state(folded)
    reloaded, _ = Ledger.from_data(folded.to_data())
    assert state(reloaded) == before
    for op in journal + journal:
        reloaded.apply(op)
    assert state(reloaded) == before


def test_a_watermark_or_first_seen_moves_back_but_never_forward() -> None:
    ledger = Ledger()
    ledger.apply(["marks", "a@x.org", {"k:graph": TIMES[1]}, TIMES[1]])
    ledger.apply(["marks", "a@x.org", {"k:graph": TIMES[2]}, TIMES[2]])  # later: ignored
    fields = ledger.readers["a@x.org"].fields
    assert (fields["watermarks"], fields["first_seen"]) == ({"k:graph": TIMES[1]}, TIMES[1])
    # a cycle found them in the future of its clock: set afresh, earlier
    ledger.apply(["marks", "a@x.org", {"k:graph": TIMES[0]}, TIMES[0]])
    assert (fields["watermarks"], fields["first_seen"]) == ({"k:graph": TIMES[0]}, TIMES[0])


def test_a_cadence_is_remembered_with_its_change_and_a_since_cleared() -> None:
    ledger = Ledger()
    ledger.apply(["cadence", "a@x.org", "weekly:mon", TIMES[1]])
    fields = ledger.readers["a@x.org"].fields
    assert (fields["cadence"], fields["cadence_since"]) == ("weekly:mon", TIMES[1])
    ledger.apply(["cadence", "a@x.org", "weekly:mon", None])
    assert fields["cadence"] == "weekly:mon" and "cadence_since" not in fields
