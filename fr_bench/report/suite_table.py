"""The combined table ``frbench evaluate -p suite:NAME`` prints: one column group per protocol, one row per model.

Each group holds the protocol's headline columns, the published column conventions of the leaderboard
(:func:`fr_bench.report.leaderboard.headline_columns`: LFW accuracy in percent, IJB-C TAR at 1e-6/1e-5/1e-4 ...);
a cell reads ``99.82`` or, with intervals, ``99.82 [99.71, 99.90]`` (brackets: bootstrap intervals are not
symmetric). Under the table: each protocol's conventions and flags, and the members that were skipped, with why.
Numbers are formatted here, never computed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from fr_bench.metrics import names as metric_names
from fr_bench.report.leaderboard import headline_columns
from fr_bench.report.render import format_value

__all__ = ["group_columns", "suite_table"]


def _find(metrics: Mapping[str, Any], key: str) -> str | None:
    """``key`` in ``metrics``, or the key naming the same number (``tar@far=1e-4`` = ``tar@far=0.0001``)."""
    if key in metrics:
        return key
    return next((m for m in metrics if metric_names.same_metric(m, key)), None)


def _sub_label(label: str, group: str, metric: str) -> str:
    """A headline label without the part it shares with the group header (``IJB-C TAR@1e-4`` under ``IJB-C ...``
    reads ``TAR@1e-4``); the metric name when nothing is left (``LFW`` under ``LFW`` reads ``accuracy``)."""
    common = os.path.commonprefix([label.lower() + " ", group.lower() + " "])
    cut = common.rfind(" ") + 1 if common else 0
    rest = label[cut:].strip()
    return rest or metric


def group_columns(record: Any) -> list[tuple[str, str, float]]:
    """``(metric key, column label, scale)`` of one stored result's column group, in published order."""
    name, display = record.protocol_name, record.protocol.get("display_name", record.protocol_name)
    out = []
    for metric, label, scale in headline_columns(name, record.result.metrics, display):
        out.append((metric, _sub_label(label, display, metric), scale))
    return out


def _cell(record: Any, metric: str, scale: float) -> str:
    res = record.result
    key = _find(res.metrics, metric)
    if key is None:
        return "n/a"
    decimals = 2 if scale == 100.0 else 4
    return format_value(res.metrics[key], scale, res.intervals.get(key), decimals=decimals)


def suite_table(records: Mapping[str, Any], skipped: Mapping[str, str] | None = None, *,
                order: Sequence[str] | None = None, title: str = "") -> str:
    """The combined text table of one run.

    ``records`` maps protocol -> :class:`~fr_bench.results.StoredResult` (one model); ``skipped`` protocol ->
    reason; ``order`` the suite's protocol order (default: ``records`` then ``skipped``). Rates are in percent.
    """
    skipped = dict(skipped or {})
    order = list(order or [*records, *skipped])
    groups: list[tuple[str, list[tuple[str, str]]]] = []  # (header, [(sub label, cell)])
    for protocol in order:
        if protocol in records:
            rec = records[protocol]
            cols = [(sub, _cell(rec, metric, scale)) for metric, sub, scale in group_columns(rec)]
            groups.append((rec.protocol.get("display_name", protocol), cols))
        elif protocol in skipped:
            groups.append((protocol, [("", "skipped")]))
    model = next((r.model.get("name", "") for r in records.values()), "")
    lines = [title] if title else []
    lines += _grid(model, groups)
    lines += _notes(records, skipped, order)
    return "\n".join(lines)


def _grid(model: str, groups: list[tuple[str, list[tuple[str, str]]]]) -> list[str]:
    """Three text lines: group headers spanning their columns, column labels, the model's cells."""
    first = max(len("model"), len(model))
    head, sub, row = ["".ljust(first)], ["model".ljust(first)], [model.ljust(first)]
    for header, cols in groups:
        widths = [max(len(label), len(cell)) for label, cell in cols]
        span = sum(widths) + 2 * (len(widths) - 1)
        if len(header) > span:  # widen the last column so the header fits
            widths[-1] += len(header) - span
            span = len(header)
        head.append(header.ljust(span))
        sub.append("  ".join(label.rjust(w) for (label, _), w in zip(cols, widths)))
        row.append("  ".join(cell.rjust(w) for (_, cell), w in zip(cols, widths)))
    sep = " | "
    return [sep.join(head).rstrip(), sep.join(sub).rstrip(), sep.join(row).rstrip()]


def _notes(records: Mapping[str, Any], skipped: Mapping[str, str], order: Sequence[str]) -> list[str]:
    """Per protocol: its conventions (and rate unit), its flags; then the skipped members and why."""
    lines = ["  rates in percent" + (", intervals in brackets" if any(r.result.intervals for r in records.values())
                                    else "")]
    for protocol in order:
        if protocol not in records:
            continue
        rec = records[protocol]
        conv = "; ".join(f"{g} = {c}" for g, c in rec.result.conventions.items())
        ext = rec.extraction
        where = "from the cache" if ext.get("from_cache") else f"{ext.get('images', '?')} images"
        lines.append(f"  {protocol}: {conv or 'default conventions'} ({where})")
        lines += [f"    ! {flag}" for flag in rec.result.flags]
        if rec.source is not None:
            lines.append(f"    written: {rec.source}")
    lines += [f"  skipped {protocol}: {skipped[protocol]}" for protocol in order if protocol in skipped]
    return lines
