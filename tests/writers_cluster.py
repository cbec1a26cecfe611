"""Fixture writers for the IJB-B clustering CSVs, in the layout a public Janus evaluation module reads (unverified
on the release: see fr_bench/protocols/ijb_cluster.py): a list per sub-protocol, one row per face, header
``TEMPLATE_ID, FILENAME, FACE_X, ...`` (no SUBJECT_ID), and a ground-truth CSV ``TEMPLATE_ID, SUBJECT_ID, FILENAME``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

#: The list columns as that module names them.
CLUSTER_LIST_HEADER = ("TEMPLATE_ID", "FILENAME", "FACE_X", "FACE_Y", "FACE_WIDTH", "FACE_HEIGHT", "RIGHT_EYE_X",
                       "RIGHT_EYE_Y", "LEFT_EYE_X", "LEFT_EYE_Y", "NOSE_X", "NOSE_Y")
GROUND_TRUTH_HEADER = ("TEMPLATE_ID", "SUBJECT_ID", "FILENAME")


def write_csv(path: Path, header: Sequence[str] | None, rows: Sequence[Sequence[object]]) -> Path:
    """A plain CSV: ``header`` (None: no header line) then ``rows``; parent folders are made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ([",".join(header)] if header is not None else []) + [",".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_cluster_list(path: Path, template_ids: Sequence[object], *, subjects: Sequence[object] | None = None,
                       header: Sequence[str] = CLUSTER_LIST_HEADER) -> Path:
    """One clustering list: a row per entry of ``template_ids`` (``img/<k>.jpg``, dummy geometry); with
    ``subjects`` a ``SUBJECT_ID`` column is added after ``TEMPLATE_ID``."""
    cols = list(header)
    if subjects is not None:
        cols.insert(1, "SUBJECT_ID")
    rows = []
    for k, t in enumerate(template_ids):
        values = {"TEMPLATE_ID": t, "FILENAME": f"img/{k + 1}.jpg"}
        if subjects is not None:
            values["SUBJECT_ID"] = subjects[k]
        rows.append([values.get(c, 10 + k) for c in cols])
    return write_csv(path, cols, rows)


def write_ground_truth(path: Path, subject_of: Mapping[object, object],
                       header: Sequence[str] = GROUND_TRUTH_HEADER) -> Path:
    """The ground truth: one row ``TEMPLATE_ID, SUBJECT_ID, FILENAME`` per template of ``subject_of``."""
    rows = [[t, s, f"img/{t}.jpg"][:len(header)] for t, s in subject_of.items()]
    return write_csv(path, header, rows)
