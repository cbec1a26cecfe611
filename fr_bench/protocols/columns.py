"""Fast reading of large whitespace-separated benchmark tables, and the one official-count check.

:func:`read_columns` reads a headerless table (IJB's meta files, K-FACE's lists) into typed column arrays with
pandas' C parser and, only when that parser refuses the file, rescans it line by line to name the first bad line.
:func:`check_count` compares a count found in a file with the official release's, the way every loader reports a
mismatch (``check_counts=False`` accepts a deliberate subset).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fr_bench.protocols.base import file_error, read_text_lines


def _first_bad_line(path: Path, kinds: Sequence[type], sep: str | None = " ", skip_header: bool = False) -> None:
    """Scan ``path`` line by line and raise a file:line error at the first line that does not fit ``kinds``.

    Only called after the fast C parser refused the file, so the slow scan runs on the error path only.
    """
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, start=1):
            if skip_header and lineno == 1:
                continue
            fields = line.rstrip("\r\n").split(sep)
            if len(fields) != len(kinds):
                raise file_error(path, lineno, f"expected {len(kinds)} fields separated by {sep!r}, found "
                                 f"{len(fields)}: {line.rstrip()[:120]!r}")
            for col, (value, kind) in enumerate(zip(fields, kinds), start=1):
                problem = _field_problem(value, kind)
                if problem:
                    raise file_error(path, lineno, f"field {col} {problem}")


def _field_problem(value: str, kind: type) -> str | None:
    """Why ``value`` is not a valid ``kind`` field for the C parser (None if it is): Python's ``int``/``float`` are
    looser (underscores, spaces, unbounded ints, "nan"), so those cases are refused here as pandas refuses them."""
    if kind is str:
        return "is empty" if value == "" else None
    expected = "an integer" if kind is int else "a number"
    try:
        number = float(value)
        if "_" in value or value != value.strip() or number != number:
            raise ValueError
        if kind is int:
            if not number.is_integer():
                raise ValueError
            if not -(2**63) <= (int(value) if value.lstrip("+-").isdigit() else int(number)) < 2**63:
                return f"is outside the 64-bit integer range: {value!r}"
    except (ValueError, OverflowError):
        return f"should be {expected}, found {value!r}"
    return None


def read_columns(path: str | os.PathLike, kinds: Sequence[type], *,
                 dtypes: Sequence[type | None] | None = None) -> list[np.ndarray]:
    """Read a headerless space-separated table whose columns have the given kinds (``str``, ``int``, ``float``).

    ``dtypes`` (optional, one per column, None for the default) parses a column straight into a narrower numpy
    type (``np.int32``: half the memory of int64, and a faster parse); a value outside that type is a parse
    problem like any other (the error then names the line that does not fit ``kinds``, or the whole file when
    every line fits ``kinds`` but not the narrow type: callers wanting a wide fallback catch it and read again).

    pandas' C parser reads the file by path (IJB-C's 15.66M-line pair file in about half a second); blank lines are
    kept as rows (``skip_blank_lines=False``) so they fail the typed parse instead of being dropped, which makes
    "one row per line" hold without counting lines. On any parsing problem the file is rescanned line by line to
    raise a :class:`ProtocolError` naming ``path:line`` (the slow scan runs on the error path only).
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, None, "file not found")
    if path.stat().st_size == 0:
        raise file_error(path, None, "file is empty")
    types = {i: (object if k is str else np.int64 if k is int else np.float64) for i, k in enumerate(kinds)}
    types.update({i: t for i, t in enumerate(dtypes or ()) if t is not None})
    try:
        df = pd.read_csv(path, sep=" ", header=None, engine="c", dtype=types, na_filter=False, quoting=3,
                         skip_blank_lines=False)
    except (ValueError, pd.errors.ParserError, OverflowError) as exc:  # EmptyDataError, UnicodeError are ValueErrors
        if isinstance(exc, UnicodeDecodeError):
            read_text_lines(path, "table")  # raises naming the line that is not UTF-8
        _first_bad_line(path, kinds)
        raise file_error(path, None, f"could not parse: {exc}") from exc
    if df.shape[1] != len(kinds):  # e.g. one column too many on every line, or only str columns
        _first_bad_line(path, kinds)
        raise file_error(path, None, f"expected {len(kinds)} columns, found {df.shape[1]}")
    cols = [df[c].to_numpy() for c in df.columns]
    for i, k in enumerate(kinds):
        if k is str:
            empty = np.flatnonzero(cols[i] == "")
            if empty.size:  # a blank or short line in a table of strings: report it as such
                _first_bad_line(path, kinds)
                raise file_error(path, int(empty[0]) + 1, f"field {i + 1} is empty")
    return cols


def check_count(path: Path | str, what: str, found: int, expected: int | None, check: bool = True) -> None:
    """Raise, naming ``path``, when ``check`` and the spec's ``expected`` count differs from ``found``.

    The message says what was expected and found and that ``check_counts=False`` accepts a deliberate subset.
    """
    if check and expected is not None and found != int(expected):
        raise file_error(path, None, f"expected {int(expected):,} {what} (the official release), found {found:,}. "
                         "If this is a deliberate subset, pass check_counts=False")
