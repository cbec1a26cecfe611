"""Typed per-pair and per-search score records, and their one HDF5 layout (written and read only here).

A protocol's ``evaluate`` returns, besides its numbers, what a paired comparison of two models needs
(``ProtocolResult.scores``, a :class:`ScoreRecords`):

* :class:`PairScores`, one entry per scored pair (verification): ``scores`` (float32), ``labels`` (genuine),
  ``unit_a``/``unit_b`` (int32 code of the resampling unit of each side, named ``unit_name``), optionally ``folds``
  (the fold whose threshold judged the pair) and ``correct`` (the pair was classified right: McNemar's input), and
  protocol extras (one entry per pair, e.g. IJB's ``template_a``);
* :class:`SearchScores`, per identification rate (``"rank1"``, ``"G1/rank1"``): one entry per search, or per unit
  where only per-unit counts exist (MegaFace): ``successes`` and ``trials`` (int32; the rate is
  ``sum(successes) / sum(trials)``) and ``unit`` (int32 code of the resampling unit, named ``unit_name``), plus
  extras (e.g. IJB 1:N's ``mate_rank``);
* ``extra``: other arrays of the protocol (e.g. IJB 1:N's ``probe_template``).

File layout (``LAYOUT``; HDF5 groups, so the names used by writer and reader are those of these dataclasses)::

    attrs: layout, key_digest (sha256 of the key the file is filed under)
    /pairs/{scores, labels, unit_a, unit_b[, folds, correct]}      attrs: unit_name;  /pairs/extra/<name>
    /searches/<k>/{successes, trials, unit}                        attrs: metric, unit_name;  .../extra/<name>
    /extra/<name>

:func:`save_scores` / :func:`load_scores` file a record under ``<cache_dir>/scores/<sha256 of the key>.h5``
(atomic write); :func:`read_scores` reads any such file and raises :class:`ScoresFileError` naming it when it is
not one.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Version tag of the HDF5 layout; readers refuse anything else.
LAYOUT = "fr_bench.scores/2"


class ScoresFileError(ValueError):
    """A file that is not a readable fr_bench scores file; the message names the file and what is wrong."""


def _per_entry(arrays: Mapping[str, Any], n: int, what: str) -> None:
    bad = [k for k, v in arrays.items() if v is not None and np.shape(v)[:1] != (n,)]
    if bad:
        raise ValueError(f"{what} arrays {bad} do not have one entry per {what.split()[0]} ({n})")


@dataclass
class PairScores:
    """Per-pair record of a verification protocol (see the module docstring)."""

    scores: np.ndarray
    labels: np.ndarray
    unit_a: np.ndarray
    unit_b: np.ndarray
    unit_name: str = "pair"
    folds: np.ndarray | None = None
    correct: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(-1)
        self.labels = np.asarray(self.labels).astype(bool).reshape(-1)
        self.unit_a = np.asarray(self.unit_a, dtype=np.int32).reshape(-1)
        self.unit_b = np.asarray(self.unit_b, dtype=np.int32).reshape(-1)
        if self.folds is not None:
            self.folds = np.asarray(self.folds, dtype=np.int32).reshape(-1)
        if self.correct is not None:
            self.correct = np.asarray(self.correct, dtype=bool).reshape(-1)
        self.extra = {str(k): np.asarray(v) for k, v in self.extra.items()}
        _per_entry({"labels": self.labels, "unit_a": self.unit_a, "unit_b": self.unit_b, "folds": self.folds,
                    "correct": self.correct, **self.extra}, self.scores.size, "pair")

    def __len__(self) -> int:
        return int(self.scores.size)


@dataclass
class SearchScores:
    """Per-search (or per-unit) outcomes of one identification rate (see the module docstring)."""

    successes: np.ndarray
    trials: np.ndarray
    unit: np.ndarray
    unit_name: str = "search"
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.successes = np.asarray(self.successes).astype(np.int32).reshape(-1)
        self.trials = np.broadcast_to(np.asarray(self.trials).astype(np.int32), self.successes.shape).copy()
        self.unit = np.asarray(self.unit, dtype=np.int32).reshape(-1)
        self.extra = {str(k): np.asarray(v) for k, v in self.extra.items()}
        _per_entry({"unit": self.unit, **self.extra}, self.successes.size, "search entry")
        if (self.successes < 0).any() or (self.successes > self.trials).any():
            raise ValueError("search successes must lie in [0, trials]")

    @classmethod
    def from_outcomes(cls, correct: Any, unit: Any, unit_name: str, *, counted: Any = None,
                      extra: Mapping[str, Any] | None = None) -> SearchScores:
        """One entry per search: ``correct`` (bool), counted in the rate where ``counted`` (default: every search;
        e.g. only mated searches for a rank-1 identification rate)."""
        correct = np.asarray(correct, dtype=bool).reshape(-1)
        counted = np.ones(correct.size, bool) if counted is None else np.asarray(counted, dtype=bool).reshape(-1)
        return cls(correct & counted, counted, unit, unit_name, dict(extra or {}))

    @property
    def per_search(self) -> bool:
        """True when each entry is one search (trials 0 or 1): the two models' outcomes pair up search by search."""
        return bool(np.all(self.trials <= 1))

    @property
    def rate(self) -> float:
        """``sum(successes) / sum(trials)`` (NaN without trials)."""
        total = int(self.trials.sum())
        return int(self.successes.sum()) / total if total else float("nan")

    def __len__(self) -> int:
        return int(self.successes.size)


@dataclass
class ScoreRecords:
    """What ``ProtocolResult.scores`` holds: the pair record, the search records by metric, other arrays."""

    pairs: PairScores | None = None
    searches: dict[str, SearchScores] = field(default_factory=dict)
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.pairs is not None or bool(self.searches) or bool(self.extra)


# ------------------------------------------------------------------------------------------------------ HDF5 I/O


def _write_group(group: Any, arrays: Mapping[str, np.ndarray | None]) -> None:
    for name, arr in arrays.items():
        if arr is not None:
            group.create_dataset(name, data=np.asarray(arr))


def _read_group(group: Any) -> dict[str, np.ndarray]:
    return {name: group[name][...] for name in group.keys()} if group is not None else {}


def write_scores(target: Any, records: ScoreRecords, *, key_digest: str = "") -> None:
    """Write ``records`` in the module's layout to ``target`` (a path or a binary file object)."""
    import h5py

    with h5py.File(target, "w") as f:
        f.attrs["layout"] = LAYOUT
        f.attrs["key_digest"] = key_digest
        if records.pairs is not None:
            p = records.pairs
            g = f.create_group("pairs")
            g.attrs["unit_name"] = p.unit_name
            _write_group(g, {"scores": p.scores, "labels": p.labels, "unit_a": p.unit_a, "unit_b": p.unit_b,
                             "folds": p.folds, "correct": p.correct})
            _write_group(g.create_group("extra"), p.extra)
        searches = f.create_group("searches")
        for k, (metric, s) in enumerate(records.searches.items()):
            g = searches.create_group(str(k))
            g.attrs["metric"], g.attrs["unit_name"] = metric, s.unit_name
            _write_group(g, {"successes": s.successes, "trials": s.trials, "unit": s.unit})
            _write_group(g.create_group("extra"), s.extra)
        _write_group(f.create_group("extra"), records.extra)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_scores(path: str | os.PathLike[str]) -> tuple[ScoreRecords, str]:
    """``(records, key digest)`` of a scores file; :class:`ScoresFileError` naming ``path`` if it is not one."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ScoresFileError(f"{path}: scores file not found")
    try:
        with h5py.File(path, "r") as f:
            layout = _text(f.attrs.get("layout", ""))
            if layout != LAYOUT:
                raise ScoresFileError(f"{path}: not an fr_bench scores file of layout {LAYOUT} (found "
                                      f"{layout or 'no layout tag'}); re-run `frbench evaluate` to rewrite it")
            pairs = None
            if "pairs" in f:
                g = f["pairs"]
                pairs = PairScores(g["scores"][...], g["labels"][...], g["unit_a"][...], g["unit_b"][...],
                                   _text(g.attrs["unit_name"]), g["folds"][...] if "folds" in g else None,
                                   g["correct"][...] if "correct" in g else None, _read_group(g.get("extra")))
            searches = {}
            for k in sorted(f["searches"].keys(), key=int):
                g = f["searches"][k]
                searches[_text(g.attrs["metric"])] = SearchScores(
                    g["successes"][...], g["trials"][...], g["unit"][...], _text(g.attrs["unit_name"]),
                    _read_group(g.get("extra")))
            return ScoreRecords(pairs, searches, _read_group(f.get("extra"))), _text(f.attrs.get("key_digest", ""))
    except ScoresFileError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:  # HDF5 cannot read it, or a member is missing
        raise ScoresFileError(f"{path}: unreadable or incomplete scores file ({type(exc).__name__}: {exc}); "
                              "re-run `frbench evaluate` to rewrite it") from exc


def scores_path(cache_dir: str | os.PathLike[str], key: Mapping[str, Any]) -> Path:
    """``<cache_dir>/scores/<sha256 of the key's canonical JSON>.h5``."""
    from fr_bench.cache import key_digest

    return Path(cache_dir) / "scores" / f"{key_digest(key)}.h5"


def save_scores(cache_dir: str | os.PathLike[str], key: Mapping[str, Any], records: ScoreRecords) -> Path:
    """File ``records`` under ``key`` (atomic replace: readers see the old file or the new one); returns the path.

    Streamed: HDF5 writes a temporary file in the same folder, which is fsynced and then ``os.replace``-d over the
    path (no in-memory copy of the whole file: IJB-C's record is ~0.5 GB)."""
    from fr_bench.cache import key_digest
    from fr_bench.provenance import atomic_write_with

    return atomic_write_with(scores_path(cache_dir, key),
                             lambda f: write_scores(f, records, key_digest=key_digest(key)))


def load_scores(cache_dir: str | os.PathLike[str], key: Mapping[str, Any]) -> ScoreRecords | None:
    """The records filed under ``key``, or None when absent, filed under another key, or unreadable (warns)."""
    from fr_bench.cache import key_digest

    path = scores_path(cache_dir, key)
    if not path.exists():
        return None
    try:
        records, digest = read_scores(path)
    except ScoresFileError as exc:
        warnings.warn(f"ignoring {exc}", stacklevel=2)
        return None
    return records if digest == key_digest(key) else None
