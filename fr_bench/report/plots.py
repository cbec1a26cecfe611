"""ROC, DET and score-distribution figures (matplotlib, Agg, no pyplot: nothing is ever shown on screen).

* :func:`plot_roc` -- TAR against FAR on a log FAR axis (ticks ``10^-6 ... 10^0``), TAR in percent. Where a result
  has a confidence interval for a ``tar@far=...`` number, it is drawn as an error bar at the FAR actually realised
  (the operating point), so the reader sees the uncertainty where the published numbers are read.
* :func:`plot_det` -- the DET curve, FNMR (= 1 - TAR) against FMR (= FAR), both on *normal-deviate* (probit) axes,
  ``scipy.stats.norm.ppf``: the ISO/IEC 19795-1 / NIST convention, under which the curves of roughly Gaussian
  score distributions are straight lines. Ticks are labelled with the rates themselves (``1e-5``, ``0.01``, ``0.2``).
  Points with a rate of exactly 0 or 1 have no probit value and are left out.
* :func:`plot_distribution` -- genuine and impostor score histograms as densities (each integrates to 1), the
  overlap region (``min`` of the two densities, whose area is the overlap coefficient) shaded and hatched, d' and the
  overlap in the title.

The output format follows each path's extension (``.png``, ``.pdf``, ``.svg``); a list of paths writes several.
Every file is written atomically (:func:`save_figure`). Functions return the paths written.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter, PercentFormatter
from scipy.stats import norm

from fr_bench.metrics import names as metric_names
from fr_bench.results import StoredResult, atomic_write_bytes

__all__ = ["draw_distribution", "new_figure", "plot_det", "plot_distribution", "plot_roc", "save_figure"]

PathLike = str | os.PathLike[str]
#: A curve: ``(far, tar)`` arrays of one model.
Curve = tuple[Sequence[float], Sequence[float]]
#: Error bars of one model: ``(far, tar, low, high)`` tuples (fractions).
Bands = Mapping[str, Sequence[tuple[float, float, float, float]]]



def _tar_target(key: str) -> float | None:
    """The FAR target of a ``tar@far=<f>`` name (no prefix), else ``None``."""
    parsed = metric_names.parse(key)
    return float(parsed.param) if parsed is not None and not parsed.prefix and parsed.kind == "tar@far" else None


def new_figure(width: float = 6.4, height: float = 4.8) -> Figure:
    """A figure bound to the Agg canvas (no pyplot, no global state, no window)."""
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def legend_label(name: str) -> str:
    """``name`` as a legend entry that is always shown: matplotlib hides labels starting with ``_``."""
    name = str(name)
    return " " + name if name.startswith("_") else name


def literal_texts(fig: Figure) -> None:
    """Show titles, axis labels, legend entries and annotations as typed: no mathtext, no LaTeX.

    They carry model and protocol names, which come from users: ``$\\alpha$`` in a name must not be typeset (nor a
    malformed ``$\\frac$`` stop the render), whatever ``text.usetex`` says. Tick labels keep their formatters.
    """
    texts = list(fig.texts)  # figure-level texts, the suptitle among them
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        legend = ax.get_legend()
        if legend is not None:
            texts += [*legend.get_texts(), legend.get_title()]
    for text in texts:
        text.set_parse_math(False)
        text.set_usetex(False)


def save_figure(fig: Figure, out_path: PathLike | Sequence[PathLike], dpi: int = 150) -> list[Path]:
    """Write ``fig`` to each path (format from the extension), atomically; returns the paths written.

    The image is rendered into memory first, then written via a temporary file and ``os.replace``, so a failed
    render never leaves a truncated file behind. Names in the texts are shown literally (:func:`literal_texts`).
    """
    literal_texts(fig)
    paths = [Path(out_path)] if isinstance(out_path, (str, os.PathLike)) else [Path(p) for p in out_path]
    supported = fig.canvas.get_supported_filetypes()
    written = []
    for path in paths:
        fmt = path.suffix.lower().lstrip(".")
        if fmt not in supported:
            raise ValueError(f"{path}: unsupported figure format {fmt!r}; use one of {sorted(supported)}")
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=dpi)
        written.append(atomic_write_bytes(path, buf.getvalue()))
    return written


# --------------------------------------------------------------------------------------------------------------------
# Inputs: mappings of curves, or stored results
# --------------------------------------------------------------------------------------------------------------------


def _interval_scale(interval: Mapping[str, Any]) -> float:
    return 0.01 if str(interval.get("unit", "")).lower() in ("%", "percent") else 1.0


def _roc_arrays(roc: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """``(far, tar)`` of a stored ROC, keyed ``far``/``tar`` or ``fpr``/``tpr``; None if neither."""
    if not isinstance(roc, Mapping):
        return None
    for x, y in (("far", "tar"), ("fpr", "tpr")):
        if x in roc and y in roc:
            return np.asarray(roc[x], dtype=float), np.asarray(roc[y], dtype=float)
    return None


def _bands_from_record(rec: StoredResult, prefix: str = "") -> list[tuple[float, float, float, float]]:
    """Error bars at each ``<prefix>tar@far=...`` with an interval, at the realised FAR of its operating point."""
    out = []
    res = rec.result
    for key, interval in res.intervals.items():
        if not key.startswith(prefix):
            continue
        target = _tar_target(key[len(prefix):])
        if target is None or key not in res.metrics or not isinstance(interval, Mapping):
            continue
        point = res.operating_points.get(key, {})
        far = point.get("far", target) if isinstance(point, Mapping) else target
        k = _interval_scale(interval)
        vals = [far, res.metrics[key], interval.get("low"), interval.get("high")]
        try:
            far, tar, low, high = (float(v) for v in vals)
        except (TypeError, ValueError):
            continue
        if all(math.isfinite(v) for v in (far, tar, low, high)) and far > 0:
            out.append((far, tar, low * k, high * k))
    return sorted(out)


def _collect(curves: Mapping[str, Curve] | Sequence[StoredResult], protocol: str | None,
             bands: Bands | None, roc_key: str = "roc"
             ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, list], str]:
    """``(label -> (far, tar)), (label -> bands), protocol display name`` from either kind of input."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    out_bands: dict[str, list] = {k: list(v) for k, v in (bands or {}).items()}
    display = protocol or ""
    if isinstance(curves, Mapping):
        for label, (far, tar) in curves.items():
            out[str(label)] = (np.asarray(far, dtype=float), np.asarray(tar, dtype=float))
    else:
        records = [r for r in curves if protocol is None or r.protocol_name == protocol]
        names = {r.protocol_name for r in records}
        if len(names) > 1:
            raise ValueError(f"results of several protocols {sorted(names)}: pass protocol= to choose one")
        for rec in records:
            arrays = _roc_arrays(rec.result.details.get(roc_key))
            if arrays is None:
                warnings.warn(f"{rec.model_name} on {rec.protocol_name}: no details[{roc_key!r}] with far/tar (or "
                              "fpr/tpr) stored; not plotted", stacklevel=3)
                continue
            out[rec.model_name] = arrays
            if bands is None:
                out_bands[rec.model_name] = _bands_from_record(rec, roc_key[:-3] if roc_key.endswith("roc") else "")
            display = rec.display_name
    for label, (far, tar) in out.items():
        if far.shape != tar.shape or far.ndim != 1:
            raise ValueError(f"curve {label!r}: far and tar must be 1-D arrays of one length")
    if not out:
        raise ValueError(f"nothing to plot: no curve given (or no stored result has details[{roc_key!r}])")
    return out, out_bands, display


# --------------------------------------------------------------------------------------------------------------------
# ROC
# --------------------------------------------------------------------------------------------------------------------


def plot_roc(
    curves: Mapping[str, Curve] | Sequence[StoredResult],
    protocol: str | None,
    out_path: PathLike | Sequence[PathLike],
    log_far: bool = True,
    bands: Bands | None = None,
    *,
    title: str | None = None,
    far_min: float | None = None,
    roc_key: str = "roc",
) -> list[Path]:
    """ROC curves (TAR vs FAR) of several models on one protocol.

    ``curves``: ``{label: (far, tar)}`` (fractions), or stored results (their ``details["roc"]``; with ``protocol``
    choosing among several protocols; their ``tar@far`` intervals become error bars unless ``bands`` is given).
    ``bands``: ``{label: [(far, tar, low, high), ...]}`` error bars. ``log_far``: log FAR axis (FAR = 0 points are
    not drawable there and are left out). ``far_min``: left end of the FAR axis (default: the smallest positive FAR,
    rounded down to a power of ten). ``roc_key``: which stored curve (``"roc"``, or ``"Q1/roc"`` for a K-FACE list;
    its ``far``/``tar`` or ``fpr``/``tpr`` arrays; error bars then come from ``Q1/tar@far=...``). Returns the
    written paths.
    """
    data, all_bands, display = _collect(curves, protocol, bands, roc_key)
    fig = new_figure()
    ax = fig.add_subplot()
    positive = [far[far > 0].min() for far, _ in data.values() if (far > 0).any()]
    low_far = far_min if far_min is not None else (10 ** math.floor(math.log10(min(positive))) if positive else 1e-6)
    visible_tar = []
    for i, (label, (far, tar)) in enumerate(data.items()):
        color = f"C{i}"
        keep = far > 0 if log_far else np.ones_like(far, dtype=bool)
        ax.plot(far[keep], tar[keep], color=color, lw=1.6, label=legend_label(label))
        visible_tar.append(tar[keep & (far >= low_far)] if log_far else tar)
        pts = all_bands.get(label) or []
        if pts:
            f, t, lo, hi = (np.asarray(v, dtype=float) for v in zip(*pts))
            ax.errorbar(f, t, yerr=[np.clip(t - lo, 0, None), np.clip(hi - t, 0, None)], fmt="o", ms=3.5,
                        color=color, capsize=3, lw=1.0, label=legend_label(f"{label}: {_ci_label(curves, label)}"))
    if log_far:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, numticks=12))
        ax.xaxis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10), numticks=12))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlim(low_far, 1.0)
    else:
        ax.set_xlim(0.0, 1.0)
    tars = np.concatenate(visible_tar) if visible_tar else np.array([0.0])
    bottom = float(np.nanmin(tars)) if tars.size else 0.0
    y_low = max(0.0, bottom - 0.05 * (1.0 - bottom) - 0.005)
    ax.set_ylim(y_low, 1.0 + 0.01 * (1.0 - bottom) + 0.002)
    # whole percents when the axis spans more than a few points, else one decimal (no "98.0%")
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0 if 1.0 - y_low > 0.04 else 1))
    ax.grid(True, which="major", alpha=0.45)
    ax.grid(True, which="minor", axis="x", alpha=0.12)
    ax.set_xlabel("False accept rate (FAR)" + (", log scale" if log_far else ""))
    ax.set_ylabel("True accept rate (TAR)")
    ax.set_title(title or f"ROC{' - ' + display if display else ''}")
    ax.legend(loc="lower right", fontsize="small", framealpha=0.9)
    return save_figure(fig, out_path)


def _ci_label(curves: Any, label: str) -> str:
    """Legend text of the error bars (the interval level when stored results say it)."""
    if not isinstance(curves, Mapping):
        for rec in curves:
            if rec.model_name == label:
                for key, interval in rec.result.intervals.items():
                    if _tar_target(key) is not None and isinstance(interval, Mapping) and interval.get("level"):
                        return f"{float(interval['level']) * 100:g}% CI at reported FARs"
    return "CI at reported FARs"


# --------------------------------------------------------------------------------------------------------------------
# DET
# --------------------------------------------------------------------------------------------------------------------

_DET_TICKS = [1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99]


def _rate_label(v: float) -> str:
    """``1e-6`` for powers of ten below 0.01, plain decimals above (``0.05``, ``0.2``)."""
    if v < 0.01:
        exp = math.floor(math.log10(v) + 1e-9)
        mant = v / 10 ** exp
        return f"1e{exp}" if abs(mant - 1) < 1e-6 else f"{mant:g}e{exp}"
    return f"{v:g}"


def plot_det(
    curves: Mapping[str, Curve] | Sequence[StoredResult],
    protocol: str | None,
    out_path: PathLike | Sequence[PathLike],
    bands: Bands | None = None,
    *,
    title: str | None = None,
    roc_key: str = "roc",
) -> list[Path]:
    """DET curves: FNMR (1 - TAR) vs FMR (FAR) on normal-deviate axes (``norm.ppf``), one line per model.

    Inputs as :func:`plot_roc`; error bars (``bands``, or the stored ``tar@far`` intervals) are drawn on FNMR.
    Points with FMR or FNMR of 0 or 1 are not drawable on probit axes and are left out. Returns the written paths.
    """
    data, all_bands, display = _collect(curves, protocol, bands, roc_key)
    fig = new_figure()
    ax = fig.add_subplot()
    xs, ys = [], []
    for i, (label, (far, tar)) in enumerate(data.items()):
        fnmr = 1.0 - tar
        keep = (far > 0) & (far < 1) & (fnmr > 0) & (fnmr < 1)
        if not keep.any():
            warnings.warn(f"DET: curve {label!r} has no point with 0 < FMR, FNMR < 1; not drawn", stacklevel=2)
            continue
        x, y = norm.ppf(far[keep]), norm.ppf(fnmr[keep])
        xs.append(x)
        ys.append(y)
        ax.plot(x, y, color=f"C{i}", lw=1.6, label=legend_label(label))
        pts = [p for p in all_bands.get(label) or [] if 0 < p[0] < 1 and 0 < 1 - p[3] and 1 - p[2] < 1]
        if pts:
            f, t, lo, hi = (np.asarray(v, dtype=float) for v in zip(*pts))
            yc, ylo, yhi = norm.ppf(1 - t), norm.ppf(1 - hi), norm.ppf(1 - lo)
            ax.errorbar(norm.ppf(f), yc, yerr=[np.clip(yc - ylo, 0, None), np.clip(yhi - yc, 0, None)], fmt="o",
                        ms=3.5, color=f"C{i}", capsize=3, lw=1.0)
    if not xs:  # e.g. perfectly separated scores: FNMR = 0 wherever FMR > 0
        ax.text(0.5, 0.5, "no point with 0 < FMR < 1 and 0 < FNMR < 1:\nnothing to draw on normal-deviate axes",
                transform=ax.transAxes, ha="center", va="center")
        xs, ys = [norm.ppf(np.array([1e-4, 0.5]))], [norm.ppf(np.array([1e-4, 0.5]))]
    x_all, y_all = np.concatenate(xs), np.concatenate(ys)
    for axis, values, setter in ((ax.xaxis, x_all, ax.set_xlim), (ax.yaxis, y_all, ax.set_ylim)):
        lo = math.floor(math.log10(norm.cdf(values.min())))  # down to a power of ten
        lo_z = norm.ppf(10.0 ** lo)
        hi_z = min(norm.ppf(0.99), max(values.max(), norm.ppf(0.05)) + 0.25)
        setter(lo_z, hi_z)
        ticks = [t for t in _DET_TICKS if lo_z - 1e-9 <= norm.ppf(t) <= hi_z + 1e-9]
        axis.set_major_locator(FixedLocator(norm.ppf(ticks)))
        axis.set_major_formatter(FuncFormatter(lambda z, _pos: _rate_label(float(norm.cdf(z)))))
    ax.grid(True, alpha=0.45)
    ax.set_xlabel("False match rate (FMR), normal-deviate scale")
    ax.set_ylabel("False non-match rate (FNMR), normal-deviate scale")
    ax.set_title(title or f"DET{' - ' + display if display else ''}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize="small", framealpha=0.9)
    return save_figure(fig, out_path)


# --------------------------------------------------------------------------------------------------------------------
# Score distributions
# --------------------------------------------------------------------------------------------------------------------


def _densities(dist: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    edges = np.asarray(dist["bin_edges"], dtype=float)
    gen = np.asarray(dist["genuine_counts"], dtype=float)
    imp = np.asarray(dist["impostor_counts"], dtype=float)
    if edges.ndim != 1 or gen.shape != imp.shape or gen.shape != (edges.size - 1,):
        raise ValueError(f"distribution: expected bin_edges of n+1 and counts of n values, got {edges.size}, "
                         f"{gen.size}, {imp.size}")
    widths = np.diff(edges)
    if (widths <= 0).any():
        raise ValueError("distribution: bin_edges must be strictly increasing")
    if gen.sum() <= 0 or imp.sum() <= 0:
        raise ValueError("distribution: genuine and impostor counts must both be non-empty")
    return edges, gen / (gen.sum() * widths), imp / (imp.sum() * widths)


def _percent(x: float) -> str:
    if x == 0:
        return "0%"
    return f"{x * 100:.3g}%" if x >= 1e-4 else f"{x * 100:.2e}%"


def plot_distribution(
    dist: Mapping[str, Any] | StoredResult | Any,
    out_path: PathLike | Sequence[PathLike],
    title: str | None = None,
    *,
    xlabel: str = "similarity score",
    log_density: bool = False,
    key: str = "distribution",
) -> list[Path]:
    """Genuine and impostor score densities with their overlap shaded.

    ``dist``: a ``DistributionOverlap.to_dict()`` mapping (``bin_edges``, ``genuine_counts``, ``impostor_counts``,
    and ``dprime``, ``overlap`` when known), an object with ``to_dict()``, or a :class:`StoredResult` (its
    ``details[key]``, e.g. ``"Q1/distribution"``). Densities: counts / (total * bin width). The shaded region is
    ``min(genuine density, impostor density)``; its area, sum(min(g_i/G, m_i/M)), is the overlap coefficient. The
    title shows d' and the overlap (the stored value when given, else that area). ``log_density`` puts the density
    axis on a log scale (useful when the overlap is tiny). Returns the written paths.
    """
    if isinstance(dist, StoredResult):
        title = title or f"{dist.model_name} - {dist.display_name}"
    fig = new_figure(6.4, 4.2)
    draw_distribution(fig.add_subplot(), dist, title, xlabel=xlabel, log_density=log_density, key=key)
    return save_figure(fig, out_path)


def draw_distribution(
    ax: Any,
    dist: Mapping[str, Any] | StoredResult | Any,
    title: str | None = None,
    *,
    xlabel: str = "similarity score",
    log_density: bool = False,
    key: str = "distribution",
) -> dict[str, Any]:
    """Draw :func:`plot_distribution`'s content on ``ax``; returns its artists (``"overlap"``: the shaded
    ``StepPatch``; ``"genuine"``, ``"impostor"``: the outlines) and ``"overlap_area"`` = sum(min density * width)."""
    if isinstance(dist, StoredResult):
        stored = dist.result.details.get(key)
        if not isinstance(stored, Mapping):
            raise ValueError(f"{dist.model_name} on {dist.protocol_name}: no details[{key!r}] stored")
        dist = stored
    elif not isinstance(dist, Mapping) and hasattr(dist, "to_dict"):
        dist = dist.to_dict()
    edges, g, m = _densities(dist)
    overlap_area = float(np.sum(np.minimum(g, m) * np.diff(edges)))
    overlap = dist.get("overlap")
    overlap = overlap_area if overlap is None or not math.isfinite(float(overlap)) else float(overlap)
    dprime = dist.get("dprime")

    n_gen, n_imp = int(np.sum(dist["genuine_counts"])), int(np.sum(dist["impostor_counts"]))
    ax.stairs(m, edges, fill=True, color="C3", alpha=0.25, lw=0)
    imp_line = ax.stairs(m, edges, color="C3", lw=1.2, label=f"impostor (n={n_imp:,})")
    ax.stairs(g, edges, fill=True, color="C0", alpha=0.25, lw=0)
    gen_line = ax.stairs(g, edges, color="C0", lw=1.2, label=f"genuine (n={n_gen:,})")
    shade = ax.stairs(np.minimum(g, m), edges, fill=True, facecolor="0.35", edgecolor="0.15", alpha=0.55,
                      hatch="////", lw=0.6, label=f"overlap = {_percent(overlap)}")
    shade.set_gid("overlap")
    if log_density:
        ax.set_yscale("log")
        positive = np.concatenate([g[g > 0], m[m > 0]])
        ax.set_ylim(positive.min() / 2, positive.max() * 2)
    else:
        ax.set_ylim(0, max(g.max(), m.max()) * 1.08)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density" + (" (log scale)" if log_density else ""))
    stats = []
    if dprime is not None and math.isfinite(float(dprime)):
        stats.append(f"d′ = {float(dprime):.2f}")
    stats.append(f"overlap = {_percent(overlap)}")
    ax.set_title((title + "\n" if title else "") + ", ".join(stats), fontsize="medium")
    ax.legend(loc="best", fontsize="small", framealpha=0.9)
    ax.grid(True, alpha=0.3)
    return {"overlap": shade, "genuine": gen_line, "impostor": imp_line, "overlap_area": overlap_area}
