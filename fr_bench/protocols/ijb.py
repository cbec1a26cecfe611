"""IJB-B / IJB-C 1:1 template verification (the files: :mod:`fr_bench.protocols.ijb_meta`).

The image list is every line of ``*_face_tid_mid.txt`` (images ``loose_crop/<name>``, aligned at load with their 5
points); each template's feature pools its images' features (:mod:`fr_bench.protocols.ijb_templates`, pooling
conventions) and each template pair is scored once (:func:`fr_bench.protocols.ijb_templates.pair_scores`). Reported
numbers come from :mod:`fr_bench.metrics` only, through :func:`fr_bench.protocols.scoring.score_verification`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.metrics import DEFAULT_FARS
from fr_bench.protocols.array_images import ArrayImageSource
from fr_bench.protocols.base import ImageSource, Protocol, ProtocolError, ProtocolResult, require_root
from fr_bench.protocols.columns import check_count
from fr_bench.protocols.conventions import TAR_CONVENTIONS, default_first
from fr_bench.protocols.ijb_meta import (
    read_ijb_meta,
    read_template_pairs,
    read_template_subjects,
    subjects_of,
    template_lookup,
)
from fr_bench.protocols.ijb_templates import POOLINGS, TemplateLayout, pair_scores, pool_templates, pooling_weights
from fr_bench.similarity import get_score

def spec_file(root: Path, spec: Mapping[str, Any], key: str) -> Path:
    files = spec.get("files", {})
    if key not in files:
        raise ProtocolError(f"{spec.get('spec_file', spec.get('name'))}: [files] has no {key!r} entry")
    return root / files[key]


class IJBBase(Protocol):
    """Shared by 1:1 and 1:N: the image list (every line of face_tid_mid) and per-image template pooling."""

    def __init__(self, root: Path, spec: Mapping[str, Any], *, check_counts: bool, keep_norm: bool,
                 detector_weight: bool, pooling: str) -> None:
        super().__init__(spec)
        self.name = spec.get("name", "")
        self.root = root
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
        self.keep_norm, self.detector_weight, self.pooling = keep_norm, detector_weight, pooling
        counts = spec.get("counts", {})
        self.meta = read_ijb_meta(spec_file(root, spec, "face_tid_mid"), spec_file(root, spec, "name_5pts_score"))
        check_count(self.meta.face_tid_mid, "images (lines)", len(self.meta.names), counts.get("images"),
                     check_counts)
        self.layout = TemplateLayout.build(self.meta.templates, self.meta.medias)
        check_count(self.meta.face_tid_mid, "distinct templates", self.layout.n_templates,
                     counts.get("templates"), check_counts)
        images_dir = spec.get("files", {}).get("images_dir", "loose_crop")
        self._images = ArrayImageSource(root, np.char.add(images_dir + "/", self.meta.names.astype(str)),
                                        self.meta.landmarks)
        self._files = [str(self.meta.face_tid_mid), str(self.meta.name_5pts_score), str(root / images_dir)]

    @property
    def images(self) -> ImageSource:
        return self._images

    @property
    def data_files(self) -> Sequence[str]:
        return list(self._files)

    def template_features(self, embeddings: np.ndarray, norms: np.ndarray | None = None,
                          pooling: str | None = None, score: str | None = None) -> np.ndarray:
        """Template features (rows in ``self.layout.template_ids`` order) from raw image embeddings: the pooled
        sums, prepared by the registered score ``score`` (default cosine: L2-normalised)."""
        emb = self.check_embeddings(embeddings)
        pooling = pooling or self.pooling
        if norms is None and (not self.keep_norm):
            norms = np.linalg.norm(emb, axis=1)
        weights = pooling_weights(self.layout, pooling, norms=None if norms is None else np.asarray(norms, float),
                                  keep_norm=self.keep_norm,
                                  det_scores=self.meta.det_scores.astype(np.float64) if self.detector_weight else None)
        return get_score(score).prepare(pool_templates(emb, self.layout, weights, normalise=False))

    def pooling_conventions(self, pooling: str, flip: str) -> dict[str, str]:
        """The pooling, image-feature and flip conventions a result records."""
        return {"pooling": pooling, "image_feature": ("raw (norm kept)" if self.keep_norm else "L2-normalised")
                + (" x detector score" if self.detector_weight else ""), "flip": flip}


class IJBVerification(IJBBase):
    """IJB-B/C 1:1 template verification (insightface ``eval_ijbc.py`` procedure by default)."""

    def __init__(self, root: Path, spec: Mapping[str, Any], *, check_counts: bool = True, keep_norm: bool = True,
                 detector_weight: bool = True, pooling: str = "media-mean-sum") -> None:
        super().__init__(root, spec, check_counts=check_counts, keep_norm=keep_norm,
                         detector_weight=detector_weight, pooling=pooling)
        pair_path = spec_file(root, spec, "template_pair_label")
        a, b, self.labels = read_template_pairs(pair_path)
        check_count(pair_path, "pairs (lines)", len(self.labels), spec.get("counts", {}).get("pairs"), check_counts)
        ids = self.layout.template_ids
        self.template_a, self.template_b = a, b
        self.row_a = template_lookup(ids, a, pair_path, self.meta.face_tid_mid.name)
        self.row_b = template_lookup(ids, b, pair_path, self.meta.face_tid_mid.name)
        self._files.append(str(pair_path))
        self.subjects = read_template_subjects(root, spec)

    @property
    def conventions(self) -> dict[str, list[str]]:
        return {**self.spec_defaults({"tar": TAR_CONVENTIONS}), "pooling": default_first(POOLINGS, self.pooling),
                **self.shared_conventions()}

    def pair_subjects(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Subject of each pair's two templates from the 1:N CSVs (-1 where absent), or None without CSVs."""
        if self.subjects is None:
            return None
        if getattr(self, "_pair_subjects", None) is None:
            subj_ids, subj_of = self.subjects
            self._pair_subjects = (subjects_of(subj_ids, subj_of, self.template_a),
                                   subjects_of(subj_ids, subj_of, self.template_b))
        return self._pair_subjects

    def resampling_units(self) -> Any:
        """Bootstrap unit of each pair side: the subject when the 1:N CSVs map templates to subjects (a template
        missing from them stands as its own unit, flagged), else the template (flagged: likely too narrow)."""
        from fr_bench.protocols.scoring import Units

        if self.subjects is None:
            return Units.from_values(self.template_a, self.template_b, "template", note=(
                "intervals resample templates: no 1:N CSVs give template -> subject here, and templates of one "
                "subject are correlated, so the intervals are likely too narrow"))
        sa, sb = self.pair_subjects()
        missing = (sa < 0) | (sb < 0)
        if not missing.any():
            return Units.from_values(sa, sb, "subject")
        # a template without subject: its own unit, coded apart from every subject id
        va = np.where(sa >= 0, sa.astype(np.float64), -1.0 - self.template_a)
        vb = np.where(sb >= 0, sb.astype(np.float64), -1.0 - self.template_b)
        return Units.from_values(va, vb, "subject", note=(
            f"{int(missing.sum()):,} pairs involve templates absent from the 1:N CSVs: each such template is "
            "resampled as its own unit"))

    def pair_qualities(self, image_quality: np.ndarray, *, how: str = "min",
                       skipped: np.ndarray | None = None) -> np.ndarray:
        """Pairwise quality of each template pair, in the pair file's order: a template's quality is the plain mean
        of its images' qualities (our choice: no IJB release defines template quality; media are not weighted),
        then the two templates' qualities are combined by ``how`` (IJB needs every image: ``skipped`` is unused)."""
        from fr_bench.metrics import pair_quality

        q = np.asarray(image_quality, dtype=np.float64).reshape(-1)
        per = self.layout.image_template
        n_t = self.layout.n_templates
        template_q = np.bincount(per, weights=q, minlength=n_t) / np.bincount(per, minlength=n_t)
        return pair_quality(template_q[self.row_a], template_q[self.row_b], how=how)

    def evaluate(self, embeddings: np.ndarray, norms: np.ndarray | None = None, *,
                 conventions: Mapping[str, str] | None = None, ci: float | None = None, n_boot: int = 1000,
                 seed: int = 0) -> ProtocolResult:
        """TAR@FAR / EER / AUC of the template pairs (shared path ``scoring.score_verification``).

        Intervals (``ci``): resample subjects when the 1:N CSVs give template -> subject, else templates (flagged:
        correlated templates make them too narrow); the EER interval is skipped on full-size sets (cost
        ``n_boot x n_pairs``, flagged). ``result.scores.pairs``: the ``scoring`` record (no accuracy, so no
        ``folds``/``correct``) with extras ``template_a``/``template_b`` and, with the CSVs,
        ``subject_a``/``subject_b`` (-1: template not in the CSVs), all int32.
        """
        from fr_bench.protocols.scoring import pair_record, score_verification
        from fr_bench.results import ScoreRecords

        chosen = self.choose(conventions)
        tar_conv, pooling = chosen["tar"], chosen["pooling"]
        feats = self.template_features(embeddings, norms, pooling, chosen["score"])
        scores = pair_scores(feats, self.row_a, self.row_b, score=get_score(chosen["score"]))
        fars = tuple(self.spec.get("metrics", {}).get("fars", DEFAULT_FARS))
        result = ProtocolResult(protocol=self.name, metrics={}, conventions={
            **chosen, **self.pooling_conventions(pooling, chosen["flip"])})
        result.details["score"] = self.describe_score(chosen, "template features pooled from")
        units = self.resampling_units() if ci is not None else None  # else after the ROC: a lower memory peak
        score_verification(result, scores, self.labels, fars=fars, convention=tar_conv,
                           units=units, ci=ci, n_boot=n_boot, seed=seed)
        units = units if units is not None else self.resampling_units()
        result.details["counts"].update({"images": len(self.meta.names), "templates": self.layout.n_templates,
                                         "pairs": len(self.labels)})
        extra = {"template_a": self.template_a.astype(np.int32, copy=False),  # int32 already for IJB's ids
                 "template_b": self.template_b.astype(np.int32, copy=False)}
        if self.subjects is not None:
            sa, sb = self.pair_subjects()
            extra.update({"subject_a": sa.astype(np.int32, copy=False), "subject_b": sb.astype(np.int32, copy=False)})
            missing = int(((sa < 0) | (sb < 0)).sum())
            if missing:
                result.flags.append(f"{missing:,} pairs involve templates absent from the 1:N CSVs: their subject is "
                                    "-1 in scores['subject_a'/'subject_b']")
        else:
            result.details["subjects"] = ("no 1:N CSVs in meta/: the 1:1 files carry no subject ids, so "
                                          "subject-level bootstrap is unavailable (intervals resample templates)")
        result.scores = ScoreRecords(pairs=pair_record(scores, self.labels, units, **extra))
        return result


def _load(root: str | os.PathLike | None, spec: Mapping[str, Any], **options: Any) -> IJBVerification:
    return IJBVerification(require_root(root, spec, folder=True), spec, **options)


def load_ijbc(root: str | os.PathLike | None, spec: Mapping[str, Any], *, check_counts: bool = True,
              keep_norm: bool = True, detector_weight: bool = True, pooling: str = "media-mean-sum") -> IJBVerification:
    """IJB-C 1:1 over ``root`` = the ``IJBC`` folder (``meta/``, ``loose_crop/``)."""
    return _load(root, spec, check_counts=check_counts, keep_norm=keep_norm, detector_weight=detector_weight,
                 pooling=pooling)


def load_ijbb(root: str | os.PathLike | None, spec: Mapping[str, Any], *, check_counts: bool = True,
              keep_norm: bool = True, detector_weight: bool = True, pooling: str = "media-mean-sum") -> IJBVerification:
    """IJB-B 1:1 over ``root`` = the ``IJBB`` folder (``meta/``, ``loose_crop/``)."""
    return _load(root, spec, check_counts=check_counts, keep_norm=keep_norm, detector_weight=detector_weight,
                 pooling=pooling)
