"""The shared pair-verification protocol (LFW, CFP-FP/FF, AgeDB-30, CALFW, CPLFW, folder, demo).

A :class:`PairProtocol` is an image list, ``pairs`` (``(N, 2)`` indices into it), ``labels`` (genuine = True) and
``folds`` (fold id per pair, contiguous, in the official order). ``evaluate`` scores each pair with the registered
score function of the ``score`` convention (:mod:`fr_bench.similarity`; default ``cosine``: the cosine of the
L2-normalised embeddings), the embeddings fused with the mirror image's as the ``flip`` convention says, and
computes, with :mod:`fr_bench.metrics` only:

* ``accuracy`` / ``accuracy_std`` under a named convention (group ``"accuracy"``):

  - ``kfold-grid`` (default; insightface ``verification.py``, the most-cited tables): 10 contiguous folds,
    threshold on squared L2 distance over the grid 0.00..3.99 picked on the other 9 folds; mean and population std;
  - ``kfold-exact``: same folds, threshold over every distinct score;
  - ``kfold-youden`` (FaceX-Zoo): threshold maximising TPR - FPR on the other folds; its spread is the standard
    error (``accuracy_sem``), recorded in ``details["accuracy_spread"]``;
  - ``kfold-angular`` (MagFace ``eval_1v1.py``): 10-fold on the angular distance arccos(cos)/pi after subtracting
    the training folds' mean embedding. It takes the RAW feature rows (not L2-normalised, and not the ``score``
    convention's scores): MagFace's feature files keep the norm and the mean it subtracts is that of the raw
    features. MagFace embeds no mirror image, so its numbers are reproduced with ``flip=none``;
  - ``best-threshold``: best accuracy over all thresholds on the whole set -- an optimistic oracle figure, flagged.

* ``tar@far=<f>`` for the spec's FAR list, read on the whole-set ROC under a named convention (group ``"tar"``:
  ``nearest`` default, ``strict``, ``interpolated``, ``nearest-reference``: :data:`fr_bench.metrics.TAR_CONVENTIONS`);
  the realised operating point goes to ``operating_points``.
  This is not insightface's per-fold "VAL@FAR" (threshold found on the training folds); the spec says so.
* ``eer``, ``auc``, ``xnorm`` (mean L2 norm of the embeddings as given, fused with the mirror image's as the
  ``flip`` convention says).

TAR@FAR, EER, AUC, the ROC and the distribution summary come from the shared path
:func:`fr_bench.protocols.scoring.score_verification`. Details: per-fold accuracies and thresholds, a downsampled
ROC (``details["roc"]``: ``far``, ``tar``, ``threshold``; <= 1000 points incl. both ends), the genuine/impostor
distribution summary and the pair counts. ``result.scores.pairs``: the :class:`~fr_bench.results.PairScores` of
:mod:`fr_bench.protocols.scoring` (``folds`` = the fold whose threshold judged the pair, ``correct``).

Confidence intervals (``evaluate(..., ci=0.95, n_boot=1000, seed=0)``), percentile bootstrap, seeded:

* ``tar@far=<f>`` and ``eer`` resample the independent unit: the subject (``"subject"``) when the image identities
  are known -- LFW's official tree, CALFW/CPLFW's LFW-style file names, the folder protocol's tree, the demo
  (:func:`identities_from_paths`; a pair of two subjects weighs ``w_a * w_b``) -- else the pair (``"pair"``):
  ``.bin`` packs carry no identities, and CFP's paths are not read as identities; pairs of one subject are
  correlated, so a pair-level interval is somewhat too narrow.
* ``accuracy`` keeps each fold's threshold as fitted and resamples PAIRS by default (``"pair"``): with 10 folds, the
  alternative ``accuracy_unit="fold"`` (an ``evaluate`` option) draws from only 10 fold accuracies, a coarse and
  too-narrow percentile interval; the pair bootstrap is the binomial-like uncertainty of the accuracy of these
  thresholds on this pair set (pairs treated as independent). ``best-threshold``: pairs only (one "fold").

Building a :class:`PairProtocol` from files (``.bin`` packs, official layouts, pair lists) is in
:mod:`fr_bench.protocols.pair_loading`; loader options in :mod:`fr_bench.protocols.options`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fr_bench.protocols.base import ImageSource, Protocol, ProtocolError, ProtocolResult
from fr_bench.protocols.conventions import FLIP_FEATURES, TAR_CONVENTIONS, check_flip
from fr_bench.protocols.scoring import Units, accuracy_interval, pair_record, score_verification
from fr_bench.results import ScoreRecords
from fr_bench.similarity import get_score

#: Accuracy conventions accepted by ``evaluate`` (first = default when the spec names none).
ACCURACY_CONVENTIONS = ("kfold-grid", "kfold-exact", "kfold-youden", "kfold-angular", "best-threshold")
#: The FAR targets a pair set (thousands of pairs: LFW's 3,000 impostors) reports when its spec lists none: only
#: 1e-3 is resolvable there (the metric layer's :data:`fr_bench.metrics.DEFAULT_FARS` suits IJB-sized sets).
PAIR_SET_FARS = (1e-3,)

OPTIMISTIC_FLAG = "optimistic: oracle threshold on the whole set (best-threshold accuracy, no held-out folds)"


_LFW_NAME = re.compile(r"^(?P<name>.+)_\d+\.[A-Za-z0-9]+$")


def identities_from_paths(images: ImageSource, pairs: np.ndarray, labels: np.ndarray) -> np.ndarray | None:
    """Identity of each image read from its relative path, or None when the paths do not tell it unambiguously.

    Two readings are tried: the first path component (``<identity>/<image>``: the LFW tree, the folder protocol's
    tree) and LFW's file naming ``<Name>_<NNNN>.<ext>`` (flat LFW-style folders: CALFW, CPLFW). A reading is kept
    only if it gives at least two identities and agrees with every label (genuine iff one identity), so a layout
    where it does not hold (CFP's ``<id>/frontal/NN.jpg``, ``.bin`` packs without paths) falls back to pairs.
    """
    rels = getattr(images, "relpaths", None)
    if rels is None or len(rels) != len(images):
        return None
    rels = [str(r).replace("\\", "/") for r in rels]
    readings = []
    if all("/" in r for r in rels):
        readings.append([r.split("/", 1)[0] for r in rels])
    matches = [_LFW_NAME.match(r.rsplit("/", 1)[-1]) for r in rels]
    if all(matches):
        readings.append([m["name"] for m in matches])
    for names in readings:
        ids = np.asarray(names)
        if np.unique(ids).size >= 2 and np.array_equal(ids[pairs[:, 0]] == ids[pairs[:, 1]], labels):
            return ids
    return None


# ---------------------------------------------------------------------------------------------------- protocol


class PairProtocol(Protocol):
    """A pair-verification benchmark bound to its files (see the module docstring for ``evaluate``).

    ``pairs`` index into ``images``; ``folds`` are contiguous fold ids in evaluation order (``n_folds == 0`` means
    no k-fold protocol: only ``best-threshold`` accuracy, flagged optimistic). ``n_pairs_total`` is the pair count
    of the benchmark files when some pairs were dropped by ``allow_missing``. ``identities`` (one name per image,
    optional) make the bootstrap resample subjects; when not given they are read from the image paths if that is
    unambiguous (:func:`identities_from_paths`), else pairs are resampled.
    """

    def __init__(
        self,
        spec: Mapping[str, Any],
        images: ImageSource,
        pairs: np.ndarray,
        labels: np.ndarray,
        folds: np.ndarray,
        *,
        n_folds: int,
        data_files: Sequence[str] = (),
        source: str = "",
        n_pairs_total: int | None = None,
        flags: Sequence[str] = (),
        flip_convention: str | None = None,
        identities: Sequence[str] | None = None,
    ) -> None:
        super().__init__(spec)
        self.name = str(self.spec.get("name", ""))
        self._images = images
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self.labels = np.asarray(labels, dtype=bool)
        self.folds = np.asarray(folds, dtype=np.int64)
        self.n_folds = int(n_folds)
        self.source = source
        if flip_convention is not None:
            self.flip_convention = check_flip(flip_convention, self.name)
        self._data_files = [str(f) for f in data_files]
        self.n_pairs_total = int(n_pairs_total) if n_pairs_total is not None else len(self.labels)
        self.load_flags = list(flags)
        n = len(self.pairs)
        if len(self.labels) != n or len(self.folds) != n:
            raise ValueError(f"{self.name}: {n} pairs, {len(self.labels)} labels and {len(self.folds)} fold ids")
        if n == 0:
            raise ProtocolError(f"{self.name}: no pairs to evaluate")
        if self.pairs.min() < 0 or self.pairs.max() >= len(images):
            raise ValueError(f"{self.name}: pair indices outside the image list of {len(images)} images")
        if n > 1 and (np.diff(self.folds) < 0).any():
            raise ValueError(f"{self.name}: fold ids must be contiguous and non-decreasing in pair order")
        if identities is None:
            self.identities = identities_from_paths(images, self.pairs, self.labels)
        else:
            self.identities = np.asarray(identities)
            if self.identities.shape != (len(images),):
                raise ValueError(f"{self.name}: {self.identities.size} identities for {len(images)} images")

    # -- Protocol interface ---------------------------------------------------------------------------------

    @property
    def images(self) -> ImageSource:
        return self._images

    @property
    def data_files(self) -> Sequence[str]:
        return list(self._data_files)

    @property
    def conventions(self) -> dict[str, list[str]]:
        allowed_acc = list(ACCURACY_CONVENTIONS) if self.n_folds >= 2 else ["best-threshold"]
        return {**self.spec_defaults({"accuracy": allowed_acc, "tar": TAR_CONVENTIONS}), **self.shared_conventions()}

    @property
    def fars(self) -> tuple[float, ...]:
        return tuple(float(f) for f in self.spec.get("metrics", {}).get("fars", PAIR_SET_FARS))

    # -- scoring --------------------------------------------------------------------------------------------

    def feature_rows(self, embeddings: np.ndarray, norms: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(raw feature rows as float64, norm of each row)``: rows used by pairs must not be all zeros; ``norms``
        (if given) are the caller's feature norms, recorded as ``xnorm``."""
        emb = self.check_embeddings(embeddings).astype(np.float64)
        own = np.linalg.norm(emb, axis=1)
        used = np.flatnonzero(np.bincount(self.pairs.ravel(), minlength=len(emb)))
        zero = used[own[used] == 0]
        if zero.size:
            raise ValueError(
                f"{self.name}: {zero.size} embedding rows used by pairs are all zeros (e.g. row {zero[0]})"
            )
        if norms is None:
            return emb, own
        feature_norms = np.asarray(norms, dtype=np.float64).reshape(-1)
        if feature_norms.shape != (len(emb),):
            raise ValueError(f"{self.name}: norms must have one value per image ({len(emb)}), got {np.shape(norms)}")
        return emb, feature_norms

    def pair_scores(self, emb: np.ndarray, score: str | None = None) -> np.ndarray:
        """Score of each pair under the registered score ``score`` (default cosine), from raw feature rows."""
        fn = get_score(score)
        prepared = fn.prepare(emb)
        return np.asarray(fn.rows(prepared[self.pairs[:, 0]], prepared[self.pairs[:, 1]]))

    def resampling_units(self) -> Units:
        """The bootstrap unit of each pair side: the identity (``"subject"``) when the image identities are known,
        else the pair (see the module docstring)."""
        if self.identities is None:
            return Units.per_pair(len(self.labels))
        return Units.from_values(self.identities[self.pairs[:, 0]], self.identities[self.pairs[:, 1]], "subject")

    def cluster_items(self, embeddings: np.ndarray, norms: np.ndarray | None = None) -> Any:
        """Every image an item labelled by its identity (:attr:`identities`); this protocol's pair list, scored by
        cosine, are the verification pairs that fix the default clustering threshold (``frbench cluster``)."""
        from fr_bench.protocols.base import ClusterItems

        if self.identities is None:
            raise ProtocolError(f"{self.name}: the identities of the images are unknown (no <identity>/<image> "
                                "paths): there is nothing to cluster against")
        cosine = get_score("cosine")
        feats = np.asarray(cosine.prepare(self.check_embeddings(embeddings).astype(np.float64)))
        scores = np.asarray(cosine.rows(feats[self.pairs[:, 0]], feats[self.pairs[:, 1]]), dtype=np.float64)
        return ClusterItems(feats, np.asarray(self.identities), self.images.keys(), "image", scores, self.labels,
                            f"the {self.name} pair list ({len(self.labels):,} pairs of the clustered images: not "
                            "held out)")

    def pair_qualities(self, image_quality: np.ndarray, *, how: str = "min",
                       skipped: np.ndarray | None = None) -> np.ndarray:
        """Pairwise quality of each scored pair (its two images' qualities by ``how``): the pairs of
        ``result.scores.pairs``, i.e. less those using a ``skipped`` image, as :meth:`evaluate` drops them."""
        from fr_bench.metrics import pair_quality

        q = np.asarray(image_quality, dtype=np.float64).reshape(-1)
        pairs = self.pairs
        if skipped is not None and skipped.size == len(self.images) and skipped.any():
            pairs = pairs[~skipped[pairs].any(axis=1)]
        return pair_quality(q[pairs[:, 0]], q[pairs[:, 1]], how=how)

    def _without_images(self, skipped: np.ndarray) -> PairProtocol:
        """This protocol less every pair that uses a skipped image (rows the extractor could not embed), flagged.

        Never silent: the result counts the pairs scored against the benchmark's total and says why.
        """
        keep = ~skipped[self.pairs].any(axis=1)
        if not keep.any():
            raise ProtocolError(f"{self.name}: every pair uses an image that could not be embedded")
        sub = copy.copy(self)
        sub.pairs, sub.labels, sub.folds = self.pairs[keep], self.labels[keep], self.folds[keep]
        sub.load_flags = self.load_flags + [
            f"{int(skipped.sum())} images could not be embedded (skipped): {int((~keep).sum())} of "
            f"{self.n_pairs_total} pairs not scored"
        ]
        return sub

    def evaluate(
        self,
        embeddings: np.ndarray,
        norms: np.ndarray | None = None,
        *,
        conventions: Mapping[str, str] | None = None,
        ci: float | None = None,
        n_boot: int = 1000,
        seed: int = 0,
        accuracy_unit: str = "pair",
    ) -> ProtocolResult:
        """See the module docstring. Rows that are not finite (images the extractor skipped with
        ``skip_bad_images``) drop the pairs that use them; the result is flagged and counts what was scored."""
        skipped = ~np.isfinite(np.asarray(embeddings)).all(axis=1)
        if skipped.ndim == 1 and skipped.any() and skipped.size == len(self.images):
            return self._without_images(skipped).evaluate(
                np.where(skipped[:, None], 1.0, embeddings), None if norms is None else np.where(skipped, 1.0, norms),
                conventions=conventions, ci=ci, n_boot=n_boot, seed=seed, accuracy_unit=accuracy_unit,
            )
        chosen = self.choose(conventions)
        emb, feature_norms = self.feature_rows(embeddings, norms)
        scores = self.pair_scores(emb, chosen["score"])
        result = ProtocolResult(protocol=self.name, metrics={}, flags=list(self.load_flags), conventions=dict(chosen))
        result.details["score"] = self.describe_score(chosen)
        correct, acc_folds, acc = self._accuracy(result, emb, scores, chosen["accuracy"])
        # TAR@FAR, EER, AUC, ROC, distribution (+ their intervals): one sort, the shared path
        units = self.resampling_units()
        score_verification(result, scores, self.labels, fars=self.fars, convention=chosen["tar"], units=units, ci=ci,
                           n_boot=n_boot, seed=seed)
        result.metrics["xnorm"] = float(feature_norms[np.unique(self.pairs)].mean())
        result.details["xnorm"] = (f"mean L2 norm of the embeddings of the images in scored pairs "
                                   f"({FLIP_FEATURES[chosen['flip']]})")
        result.details["counts"] = self._counts()
        result.provenance = {"source": self.source, "data_files": list(self._data_files)}
        result.scores = ScoreRecords(pairs=pair_record(scores, self.labels, units, folds=acc_folds, correct=correct))
        if ci is not None:
            self._accuracy_interval(result, correct, acc_folds, acc, accuracy_unit, ci=ci, n_boot=n_boot, seed=seed)
        return result

    def _accuracy(self, result: ProtocolResult, emb: np.ndarray, scores: np.ndarray,
                  convention: str) -> tuple[np.ndarray, np.ndarray, Any]:
        """Pair accuracy under ``convention`` into ``result`` (fractions); returns ``(correct, folds, k-fold
        result)``. ``kfold-angular`` takes the RAW feature rows, as MagFace's ``eval_1v1.py`` does (its feature
        files keep the norm): the training folds' mean raw feature is subtracted before the angle is taken."""
        from fr_bench.metrics import angular_heldout_scores, angular_kfold_accuracy, kfold_correct, pair_accuracy

        labels = self.labels
        if convention == "kfold-angular":
            emb_a, emb_b = emb[self.pairs[:, 0]], emb[self.pairs[:, 1]]
            acc = angular_kfold_accuracy(emb_a, emb_b, labels, n_folds=self.n_folds)
            judged = angular_heldout_scores(emb_a, emb_b, n_folds=self.n_folds)
        else:
            acc = pair_accuracy(scores, labels, convention=convention, n_folds=max(self.n_folds, 2))
            judged = scores
        correct, acc_folds = kfold_correct(judged, labels, accuracy=acc)
        result.metrics["accuracy"] = float(acc.mean)
        if acc.optimistic:
            result.details["accuracy_spread"] = "none: one threshold chosen and scored on the whole set"
            result.flags.append(OPTIMISTIC_FLAG)
        elif acc.reported_spread == "sem":
            result.metrics["accuracy_std"] = float(acc.std)
            result.metrics["accuracy_sem"] = float(acc.sem)
            result.details["accuracy_spread"] = "sem: std(ddof=1) / sqrt(folds) over folds, the convention's spread"
        else:
            result.metrics["accuracy_std"] = float(acc.std)
            result.details["accuracy_spread"] = "std: population std (ddof=0) over folds"
        result.details["accuracy_folds"] = {
            "accuracies": np.asarray(acc.fold_accuracies, dtype=np.float64),
            "thresholds": np.asarray(acc.fold_thresholds, dtype=np.float64),
            "train_accuracies": np.asarray(acc.train_accuracies, dtype=np.float64),
            "fold_sizes": np.bincount(acc_folds),
        }
        if not acc.optimistic:
            official = np.bincount(self.folds, minlength=self.n_folds)
            if not np.array_equal(official, np.bincount(acc_folds, minlength=self.n_folds)):
                result.flags.append(
                    "k-fold accuracy splits the scored pairs into equal contiguous folds, which differ from the "
                    f"benchmark's folds here (fold sizes {official.tolist()})"
                )
        return correct, acc_folds, acc

    def _counts(self) -> dict[str, int]:
        labels = self.labels
        return {"pairs": int(len(labels)), "genuine": int(labels.sum()), "impostor": int((~labels).sum()),
                "images": int(len(self.images)), "folds": int(self.n_folds), "n_pairs_scored": int(len(labels)),
                "n_pairs_total": int(self.n_pairs_total)}

    def _accuracy_interval(self, result: ProtocolResult, correct: np.ndarray, acc_folds: np.ndarray, acc: Any,
                           accuracy_unit: str, *, ci: float, n_boot: int, seed: int) -> None:
        if acc.optimistic and accuracy_unit == "fold":
            raise ValueError(f"{self.name}: accuracy_unit='fold' needs a k-fold accuracy convention, not "
                             "best-threshold")
        result.intervals["accuracy"] = accuracy_interval(correct, acc_folds, accuracy_unit, ci=ci, n_boot=n_boot,
                                                         seed=seed)
        if accuracy_unit == "fold":
            result.flags.append(f"accuracy interval resamples the {acc.n_folds} folds: coarse (at most "
                                f"{acc.n_folds} distinct fold accuracies)")
