"""IJB-B / IJB-C 1:N identification (mixed-media probes searched in two disjoint galleries).

Files, besides the 1:1 meta files (docs/FORMATS.md "IJB-B and IJB-C")::

    meta/ijbc_1N_gallery_G1.csv, meta/ijbc_1N_gallery_G2.csv, meta/ijbc_1N_probe_mixed.csv
    (IJB-B: ijbb_1N_gallery_S1.csv, ijbb_1N_gallery_S2.csv, ijbb_1N_probe_mixed.csv)

CSV with a header, one row per image; the columns ``TEMPLATE_ID``, ``SUBJECT_ID`` and ``FILENAME`` are required
(found by header name; other columns vary between releases and are ignored).

How CSV rows become template features -- and the doubt. The CSV ``FILENAME`` values (``img/123.jpg``,
``frames/...``) name files of the original NIST release, while the insightface layout renames every face to
``loose_crop/<n>.jpg`` and lists it in ``*_face_tid_mid.txt`` with its template id. There is no published mapping from
FILENAME to loose_crop name, so -- like insightface's ``IJB_1N`` evaluation -- the CSVs are used only for *which
templates* are gallery/probe and *which subject* each belongs to; a template's feature is the same per-image pooling
as 1:1 over the images face_tid_mid lists for that template id. This assumes the template ids are shared between
the two files (they are in the insightface release) and that face_tid_mid holds every image of those templates; it
is not checked image by image (impossible without the mapping). A CSV template with no image in face_tid_mid is an
error naming the CSV line. Each template must have a single SUBJECT_ID.

Conventions (``conventions={"1n": ...}``):

* ``nist`` (default): each gallery searched separately; mated probes are those whose subject is in that gallery,
  the others are its non-mated probes (their top score sets the FPIR threshold); results per gallery and their mean.
* ``merged-galleries``: the widespread shortcut (galleries merged into one closed set); reproduces old tables, is not
  TPIR@FPIR.

Intervals (``ci``), percentile bootstrap resampling probe SUBJECTS (a subject's probe templates are correlated):
every ``<G>/rank<k>`` and ``<G>/tpir@fpir=<f>`` (rank-k as correct mated searches over mated searches per subject;
TPIR@FPIR as :func:`fr_bench.metrics.uncertainty.bootstrap_tpir_at_fpir`), and the means over galleries
``rank<k>`` / ``tpir@fpir=<f>`` from the same draws (one draw of subject multiplicities shared by the galleries).
Unresolvable FPIRs get none. ``merged-galleries``: ``rank<k>`` by subject; ``merged_rate@far`` none (flagged).

``result.scores`` (one entry per probe template, CSV order): extras ``probe_template`` and ``probe_subject``; NIST:
per gallery ``searches["<G>/rank1"]`` (a :class:`~fr_bench.results.SearchScores`: ``successes`` = mated and found
at rank 1, ``trials`` = mated, ``unit`` = code of the probe's subject; extras ``mate_rank`` (int32, 0 = non-mated),
``mate_score`` (float32, NaN = non-mated), ``top_score`` (float32)); merged: ``searches["rank1"]`` on the merged
gallery (extra ``mate_rank``). Two models on the same files share every array but the scores and outcomes, so
rank-1 differences can be bootstrapped per subject.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ProtocolError, ProtocolResult, require_root
from fr_bench.protocols.columns import check_count
from fr_bench.protocols.conventions import default_first
from fr_bench.protocols.ijb import IJBBase
from fr_bench.protocols.ijb_meta import read_1n_csv, template_lookup
from fr_bench.protocols.ijb_templates import POOLINGS
from fr_bench.protocols.scoring import (
    Units,
    far_name,
    interval_dict,
    op_dict,
    rate_replicates,
    replicate_interval,
    tpir_replicates,
)
from fr_bench.results import ScoreRecords, SearchScores

IN_CONVENTIONS = ("nist", "merged-galleries")
DEFAULT_FPIRS = (1e-3, 1e-2, 1e-1)
DEFAULT_RANKS = (1, 5, 10)


class IJBIdentification(IJBBase):
    """IJB-B/C 1:N mixed-media identification over two galleries."""

    needs_cosine_score = True  # galleries are searched by cosine (fr_bench.metrics.identification)

    def __init__(self, root: Path, spec: Mapping[str, Any], *, check_counts: bool = True, keep_norm: bool = True,
                 detector_weight: bool = True, pooling: str = "media-mean-sum") -> None:
        super().__init__(root, spec, check_counts=check_counts, keep_norm=keep_norm,
                         detector_weight=detector_weight, pooling=pooling)
        files = spec.get("files", {})
        galleries = spec.get("galleries", {})
        if not galleries or "probes" not in files:
            raise ProtocolError(f"{spec.get('spec_file')}: needs [galleries] and files.probes")
        counts = spec.get("counts", {})
        self.galleries: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # name -> (template rows, subjects)
        self.gallery_templates: dict[str, np.ndarray] = {}
        for gname, rel in galleries.items():
            path = root / rel
            tids, sids, lines = read_1n_csv(path, return_lines=True)
            check_count(path, f"{gname} templates", len(tids), counts.get(f"{gname}_templates"), check_counts)
            self.galleries[gname] = (self._rows(path, tids, lines), sids)
            self.gallery_templates[gname] = tids
            self._files.append(str(path))
        probe_path = root / files["probes"]
        self.probe_templates, self.probe_subjects, probe_lines = read_1n_csv(probe_path, return_lines=True)
        check_count(probe_path, "probe templates", len(self.probe_templates), counts.get("probe_templates"),
                    check_counts)
        self.probe_rows = self._rows(probe_path, self.probe_templates, probe_lines)
        self._files.append(str(probe_path))
        names = list(self.galleries)
        self.overlap = {f"{a}&{b}": int(np.intersect1d(self.galleries[a][1], self.galleries[b][1]).size)
                        for i, a in enumerate(names) for b in names[i + 1:]}

    def _rows(self, path: Path, tids: np.ndarray, lines: np.ndarray) -> np.ndarray:
        return template_lookup(self.layout.template_ids, tids, path, str(self.meta.face_tid_mid), lines=lines,
                               hint=": 1:N template features are pooled through face_tid_mid by template id")

    @property
    def conventions(self) -> dict[str, list[str]]:
        return {**self.spec_defaults({"1n": IN_CONVENTIONS}), "pooling": default_first(POOLINGS, self.pooling),
                **self.shared_conventions()}

    def evaluate(self, embeddings: np.ndarray, norms: np.ndarray | None = None, *,
                 conventions: Mapping[str, str] | None = None, ci: float | None = None, n_boot: int = 1000,
                 seed: int = 0) -> ProtocolResult:
        """Rank-k and TPIR@FPIR under the ``1n`` convention; intervals and per-search arrays: module docstring."""
        from fr_bench.metrics import identification as ident

        chosen = self.choose(conventions)
        conv, pooling = chosen["1n"], chosen["pooling"]
        feats = self.template_features(embeddings, norms, pooling, chosen["score"])
        metrics_spec = self.spec.get("metrics", {})
        fpirs = tuple(float(f) for f in metrics_spec.get("fpirs", DEFAULT_FPIRS))
        ranks = tuple(int(k) for k in metrics_spec.get("ranks", DEFAULT_RANKS))
        probe = feats[self.probe_rows]
        galleries = {g: (feats[rows], sids) for g, (rows, sids) in self.galleries.items()}
        result = ProtocolResult(protocol=self.name, metrics={}, conventions={
            **chosen, **self.pooling_conventions(pooling, chosen["flip"])})
        result.details["score"] = self.describe_score(chosen, "template features pooled from")
        unit = Units.from_values(self.probe_subjects, self.probe_subjects, "subject").a
        result.scores = ScoreRecords(extra={"probe_template": self.probe_templates.astype(np.int32),
                                            "probe_subject": self.probe_subjects.astype(np.int32)})
        if conv == "nist":
            searches = {g: ident.open_set_search(probe, self.probe_subjects, gf, gids)
                        for g, (gf, gids) in galleries.items()}
            _flatten_nist(result, ident.ijb_1n_nist(probe, self.probe_subjects, galleries, fpirs=fpirs, ranks=ranks,
                                                    searches=searches))
            for g, search in searches.items():
                result.scores.searches[f"{g}/rank1"] = SearchScores.from_outcomes(
                    search.mate_rank == 1, unit, "subject", counted=search.mated,
                    extra={"mate_rank": search.mate_rank.astype(np.int32),
                           "mate_score": search.mate_score.astype(np.float32),
                           "top_score": search.top_score.astype(np.float32)})
            if ci is not None:
                _nist_intervals(result, searches, unit, fpirs, ranks, ci=ci, n_boot=n_boot, seed=seed)
        else:
            _flatten_merged(result, ident.ijb_1n_merged(probe, self.probe_subjects, galleries, fars=fpirs,
                                                        ranks=ranks))
            merged = np.concatenate([gf for gf, _ in galleries.values()])
            merged_ids = np.concatenate([gids for _, gids in galleries.values()])
            mate_rank = ident.mate_ranks(probe, self.probe_subjects, merged, merged_ids)
            result.scores.searches["rank1"] = SearchScores.from_outcomes(
                mate_rank == 1, unit, "subject", extra={"mate_rank": mate_rank.astype(np.int32)})
            if ci is not None:
                from fr_bench.metrics.uncertainty import bootstrap_rate, per_unit_counts

                for k in ranks:
                    _, succ, tri = per_unit_counts(mate_rank <= k, unit)
                    result.intervals[f"rank{k}"] = interval_dict(bootstrap_rate(succ, tri, n_boot=n_boot, level=ci,
                                                                                seed=seed, unit="subject"))
                result.flags.append("merged_rate@far: no interval (the merged-galleries shortcut is not NIST "
                                    "TPIR@FPIR; only its rank-k get intervals)")
        result.details["counts"] = {"images": len(self.meta.names), "templates": self.layout.n_templates,
                                    "probe_templates": len(self.probe_templates),
                                    **{f"{g}_templates": len(r) for g, (r, _) in self.galleries.items()}}
        result.details["gallery_subject_overlap"] = self.overlap
        if any(self.overlap.values()):
            result.flags.append(f"galleries share subjects {self.overlap}: IJB galleries should be disjoint")
        return result


def _nist_intervals(result: ProtocolResult, searches: Mapping[str, Any], unit: np.ndarray, fpirs: Sequence[float],
                    ranks: Sequence[int], *, ci: float, n_boot: int, seed: int) -> None:
    """Subject-level intervals of every per-gallery and mean rank-k and TPIR@FPIR: one draw of probe-subject
    multiplicities shared by both galleries, so each replicate's mean over galleries is that replicate's value."""
    from fr_bench.metrics.uncertainty import draw_unit_weights

    n_units = int(unit.max()) + 1
    weights = draw_unit_weights(n_units, n_boot, seed=seed)
    rank_reps: dict[int, list[np.ndarray]] = {k: [] for k in ranks}
    tpir_reps: dict[float, list[np.ndarray]] = {f: [] for f in fpirs}
    for g, search in searches.items():
        trials = np.bincount(unit, weights=search.mated, minlength=n_units)
        for k in ranks:
            succ = np.bincount(unit, weights=search.mated & (search.mate_rank <= k), minlength=n_units)
            reps = rate_replicates(succ, trials, weights)
            rank_reps[k].append(reps)
            result.intervals[f"{g}/rank{k}"] = replicate_interval(result.metrics[f"{g}/rank{k}"], reps, ci=ci,
                                                                  unit="subject")
        ok = [f for f in fpirs if np.isfinite(result.metrics[f"{g}/tpir@fpir={far_name(f)}"]) and f < 1.0]
        reps_f = tpir_replicates(search, unit, ok, weights) if ok else np.empty((0, n_boot))
        for f in fpirs:
            reps = reps_f[ok.index(f)] if f in ok else np.full(n_boot, np.nan)
            tpir_reps[f].append(reps)
            if f in ok:
                name = f"{g}/tpir@fpir={far_name(f)}"
                result.intervals[name] = replicate_interval(result.metrics[name], reps, ci=ci, unit="subject")
    for k, reps in rank_reps.items():
        result.intervals[f"rank{k}"] = replicate_interval(result.metrics[f"rank{k}"], np.mean(reps, axis=0), ci=ci,
                                                          unit="subject")
    for f, reps in tpir_reps.items():
        name = f"tpir@fpir={far_name(f)}"
        if np.isfinite(result.metrics[name]):
            result.intervals[name] = replicate_interval(result.metrics[name], np.mean(reps, axis=0), ci=ci,
                                                        unit="subject")


def _flatten_nist(result: ProtocolResult, out: Mapping[str, Any]) -> None:
    """Per gallery ``<G>/rank<k>``, ``<G>/tpir@fpir=<f>`` (+ operating points), and their means without prefix."""
    for gname, block in out["galleries"].items():
        for k, rate in block["cmc"].items():
            result.metrics[f"{gname}/rank{k}"] = float(rate)
        for f, point in block["tpir"].items():
            name = f"{gname}/tpir@fpir={far_name(f)}"
            p = op_dict(point)
            result.metrics[name] = float(p["tar"])  # an OperatingPoint: tar = TPIR
            result.operating_points[name] = p
            if not p["resolvable"]:
                result.flags.append(f"{name}: not resolvable with {p['n_impostor']} non-mated searches; NaN")
        result.details[f"{gname}/searches"] = {"mated": block["n_mated"], "nonmated": block["n_nonmated"]}
    for k, rate in out["mean"]["cmc"].items():
        result.metrics[f"rank{k}"] = float(rate)
    for f, tpir in out["mean"]["tpir"].items():
        result.metrics[f"tpir@fpir={far_name(f)}"] = float(tpir)


def _flatten_merged(result: ProtocolResult, out: Mapping[str, Any]) -> None:
    """The merged-gallery shortcut: ``rank<k>`` and ``merged_rate@far=<f>`` (its thresholds as operating points)."""
    for k, rate in out["cmc"].items():
        result.metrics[f"rank{k}"] = float(rate)
    for f, rate in out["rate_at_far"].items():
        name = f"merged_rate@far={far_name(f)}"
        result.metrics[name] = float(rate)
        result.operating_points[name] = {"target_far": f, "rate": rate, "threshold": out["threshold"][f],
                                         "convention": out.get("convention", "merged-galleries")}
        if rate != rate:
            result.flags.append(f"{name}: not resolvable on this gallery/probe set; NaN")
    result.flags.append("1n convention 'merged-galleries' is the insightface shortcut, not NIST TPIR@FPIR")


def _load(root: str | os.PathLike | None, spec: Mapping[str, Any], **options: Any) -> IJBIdentification:
    return IJBIdentification(require_root(root, spec, folder=True), spec, **options)


def load_ijbc_1n(root: str | os.PathLike | None, spec: Mapping[str, Any], *, check_counts: bool = True,
                 keep_norm: bool = True, detector_weight: bool = True,
                 pooling: str = "media-mean-sum") -> IJBIdentification:
    """IJB-C 1:N over ``root`` = the ``IJBC`` folder (galleries G1/G2, mixed probes)."""
    return _load(root, spec, check_counts=check_counts, keep_norm=keep_norm, detector_weight=detector_weight,
                 pooling=pooling)


def load_ijbb_1n(root: str | os.PathLike | None, spec: Mapping[str, Any], *, check_counts: bool = True,
                 keep_norm: bool = True, detector_weight: bool = True,
                 pooling: str = "media-mean-sum") -> IJBIdentification:
    """IJB-B 1:N over ``root`` = the ``IJBB`` folder (galleries S1/S2, mixed probes)."""
    return _load(root, spec, check_counts=check_counts, keep_norm=keep_norm, detector_weight=detector_weight,
                 pooling=pooling)
