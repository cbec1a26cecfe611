"""IJB-B clustering ("Test 7" of the NIST release): seven lists of growing numbers of subjects, clustered by identity.

What is known of the files, and from where (none of it verified on the release here; spec notes repeat it):

* The IJB-B paper (Whitelam et al., CVPR-W 2017) describes a clustering protocol of seven sub-protocols of growing
  numbers of subjects (the issue calls them ``clustering_1`` ... ``clustering_7``).
* A public evaluation module of the Janus program (read through the code search; its repository is not named by the
  index) lists them as ``clustering_protocols/test7_clustering/ijbb_clustering_<S>_hint_<H>.csv`` with
  ``S`` = 32, 64, 128, 256, 512, 1024, 1870 (the number of subjects; the paper says IJB-B has 1,845 subjects, so the
  last number is a doubt) and ``H`` a hint (an upper bound on the number of clusters: 100, 100, 1000, 1000, 1000,
  10000, 10000). It reads each list as a CSV with a header, one row per face: ``TEMPLATE_ID, FILENAME, FACE_X,
  FACE_Y, FACE_WIDTH, FACE_HEIGHT, RIGHT_EYE_X, ...`` -- no SUBJECT_ID: the subject of a template comes from a
  separate ``ijbb_clustering_test7_ground_truth.csv`` (``TEMPLATE_ID, SUBJECT_ID, ...``), and the official score is
  BCubed precision / recall / F per row.

How this loader reads them. Columns are found by header name (case and surrounding blanks ignored): ``TEMPLATE_ID``
is required in a list; ``SUBJECT_ID`` is taken from the list when it has that column, else from the ground-truth
CSV (header with ``TEMPLATE_ID`` and ``SUBJECT_ID``). Anything else -- no header, a non-integer id, a template with
two subjects, a template absent from the ground truth -- is an error naming the file and line. The items clustered
are the list's distinct templates (first-appearance order); when a list has several rows per template (the count
is recorded) they are one item, where the official scorer counts rows.

Template features: pooled exactly as IJB 1:1 verification (:mod:`fr_bench.protocols.ijb`: every image of
``*_face_tid_mid.txt`` is embedded and pooled per template id, insightface ``eval_ijbc.py`` by default), the list's
TEMPLATE_IDs looked up in face_tid_mid as the 1:N loader does. THE DOUBT: whether the clustering lists' template ids
share the id space of face_tid_mid (the 1:1 templates) is not verified. If they are per-face ids of their own, the
first unknown id stops the loader, naming the list file and line.

The default clustering threshold comes from the IJB-B 1:1 template pairs (``*_template_pair_label.txt``) when present
under the root (:func:`fr_bench.clustering.threshold_from_pairs`); without them ``frbench cluster`` asks for
``--threshold``. ``evaluate`` is not offered: this protocol is run by ``frbench cluster``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fr_bench.protocols.base import ClusterItems, ProtocolError, ProtocolResult, file_error, read_text_lines
from fr_bench.protocols.base import require_root
from fr_bench.protocols.conventions import default_first
from fr_bench.protocols.ijb import IJBBase
from fr_bench.protocols.ijb_meta import read_template_pairs, template_lookup, template_rows
from fr_bench.protocols.ijb_templates import POOLINGS, pair_scores
from fr_bench.similarity import get_score

__all__ = ["IJBClustering", "load_ijbb_cluster", "read_cluster_list", "read_ground_truth"]


def _read_csv(path: Path, what: str) -> pd.DataFrame:
    """A headed CSV as strings with upper-cased, stripped column names; errors name the file."""
    if not path.is_file():
        raise file_error(path, None, f"{what} not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (ValueError, pd.errors.ParserError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            read_text_lines(path, what)  # raises naming the line that is not UTF-8
        raise file_error(path, None, f"not a readable CSV ({what}): {exc}") from exc
    df.columns = [str(c).strip().upper() for c in df.columns]
    return df


def _require(df: pd.DataFrame, path: Path, columns: tuple[str, ...], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise file_error(path, 1, f"{what}: no column {', '.join(missing)} in the header line {list(df.columns)} "
                         f"(expected a header with at least {', '.join(columns)})")
    if len(df) == 0:
        raise file_error(path, None, f"{what}: no rows after the header")


def _int_column(df: pd.DataFrame, name: str, path: Path) -> np.ndarray:
    """Column ``name`` as int64; a value that is not an integer raises naming its line (header = line 1)."""
    values = pd.to_numeric(df[name].str.strip(), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(values) | (values % 1 != 0))
    if bad.size:
        i = int(bad[0])
        raise file_error(path, i + 2, f"{name} should be an integer, found {df[name].iloc[i]!r}")
    return values.astype(np.int64)


def _one_subject(tids: np.ndarray, sids: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(distinct template ids in first-appearance order, their subject, first line)``; a template with two
    subjects raises naming both lines."""
    _, first, inverse = np.unique(tids, return_index=True, return_inverse=True)
    conflict = np.flatnonzero(sids != sids[first][inverse])
    if conflict.size:
        i = int(conflict[0])
        j = int(first[inverse[i]])
        raise file_error(path, i + 2, f"template {tids[i]} has SUBJECT_ID {sids[i]} here but {sids[j]} on line "
                         f"{j + 2}: a template belongs to one subject")
    order = np.sort(first)
    return tids[order], sids[order], order + 2


def read_cluster_list(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, int]:
    """One clustering list: ``(template ids, subject of each or None, first line of each, rows)``, one entry per
    distinct TEMPLATE_ID in order of first appearance (module docstring: the columns and the errors)."""
    path = Path(path)
    df = _read_csv(path, "clustering list")
    _require(df, path, ("TEMPLATE_ID",), "clustering list")
    tids = _int_column(df, "TEMPLATE_ID", path)
    if "SUBJECT_ID" in df.columns:
        t, s, lines = _one_subject(tids, _int_column(df, "SUBJECT_ID", path), path)
        return t, s, lines, len(df)
    _, first = np.unique(tids, return_index=True)
    order = np.sort(first)
    return tids[order], None, order + 2, len(df)


def read_ground_truth(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The clustering ground truth: ``(sorted template ids, subject of each)`` from a CSV whose header has
    ``TEMPLATE_ID`` and ``SUBJECT_ID`` (other columns ignored); one subject per template."""
    path = Path(path)
    df = _read_csv(path, "clustering ground truth")
    _require(df, path, ("TEMPLATE_ID", "SUBJECT_ID"), "clustering ground truth")
    t, s, _ = _one_subject(_int_column(df, "TEMPLATE_ID", path), _int_column(df, "SUBJECT_ID", path), path)
    order = np.argsort(t, kind="stable")
    return t[order], s[order]


def _find(root: Path, spec: Mapping[str, Any], name: str, override: str | None, what: str) -> Path:
    """``override`` (relative to root unless absolute), else ``name`` in the first of the spec's search folders
    that has it; a missing file raises listing where it was looked for."""
    if override is not None:
        p = Path(override).expanduser()
        p = p if p.is_absolute() or p.is_file() else root / override
        if not p.is_file():
            raise file_error(p, None, f"{what} not found")
        return p
    folders = spec.get("files", {}).get("clustering_dirs", ["meta"])
    tried = [root / d / name for d in folders]
    for p in tried:
        if p.is_file():
            return p
    raise ProtocolError(f"{spec.get('name', 'ijbb_cluster')}: {what} {name} not found under {root} (looked in "
                        f"{', '.join(str(p.parent) for p in tried)}); copy it from the IJB-B release's "
                        "clustering_protocols/test7_clustering/ folder or pass its path with -o list_file=PATH / "
                        "-o ground_truth=PATH")


class IJBClustering(IJBBase):
    """IJB-B clustering: the templates of one clustering list, pooled as in 1:1 verification, with their subjects."""

    def __init__(self, root: Path, spec: Mapping[str, Any], *, list_number: int = 1, list_file: str | None = None,
                 ground_truth: str | None = None, check_counts: bool = True, keep_norm: bool = True,
                 detector_weight: bool = True, pooling: str = "media-mean-sum") -> None:
        super().__init__(root, spec, check_counts=check_counts, keep_norm=keep_norm,
                         detector_weight=detector_weight, pooling=pooling)
        lists = spec.get("files", {}).get("lists", [])
        if not 1 <= list_number <= len(lists):
            raise ProtocolError(f"{self.name}: option list={list_number} must be one of 1..{len(lists)} "
                                f"({', '.join(Path(x).name for x in lists)})")
        self.variant = f"list{list_number}"
        self.list_path = _find(root, spec, lists[list_number - 1], list_file, "clustering list")
        tids, sids, lines, self.n_rows = read_cluster_list(self.list_path)
        self.load_flags: list[str] = []
        if sids is None:
            gt_path = _find(root, spec, spec.get("files", {}).get("ground_truth", ""), ground_truth,
                            "clustering ground truth")
            gt_t, gt_s = read_ground_truth(gt_path)
            rows = template_rows(gt_t, tids)
            if (rows < 0).any():
                i = int(np.flatnonzero(rows < 0)[0])
                raise file_error(self.list_path, int(lines[i]), f"template {tids[i]} has no SUBJECT_ID in {gt_path} "
                                 f"({int((rows < 0).sum()):,} templates of the list are absent from it)")
            sids = gt_s[rows]
            self._files.append(str(gt_path))
        self.template_ids, self.subjects = tids, sids
        self.rows = template_lookup(self.layout.template_ids, tids, self.list_path, str(self.meta.face_tid_mid),
                                    lines=lines, hint=": clustering templates are pooled through face_tid_mid by "
                                    "template id (their id space is an unverified assumption: see the spec notes)")
        self._files.append(str(self.list_path))
        expected = spec.get("counts", {}).get("list_subjects", [])
        found = int(np.unique(sids).size)
        if len(expected) >= list_number and found != int(expected[list_number - 1]):
            self.load_flags.append(f"{self.list_path.name}: {found} subjects, where the file name says "
                                   f"{int(expected[list_number - 1])}")
        if self.n_rows != len(tids):
            self.load_flags.append(f"{self.list_path.name}: {self.n_rows:,} rows for {len(tids):,} templates; each "
                                   "template is one item here (the official scorer counts rows)")

    @property
    def conventions(self) -> dict[str, list[str]]:
        return {"pooling": default_first(POOLINGS, self.pooling), **self.shared_conventions()}

    @property
    def not_evaluated(self) -> str:  # type: ignore[override]
        """Why ``frbench evaluate`` refuses this protocol (checked before extraction)."""
        return (f"{self.name}: a clustering protocol: run it with `frbench cluster -p {self.name}`, not "
                "`frbench evaluate`")

    def evaluate(self, embeddings: np.ndarray, norms: np.ndarray | None = None, **_: Any) -> ProtocolResult:
        """Not offered: clustering is run by ``frbench cluster`` (:mod:`fr_bench.cli_cluster`)."""
        raise ProtocolError(self.not_evaluated)

    def cluster_items(self, embeddings: np.ndarray, norms: np.ndarray | None = None) -> ClusterItems:
        """The list's templates (pooled as 1:1 verification, L2-normalised) labelled by subject; the verification
        pairs are the IJB-B 1:1 template pairs when their file is under the root (else none, said why)."""
        cosine = get_score("cosine")
        feats = self.template_features(embeddings, norms, self.pooling, cosine.name)
        pair_path = self.root / self.spec.get("files", {}).get("template_pair_label", "")
        scores = labels = None
        source = f"no IJB-B 1:1 template pair file at {pair_path}"
        if pair_path.is_file():
            a, b, lab = read_template_pairs(pair_path)
            row_a = template_lookup(self.layout.template_ids, a, pair_path, self.meta.face_tid_mid.name)
            row_b = template_lookup(self.layout.template_ids, b, pair_path, self.meta.face_tid_mid.name)
            scores = pair_scores(feats, row_a, row_b, score=cosine, dtype=np.float64)
            labels = lab.astype(bool)
            source = (f"the IJB-B 1:1 template pairs of {pair_path.name} ({len(labels):,} pairs; they may share "
                      "templates with the clustered list: not held out)")
        return ClusterItems(np.asarray(feats[self.rows], dtype=np.float64), self.subjects,
                            [str(t) for t in self.template_ids], "template", scores, labels, source)


def load_ijbb_cluster(root: str | os.PathLike | None, spec: Mapping[str, Any], *, list: Any = 1,  # noqa: A002
                      list_file: str | None = None, ground_truth: str | None = None, check_counts: bool = True,
                      keep_norm: bool = True, detector_weight: bool = True,
                      pooling: str = "media-mean-sum") -> IJBClustering:
    """IJB-B clustering over ``root`` = the ``IJBB`` folder: list ``list`` (1..7, default 1: the smallest),
    ``list_file``/``ground_truth`` to name the CSVs directly (module docstring)."""
    try:
        number = int(str(list).strip())
    except ValueError:
        raise ProtocolError(f"{spec.get('name', 'ijbb_cluster')}: option list={list!r} must be a number 1..7") from None
    return IJBClustering(require_root(root, spec, folder=True), spec, list_number=number, list_file=list_file,
                         ground_truth=ground_truth, check_counts=check_counts, keep_norm=keep_norm,
                         detector_weight=detector_weight, pooling=pooling)
