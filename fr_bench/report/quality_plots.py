"""Error-versus-Discard Characteristic (EDC) figures of stored results: several models or quality sources at once.

Reads what ``frbench evaluate --quality`` stores (``details["edc"]``; see :mod:`fr_bench.metrics.quality` for the
curve itself): per error kind (``"fnm"``, ``"fm"``) the realised ``discard_fractions``, the ``errors`` on what
remains, the theoretical-best ``best_errors``, the fixed ``threshold``, the ``starting_error`` and the
``discard_limit`` of the pAUC. Drawing only: nothing is recomputed here.

* Each curve is a *step* curve (``where="post"``): the error at a realised fraction holds until the next realised
  one, the same step interpolation the pAUC integrates.
* The theoretical best (error pairs discarded first) of each curve is drawn dashed in the same colour.
* A vertical dotted line marks each distinct discard limit (the right end of the pAUC).
* The legend names the model and the quality source, with the pAUC; the title the error kind, the starting error
  and the threshold convention (ISO: fixed once before discarding; MagFace: re-estimated after every discard).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from fr_bench.report.plots import legend_label, new_figure, save_figure
from fr_bench.results import StoredResult

__all__ = ["EDC_ERRORS", "EDCCurve", "edc_curves", "edc_figure", "plot_edc", "source_label"]

PathLike = str | os.PathLike[str]

#: Error kind -> (axis label, short name).
EDC_ERRORS = {"fnm": ("FNMR", "FNM-EDC"), "fm": ("FMR", "FM-EDC")}


@dataclass(frozen=True)
class EDCCurve:
    """One stored EDC curve ready to draw: ``label`` (model and quality source), the step data, its settings."""

    label: str
    fractions: np.ndarray
    errors: np.ndarray
    best_errors: np.ndarray | None
    threshold: Any
    starting_error: float
    discard_limit: float
    pauc: float
    convention: str
    source: str


def _where(rec: StoredResult) -> str:
    return f"{rec.model_name} on {rec.protocol_name}" + (f" ({rec.source})" if rec.source else "")


def _array(curve: Mapping[str, Any], key: str, where: str) -> np.ndarray:
    try:
        arr = np.asarray(curve[key], dtype=float)  # JSON null (NaN error where no pair of the class remains) -> nan
    except KeyError:
        raise ValueError(f"{where}: details['edc'] curve lacks {key!r}") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: details['edc'] curve {key!r} is not a list of numbers ({exc})") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{where}: details['edc'] curve {key!r} must be a non-empty list of numbers")
    return arr


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def source_label(edc: Mapping[str, Any]) -> str:
    """The quality source of a stored ``details["edc"]`` as a reader sees it (``norm``, ``file:q.csv``, ...)."""
    return str(edc.get("source") or "source not recorded")


def edc_curves(records: Sequence[StoredResult], error: str = "fnm") -> list[EDCCurve]:
    """The ``error`` (``"fnm"`` or ``"fm"``) EDC curve of each record, in the given order.

    Raises ``ValueError`` naming every record without ``details["edc"]`` (or without that error kind) at once, and
    naming the record and key of a malformed curve (lists of different lengths, fractions not ascending from 0).
    """
    if error not in EDC_ERRORS:
        raise ValueError(f"unknown EDC error kind {error!r}; choose one of {sorted(EDC_ERRORS)}")
    missing = [_where(r) for r in records
               if not isinstance(r.result.details.get("edc"), Mapping)
               or not isinstance(r.result.details["edc"].get(error), Mapping)]
    if missing:
        raise ValueError(f"no stored {EDC_ERRORS[error][1]} (details['edc'][{error!r}]) in: {'; '.join(missing)}; "
                         "evaluate with --quality norm|detector|FILE to store one")
    out = []
    for rec in records:
        edc = rec.result.details["edc"]
        curve = edc[error]
        where = _where(rec)
        fractions, errors = _array(curve, "discard_fractions", where), _array(curve, "errors", where)
        best = _array(curve, "best_errors", where) if curve.get("best_errors") is not None else None
        for name, arr in (("errors", errors), ("best_errors", best)):
            if arr is not None and arr.shape != fractions.shape:
                raise ValueError(f"{where}: details['edc'][{error!r}] {name} has {arr.size} values but "
                                 f"discard_fractions has {fractions.size}")
        if fractions[0] != 0 or (np.diff(fractions) <= 0).any():
            raise ValueError(f"{where}: details['edc'][{error!r}] discard_fractions must start at 0 and ascend")
        source = source_label(edc)
        out.append(EDCCurve(
            label=f"{rec.model_name}, quality: {source}", fractions=fractions, errors=errors, best_errors=best,
            threshold=curve.get("threshold"), starting_error=_number(curve.get("starting_error")),
            discard_limit=_number(curve.get("discard_limit")), pauc=_number(curve.get("pauc")),
            convention=str(edc.get("convention") or curve.get("convention") or "iso"), source=source))
    return out


def _title(curves: Sequence[EDCCurve], error: str, display: str) -> str:
    rate, name = EDC_ERRORS[error]
    starts = {c.starting_error for c in curves}
    start = (f"starting {rate} = {next(iter(starts)):g}" if len(starts) == 1
             else f"starting {rate} differs per curve (see legend)")
    conventions = {c.convention for c in curves}
    if conventions == {"iso"}:
        rule = "threshold fixed once before discarding (ISO/IEC 29794-1)"
    elif conventions == {"magface"}:
        rule = "threshold re-estimated after every discard (MagFace)"
    else:
        rule = "mixed threshold conventions: " + ", ".join(sorted(conventions)) + " (not comparable)"
    return f"{name}{' - ' + display if display else ''}\n{start}, {rule}"


def _legend(curve: EDCCurve, mixed_start: bool, rate: str) -> str:
    parts = [curve.label]
    if math.isfinite(curve.pauc):
        parts.append(f"pAUC {curve.pauc:.4f}")
    if isinstance(curve.threshold, (int, float)) and math.isfinite(float(curve.threshold)):
        parts.append(f"threshold {float(curve.threshold):.4f}")
    if mixed_start and math.isfinite(curve.starting_error):
        parts.append(f"starting {rate} {curve.starting_error:g}")
    return legend_label(", ".join(parts))


def edc_figure(records: Sequence[StoredResult], protocol: str | None = None, *, error: str = "fnm",
               title: str | None = None) -> Figure:
    """The EDC figure of ``records`` (before saving, so its lines can be inspected).

    ``protocol`` keeps only that protocol's results (several protocols without it: ``ValueError``). Each curve is
    one ``steps-post`` line with gid ``"edc:<i>"`` and its best curve one dashed line with gid ``"best:<i>"``; the
    discard limits are vertical lines with gid ``"limit"``.
    """
    if protocol is not None:
        records = [r for r in records if r.protocol_name == protocol]
    if not records:
        raise ValueError(f"no results to plot{' for protocol ' + repr(protocol) if protocol else ''}")
    protocols = {r.protocol_name for r in records}
    if len(protocols) > 1:
        raise ValueError(f"results of several protocols {sorted(protocols)}: pass protocol= to choose one")
    curves = edc_curves(records, error)
    rate = EDC_ERRORS[error][0]
    mixed_start = len({c.starting_error for c in curves}) > 1
    fig = new_figure(7.0, 4.8)
    ax = fig.add_subplot()
    top = 0.0
    for i, c in enumerate(curves):
        color = f"C{i % 10}"
        line, = ax.step(c.fractions, c.errors, where="post", color=color, lw=1.6, label=_legend(c, mixed_start, rate))
        line.set_gid(f"edc:{i}")
        if c.best_errors is not None:
            best, = ax.step(c.fractions, c.best_errors, where="post", color=color, lw=1.1, ls="--",
                            label=legend_label(f"{c.label}: theoretical best"))
            best.set_gid(f"best:{i}")
        finite = c.errors[np.isfinite(c.errors)]
        top = max(top, float(finite.max()) if finite.size else 0.0)
    for limit in sorted({c.discard_limit for c in curves if math.isfinite(c.discard_limit)}):
        ax.axvline(limit, color="0.3", ls=":", lw=1.2, gid="limit", label=f"discard limit {limit:g} (pAUC range)")
    ax.set_xlim(0.0, max(float(c.fractions[-1]) for c in curves) or 1.0)
    ax.set_ylim(0.0, top * 1.08 if top > 0 else 1.0)
    ax.set_xlabel(_discard_axis(records, error))
    ax.set_ylabel(rate)
    ax.set_title(title or _title(curves, error, records[0].display_name), fontsize="medium")
    ax.grid(True, alpha=0.35)
    ax.legend(loc="best", fontsize="small", framealpha=0.9)
    return fig


def _discard_axis(records: Sequence[StoredResult], error: str) -> str:
    """The x-axis label: what the discard fraction is a share of (ISO's class reading: the class whose error the
    curve shows; the "all" reading and the MagFace convention: every pair)."""
    overs = {str(r.result.details.get("edc", {}).get("discard_over", "all")) for r in records}
    if overs == {"class"}:
        return f"fraction of {'mated' if error == 'fnm' else 'non-mated'} pairs discarded"
    if overs == {"all"}:
        return "fraction of pairs discarded"
    return "fraction discarded (of the curve's class or of all pairs: see each result's discard_over)"


def plot_edc(records: Sequence[StoredResult], protocol: str | None, out_path: PathLike | Sequence[PathLike], *,
             error: str = "fnm", title: str | None = None) -> list[Path]:
    """Write :func:`edc_figure` to ``out_path`` (format by extension, atomically); returns the paths written."""
    return save_figure(edc_figure(records, protocol, error=error, title=title), out_path)
