"""``complete_indicators``' shortcut for examples whose keys hold no one-hot indicator (session 37): the same
results as the full rules, example by example, on streams that mix numeric keys with indicators appearing late,
keys reordered, non-string keys and wide features."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from learners import features
from learners.features import MAX_CATEGORIES, _unknown_wide, complete_indicators


def reference(
    xc: dict[Any, Any], groups: dict[str, list[str]], names: tuple[str, ...], learn: bool
) -> tuple[dict[Any, Any], tuple[str, ...]]:
    """The rules without the shortcut (the function as it was before session 37)."""
    if learn:
        changed = False
        for k, v in xc.items():
            if v == 1.0 and type(k) is str and "=" in k:
                group = groups.setdefault(k.partition("=")[0], [])
                if len(group) <= MAX_CATEGORIES and k not in group:
                    group.append(k)
                    changed = True
        if changed:
            names = tuple(k for g in groups.values() if len(g) <= MAX_CATEGORIES for k in g)
    if any(len(g) > MAX_CATEGORIES for g in groups.values()):
        xc = {k: v for k, v in xc.items() if not _unknown_wide(k, v, groups)}
    if not names:
        return xc, names
    missing = [k for k in names if k not in xc]
    if not missing:
        return xc, names
    out = dict(xc)
    out.update(dict.fromkeys(missing, 0.0))
    return out, names


KEYS = st.sampled_from(["a", "b", "c", 7, "s=x", "s=y", "t=1", "=", "u=v"])
EXAMPLE = st.dictionaries(KEYS, st.sampled_from([1.0, 0.0, 2.5, -1.0]), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(EXAMPLE, st.booleans()), max_size=30), st.booleans())
def test_same_as_the_full_rules(stream: list[tuple[dict[Any, Any], bool]], stale: bool) -> None:
    if stale:  # another learner's plain keys left in the process-wide cache
        features._PLAIN_KEYS[0] = ("a", "b", "c")
    groups: dict[str, list[str]] = {}
    names: tuple[str, ...] = ()
    ref_groups: dict[str, list[str]] = {}
    ref_names: tuple[str, ...] = ()
    for x, learn in stream:
        got, names = complete_indicators(dict(x), groups, names, learn)
        want, ref_names = reference(dict(x), ref_groups, ref_names, learn)
        assert got == want and list(got) == list(want)
        assert names == ref_names and groups == ref_groups


def test_an_indicator_after_plain_keys_is_learned() -> None:
    groups: dict[str, list[str]] = {}
    names: tuple[str, ...] = ()
    plain = {"a": 1.0, "b": 2.0}
    for _ in range(3):
        out, names = complete_indicators(plain, groups, names, True)
        assert out is plain and names == () and groups == {}
    out, names = complete_indicators({"a": 1.0, "b": 2.0, "color=red": 1.0}, groups, names, True)
    assert groups == {"color": ["color=red"]} and names == ("color=red",)
    out, names = complete_indicators(plain, groups, names, False)
    assert out == {"a": 1.0, "b": 2.0, "color=red": 0.0}


def test_wide_feature_values_still_dropped() -> None:
    groups = {"id": [f"id={i}" for i in range(MAX_CATEGORIES + 1)]}
    out, _ = complete_indicators({"a": 1.0, "id=new": 1.0}, groups, (), True)
    assert out == {"a": 1.0}
