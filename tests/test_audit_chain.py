"""The audit hash chain (pure): each kind of tampering is caught and named, at the right entry."""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

import pytest

from driftline.audit_chain import (
    GENESIS,
    entry_hash,
    from_line,
    head_of,
    key_id,
    make_entry,
    sign_head,
    to_line,
    verify,
)

KEY = b"a" * 32
OTHER = b"b" * 32


def chain(n: int, model: str = "m", key: bytes = KEY) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        kind = ("release", "decision", "control")[i % 3]
        record = {
            "version": i + 1,
            "outcome": "promote" if i % 2 else "reject",
            "metrics": {"acc": 0.5 + i / 100},
        }
        out.append(make_entry(head_of(out[-1]) if out else None, kind, model, record, key, ts=1000 + i))
    return out


def first_problem(entries: list[Any], **kw: Any) -> tuple[str, int, int | None]:
    result = verify(entries, [KEY], **kw)
    assert not result.ok, "verify passed a tampered chain"
    p = result.problems[0]
    return p.kind, p.position, p.seq


def test_intact_chain_verifies_and_links() -> None:
    entries = chain(6)
    result = verify(entries, [KEY])
    assert result.ok and result.n == 6 and result.head == head_of(entries[-1])
    assert entries[0]["prev"] == GENESIS and entries[0]["seq"] == 0
    assert all(entries[i]["prev"] == entries[i - 1]["hash"] for i in range(1, 6))
    assert result.key_ids == {key_id(KEY)}


def test_key_id_is_a_fingerprint_not_the_key() -> None:
    kid = key_id(KEY)
    assert KEY.decode() not in kid and kid != key_id(OTHER) and len(kid) == 16


def test_lines_round_trip_and_carry_top_level_copies() -> None:
    entries = chain(3)
    parsed = [from_line(to_line(e)) for e in entries]
    assert verify(parsed, [KEY]).ok
    assert parsed[1]["outcome"] == entries[1]["record"]["outcome"]  # what pre-chain readers read
    assert parsed[1]["kind"] == "decision"


def test_any_json_record_is_accepted_even_with_chain_field_names() -> None:
    record = {
        "key_id": "control-key",
        "seq": "x",
        "hash": 1,
        "nested": {"a": [1, 2.5, None]},
        "obj": object(),
    }
    e = make_entry(None, "control", "m", record, KEY, ts=1)
    line = from_line(to_line(e))
    assert verify([line], [KEY]).ok
    assert line["record"]["key_id"] == "control-key" and line["sig_key_id"] == key_id(KEY)
    assert line["key_id"] == "control-key"  # the record's own field, for readers of the top level
    assert isinstance(line["record"]["obj"], str)  # not JSON: stored as str()


def test_altered_entry_is_named() -> None:
    entries = chain(5)
    entries[2]["record"]["outcome"] = "promote-forged"
    assert first_problem(entries) == ("altered", 2, 2)


def test_altered_top_level_copy_is_named() -> None:
    parsed = [from_line(to_line(e)) for e in chain(4)]
    parsed[3]["outcome"] = "something else"
    kind, position, _ = first_problem(parsed)
    assert (kind, position) == ("altered", 3)
    assert "outcome" in verify(parsed, [KEY]).problems[0].detail


def test_removed_entry_is_named() -> None:
    entries = chain(5)
    del entries[2]
    kind, position, seq = first_problem(entries)
    assert (kind, position, seq) == ("removed", 2, 3)
    assert "seq 2" in verify(entries, [KEY]).problems[0].detail


def test_removed_first_entries_are_named() -> None:
    entries = chain(5)[2:]
    assert first_problem(entries) == ("removed", 0, 2)


def test_reordered_entries_are_named() -> None:
    entries = chain(6)
    entries[2], entries[4] = entries[4], entries[2]
    assert first_problem(entries) == ("reordered", 2, 4)


def test_adjacent_swap_is_reordered_not_removed() -> None:
    entries = chain(4)
    entries[1], entries[2] = entries[2], entries[1]
    assert first_problem(entries) == ("reordered", 1, 2)


def test_duplicated_entry_is_named() -> None:
    entries = chain(4)
    entries.insert(3, copy.deepcopy(entries[1]))
    assert first_problem(entries) == ("duplicated", 3, 1)


def test_forged_entry_without_the_key() -> None:
    """Someone without the key alters an entry and recomputes its hash: the signature gives it away."""
    entries = chain(4)
    forged = entries[1]
    forged["record"]["outcome"] = "promote"
    forged["hash"] = entry_hash(forged)
    forged["sig"] = hashlib.sha256(forged["hash"].encode()).hexdigest()  # the best guess without the key
    assert first_problem(entries) == ("forged", 1, 1)


def test_forged_chain_rebuilt_with_another_key() -> None:
    """A whole chain rebuilt with the attacker's own key: every link is consistent, the key is not ours."""
    entries = chain(3, key=OTHER)
    kind, position, _ = first_problem(entries)
    assert (kind, position) == ("forged", 0)


def test_inserted_entry_signed_with_the_key_but_relinked() -> None:
    """Entry 2 replaced by one signed with the key: it links to entry 1, but entry 3 no longer links to it."""
    entries = chain(4)
    rogue = make_entry(head_of(entries[1]), "control", "m", {"command": "promote"}, KEY, ts=5)
    tampered = [*entries[:2], rogue, *entries[3:]]
    assert first_problem(tampered) == ("relinked", 3, 3)


def test_entry_from_another_model_is_foreign() -> None:
    entries = chain(3)
    other = chain(3, model="other")
    entries[2] = other[2]
    assert first_problem(entries, model="m") == ("foreign", 2, 2)


def test_truncated_tail_is_caught_only_with_the_head_note() -> None:
    entries = chain(6)
    note = sign_head(head_of(entries[-1]), "m", KEY)
    cut = entries[:4]
    assert verify(cut, [KEY]).ok  # the limit: without the head note, a shorter chain is still a valid chain
    kind, position, seq = first_problem(cut, head=note)
    assert (kind, position, seq) == ("truncated", -1, 5)
    assert verify(entries, [KEY], head=note).ok


def test_forged_head_note_is_named() -> None:
    entries = chain(4)
    note = sign_head(head_of(entries[1]), "m", KEY)
    note["seq"] = 1
    note["hash"] = entries[1]["hash"]
    assert verify(entries, [KEY], head=note).ok  # an older, genuine note: the log only grew since
    forged = dict(note, seq=7)
    assert first_problem(entries, head=forged)[0] == "forged"


def test_malformed_line_is_named() -> None:
    entries: list[Any] = chain(3)
    entries[1] = "{not json"
    assert first_problem(entries)[:2] == ("malformed", 1)
    entries = chain(3)
    del entries[2]["sig"]
    assert first_problem(entries)[:2] == ("malformed", 2)


def test_junk_does_not_hide_what_comes_after_it() -> None:
    # sec35's F9: one record that was not JSON stopped the check there ("entries: 0"), hiding an altered entry and
    # a removed one after it from an auditor likely to dismiss the junk as noise.
    entries: list[Any] = chain(8)
    entries.insert(2, "{not json")
    entries[5]["record"]["outcome"] = "promote-forged"  # genuine seq 4, altered
    del entries[7]  # genuine seq 6 removed
    result = verify(entries, [KEY])
    assert [(p.kind, p.position) for p in result.problems] == [
        ("malformed", 2),
        ("altered", 5),
        ("removed", 7),
    ]
    # junk alone: reported, and the genuine chain around it verified whole
    entries = chain(6)
    entries.insert(3, {"seq": 3, "junk": True})
    result = verify(entries, [KEY])
    assert [p.kind for p in result.problems] == ["malformed"] and result.n == 6


def test_previous_key_during_rotation() -> None:
    old = chain(2, key=OTHER)
    new = make_entry(head_of(old[-1]), "release", "m", {"version": 9}, KEY, ts=9)
    assert verify([*old, new], [KEY, OTHER]).ok
    assert first_problem([*old, new])[0] == "forged"


@pytest.mark.parametrize("value", [float("inf"), 1e308, -0.0, "ünïcode", 2**62])
def test_hash_survives_json_round_trip(value: Any) -> None:
    e = make_entry(None, "release", "m", {"v": value}, KEY, ts=1)
    back = json.loads(json.dumps(e))
    assert entry_hash(back) == e["hash"]


def test_junk_standing_at_a_removed_seq_does_not_hide_the_removal() -> None:
    # A genuine entry removed and a junk record carrying its seq put in its place: the junk is reported (as noise an
    # auditor may dismiss) and the removal must be reported too; skipping the link across the junk hid it.
    entries: list[Any] = chain(6)
    entries[3] = {"seq": 3, "junk": True}  # genuine seq 3 gone
    result = verify(entries, [KEY])
    assert [(p.kind, p.seq) for p in result.problems] == [("malformed", 3), ("removed", 4)]
    # the same with a forgery that takes the removed entry's seq (moved to the end so the gap is not in place)
    entries = chain(6)
    forged = copy.deepcopy(entries[3])
    forged["record"]["outcome"] = "promote-forged"
    forged["hash"] = entry_hash(forged)
    del entries[3]
    entries.append(forged)
    result = verify(entries, [KEY])
    assert [(p.kind, p.seq) for p in result.problems] == [("forged", 3), ("removed", 4)]
    # two genuine entries removed, junk at both seqs
    entries = chain(7)
    entries[2], entries[3] = {"seq": 2}, {"seq": 3, "hash": entries[3]["hash"]}
    result = verify(entries, [KEY])
    assert ("removed", 4) in [(p.kind, p.seq) for p in result.problems]


def test_an_entry_altered_in_place_is_reported_once() -> None:
    # Altered where it stands (its hash field kept): the genuine entries around it still link through it, so it is
    # reported as altered and nothing as removed.
    entries = chain(6)
    entries[3]["record"]["outcome"] = "promote-forged"
    result = verify(entries, [KEY])
    assert [(p.kind, p.seq) for p in result.problems] == [("altered", 3)] and result.n == 5
    # altered, then the next genuine entry relinked to it is impossible without the key: a re-signed copy is forged
    entries = chain(6)
    entries[3]["record"]["outcome"] = "promote-forged"
    entries[3]["hash"] = entry_hash(entries[3])
    entries[4]["prev"] = entries[3]["hash"]
    result = verify(entries, [KEY])
    kinds = [(p.kind, p.seq) for p in result.problems]
    assert not result.ok and ("forged", 3) in kinds and ("altered", 4) in kinds


def test_entries_signed_with_a_key_not_given_still_link() -> None:
    # Verifying with the new key only after a rotation: the old entries are reported (forged: a key not given), and
    # the new ones verified as their continuation, with no removal reported.
    old = chain(3, key=OTHER)
    new = make_entry(head_of(old[-1]), "release", "m", {"version": 9}, KEY, ts=9)
    result = verify([*old, new], [KEY])
    assert [p.kind for p in result.problems] == ["forged"] * 3 and result.n == 1
