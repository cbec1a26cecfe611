"""Result types and their files: :class:`ProtocolResult`, the typed score records, the JSON results store.

* :mod:`fr_bench.results.records`: :class:`ProtocolResult`, what ``protocol.evaluate`` returns;
* :mod:`fr_bench.results.scores`: :class:`PairScores` / :class:`SearchScores` (:class:`ScoreRecords`), the
  per-pair and per-search records paired comparisons read, with their one HDF5 layout;
* :mod:`fr_bench.results.encode`: the one JSON encoder (:func:`to_jsonable`);
* :mod:`fr_bench.results.store`: :class:`StoredResult` files under ``RESULTS_DIR/<model>/<protocol>.json``.

Re-exported because it shapes what is stored: :func:`downsample_roc` (defined in
:mod:`fr_bench.metrics.verification`), which reduces a full ROC to at most ``max_points`` for ``details["roc"]``.
This package imports no models, no protocols and no extraction code.
"""

from __future__ import annotations

from fr_bench.metrics.verification import downsample_roc  # re-exported: it shapes details["roc"]
from fr_bench.provenance import atomic_write_bytes
from fr_bench.results.encode import nan_leaves, to_jsonable
from fr_bench.results.records import ProtocolResult
from fr_bench.results.scores import (
    PairScores,
    ScoreRecords,
    ScoresFileError,
    SearchScores,
    load_scores,
    read_scores,
    save_scores,
)
from fr_bench.results.store import (
    SCHEMA_VERSION,
    SUITE_RECORD_KIND,
    ResultFormatError,
    ResultsWarning,
    StoredResult,
    atomic_write_text,
    load_results,
    read_result,
    result_path,
    safe_name,
    utc_now,
    write_result,
)

__all__ = [
    "SCHEMA_VERSION",
    "SUITE_RECORD_KIND",
    "PairScores",
    "ProtocolResult",
    "ResultFormatError",
    "ResultsWarning",
    "ScoreRecords",
    "ScoresFileError",
    "SearchScores",
    "StoredResult",
    "atomic_write_bytes",
    "atomic_write_text",
    "downsample_roc",
    "load_results",
    "load_scores",
    "nan_leaves",
    "read_result",
    "read_scores",
    "result_path",
    "safe_name",
    "save_scores",
    "to_jsonable",
    "utc_now",
    "write_result",
]
