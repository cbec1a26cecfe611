"""Paired comparison of two models on one protocol, from their stored results and per-pair scores.

Two results can be compared only if they were computed on the same data (same provenance hash) and so on the same
pairs or searches, in the same order: then each headline number's difference B - A gets a paired bootstrap interval
(the same resampled units for both models, :mod:`fr_bench.metrics.compare`), and pair accuracy also gets McNemar's
exact test on the pairs the two models classify differently at their own chosen thresholds.

The per-pair arrays come from the HDF5 file each result points at (``scores_file``, written by
:func:`fr_bench.runner.evaluate_model`); the layout is documented in :mod:`fr_bench.protocols.scoring`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from fr_bench.metrics.compare import mcnemar, paired_accuracy_difference, paired_bootstrap_difference
from fr_bench.results import StoredResult, read_result

_TAR_KEY = re.compile(r"^tar@far=([0-9.eE+-]+)$")


class ComparisonError(ValueError):
    """The two results cannot be compared pair by pair; the message says why."""


def _load_arrays(record: StoredResult) -> dict[str, np.ndarray]:
    path = record.scores_file
    if not path or not Path(path).is_file():
        raise ComparisonError(
            f"{record.source or record.model_name}: its per-pair scores file ({path or 'none recorded'}) is missing; "
            "re-run `frbench evaluate` for this model (the scores are kept in the cache folder)"
        )
    with h5py.File(path, "r") as f:
        return {name: f[name][...] for name in f.keys()}


def _same(a: dict[str, np.ndarray], b: dict[str, np.ndarray], key: str) -> bool:
    return key in a and key in b and a[key].shape == b[key].shape and np.array_equal(a[key], b[key])


def compare_records(
    rec_a: StoredResult, rec_b: StoredResult, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> list[dict[str, Any]]:
    """Rows ``{metric, a, b, diff (= b - a), low, high, level, p_value, test, n}`` for every comparable headline."""
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
    arr_a, arr_b = _load_arrays(rec_a), _load_arrays(rec_b)
    ma, mb = rec_a.result.metrics, rec_b.result.metrics
    rows: list[dict[str, Any]] = []

    if "scores" in arr_a and "labels" in arr_a:
        if not _same(arr_a, arr_b, "labels"):
            raise ComparisonError("the two results do not hold the same pairs (labels differ)")
        labels = arr_a["labels"].astype(bool)
        unit_a = arr_a.get("unit_a")
        unit_b = arr_a.get("unit_b")
        if unit_a is None:
            unit_a = np.arange(labels.size)
        unit_name = "pair" if arr_a.get("unit_a") is None else "unit of the stored scores"
        conv_a = rec_a.conventions.get("tar", "strict")
        conv_b = rec_b.conventions.get("tar", "strict")
        for key in ma:
            m = _TAR_KEY.match(key)
            if not m or key not in mb:
                continue
            if conv_a != conv_b:
                rows.append({"metric": key, "a": ma[key], "b": mb[key], "test": f"not paired: conventions differ "
                                                                                f"({conv_a} vs {conv_b})"})
                continue
            far = float(m.group(1))
            unit_name = rec_a.result.intervals.get(key, {}).get("unit", unit_name)
            if math.isnan(ma[key]) or math.isnan(mb[key]):
                rows.append({"metric": key, "a": ma[key], "b": mb[key], "n": int(labels.size)})
                continue
            iv = paired_bootstrap_difference(
                arr_b["scores"], arr_a["scores"], labels, unit_a, unit_b, far=far, convention=conv_a,
                n_boot=n_boot, level=level, seed=seed, unit=unit_name,
            )
            rows.append({"metric": key, "a": ma[key], "b": mb[key], "diff": iv.point, "low": iv.low,
                         "high": iv.high, "level": level, "test": f"paired bootstrap ({conv_a})",
                         "n": int(labels.size)})

    if "correct" in arr_a and "correct" in arr_b and "accuracy" in ma and "accuracy" in mb:
        ca, cb = arr_a["correct"].astype(bool), arr_b["correct"].astype(bool)
        if ca.shape != cb.shape:
            raise ComparisonError("the two results classify different numbers of pairs")
        test = mcnemar(ca, cb)
        units = arr_a.get("folds")
        iv = paired_accuracy_difference(cb, ca, units=units, n_boot=n_boot, level=level, seed=seed,
                                        unit="fold" if units is not None else "pair")
        rows.append({"metric": "accuracy (pairs classified right)", "a": ca.mean(), "b": cb.mean(),
                     "diff": iv.point, "low": iv.low, "high": iv.high, "level": level, "p_value": test.pvalue,
                     "test": f"McNemar exact (b={test.b}, c={test.c})", "n": int(ca.size)})

    if "rank1_correct" in arr_a and "rank1_correct" in arr_b:
        ca, cb = arr_a["rank1_correct"].astype(bool), arr_b["rank1_correct"].astype(bool)
        if ca.shape != cb.shape:
            raise ComparisonError("the two results hold different searches")
        units = arr_a.get("unit")
        test = mcnemar(ca, cb)
        iv = paired_accuracy_difference(cb, ca, units=units, n_boot=n_boot, level=level, seed=seed,
                                        unit="subject" if units is not None else "search")
        rows.append({"metric": "rank1", "a": ca.mean(), "b": cb.mean(), "diff": iv.point, "low": iv.low,
                     "high": iv.high, "level": level, "p_value": test.pvalue,
                     "test": f"McNemar exact (b={test.b}, c={test.c})", "n": int(ca.size)})
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
