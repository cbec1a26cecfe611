"""The leaderboard's honesty footnotes: which results may be ranked together, and the markers saying why not.

* data groups (``†A``, ``†B``: different ``combined`` data hashes) and convention groups (``§A``, ``§B``: different
  ``result.conventions``) per protocol (:func:`protocol_notes`);
* EDC-setting groups of an EDC pAUC column (``§a``, ``§b``: different quality source, pair-quality rule, EDC
  convention, starting error or discard limit, read from ``details["edc"]``; :func:`edc_notes`);
* the interval-level legend (:func:`level_text`).

Each function appends its footnotes to the list it is given and returns ``{model: marker}``. Formatting only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from fr_bench.report.render import as_number
from fr_bench.results import StoredResult

__all__ = ["EDC_KINDS", "edc_notes", "letters", "level_text", "protocol_notes"]

#: EDC error kind -> (the rate it counts, the curve's name); the column reads ``edc_<kind>_pauc``.
EDC_KINDS = {"fnm": ("FNMR", "FNM-EDC"), "fm": ("FMR", "FM-EDC")}


def letters(n: int) -> list[str]:
    """Group letters A, B, ..., Z, Z1, Z2, ..."""
    return [chr(ord("A") + i) if i < 26 else f"Z{i - 25}" for i in range(n)]


def _short(h: str | None) -> str:
    return f"data {h[:12]}" if h else "data hash not recorded"


def _edc_settings(rec: StoredResult, kind: str) -> tuple[tuple[str, str], ...]:
    """What makes two EDC pAUCs comparable: quality source (a file by its sha256), pair-quality rule, convention,
    what the discard fraction is a share of (``discard_over``), starting error, discard limit."""
    edc = rec.result.details.get("edc")
    if not isinstance(edc, Mapping):
        return ()
    curve = edc.get(kind) if isinstance(edc.get(kind), Mapping) else {}
    detail = edc.get("source_detail")
    if isinstance(detail, Mapping):  # a quality file: its content (sha256) identifies it, not where it was read
        detail = f"sha256 {str(detail['sha256'])[:12]}" if detail.get("sha256") else None
    items = [("quality", edc.get("source")), ("quality file", detail),
             ("pair quality", edc.get("pair_quality")), ("convention", edc.get("convention")),
             ("discard over", edc.get("discard_over")),
             (f"starting {EDC_KINDS[kind][0]}", curve.get("starting_error")),
             ("discard limit", curve.get("discard_limit"))]
    return tuple((k, f"{v:g}" if isinstance(v, (int, float)) else str(v)) for k, v in items if v not in (None, ""))


def edc_notes(label: str, kind: str, metric: str, per_model: Mapping[str, StoredResult],
              footnotes: list[str]) -> dict[str, str]:
    """Markers ``§a``, ``§b``, ... per model of an EDC column whose settings differ; appends the column's footnote
    (its settings, or the groups; and that lower is better)."""
    with_value = {m: r for m, r in per_model.items() if metric in r.result.metrics}
    sigs = sorted({_edc_settings(r, kind) for r in with_value.values()})
    legend = (f"pAUC = area under the step {EDC_KINDS[kind][1]} curve up to the discard limit "
              f"({EDC_KINDS[kind][0]} x fraction discarded, unscaled); lower is better")

    def describe(sig: tuple[tuple[str, str], ...]) -> str:
        return ", ".join(f"{k} = {v}" for k, v in sig) or "EDC settings not recorded"

    if len(sigs) <= 1:
        footnotes.append(f"{label}: {describe(sigs[0] if sigs else ())}; {legend}")
        return {}
    letter = dict(zip(sigs, (s.lower() for s in letters(len(sigs)))))
    marks, parts = {}, []
    for sig in sigs:
        members = sorted(m for m, r in with_value.items() if _edc_settings(r, kind) == sig)
        parts.append(f"§{letter[sig]} = {describe(sig)} ({', '.join(members)})")
        marks.update({m: f"§{letter[sig]}" for m in members})
    footnotes.append(f"{label}: different quality sources or EDC settings; not comparable across groups, not "
                     f"ranked: {'; '.join(parts)}; {legend}")
    return marks


def level_text(interval: Mapping[str, Any]) -> str:
    level = as_number(interval.get("level"))
    text = f"{level * 100:g}% confidence interval" if not math.isnan(level) else "confidence interval"
    n_boot = interval.get("n_boot")
    return text + (f" (bootstrap, {n_boot} resamples)" if n_boot else "")


def protocol_notes(proto: str, per_model: Mapping[str, StoredResult], footnotes: list[str]
                    ) -> tuple[dict[str, str], dict[str, str]]:
    """Markers per model for data groups and convention groups of one protocol; appends their footnotes."""
    display = next(iter(per_model.values())).display_name
    data_marks: dict[str, str] = {}
    conv_marks: dict[str, str] = {}

    hashes = sorted({r.data_hash or "" for r in per_model.values()})
    if len(hashes) > 1:
        letter = dict(zip(hashes, letters(len(hashes))))
        parts = []
        for h in hashes:
            members = sorted(m for m, r in per_model.items() if (r.data_hash or "") == h)
            release = next((per_model[m].data_release for m in members if per_model[m].data_release), None)
            desc = _short(h or None) + (f", release {release!r}" if release else "")
            parts.append(f"†{letter[h]} = {desc} ({', '.join(members)})")
            for m in members:
                data_marks[m] = f"†{letter[h]}"
        footnotes.append(f"{display}: results computed on different data; not comparable across groups, "
                         f"not ranked: " + "; ".join(parts))

    def signature(rec: StoredResult) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((str(k), str(v)) for k, v in rec.conventions.items()))

    sigs = sorted({signature(r) for r in per_model.values()})
    if len(sigs) > 1:
        letter = dict(zip(sigs, letters(len(sigs))))
        parts = []
        for sig in sigs:
            members = sorted(m for m, r in per_model.items() if signature(r) == sig)
            desc = ", ".join(f"{k} = {v}" for k, v in sig) or "conventions not recorded"
            parts.append(f"§{letter[sig]} = {desc} ({', '.join(members)})")
            for m in members:
                conv_marks[m] = f"§{letter[sig]}"
        footnotes.append(f"{display}: results scored under different conventions; not comparable across groups, "
                         f"not ranked: " + "; ".join(parts))
    elif sigs and sigs[0]:
        footnotes.append(f"{display} conventions: " + ", ".join(f"{k} = {v}" for k, v in sigs[0]))
    return data_marks, conv_marks
