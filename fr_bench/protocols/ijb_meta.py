"""IJB-B / IJB-C meta files: per-image columns, template pairs, 1:N CSVs, template-id lookups.

Layout (insightface's IJB release, docs/FORMATS.md "IJB-B and IJB-C")::

    <root>/meta/ijbc_face_tid_mid.txt          <image name> <template id> <media id>        (one line per image)
    <root>/meta/ijbc_name_5pts_score.txt       <image name> x1 y1 ... x5 y5 <detector score> (same order)
    <root>/meta/ijbc_template_pair_label.txt   <template id 1> <template id 2> <label 0|1>  (one line per pair)
    <root>/meta/ijbc_1N_gallery_G1.csv, ...    CSV with a header: TEMPLATE_ID, SUBJECT_ID, FILENAME (and others)

Shared by the 1:1 (:mod:`fr_bench.protocols.ijb`) and 1:N (:mod:`fr_bench.protocols.ijb_1n`) protocols, so neither
imports the other's parsing. Everything is kept as column arrays; every error names the file and line.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fr_bench.protocols.base import ProtocolError, file_error, read_text_lines
from fr_bench.protocols.columns import read_columns

#: Columns a 1:N CSV must have (found by header name; other columns vary between releases and are ignored).
REQUIRED_COLUMNS = ("TEMPLATE_ID", "SUBJECT_ID", "FILENAME")


@dataclass
class IJBMeta:
    """The per-image columns of an IJB release (all arrays of length n_images, file order)."""

    names: np.ndarray  # image names (object array of str), e.g. "1.jpg"
    templates: np.ndarray  # int64 template id per image
    medias: np.ndarray  # int64 media id per image
    landmarks: np.ndarray  # float32 (n, 5, 2), loose_crop coordinates
    det_scores: np.ndarray  # float32 detector score per image
    face_tid_mid: Path
    name_5pts_score: Path


def read_ijb_meta(face_tid_mid: str | os.PathLike, name_5pts_score: str | os.PathLike) -> IJBMeta:
    """Parse ``*_face_tid_mid.txt`` and ``*_name_5pts_score.txt`` and check they list the same images in order."""
    tid_path, pts_path = Path(face_tid_mid), Path(name_5pts_score)
    names, templates, medias = read_columns(tid_path, (str, int, int))
    pts = read_columns(pts_path, (str,) + (float,) * 11)
    pts_names = pts[0]
    if len(pts_names) != len(names):
        raise file_error(pts_path, min(len(pts_names), len(names)) + 1,
                         f"has {len(pts_names):,} lines but {tid_path.name} has {len(names):,}: the two files must "
                         "list the same images in the same order")
    mismatch = np.flatnonzero(pts_names != names)
    if mismatch.size:
        i = int(mismatch[0])
        raise file_error(pts_path, i + 1, f"image {pts_names[i]!r} differs from {names[i]!r} on the same line of "
                         f"{tid_path}: the two files must list the same images in the same order")
    landmarks = np.stack(pts[1:11], axis=1).astype(np.float32).reshape(-1, 5, 2)
    det_scores = pts[11].astype(np.float32)
    return IJBMeta(names, templates, medias, landmarks, det_scores, tid_path, pts_path)


def read_template_pairs(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse ``*_template_pair_label.txt``: (template a, template b, label) arrays; labels must be 0 or 1.

    Template ids come back as int32 when they fit (every IJB release: ids < 200k; IJB-C's 15.66M pairs then hold
    125 MB instead of 250 MB), else int64; labels as int8. The narrow types are parsed directly
    (:func:`~fr_bench.protocols.columns.read_columns` with ``dtypes``); a file they do not fit is read again in
    int64, where a bad line is named.
    """
    path = Path(path)
    try:
        a, b, labels = read_columns(path, (int, int, int), dtypes=(np.int32, np.int32, np.int8))
    except ProtocolError:  # ids beyond int32, a label beyond int8, or a bad line: the int64 read says which
        a, b, labels = read_columns(path, (int, int, int))
    bad = np.flatnonzero((labels != 0) & (labels != 1))
    if bad.size:
        i = int(bad[0])
        raise file_error(path, i + 1, f"label must be 0 or 1, found {labels[i]}")
    return a, b, labels.astype(np.int8, copy=False)


def template_rows(template_ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Row of each ``wanted`` template id in the sorted ``template_ids``, -1 where it is absent (int32 when there
    are fewer than 2**31 templates: IJB-C's 15.66M pair rows then hold 63 MB each instead of 125 MB).

    A direct lookup table when the ids are small non-negative integers (IJB: < 200k; O(n) gather: ~0.1 s for IJB-C's
    15.66M pairs on 2 cores, where ``np.searchsorted`` took ~1 s), binary search otherwise.
    """
    wanted = np.asarray(wanted)
    row_type = np.int32 if len(template_ids) < 2**31 else np.int64
    if len(template_ids) == 0:
        return np.full(wanted.shape, -1, dtype=row_type)
    if template_ids[0] >= 0 and template_ids[-1] <= max(1 << 24, 8 * len(template_ids)):
        lut = np.full(int(template_ids[-1]) + 2, -1, dtype=row_type)
        lut[template_ids] = np.arange(len(template_ids))
        return lut[np.clip(wanted, -1, len(lut) - 1)]  # -1 and the last slot (max id + 1) both hold -1
    idx = np.minimum(np.searchsorted(template_ids, wanted), len(template_ids) - 1).astype(row_type)
    return np.where(template_ids[idx] == wanted, idx, row_type(-1))


def template_lookup(template_ids: np.ndarray, wanted: np.ndarray, path: Path, what: str, *,
                    lines: np.ndarray | None = None, hint: str = "") -> np.ndarray:
    """:func:`template_rows`, where an unknown id raises naming ``path`` and the line that lists it (``lines[i]``,
    default ``i + 1``) and how many ids are unknown; ``hint`` is appended to the message."""
    rows = template_rows(template_ids, wanted)
    bad = np.flatnonzero(rows < 0)
    if bad.size:
        i = int(bad[0])
        line = int(lines[i]) if lines is not None else i + 1
        raise file_error(path, line, f"template {wanted[i]} has no image in {what} ({bad.size:,} rows reference "
                         f"unknown templates){hint}")
    return rows


def read_1n_csv(path: str | os.PathLike, *, return_lines: bool = False) -> tuple[np.ndarray, ...]:
    """(template ids, subject id of each) of a 1:N CSV, one entry per distinct template, in order of appearance
    (plus, with ``return_lines``, the file line where each template first appears).

    Columns are found by header name (``TEMPLATE_ID``, ``SUBJECT_ID``, ``FILENAME`` required); a non-integer id or a
    template listed with two subjects raises naming the file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise file_error(path, None, "file not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (ValueError, pd.errors.ParserError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            read_text_lines(path, "1:N CSV")  # raises naming the line that is not UTF-8
        raise file_error(path, None, f"not a readable CSV: {exc}") from exc
    df.columns = [str(c).strip().upper() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise file_error(path, 1, f"missing column(s) {', '.join(missing)}; the header has {list(df.columns)} "
                         f"(expected at least {', '.join(REQUIRED_COLUMNS)})")
    cols = {}
    for name in ("TEMPLATE_ID", "SUBJECT_ID"):
        values = pd.to_numeric(df[name].str.strip(), errors="coerce")
        bad = np.flatnonzero(values.isna().to_numpy() | (values.to_numpy() % 1 != 0))
        if bad.size:
            i = int(bad[0])
            raise file_error(path, i + 2, f"{name} should be an integer, found {df[name].iloc[i]!r}")
        cols[name] = values.to_numpy().astype(np.int64)
    tids, sids = cols["TEMPLATE_ID"], cols["SUBJECT_ID"]
    if len(tids) == 0:
        raise file_error(path, None, "no rows after the header")
    uniq, first, inv = np.unique(tids, return_index=True, return_inverse=True)
    conflict = np.flatnonzero(sids != sids[first][inv])
    if conflict.size:
        i = int(conflict[0])
        raise file_error(path, i + 2, f"template {tids[i]} has SUBJECT_ID {sids[i]} here but {sids[first[inv[i]]]} "
                         f"on line {first[inv[i]] + 2}: a template belongs to one subject")
    order = np.sort(first)
    if return_lines:
        return tids[order], sids[order], order + 2
    return tids[order], sids[order]


def read_template_subjects(root: Path, spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(sorted template ids, subject id of each) from whichever 1:N CSVs exist in meta/; None if none exist."""
    files = spec.get("files", {}).get("subject_csvs", [])
    tids, sids = [], []
    for rel in files:
        path = root / rel
        if path.is_file():
            t, s = read_1n_csv(path)
            tids.append(t)
            sids.append(s)
    if not tids:
        return None
    t = np.concatenate(tids)
    s = np.concatenate(sids)
    order = np.argsort(t, kind="stable")
    t, s = t[order], s[order]
    first = np.concatenate([[True], t[1:] != t[:-1]])
    return t[first], s[first]


def subjects_of(template_ids: np.ndarray, subjects: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Subject of each ``wanted`` template (``subjects[i]`` belongs to the sorted ``template_ids[i]``), -1 where
    the template is not listed; int32 when the subject ids fit (IJB's do), else int64."""
    rows = template_rows(template_ids, wanted)
    fits = len(subjects) == 0 or (int(subjects.min()) >= -(2**31) and int(subjects.max()) < 2**31)
    out_type = np.int32 if fits else np.int64
    return np.where(rows >= 0, subjects.astype(out_type)[np.maximum(rows, 0)], out_type(-1)).astype(out_type,
                                                                                                   copy=False)
