"""Data provenance: which bytes a result was computed on.

Two results of one protocol are only comparable if they were computed on the same data. This module fingerprints
the files that define a protocol instance (``Protocol.data_files``) and checks them against the hashes a protocol
spec lists for known releases.

* :func:`file_sha256` -- SHA-256 of a file's content, streamed in 1 MiB chunks and cached by
  ``(absolute path, size, mtime_ns)`` in a small JSON file, so a multi-GB pack is read once, not on every run.
* :func:`tree_fingerprint` -- for image folders (IJB ``loose_crop/``, MegaFace): SHA-256 of the sorted
  ``relative path<TAB>size`` lines of every file under the root. It hashes names and sizes, **not content**:
  reading a million images on every run would cost minutes; a re-encoded image of another size, an added, removed or
  renamed file all change it, an in-place edit that keeps the size does not.
* :func:`protocol_fingerprint` -- both of the above over a protocol's data files, plus one ``combined`` hash.
* :func:`check_known_hashes` / :func:`annotate_fingerprint` -- which known release (if any) the data match. Data
  matching no known release are still evaluated, but the result carries a flag that says so; a spec listing no
  known hashes gets a neutral note instead (nothing to check against is not evidence of anything).

The cache file is ``$FRBENCH_CACHE/hashes.json`` if ``FRBENCH_CACHE`` is set, else
``$XDG_CACHE_HOME/fr_bench/hashes.json`` (default ``~/.cache/fr_bench/hashes.json``). It is a pure speed-up: a
missing, unreadable or corrupted cache is ignored (and rewritten), updates are merged under a lock file and written
atomically, so concurrent runs never corrupt it. Caveat of any ``mtime`` cache: a file rewritten with the same size
within the file system's timestamp resolution keeps its cached hash (pass ``cache=False`` to force a re-read).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

#: Read size of the streaming hash.
CHUNK_SIZE = 1 << 20

#: Version of the hash-cache layout (a file of another version is ignored).
_CACHE_VERSION = 1

CachePath = str | os.PathLike[str] | None | bool


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a partial one
    (:func:`atomic_write_with`)."""
    return atomic_write_with(path, lambda f: f.write(data))


def atomic_write_with(path: str | os.PathLike[str], write: Callable[[Any], Any]) -> Path:
    """Let ``write(f)`` stream into ``f`` (a binary file opened ``w+b``, so HDF5 can seek and read back) and
    publish it at ``path`` atomically: readers see the old file or the new one, never a partial one.

    Writes a temporary file in the same folder, flushes and fsyncs it, then ``os.replace``-s it over ``path`` (atomic
    on POSIX and Windows). On any error the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w+b") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; results are for sharing, like any new file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    """Persist a rename (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------------------------------------------
# The hash cache
# ----------------------------------------------------------------------------------------------------------------


def default_cache_path() -> Path:
    """``$FRBENCH_CACHE/hashes.json``, else ``$XDG_CACHE_HOME/fr_bench/hashes.json`` (``~/.cache`` by default)."""
    env = os.environ.get("FRBENCH_CACHE")
    if env:
        return Path(env) / "hashes.json"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fr_bench" / "hashes.json"


def _resolve_cache(cache: CachePath) -> Path | None:
    if cache is False:
        return None
    if cache is None or cache is True:
        return default_cache_path()
    return Path(cache)


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """The cache entries, or ``{}`` when the file is missing, unreadable, corrupted or of another version."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _CACHE_VERSION:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path.lock`` (POSIX ``flock``; no lock where unavailable)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: atomic replace alone, last writer wins
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def _update_cache(path: Path, new_entries: Mapping[str, dict[str, Any]]) -> None:
    """Merge ``new_entries`` into the cache file under the lock; failures only cost the speed-up."""
    try:
        with _locked(path):
            entries = _read_cache(path)
            entries.update(new_entries)
            text = json.dumps({"version": _CACHE_VERSION, "entries": entries}, indent=0, sort_keys=True)
            atomic_write_bytes(path, text.encode("utf-8"))
    except OSError:
        pass


def _cache_hit(entry: Any, size: int, mtime_ns: int) -> str | None:
    if (
        isinstance(entry, dict)
        and entry.get("size") == size
        and entry.get("mtime_ns") == mtime_ns
        and isinstance(entry.get("sha256"), str)
        and len(entry["sha256"]) == 64
    ):
        return entry["sha256"]
    return None


# ----------------------------------------------------------------------------------------------------------------
# Hashes
# ----------------------------------------------------------------------------------------------------------------


def _stream_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes, read in :data:`CHUNK_SIZE` chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: str | os.PathLike[str], *, cache: CachePath = None) -> str:
    """Hex SHA-256 of the content of ``path``.

    Computed once per ``(absolute path, size, mtime_ns)`` and remembered in the hash cache (``cache``: ``None`` for
    the default file, a path for another one, ``False`` to neither read nor write a cache). Raises
    ``FileNotFoundError`` / ``IsADirectoryError`` naming the path.
    """
    path = Path(path)
    absolute = os.path.abspath(path)
    st = os.stat(absolute)
    if not os.path.isfile(absolute):
        raise IsADirectoryError(f"{path}: expected a file to hash, found a directory (use tree_fingerprint)")
    cache_path = _resolve_cache(cache)
    if cache_path is not None:
        hit = _cache_hit(_read_cache(cache_path).get(absolute), st.st_size, st.st_mtime_ns)
        if hit is not None:
            return hit
    sha = _stream_sha256(Path(absolute))
    if cache_path is not None:
        _update_cache(cache_path, {absolute: {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha}})
    return sha


def _tree_lines(root: Path) -> tuple[list[str], int, int]:
    """Sorted ``relpath<TAB>size`` lines of every file under ``root``, the file count and total bytes.

    Directory symlinks are not followed (no loops); file symlinks are (their target's size counts). Relative paths
    use ``/`` on every OS so the fingerprint is the same across machines.
    """
    lines: list[str] = []
    total = 0
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in files:
            full = os.path.join(folder, name)
            try:
                size = os.stat(full).st_size
            except FileNotFoundError:  # dangling symlink: count it, with size -1, rather than drop it silently
                size = -1
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            lines.append(f"{rel}\t{size}\n")
            total += max(size, 0)
    lines.sort()
    return lines, len(lines), total


def tree_fingerprint(root: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of the sorted ``relative/path<TAB>size<LF>`` lines (UTF-8) of all files under ``root``.

    Names and sizes only, not content (speed: a tree of a million images is listed in seconds, read in minutes).
    Every file counts, hidden ones included. Raises ``NotADirectoryError`` naming ``root`` if it is not a folder.
    """
    root = Path(root)
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: expected an image folder to fingerprint")
    return _tree_digest(root)[0]


def _tree_digest(root: Path) -> tuple[str, int, int]:
    """``(fingerprint, number of files, total bytes)`` of the tree under ``root``."""
    lines, n_files, total = _tree_lines(root)
    digest = hashlib.sha256()
    for line in lines:
        digest.update(line.encode("utf-8", "surrogateescape"))
    return digest.hexdigest(), n_files, total


def _file_key(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.name


def protocol_fingerprint(
    data_files: Sequence[str | os.PathLike[str]],
    *,
    root: str | os.PathLike[str] | None = None,
    cache: CachePath = None,
) -> dict[str, Any]:
    """Fingerprint of the files (and image folders) that define a protocol instance.

    Returns ``{"files": {key: {"sha256", "size", "kind"}}, "combined": hex}`` where ``key`` is the path relative to
    ``root`` (when given and the file lies under it), else the file name (the full path if two names collide);
    ``kind`` is ``"file"`` (content SHA-256, ``size`` in bytes) or ``"tree"`` (:func:`tree_fingerprint`, ``size`` =
    total bytes, plus ``n_files``). ``combined`` is the SHA-256 of the sorted per-entry hashes joined by newlines: it
    depends on the bytes only, not on where the files live or what they are called. Raises ``FileNotFoundError``
    naming a missing path.
    """
    root_path = Path(root) if root is not None else None
    files: dict[str, dict[str, Any]] = {}
    for item in data_files:
        path = Path(item)
        if path.is_dir():
            sha, n_files, total = _tree_digest(path)
            entry = {"sha256": sha, "size": total, "kind": "tree", "n_files": n_files}
        elif path.is_file():
            entry = {"sha256": file_sha256(path, cache=cache), "size": path.stat().st_size, "kind": "file"}
        else:
            raise FileNotFoundError(f"{path}: protocol data file not found (cannot fingerprint it)")
        key = _file_key(path, root_path)
        if key in files:
            key = os.path.abspath(path)
        files[key] = entry
    combined = hashlib.sha256("\n".join(sorted(e["sha256"] for e in files.values())).encode("ascii")).hexdigest()
    return {"files": files, "combined": combined}


# ----------------------------------------------------------------------------------------------------------------
# Known releases
# ----------------------------------------------------------------------------------------------------------------


def _entry_for(fingerprint: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The fingerprint entry whose key, or key's last path component, equals ``name``."""
    files = fingerprint.get("files", {})
    if name in files:
        return files[name]
    for key, entry in files.items():
        if key.rsplit("/", 1)[-1] == name.rsplit("/", 1)[-1]:
            return entry
    return None


def check_known_hashes(
    fingerprint: Mapping[str, Any],
    known_hashes: Sequence[Mapping[str, str]] | None,
    protocol: str = "",
) -> tuple[str | None, list[str]]:
    """Which known release the fingerprinted data are: ``(label or None, flags)``.

    ``known_hashes`` comes from the protocol spec: entries ``{"file", "sha256", "label"}``; several entries may
    share a label (a release made of several files). An entry *applies* if the fingerprint has a file of that key or
    that file name. A label matches when at least one of its entries applies and every applying entry's hash equals
    the data's (case-insensitive). The first matching label (spec order) is returned with no flags.

    If none matches, returns ``(None, ["data hash matches no known release of <protocol>: ..."])`` -- the result is
    still computed, but flagged. If the spec lists no hashes, returns ``(None, [])``: nothing to check is not a
    defect (see :func:`annotate_fingerprint` for the neutral note).
    """
    if not known_hashes:
        return None, []
    by_label: dict[str, list[Mapping[str, str]]] = {}
    for entry in known_hashes:
        by_label.setdefault(str(entry.get("label") or entry.get("file") or "?"), []).append(entry)
    for label, entries in by_label.items():
        applying = [(e, _entry_for(fingerprint, str(e.get("file", "")))) for e in entries]
        applying = [(e, f) for e, f in applying if f is not None]
        if applying and all(str(f["sha256"]).lower() == str(e["sha256"]).lower() for e, f in applying):
            return label, []
    have = ", ".join(f"{k} sha256 {v['sha256'][:12]}" for k, v in sorted(fingerprint.get("files", {}).items()))
    known = "; ".join(sorted(by_label))
    name = protocol or "this protocol"
    return None, [f"data hash matches no known release of {name}: {have or 'no files'} (known releases: {known})"]


def annotate_fingerprint(
    fingerprint: Mapping[str, Any],
    known_hashes: Sequence[Mapping[str, str]] | None,
    protocol: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """The fingerprint with its verdict added, and the flags for the result.

    Adds ``"release"`` (matched label or None), ``"check"`` (``"known"``, ``"unknown"`` or ``"unchecked"``) and
    ``"note"`` (one human sentence). Flags are those of :func:`check_known_hashes`; ``"unchecked"`` (the spec lists
    no hashes) gives a note and no flag.
    """
    label, flags = check_known_hashes(fingerprint, known_hashes, protocol)
    out = dict(fingerprint)
    name = protocol or "this protocol"
    out["release"] = label
    if not known_hashes:
        out["check"] = "unchecked"
        out["note"] = f"the spec of {name} lists no known data hashes; the data were fingerprinted, not checked"
    elif label is None:
        out["check"] = "unknown"
        out["note"] = flags[0]
    else:
        out["check"] = "known"
        out["note"] = f"data match the known release {label!r} of {name}"
    return out, flags
