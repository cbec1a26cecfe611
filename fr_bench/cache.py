"""The HDF5 embedding cache (resumable, never stale) and the per-pair score store.

Embeddings
----------
One HDF5 file per *identity*: model fingerprint (model bytes + input contract), preprocessing contract, flip
convention, the image-list fingerprint (sha256 of the image keys joined by newlines), the source's recipe digest (the
alignment landmarks behind the keys; a ``.bin`` pack's member bytes), its colour space, the CUDA autocast dtype and,
from the runner, the provenance hash of the protocol's files (the extractor builds the identity). The file is
``<cache_dir>/embeddings/<sha256 of the identity>.h5`` and holds

* ``features`` (N, D) float32 -- raw features in image order (rows not yet computed are NaN);
* ``done`` (N,) bool -- the completion record: a row is trusted only when its flag is set and its features are
  finite (a completed non-finite row, which this module never writes, is un-flagged and recomputed);
* attribute ``identity`` -- the identity as canonical JSON, compared on every open; ``meta`` -- extra context.

Crash safety: a batch's rows are written to ``features`` and flushed *before* their ``done`` flags are set and
flushed, so a crash between the two leaves rows that are recomputed, never half-written rows that are served.
On open, a file whose identity or shapes differ, or that HDF5 cannot read (corrupt, truncated), is discarded with a
warning and recreated. A changed model file, preprocessing, flip or image list changes the identity, hence the file
name; the stored identity is checked as well, so stale rows are never served. Note that image files are
fingerprinted by key (and, through the runner's provenance hash, by the names and sizes of the image tree): an image
rewritten in place with the same size under the same key is not detected.

Concurrency: one writer per file, enforced with an OS file lock (``<file>.lock``, released if the process dies).
A second process that finds the lock taken computes without the cache (it neither reads nor writes it) and warns.

Scores
------
Per-pair and per-search score records are filed by :func:`fr_bench.results.save_scores` (keyed by
:func:`key_digest`), not here.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from filelock import FileLock, Timeout

CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """``$FRBENCH_CACHE`` if set, else ``~/.cache/fr_bench``."""
    env = os.environ.get("FRBENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "fr_bench"


def image_list_fingerprint(keys: Iterable[str]) -> str:
    """sha256 of the image keys joined by newlines (order matters)."""
    return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()


def _canonical(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def key_digest(key: Mapping[str, Any]) -> str:
    """sha256 of a dict's canonical JSON: the file name of a cache entry."""
    return hashlib.sha256(_canonical(key).encode()).hexdigest()


def _contiguous_runs(rows: np.ndarray) -> list[tuple[int, int, int]]:
    """(start_row, stop_row, offset_in_rows) for each run of consecutive values in sorted ``rows``."""
    if len(rows) == 0:
        return []
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [len(rows)]])
    return [(int(rows[a]), int(rows[b - 1]) + 1, int(a)) for a, b in zip(starts, stops)]


def entry_digest(identity: Mapping[str, Any]) -> str:
    """The digest naming the cache entry of ``identity`` (also ``Embeddings.fingerprint``)."""
    return key_digest({"cache_version": CACHE_VERSION, **identity})


class EmbeddingCache:
    """One cache entry, opened for reading the completed rows and writing new ones (context manager).

    ``identity`` must hold everything that determines the features; ``n`` rows of ``dim`` features.
    After :meth:`open`, ``enabled`` is False when another process holds the entry (then nothing is read or written).
    """

    def __init__(self, cache_dir: str | os.PathLike, identity: Mapping[str, Any], n: int, dim: int,
                 meta: Mapping[str, Any] | None = None) -> None:
        self.identity = {"cache_version": CACHE_VERSION, **identity}
        self.n, self.dim = int(n), int(dim)
        self.meta = dict(meta or {})
        self.path = Path(cache_dir) / "embeddings" / f"{entry_digest(identity)}.h5"
        self._lock = FileLock(str(self.path) + ".lock")
        self._file: h5py.File | None = None
        self.enabled = False

    # -- opening -------------------------------------------------------------------------------------------------
    def open(self) -> EmbeddingCache:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            warnings.warn(f"embedding cache {self.path} is being written by another process; computing without it",
                          stacklevel=2)
            return self
        self.enabled = True
        if self.path.exists():
            problem = self._try_open_existing()
            if problem is None:
                return self
            warnings.warn(f"discarding embedding cache {self.path}: {problem}; recomputing", stacklevel=2)
            self._discard()
        self._create()
        return self

    def _try_open_existing(self) -> str | None:
        try:
            f = h5py.File(self.path, "a")
        except Exception as exc:  # corrupt or truncated file
            return f"unreadable HDF5 ({exc.__class__.__name__}: {exc})"
        try:
            stored = f.attrs.get("identity")
            if isinstance(stored, bytes):
                stored = stored.decode()
            if stored != _canonical(self.identity):
                f.close()
                return "stored identity does not match (stale entry)"
            if "features" not in f or "done" not in f or f["features"].shape != (self.n, self.dim) \
                    or f["done"].shape != (self.n,):
                f.close()
                return "datasets missing or of the wrong shape"
            f["done"][...]  # read once to detect truncation early
        except Exception as exc:
            f.close()
            return f"unreadable contents ({exc.__class__.__name__}: {exc})"
        self._file = f
        return None

    def _create(self) -> None:
        f = h5py.File(self.path, "w")
        rows = max(1, min(self.n, 4096))
        f.create_dataset("features", shape=(self.n, self.dim), dtype="float32", fillvalue=np.nan,
                         chunks=(rows, self.dim) if self.n and self.dim else None)
        f.create_dataset("done", shape=(self.n,), dtype="bool", fillvalue=False)
        f.attrs["identity"] = _canonical(self.identity)
        f.attrs["meta"] = _canonical(self.meta)
        f.flush()
        self._file = f

    def _discard(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except Exception:
                pass
            self._file = None
        self.path.unlink(missing_ok=True)

    # -- use ------------------------------------------------------------------------------------------------------
    def completed(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, features)`` of every completed row (empty when disabled). A read failure discards the file."""
        empty = (np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32))
        if not self.enabled or self._file is None:
            return empty
        try:
            done = np.asarray(self._file["done"][...], dtype=bool)
            rows = np.flatnonzero(done)
            feats = np.empty((len(rows), self.dim), np.float32)
            for start, stop, off in _contiguous_runs(rows):
                feats[off : off + stop - start] = self._file["features"][start:stop]
        except Exception as exc:
            warnings.warn(f"discarding embedding cache {self.path}: cannot read it ({exc}); recomputing",
                          stacklevel=2)
            self._discard()
            self._create()
            return empty
        finite = np.isfinite(feats).all(axis=1)
        if not finite.all():  # never written by this module; a damaged or foreign file: recompute those rows
            warnings.warn(f"embedding cache {self.path}: {int((~finite).sum())} completed rows are not finite "
                          f"(first row {int(rows[~finite][0])}); recomputing them", stacklevel=2)
            self._file["done"][rows[~finite]] = False
            self._file.flush()
            rows, feats = rows[finite], feats[finite]
        return rows, feats

    def write(self, rows: np.ndarray, features: np.ndarray) -> None:
        """Store completed rows: features first (flushed), then their ``done`` flags (flushed); non-finite rows are
        left out (they are recomputed next time)."""
        if not self.enabled or self._file is None or len(rows) == 0:
            return
        rows = np.asarray(rows, dtype=np.int64)
        order = np.argsort(rows, kind="stable")
        rows, features = rows[order], np.asarray(features, np.float32)[order]
        finite = np.isfinite(features).all(axis=1)  # a NaN row is never marked complete
        rows, features = rows[finite], features[finite]
        runs = _contiguous_runs(rows)
        for start, stop, off in runs:
            self._file["features"][start:stop] = features[off : off + stop - start]
        self._file.flush()
        for start, stop, _ in runs:
            self._file["done"][start:stop] = True
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self.enabled:
            self._lock.release()
            self.enabled = False

    def __enter__(self) -> EmbeddingCache:
        return self.open()

    def __exit__(self, *exc: Any) -> None:
        self.close()
