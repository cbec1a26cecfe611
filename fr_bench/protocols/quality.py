"""Per-image quality sources and the EDC a 1:1 verification result reports for one of them (issue 13).

A *quality source* gives one number per image of ``protocol.images`` (higher = better):

* ``"norm"``: the feature norms the runner passes to ``evaluate`` -- the norm of the feature the flip convention
  made: under ``flip=sum`` the norm of the flip-summed feature (image + mirror), not of one image's feature.
  MagFace's magnitude is the norm of the raw feature of the image alone: ``-c flip=none`` reproduces that;
* ``"detector"``: the IJB detector score (the last column of ``*_name_5pts_score.txt``,
  :attr:`fr_bench.protocols.ijb_meta.IJBMeta.det_scores`); only IJB protocols have one;
* a path to a CSV file with the header line ``image,score`` and one line per image, matched by the protocol's
  image keys (``protocol.images.keys()``: paths relative to the benchmark root, or ``<pack>.bin#<index>`` for the
  images of a ``.bin`` pack, e.g. ``lfw.bin#12``; ``demo/<Name>/<file>.jpg`` for the demo). Every image of the
  protocol must be listed exactly once, and nothing else; scores must be finite numbers. The result records the
  file's name and sha256 (``details["edc"]["source_detail"]``).

Each protocol maps image qualities to one pairwise quality per entry of ``result.scores.pairs``
(:meth:`fr_bench.protocols.base.Protocol.pair_qualities`, with :func:`fr_bench.metrics.pair_quality`), and
:func:`attach_edc` adds the ISO EDC curves (FNM at a starting FNMR of 0.05, FM at a starting FMR of 1e-3, pAUC up
to a discard fraction of 0.20, with the theoretical best) to the result: ``metrics["edc_fnm_pauc"]``,
``metrics["edc_fm_pauc"]`` and ``details["edc"]`` (``"discard_over": "class"``: each curve discards its own
class's pairs, mated for FNM, non-mated for FM; see :mod:`fr_bench.metrics.quality`). The source is NOT a
convention (``result.conventions`` groups leaderboard rows): it lives in ``details["edc"]["source"]``.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.metrics import edc
from fr_bench.protocols.base import Protocol, ProtocolError, ProtocolResult, file_error, read_text_lines

__all__ = ["EDC_CURVES", "MAX_CURVE_POINTS", "QUALITY_HELP", "QUALITY_SOURCES", "QualityPlan", "attach_edc",
           "check_source", "downsample_steps", "image_quality", "plan_quality", "read_quality_csv"]

#: Help text of the CLI's ``--quality`` option.
QUALITY_HELP = ("per-image quality source for an EDC (error-versus-discard, ISO/IEC 29794-1) of the 1:1 pairs: "
                "'norm' (feature norm of the flip-fused feature; -c flip=none for MagFace's magnitude), "
                "'detector' (IJB detector score) or a CSV file with header 'image,score' keyed by the protocol's "
                "image keys (relative paths, or 'pack.bin#index' for .bin packs)")
#: The named sources (anything else is read as a CSV path).
QUALITY_SOURCES = ("norm", "detector")
#: The curves the runner reports: error kind -> starting error (FNM: ISO's 0.05; FM: this project's 1e-3).
EDC_CURVES = {"fnm": 0.05, "fm": 1e-3}
#: Most points of a curve written into the result JSON.
MAX_CURVE_POINTS = 1000
_SHOW = 5  # offending keys / lines listed in an error


# ------------------------------------------------------------------------------------------------ image quality


def image_quality(protocol: Protocol, source: str, norms: np.ndarray | None) -> tuple[np.ndarray, dict[str, Any]]:
    """One quality per image of ``protocol.images`` (float64) and a description of the source (JSON-ready).

    ``source``: ``"norm"`` (``norms``: the feature norms the runner passes to ``evaluate``), ``"detector"`` (IJB
    only) or a CSV path (:func:`read_quality_csv`). ``ValueError`` naming the protocol or the file otherwise.
    """
    n = len(protocol.images)
    name = protocol.name or type(protocol).__name__
    if source == "norm":
        if norms is None:
            raise ValueError(f"{name}: quality source 'norm' needs the feature norms")
        q = np.asarray(norms, dtype=np.float64).reshape(-1)
        if q.shape != (n,):
            raise ValueError(f"{name}: {q.size} feature norms for {n} images")
        return q, {"kind": "norm", "description": "L2 norm of each image's feature as extracted (fused with the "
                   "mirror image's as the flip convention says)"}
    if source == "detector":
        det = getattr(getattr(protocol, "meta", None), "det_scores", None)
        if det is None:
            raise ValueError(f"{name}: quality source 'detector' needs a detector score per image, which only the "
                             "IJB protocols have (*_name_5pts_score.txt); use 'norm' or a CSV file")
        q = np.asarray(det, dtype=np.float64).reshape(-1)
        if q.shape != (n,):
            raise ValueError(f"{name}: {q.size} detector scores for {n} images")
        return q, {"kind": "detector", "description": "IJB detector score (last column of *_name_5pts_score.txt)"}
    path = Path(source).expanduser()
    if not path.is_file():
        raise ValueError(f"quality source {source!r}: not {' or '.join(map(repr, QUALITY_SOURCES))} and no such "
                         "file (a CSV 'image,score' is expected)")
    return read_quality_csv(path, protocol.images.keys())


def _listing(items: Sequence[str]) -> str:
    shown = ", ".join(items[:_SHOW])
    return shown + (f", ... ({len(items)} in all)" if len(items) > _SHOW else "")


def read_quality_csv(path: str | Path, keys: Sequence[str]) -> tuple[np.ndarray, dict[str, Any]]:
    """Qualities of ``keys`` (in their order) from a CSV ``image,score`` file, and its description.

    The first non-blank line must be the header ``image,score``; then one ``<key>,<score>`` line per image (blank
    lines skipped). :class:`~fr_bench.protocols.base.ProtocolError` naming the file, for: a bad header, a line
    without two fields, a score that is not a finite number (with the line), a key listed twice, keys of the file
    that are not images of the protocol and images the file does not list (the first few of each).
    """
    path = Path(path)
    lines = read_text_lines(path, "quality CSV")
    rows = [(no, line) for no, line in enumerate(lines, start=1) if line.strip()]
    if not rows:
        raise file_error(path, None, "quality CSV is empty: expected a header line 'image,score'")
    head_no, head = rows[0]
    if [c.strip().lower() for c in next(csv.reader([head]))] != ["image", "score"]:
        raise file_error(path, head_no, f"expected the header line 'image,score', got {head!r}")
    index = {k: i for i, k in enumerate(keys)}
    q = np.full(len(index), np.nan)
    seen: dict[str, int] = {}
    bad, twice, unknown = [], [], []
    for no, line in rows[1:]:
        fields = next(csv.reader([line]))
        if len(fields) != 2:
            raise file_error(path, no, f"expected 2 fields <image>,<score>, got {line!r}")
        key, text = fields[0].strip(), fields[1].strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            bad.append(f"line {no}: {key} {text!r}")
            continue
        if key in seen:
            twice.append(f"{key} (lines {seen[key]} and {no})")
            continue
        seen[key] = no
        if key not in index:
            unknown.append(key)
            continue
        q[index[key]] = value
    if bad:
        raise file_error(path, None, f"{len(bad)} scores are not finite numbers: {_listing(bad)}")
    if twice:
        raise file_error(path, None, f"{len(twice)} image keys are listed twice: {_listing(twice)}")
    if unknown:
        raise file_error(path, None, f"{len(unknown)} image keys are not images of the protocol (keys are paths "
                         f"relative to the root, or 'pack.bin#index'): {_listing(unknown)}")
    missing = [k for k, i in index.items() if np.isnan(q[i])]
    if missing:
        raise file_error(path, None, f"{len(missing)} images of the protocol have no quality score: "
                         f"{_listing(missing)}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return q, {"kind": "file", "file": path.name, "path": str(path), "sha256": digest, "images": len(index)}


# ------------------------------------------------------------------------------------------------ pairs and EDC


@dataclass
class QualityPlan:
    """The pairwise quality of a run, ready before ``evaluate``: the source's name (``"norm"``, ``"detector"`` or
    the CSV's file name), its description and the rule that made the pairwise quality."""

    source: str
    source_detail: dict[str, Any]
    how: str
    pair_quality: np.ndarray


def _require_pairs(protocol: Protocol, how: str) -> None:
    """``ValueError`` naming the protocol when it has no 1:1 pairs (or ``how`` is unknown); cheap: no image read."""
    if protocol.pair_qualities(np.ones(len(protocol.images)), how=how) is None:
        raise ValueError(f"{protocol.name or type(protocol).__name__} has no verification pairs: EDC needs 1:1 pairs")


def check_source(protocol: Protocol, source: str, *, how: str = "min") -> None:
    """Fail before any extraction when ``source`` cannot give an EDC on ``protocol``: no 1:1 pairs, an unknown
    ``how``, no detector score, or a CSV file that does not match the image keys (``"norm"`` needs the features:
    it is checked by :func:`plan_quality`)."""
    _require_pairs(protocol, how)
    if source != "norm":
        image_quality(protocol, source, None)


def plan_quality(protocol: Protocol, source: str, norms: np.ndarray | None, *, how: str = "min",
                 skipped: np.ndarray | None = None) -> QualityPlan:
    """Image qualities of ``source`` mapped to the protocol's verification pairs (``skipped``: images the
    extractor could not embed, whose pairs the protocol drops). Run before ``evaluate`` so a bad source fails
    before the evaluation; ``ValueError`` when the protocol has no 1:1 pairs."""
    _require_pairs(protocol, how)
    q, detail = image_quality(protocol, source, norms)
    pq = protocol.pair_qualities(q, how=how, skipped=skipped)
    label = detail["file"] if detail["kind"] == "file" else source
    return QualityPlan(label, detail, how, np.asarray(pq, dtype=np.float64))


def downsample_steps(fractions: np.ndarray, limit: float, max_points: int = MAX_CURVE_POINTS) -> np.ndarray:
    """Indices of the points of a step curve to keep (all when there are at most ``max_points``).

    Kept points keep their exact values (the curve is sampled, never averaged). Always kept: the first point
    (fraction 0), the last, and the two points around ``limit`` (the last at or below it and the next), so the
    pAUC's range is bounded by exact points; half of the budget goes evenly (by index) to ``[0, limit]``, half to
    the rest."""
    n = len(fractions)
    if n <= max_points:
        return np.arange(n)
    j = int(np.searchsorted(fractions, limit, side="right")) - 1  # last point at or below the limit
    fixed = np.array([0, n - 1, max(j, 0), min(j + 1, n - 1)])
    budget = max(max_points - fixed.size, 2)
    head = np.linspace(0, min(j + 1, n - 1), budget // 2).round().astype(np.int64)
    tail = np.linspace(min(j + 1, n - 1), n - 1, budget - budget // 2).round().astype(np.int64)
    return np.unique(np.concatenate([fixed, head, tail]))


def _curve(res: Any) -> dict[str, Any]:
    keep = downsample_steps(np.asarray(res.discard_fractions), res.discard_limit)
    return {
        "starting_error": float(res.starting_error), "threshold": float(res.threshold),
        "discard_limit": float(res.discard_limit), "pauc": float(res.pauc), "pauc_best": float(res.pauc_best),
        "pauc_relative": float(res.pauc_relative),
        "discard_fractions": np.asarray(res.discard_fractions)[keep],
        "errors": np.asarray(res.errors)[keep], "best_errors": np.asarray(res.best_errors)[keep],
        "downsampled_from": int(len(res.discard_fractions)),
    }


def attach_edc(result: ProtocolResult, plan: QualityPlan) -> None:
    """Add the ISO FNM-EDC and FM-EDC of ``plan`` over ``result.scores.pairs`` to ``result`` (see the module
    docstring). The pairwise qualities must be one per entry of ``result.scores.pairs``, in its order."""
    pairs = result.scores.pairs if result.scores is not None else None
    if pairs is None:
        raise ValueError(f"{result.protocol} has no verification pairs: EDC needs 1:1 pairs")
    if len(plan.pair_quality) != len(pairs.scores):
        raise ProtocolError(f"{result.protocol}: {len(plan.pair_quality)} pairwise qualities for "
                            f"{len(pairs.scores)} scored pairs")
    out: dict[str, Any] = {"source": plan.source, "source_detail": plan.source_detail,
                           "pair_quality": plan.how, "convention": "iso", "discard_over": "class"}
    for error, start in EDC_CURVES.items():
        res = edc(pairs.labels, pairs.scores, plan.pair_quality, error=error, starting_error=start,
                  convention="iso", relative_to_best=True, discard_over="class")
        result.metrics[f"edc_{error}_pauc"] = float(res.pauc)
        out[error] = _curve(res)
    result.details["edc"] = out
