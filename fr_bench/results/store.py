"""The results store: one JSON file per (model, protocol) run, written atomically, read back for reports.

Layout: ``RESULTS_DIR/<model>/<protocol>.json``, one :class:`StoredResult` each (the exact JSON schema is in
``results/README.md``). ``<model>`` and ``<protocol>`` are the names made safe for file systems by
:func:`safe_name`. Re-running a model on a protocol replaces its file.

Writes are atomic (temporary file in the same folder, fsync, ``os.replace``): a reader, or a crash, never sees a
half-written result, and a failure while serialising leaves the previous file untouched. NaN and inf are stored as
JSON ``null`` (strict JSON, readable by any tool) and read back as NaN in metrics, operating points and intervals.
The per-pair scores are not stored here (:mod:`fr_bench.results.scores` files them in HDF5); a result points at
them with ``scores_file``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from fr_bench import __version__
from fr_bench.provenance import atomic_write_bytes
from fr_bench.results.encode import nan_leaves, to_jsonable
from fr_bench.results.records import ProtocolResult

#: Version of the result-file layout. Readers refuse files of a newer schema with a clear message.
SCHEMA_VERSION = 1

#: ``kind`` of a suite record (``OUT/<model>/suite-<name>.json``, :mod:`fr_bench.suites.run`): it ties one run's
#: result files together and is not a result itself, so :func:`load_results` passes it by without a warning.
SUITE_RECORD_KIND = "fr_bench suite run"

#: Characters kept as they are in file names; anything else becomes ``_``.
_UNSAFE = re.compile(r"[^A-Za-z0-9._+@=-]")


class ResultFormatError(ValueError):
    """A file that is not a valid fr_bench result; the message names the file."""


class ResultsWarning(UserWarning):
    """A file in the results folder was skipped (the message names it and says why)."""


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string, e.g. ``2026-11-23T06:32:01+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`~fr_bench.provenance.atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def safe_name(name: str) -> str:
    """``name`` as one file-name component, the same on every OS.

    Characters outside ``A-Z a-z 0-9 . _ + @ = -`` become ``_`` and leading dots are dropped. When that changed the
    name, the first 8 hex digits of the SHA-256 of the original name are appended, so that two different names
    (``a/b`` and ``a_b``) never share a file.
    """
    cleaned = _UNSAFE.sub("_", name).lstrip(".")[:120] or "_"
    if cleaned != name:
        cleaned += "-" + hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return cleaned


def _unknown(value: Any) -> str:
    """``json.dumps`` fallback: a value :func:`to_jsonable` left as it was cannot be stored (``TypeError``)."""
    raise TypeError(f"cannot store a {type(value).__name__} in a result file")


@dataclass
class StoredResult:
    """One run of one model on one protocol, as stored in ``RESULTS_DIR/<model>/<protocol>.json``.

    * ``model``: ``{"name", "spec", "format", "fingerprint", "preprocessing", "embedding_size"}`` (``name`` required;
      ``spec`` what the user passed, ``fingerprint`` the hash of the weights, ``preprocessing`` the input contract).
    * ``protocol``: ``{"name", "display_name", "root", "options", "data"}`` (``name`` required; ``data`` the
      :func:`fr_bench.provenance.annotate_fingerprint` dict: ``files``, ``combined``, ``release``, ``check``).
    * ``result``: the :class:`ProtocolResult` (its raw ``scores`` are not stored).
    * ``extraction``: ``{"device", "batch_size", "flip", "amp", "images", "seconds", "images_per_s", "from_cache",
      "n_skipped", "skipped"}``.
    * ``timings``: seconds per stage (``{"load": ..., "extract": ..., "evaluate": ...}``).
    * ``scores_file``: where the per-pair scores were saved (HDF5), if they were.
    * ``fr_bench_version``, ``created`` (ISO 8601 UTC), ``schema``: filled in automatically.
    * ``source``: the file this was read from (not serialised).
    """

    model: dict[str, Any]
    protocol: dict[str, Any]
    result: ProtocolResult
    extraction: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    scores_file: str | None = None
    fr_bench_version: str = __version__
    created: str = field(default_factory=utc_now)
    schema: int = SCHEMA_VERSION
    source: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.model, Mapping) or not self.model.get("name"):
            raise ValueError("StoredResult.model must be a dict with a non-empty 'name'")
        if not isinstance(self.protocol, Mapping) or not self.protocol.get("name"):
            raise ValueError("StoredResult.protocol must be a dict with a non-empty 'name'")
        if not isinstance(self.result, ProtocolResult):
            raise TypeError(f"StoredResult.result must be a ProtocolResult, got {type(self.result).__name__}")
        self.model = dict(self.model)
        self.protocol = dict(self.protocol)

    # -- convenient views ---------------------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        return str(self.model["name"])

    @property
    def protocol_name(self) -> str:
        return str(self.protocol["name"])

    @property
    def display_name(self) -> str:
        """The protocol's human name (``protocol.display_name``, else its name)."""
        return str(self.protocol.get("display_name") or self.protocol_name)

    @property
    def conventions(self) -> dict[str, str]:
        """The named convention per metric group that produced the numbers (``result.conventions``)."""
        return dict(self.result.conventions)

    @property
    def flags(self) -> list[str]:
        return list(self.result.flags)

    @property
    def data_hash(self) -> str | None:
        """The ``combined`` hash of the data the result was computed on (``protocol.data``, else
        ``result.provenance``), or None if not recorded."""
        for source in (self.protocol.get("data"), self.result.provenance, self.result.provenance.get("data")):
            if isinstance(source, Mapping) and source.get("combined"):
                return str(source["combined"])
        return None

    @property
    def data_release(self) -> str | None:
        """The label of the known release the data matched, if any."""
        for source in (self.protocol.get("data"), self.result.provenance, self.result.provenance.get("data")):
            if isinstance(source, Mapping) and source.get("release"):
                return str(source["release"])
        return None

    # -- JSON -----------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready dict (NaN/inf as None; key order as documented)."""
        return {
            "schema": self.schema,
            "fr_bench_version": self.fr_bench_version,
            "created": self.created,
            "model": to_jsonable(self.model),
            "protocol": to_jsonable(self.protocol),
            # informational copy of result.conventions, for readers of the file (result.conventions is authoritative)
            "conventions": dict(self.result.conventions),
            "result": self.result.to_dict(),
            "extraction": to_jsonable(self.extraction),
            "timings": to_jsonable(self.timings),
            "scores_file": self.scores_file,
        }

    def to_json(self) -> str:
        """Strict JSON text (``allow_nan=False``: NaN never leaks as a non-standard token), indented, newline-ended."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, ensure_ascii=False, default=_unknown)
        return text + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str | os.PathLike[str] | None = None) -> StoredResult:
        """Inverse of :meth:`to_dict`; raises :class:`ResultFormatError` (naming ``source``) on anything else."""
        where = str(source) if source is not None else "<result>"
        if not isinstance(data, Mapping):
            raise ResultFormatError(f"{where}: expected a JSON object, got {type(data).__name__}")
        schema = data.get("schema")
        if not isinstance(schema, int) or isinstance(schema, bool):
            raise ResultFormatError(f"{where}: not an fr_bench result file (no integer 'schema' field)")
        if schema > SCHEMA_VERSION:
            raise ResultFormatError(
                f"{where}: result schema {schema} is newer than this fr_bench understands ({SCHEMA_VERSION}); "
                "upgrade fr_bench"
            )
        for key in ("model", "protocol", "result"):
            if not isinstance(data.get(key), Mapping):
                raise ResultFormatError(f"{where}: missing or invalid {key!r} object")
        result_data = data["result"]
        if "protocol" not in result_data or not isinstance(result_data.get("metrics"), Mapping):
            raise ResultFormatError(f"{where}: 'result' lacks 'protocol' or a 'metrics' object")
        try:
            result = ProtocolResult.from_dict(result_data)
            result.operating_points = {k: nan_leaves(v) for k, v in result.operating_points.items()}
            result.intervals = {k: nan_leaves(v) for k, v in result.intervals.items()}
            return cls(
                model=dict(data["model"]),
                protocol=dict(data["protocol"]),
                result=result,
                extraction=dict(data.get("extraction") or {}),
                timings=dict(data.get("timings") or {}),
                scores_file=data.get("scores_file"),
                fr_bench_version=str(data.get("fr_bench_version", "")),
                created=str(data.get("created", "")),
                schema=schema,
                source=Path(source) if source is not None else None,
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ResultFormatError(f"{where}: invalid result: {exc}") from exc

    @classmethod
    def from_json(cls, text: str, source: str | os.PathLike[str] | None = None) -> StoredResult:
        """Parse :meth:`to_json` output; raises :class:`ResultFormatError` naming ``source``."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            where = str(source) if source is not None else "<result>"
            raise ResultFormatError(f"{where}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
        return cls.from_dict(data, source=source)


# --------------------------------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------------------------------


def result_path(results_dir: str | os.PathLike[str], model_name: str, protocol_name: str) -> Path:
    """``results_dir/<safe model name>/<safe protocol name>.json``."""
    return Path(results_dir) / safe_name(model_name) / f"{safe_name(protocol_name)}.json"


def write_result(results_dir: str | os.PathLike[str], record: StoredResult) -> Path:
    """Write ``record`` atomically to :func:`result_path` and return that path.

    The JSON text is built completely before any file is touched, so an error while serialising leaves an existing
    file as it was; the write itself goes through a temporary file + fsync + ``os.replace``.
    """
    text = record.to_json()
    path = result_path(results_dir, record.model_name, record.protocol_name)
    atomic_write_text(path, text)
    record.source = path
    return path


def read_result(path: str | os.PathLike[str]) -> StoredResult:
    """Read one result file; raises :class:`ResultFormatError` naming the file if it is not a valid result."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ResultFormatError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    return StoredResult.from_json(text, source=path)


def _is_suite_record(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("kind") == SUITE_RECORD_KIND


def load_results(results_dir: str | os.PathLike[str]) -> list[StoredResult]:
    """Every result under ``results_dir`` (recursively), sorted by model then protocol name.

    Files that are not results -- invalid JSON, JSON without an fr_bench ``schema``, a newer schema -- are skipped
    with a :class:`ResultsWarning` naming the file and the reason; nothing is skipped silently but suite records
    (:data:`SUITE_RECORD_KIND`), which sit beside the results they tie together. A missing folder gives an empty
    list.
    """
    root = Path(results_dir)
    records: list[StoredResult] = []
    if not root.is_dir():
        return records
    for path in sorted(root.rglob("*.json")):
        if not path.is_file():
            continue
        try:
            records.append(read_result(path))
        except ResultFormatError as exc:  # its message starts with the path
            if not _is_suite_record(path):
                warnings.warn(f"skipped {exc}", ResultsWarning, stacklevel=2)
        except OSError as exc:
            warnings.warn(f"skipped {path}: cannot read: {exc.strerror or exc}", ResultsWarning, stacklevel=2)
    records.sort(key=lambda r: (r.model_name, r.protocol_name))
    return records
