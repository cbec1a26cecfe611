"""Paired comparison of two models on one protocol, from their stored results and score records.

Two results can be compared only if they were computed on the same data (same provenance hash), with the same load
options, and so on the same pairs or searches, in the same order: then each headline number's difference B - A gets
a paired bootstrap interval (the same resampled units for both models, :mod:`fr_bench.metrics.compare`), and
per-item accuracies also get McNemar's exact test on the items the two models classify differently.

The records come from the HDF5 file each result points at (``scores_file``, filed by the runner), read by
:func:`fr_bench.results.read_scores` into typed :class:`~fr_bench.results.PairScores` /
:class:`~fr_bench.results.SearchScores`, so the resampling unit is always the one the protocol recorded:

* pairs: every ``tar@far=<f>`` (paired bootstrap resampling ``PairScores.unit_a``/``unit_b``, named
  ``unit_name``) and the pair accuracy (McNemar on ``correct``; bootstrap by fold when folds exist, else by pair);
* searches: every identification rate with a :class:`SearchScores` record (``rank1``, ``G1/rank1``): bootstrap
  resampling its ``unit`` (subject, identity; a unit holding no trial of that rate, e.g. a subject without a mated
  search in that gallery, is not part of its population), McNemar when each entry is one search.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.metrics import names as metric_names
from fr_bench.metrics.compare import mcnemar, paired_accuracy_difference, paired_bootstrap_difference
from fr_bench.results import (
    PairScores,
    ScoreRecords,
    ScoresFileError,
    SearchScores,
    StoredResult,
    read_result,
    read_scores,
)

class ComparisonError(ValueError):
    """The two results cannot be compared pair by pair; the message says why."""


def _load_records(record: StoredResult) -> ScoreRecords:
    path = record.scores_file
    if not path or not Path(path).is_file():
        raise ComparisonError(
            f"{record.source or record.model_name}: its per-pair scores file ({path or 'none recorded'}) is missing; "
            "re-run `frbench evaluate` for this model (the scores are kept in the cache folder)"
        )
    try:
        return read_scores(path)[0]
    except ScoresFileError as exc:  # its message names the file
        raise ComparisonError(f"{record.source or record.model_name}: {exc}") from exc


def _check_comparable(rec_a: StoredResult, rec_b: StoredResult) -> None:
    if rec_a.protocol_name != rec_b.protocol_name:
        raise ComparisonError(f"different protocols: {rec_a.protocol_name} vs {rec_b.protocol_name}")
    if rec_a.data_hash != rec_b.data_hash:
        raise ComparisonError(
            f"{rec_a.protocol_name}: the two results were computed on different data "
            f"({rec_a.data_hash} vs {rec_b.data_hash}); a paired comparison needs the same pairs"
        )
    opts_a, opts_b = rec_a.protocol.get("options", {}), rec_b.protocol.get("options", {})
    if opts_a != opts_b:
        raise ComparisonError(
            f"{rec_a.protocol_name}: the two results were loaded with different protocol options ({opts_a} vs "
            f"{opts_b}); a paired comparison needs the same pairs"
        )


def _pair_rows(pa: PairScores, pb: PairScores, rec_a: StoredResult, rec_b: StoredResult, *, n_boot: int,
               seed: int, level: float) -> list[dict[str, Any]]:
    if len(pa) != len(pb) or not np.array_equal(pa.labels, pb.labels) or not (
            np.array_equal(pa.unit_a, pb.unit_a) and np.array_equal(pa.unit_b, pb.unit_b)):
        raise ComparisonError("the two results do not hold the same pairs (labels or units differ)")
    ma, mb = rec_a.result.metrics, rec_b.result.metrics
    conv_a, conv_b = rec_a.conventions.get("tar", "strict"), rec_b.conventions.get("tar", "strict")
    rows: list[dict[str, Any]] = []
    for key in ma:
        name = metric_names.parse(key)
        if name is None or name.prefix or name.kind != "tar@far" or key not in mb:
            continue
        if conv_a != conv_b:
            rows.append({"metric": key, "a": ma[key], "b": mb[key],
                         "test": f"not paired: conventions differ ({conv_a} vs {conv_b})"})
            continue
        if math.isnan(ma[key]) or math.isnan(mb[key]):
            rows.append({"metric": key, "a": ma[key], "b": mb[key], "n": len(pa)})
            continue
        iv = paired_bootstrap_difference(pb.scores, pa.scores, pa.labels, pa.unit_a, pa.unit_b, far=float(name.param),
                                         convention=conv_a, n_boot=n_boot, level=level, seed=seed, unit=pa.unit_name)
        rows.append({"metric": key, "a": ma[key], "b": mb[key], "diff": iv.point, "low": iv.low, "high": iv.high,
                     "level": level, "test": f"paired bootstrap by {pa.unit_name} ({conv_a})", "n": len(pa)})
    if pa.correct is not None and pb.correct is not None and "accuracy" in ma and "accuracy" in mb:
        test = mcnemar(pa.correct, pb.correct)
        iv = paired_accuracy_difference(pb.correct, pa.correct, units=pa.folds, n_boot=n_boot, level=level,
                                        seed=seed, unit="fold" if pa.folds is not None else "pair")
        rows.append({"metric": "accuracy (pairs classified right)", "a": pa.correct.mean(), "b": pb.correct.mean(),
                     "diff": iv.point, "low": iv.low, "high": iv.high, "level": level, "p_value": test.pvalue,
                     "test": f"McNemar exact (b={test.b}, c={test.c})", "n": len(pa)})
    return rows


def _items(s: SearchScores, successes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(correct, unit)`` with one item per trial: entry ``i`` gives ``trials[i]`` items of its unit, the first
    ``successes[i]`` of them correct. Per-unit sums -- all the rate bootstrap uses -- are exactly the record's."""
    reps = s.trials.astype(np.int64)
    start = np.repeat(np.cumsum(reps) - reps, reps)
    rank = np.arange(int(reps.sum())) - start
    return rank < np.repeat(successes.astype(np.int64), reps), np.repeat(s.unit, reps)


def _search_row(metric: str, sa: SearchScores, sb: SearchScores, *, n_boot: int, seed: int,
                level: float) -> dict[str, Any]:
    if len(sa) != len(sb) or not (np.array_equal(sa.trials, sb.trials) and np.array_equal(sa.unit, sb.unit)):
        raise ComparisonError(f"{metric}: the two results hold different searches")
    ca, units = _items(sa, sa.successes)
    cb, _ = _items(sb, sb.successes)
    iv = paired_accuracy_difference(cb, ca, units=units, n_boot=n_boot, level=level, seed=seed, unit=sa.unit_name)
    row = {"metric": metric, "a": sa.rate, "b": sb.rate, "diff": iv.point, "low": iv.low, "high": iv.high,
           "level": level, "test": f"paired bootstrap by {sa.unit_name}", "n": int(sa.trials.sum())}
    if sa.per_search:  # items pair up search by search: McNemar on the counted searches
        counted = sa.trials == 1
        test = mcnemar(sa.successes[counted] == 1, sb.successes[counted] == 1)
        row.update({"p_value": test.pvalue, "test": f"McNemar exact (b={test.b}, c={test.c}); bootstrap by "
                                                    f"{sa.unit_name}"})
    return row


def compare_records(
    rec_a: StoredResult, rec_b: StoredResult, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> list[dict[str, Any]]:
    """Rows ``{metric, a, b, diff (= b - a), low, high, level, p_value, test, n}`` for every comparable headline."""
    _check_comparable(rec_a, rec_b)
    ra, rb = _load_records(rec_a), _load_records(rec_b)
    rows: list[dict[str, Any]] = []
    if ra.pairs is not None and rb.pairs is not None:
        rows += _pair_rows(ra.pairs, rb.pairs, rec_a, rec_b, n_boot=n_boot, seed=seed, level=level)
    for metric, sa in ra.searches.items():
        if metric in rb.searches:
            rows.append(_search_row(metric, sa, rb.searches[metric], n_boot=n_boot, seed=seed, level=level))
    if not rows:
        raise ComparisonError(f"{rec_a.protocol_name}: no headline number could be compared pair by pair")
    return rows


def compare_results(
    path_a: str | Path, path_b: str | Path, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[list[dict[str, Any]], str, str]:
    """:func:`compare_records` on two result files; returns ``(rows, model_a_name, model_b_name)``."""
    rec_a, rec_b = read_result(path_a), read_result(path_b)
    rows = compare_records(rec_a, rec_b, n_boot=n_boot, seed=seed, level=level)
    name_a, name_b = rec_a.model_name, rec_b.model_name
    if name_a == name_b:
        name_a, name_b = f"{name_a} (A)", f"{name_b} (B)"
    return rows, name_a, name_b
