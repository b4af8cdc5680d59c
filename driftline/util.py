"""Small helpers shared by every layer, with no dependencies: wall-clock milliseconds, nearest-rank
percentiles, a rolling mean, and the depth of JSON text measured without parsing it.

They live in the bottom layer so that schemas, learners, connectors, streams and bench share one copy.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Sequence
from itertools import accumulate
from pathlib import Path
from typing import Any

from driftline.errors import ConfigError

__all__ = ["event_time", "json_depth", "now_ms", "parse_cell", "percentile", "rolling_mean", "ts_column"]

#: Cells that mean "no value" in CSV exports (pandas, R, SQL dumps), compared case-insensitively.
MISSING_CELLS = frozenset({"na", "null", "none", "nan"})


#: The most events a command streams or replays (--events, --n, --limit). Why: 10^20 ended `produce synthetic` and
#: `replay` with a ValueError traceback from itertools.islice (session 45); 10^12 events is years of any real stream.
MAX_EVENTS = 10**12


def parse_cell(text: str) -> bool | int | float | str | None:
    """CSV cell -> value, the one reading ``driftline replay`` and ``driftline produce`` share: ``""``, ``NA``,
    ``null``, ``None``, ``NaN`` -> None; ``true``/``false`` (any case) -> bool; integers -> int; numbers -> float
    (inf -> None); else the string (``1_000`` too, which Python alone would read as a number; ``yes`` too).

    >>> [parse_cell(s) for s in ["", "NA", "3", "-0.5", "nan", "TRUE", "up"]]
    [None, None, 3, -0.5, None, True, 'up']
    """
    text = text.strip()
    if text == "":
        return None
    # Digit checks first: most cells are floats, and a failed int() costs an exception per cell. ``isdecimal``,
    # not ``isdigit``: "²" is a digit that int() refuses (it raised, and one such cell failed the whole file).
    if text.isdecimal() or (text[0] in "+-" and text[1:].isdecimal()):
        return int(text)
    if "_" in text:
        # Python's float() reads "1_000" as 1000.0; no CSV writer means a number by it.
        return text
    try:
        number = float(text)
    except ValueError:
        lower = text.lower()
        if lower in MISSING_CELLS:
            return None
        if lower in ("true", "false"):
            return lower == "true"
        return text
    # Missing measurements are often written as NaN; the wire format rejects non-finite numbers.
    return number if math.isfinite(number) else None


#: The column of a file taken as the event time when ``--ts-col`` is not given.
#: The suffixes of the data files driftline reads: CSV, or JSON lines.
DATA_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json")
#: What may come before the first character of a data file: a UTF-8 byte order mark and blank space.
LEADING = b"\xef\xbb\xbf \t\r\n"


def sniffed_suffix(head: bytes) -> str:
    """The suffix data without a known one is read as, from its first bytes: JSON lines when its first character
    (after a byte order mark and blank space) is ``{``, else CSV."""
    return ".jsonl" if head.lstrip(LEADING).startswith(b"{") else ".csv"


def data_suffix(path: Path) -> str | None:
    """The suffix ``path`` is read by: its own when it is one of :data:`DATA_SUFFIXES`, else for a regular file what
    it starts with (``data``, ``events.txt``: replay and demo refused them as "expected a .csv or .jsonl file" while
    produce read them, session 41); None for anything else (missing, a directory)."""
    suffix = path.suffix.lower()
    if suffix in DATA_SUFFIXES:
        return suffix
    if not path.is_file():
        return None
    head = b""
    with path.open("rb") as f:
        while not head.lstrip(LEADING):
            block = f.read(1 << 16)
            if not block:
                break
            head += block
    return sniffed_suffix(head)


DEFAULT_TS_COL = "ts"


def ts_column(
    names: Iterable[str], label_col: str | None, id_col: str | None, ts_col: str | None = None
) -> str | None:
    """The column of a file's row holding the event time: ``ts_col`` (``--ts-col``) when given, else a column named
    ``ts`` unless it is the label or the id column, else None (``produce`` stamps the time of sending). The one
    rule ``driftline produce`` and ``driftline replay`` share, so a file replays with the event times it was
    published with (``produce`` took ``ts`` for a feature, ``replay`` for the event time).

    >>> ts_column(["id", "ts", "x"], "y", None), ts_column(["ts", "x"], "ts", None), ts_column(["x"], "y", None)
    ('ts', None, None)
    """
    if ts_col is not None:
        return ts_col
    if DEFAULT_TS_COL in names and DEFAULT_TS_COL not in (label_col, id_col):
        return DEFAULT_TS_COL
    return None


def event_time(value: Any, col: str, named: bool, where: str) -> int | None:
    """A row's event time in ms from column ``col``'s value: a number (a float is truncated); an empty cell of the
    default ``ts`` column (not ``named`` by ``--ts-col``) is no time. Anything else is refused, naming the row."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not isinstance(value, float) or math.isfinite(value):
            return int(value)
        # NaN or infinity (JSON 1e400): a missing cell in the default column, as produce reads it (connectors.sources)
        if not named:
            return None
    if value is None and not named:
        return None
    how = f"--ts-col {col!r}" if named else f"column {col!r} (the event time by default)"
    fix = "" if named else "; rename the column to keep it as a feature, or name another with --ts-col"
    raise ConfigError(f"{where}: {how} must hold epoch milliseconds, got {value!r:.60}{fix}")


def version_ranges(versions: Iterable[int]) -> str:
    """``1-3, 5, 7-9``: versions as ranges, so a message naming hundreds of them stays one short line."""
    spans: list[tuple[int, int]] = []
    for v in sorted(set(versions)):
        if spans and spans[-1][1] == v - 1:
            spans[-1] = (spans[-1][0], v)
        else:
            spans.append((v, v))
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans) or "none"


def now_ms() -> int:
    """Wall-clock time in milliseconds since the epoch (the contract's ``ts`` unit)."""
    return time.time_ns() // 1_000_000


def percentile(values: Sequence[float], q: float, empty: float | None = None) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; ``empty`` for no values.

    >>> percentile([4.0, 1.0, 3.0, 2.0], 50), percentile([4.0, 1.0, 3.0, 2.0], 99), percentile([], 50)
    (2.0, 4.0, None)
    """
    if not values:
        return empty
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q * len(ordered) / 100)))
    return float(ordered[rank - 1])


def rolling_mean(values: Sequence[float | None], window: int) -> list[float]:
    """Mean of the values among the last ``window`` positions at each position (shorter at the start). Booleans
    count as 0/1, so a sequence of right/wrong answers gives the rolling accuracy. ``None`` (no answer) is left
    out of the mean rather than counted as 0; a window with no value at all gives NaN.

    >>> rolling_mean([1, 0, 1, 1], 2)
    [1.0, 0.5, 0.5, 1.0]
    >>> rolling_mean([1, None, 0, None, None], 2)
    [1.0, 1.0, 0.0, 0.0, nan]
    """
    out: list[float] = []
    total, count = 0.0, 0
    for i, v in enumerate(values):
        if v is not None:
            total, count = total + v, count + 1
        if i >= window and (old := values[i - window]) is not None:
            total, count = total - old, count - 1
        out.append(total / count if count else float("nan"))
    return out


# A JSON string (a closing quote is optional so an unterminated one is consumed to the end in one linear
# pass, never retried from each later quote); its brackets do not count as nesting.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_DELTA = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str, limit: int) -> int:
    """How deeply ``text``'s arrays and objects nest, found without parsing (brackets inside strings do not
    count). Only used to refuse what is deeper than ``limit``: at most ``limit`` is an upper bound.

    Cheap on the common path: a text with no more than ``limit`` opening brackets cannot nest deeper, which two
    C-level counts show. Otherwise strings and everything but brackets are cut out by two regex passes and the
    running depth is summed at C speed (about 30 ms for a 1 MB record of brackets).

    >>> json_depth('{"a": {"b": "[[[[[[[[[["}}', 8), json_depth("[" * 100000, 8)
    (2, 100000)
    """
    openers = text.count("[") + text.count("{")
    if openers <= limit:
        return openers
    brackets = _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_DELTA.__getitem__, brackets)), default=0)


#: The largest magnitude of a regression label the learners take. Why: a label of 1e200 (finite, so valid on the
#: wire) overflowed squared errors: River's regression tree raised OverflowError on it, and in the default ``auto``
#: pool the tree's prediction became ~1e197, whose square overflowed the guard's evidence on every later label, so
#: the trainer dead-lettered every label of that model from then on and ``replay`` ended in a traceback (session
#: 42). 1e100 squared and summed over 2**63 labels is still a finite double; no measured quantity comes near it.
MAX_REGRESSION_LABEL = 1e100


def quoted_number(label: Any) -> float | None:
    """A text label that spells a finite number, as that number (``"12.5"`` -> 12.5), else None: a regression
    target from a producer that quotes its numbers (the trainer learns it, ``replay --task regression`` reads it)."""
    if not isinstance(label, str):
        return None
    try:
        value = float(label)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def yaml_number_hint(value: Any) -> str:
    """What to add to an error about ``value`` where a number was wanted, when it is text spelling one: YAML 1.1
    reads a float without an exponent sign (``1.0e9``) as text."""
    return " (YAML reads 1.0e9 as text: write 1.0e+9)" if quoted_number(value) is not None else ""


# C0 controls but newline and tab, DEL, and C1 controls (0x9b is CSI on terminals that read 8-bit controls).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """``text`` with control characters shown as escapes, newline and tab kept: what the CLI prints comes partly
    from records anyone who can write a topic chose (ids, dead-letter reasons and payloads), and an escape
    sequence printed raw is obeyed by the operator's terminal (colours, the window title, cursor moves that
    overwrite lines already printed).

    >>> terminal_safe("id-\\x1b[2Jx\\tok\\n")
    'id-\\\\x1b[2Jx\\tok\\n'
    """
    return _CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# Line breaks and tabs too, the bidirectional overrides and isolates (which reorder what a terminal shows: "Trojan
# Source") and the Unicode line and paragraph separators.
_LINE_BREAKERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def one_line(text: str) -> str:
    """:func:`terminal_safe` for what must stay on one line (an id, a key, a feature name, a dead letter's reason in
    a line of ``tail`` or ``status``): a newline chosen by whoever wrote the record would start a line that looks
    like the command's own (a forged record or status line); shown as ``\\n``, a bidi override as ``\\u202e``.

    >>> one_line("id\\nFAKE\\t\\u202eok\\x1b")
    'id\\\\nFAKE\\\\t\\\\u202eok\\\\x1b'
    """
    names = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

    def shown(m: re.Match[str]) -> str:
        c = m.group()
        return names.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")

    return _LINE_BREAKERS.sub(shown, text)
