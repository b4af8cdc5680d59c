"""JoinStore's Lua scripts against the real local Redis: each answer of put_predictions, lookup_labels and
mark_joined, including the claim that keeps a duplicate label from joining a context another label is joining."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.redis_store import JoinStore

pytestmark = pytest.mark.kafka  # needs the local stack (Redis)


@pytest.fixture
def store(prefix: str, redis_url: str) -> Iterator[JoinStore]:
    js = JoinStore(redis_url, namespace=f"{prefix.rstrip('.')}:js", ttl_s=60)
    yield js
    for key in js.client.scan_iter(match=f"{js.namespace}:*"):
        js.client.delete(key)
    js.client.close()


def _statuses(store: JoinStore, items: list[tuple[str, bytes]], tokens: list[str]) -> list[str]:
    return [found.status for found in store.lookup_labels(items, 1_000, tokens)]


def test_a_context_is_joined_once_and_a_replayed_label_joins_again(store: JoinStore) -> None:
    assert store.put_predictions([("e1", b"ctx-1")], 1_000) == []
    first = store.lookup_labels([("e1", b"label")], 1_000, ["labels:0:10"])
    assert (first[0].status, first[0].context) == ("ctx", b"ctx-1")
    # A duplicate label (another record) before the first is marked joined: a duplicate, not a second join.
    assert _statuses(store, [("e1", b"label")], ["labels:0:11"]) == ["dup"]
    # The same record read again after a crash (same token): joins again, nothing is lost.
    assert _statuses(store, [("e1", b"label")], ["labels:0:10"]) == ["ctx"]
    store.mark_joined(["e1"])
    assert _statuses(store, [("e1", b"label")], ["labels:0:10"]) == ["dup"]
    assert store.client.exists(f"{store.namespace}:claim:e1") == 0


def test_a_parked_label_joined_by_the_scorer_is_not_joined_again_by_a_duplicate(store: JoinStore) -> None:
    assert _statuses(store, [("e2", b"label")], ["labels:0:20"]) == ["parked"]
    assert _statuses(store, [("e2", b"label")], ["labels:0:21"]) == ["dup"]  # already parked
    # The prediction comes: the scorer gets the parked label back and joins it...
    assert store.put_predictions([("e2", b"ctx-2")], 1_000) == [("e2", b"label")]
    # ...and a duplicate arriving before the scorer marks it joined finds the context claimed.
    assert _statuses(store, [("e2", b"label")], ["labels:0:22"]) == ["dup"]
    store.mark_joined(["e2"])
    left = sorted(k.decode() for k in store.client.scan_iter(match=f"{store.namespace}:*"))
    # The joined marker, and the TTL the scorer stores contexts for (streams.status reads it).
    assert left == [f"{store.namespace}:done:e2", f"{store.namespace}:ttl_ms"]
    assert store.client.get(f"{store.namespace}:ttl_ms") == b"60000"


def test_a_label_with_little_ttl_left_still_claims_its_context_for_the_store_ttl(store: JoinStore) -> None:
    # The rebuild looks a label up again with what is left of its first TTL (a few ms here). That TTL is how long
    # the label may stay parked; the claim it takes on a context must hold until mark_joined like any claim, else
    # a duplicate label in between takes the same context and it is joined twice.
    assert store.put_predictions([("e5", b"ctx-5")], 1_000) == []
    found = store.lookup_labels([("e5", b"label")], 1_000, ["labels:0:50"], [5])
    assert found[0].status == "ctx"
    claim_ttl = store.client.pttl(f"{store.namespace}:claim:e5")
    assert claim_ttl > 5_000  # the store's TTL (60 s), not the label's 5 ms


def test_an_event_id_twice_in_one_batch_hands_its_parked_label_back_once(store: JoinStore) -> None:
    # A producer's duplicate event (sent again at once) lands in the same batch as the first: the label that was
    # waiting for it must be joined once, as it is when the label comes after both events.
    assert _statuses(store, [("e7", b"label")], ["labels:0:70"]) == ["parked"]
    tokens = ["features:0:7", "features:0:8", "features:0:9"]
    waiting = store.put_predictions([("e7", b"ctx-a"), ("e8", b"ctx-8"), ("e7", b"ctx-b")], 1_000, tokens)
    assert waiting == [("e7", b"label")]
    # Handed back again, until it is marked joined, to the record that claimed it: a scorer that crashed before
    # marking it scores the same record again and joins it then, losing nothing.
    assert store.put_predictions([("e7", b"ctx-a")], 1_000, ["features:0:7"]) == [("e7", b"label")]
    store.mark_joined(["e7"])
    assert store.put_predictions([("e7", b"ctx-a")], 1_000, ["features:0:7"]) == []


def test_a_duplicate_event_in_a_later_call_does_not_join_the_parked_label_again(store: JoinStore) -> None:
    # fixes33b: the same id scored in two passes (a producer's duplicate event in the next batch) before the
    # first is marked joined: the label went back to both and `training` carried two examples of one label.
    assert _statuses(store, [("e9", b"label")], ["labels:0:90"]) == ["parked"]
    assert store.put_predictions([("e9", b"ctx-a")], 1_000, ["features:0:90"]) == [("e9", b"label")]
    assert store.put_predictions([("e9", b"ctx-b")], 1_000, ["features:0:91"]) == []
    # Without tokens (a caller that cannot name its records): handed back once.
    assert _statuses(store, [("e10", b"label")], ["labels:0:100"]) == ["parked"]
    assert store.put_predictions([("e10", b"c")], 1_000) == [("e10", b"label")]
    assert store.put_predictions([("e10", b"c")], 1_000) == []
    # The first record's replay after a crash still joins it; once marked joined, nobody does.
    assert store.put_predictions([("e9", b"ctx-a")], 1_000, ["features:0:90"]) == [("e9", b"label")]
    store.mark_joined(["e9", "e10"])
    assert store.put_predictions([("e9", b"ctx-a")], 1_000, ["features:0:90"]) == []
    assert store.client.exists(f"{store.namespace}:claim:e9", f"{store.namespace}:lbl:e9") == 0
