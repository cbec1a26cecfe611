"""The shared pair-verification protocol (LFW, CFP-FP/FF, AgeDB-30, CALFW, CPLFW, folder, demo).

A :class:`PairProtocol` is an image list, ``pairs`` (``(N, 2)`` indices into it), ``labels`` (genuine = True) and
``folds`` (fold id per pair, contiguous, in the official order). ``evaluate`` scores each pair with the cosine of
the L2-normalised embeddings (fused with the mirror image's as the ``flip`` convention says) and computes, with :mod:`fr_bench.metrics` only:

* ``accuracy`` / ``accuracy_std`` under a named convention (group ``"accuracy"``):

  - ``kfold-grid`` (default; insightface ``verification.py``, the most-cited tables): 10 contiguous folds,
    threshold on squared L2 distance over the grid 0.00..3.99 picked on the other 9 folds; mean and population std;
  - ``kfold-exact``: same folds, threshold over every distinct score;
  - ``kfold-youden`` (FaceX-Zoo): threshold maximising TPR - FPR on the other folds; its spread is the standard
    error (``accuracy_sem``), recorded in ``details["accuracy_spread"]``;
  - ``kfold-angular`` (MagFace ``eval_1v1.py``): 10-fold on the angular distance arccos(cos)/pi after subtracting
    the training folds' mean embedding;
  - ``best-threshold``: best accuracy over all thresholds on the whole set -- an optimistic oracle figure, flagged.

* ``tar@far=<f>`` for the spec's FAR list, read on the whole-set ROC under a named convention (group ``"tar"``:
  ``nearest`` default, ``strict``, ``interpolated``); the realised operating point goes to ``operating_points``.
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

The module also holds the option helpers and the ``.bin`` builder shared by the pair-set loaders.
"""

from __future__ import annotations

import copy

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ImageSource, Protocol, ProtocolError, ProtocolResult
from fr_bench.protocols.conventions import FLIP_FEATURES, TAR_CONVENTIONS, check_flip
from fr_bench.results import ScoreRecords
from fr_bench.protocols.scoring import (
    Units,
    accuracy_interval,
    pair_record,
    score_verification,
)

#: Accuracy conventions accepted by ``evaluate`` (first = default when the spec names none).
ACCURACY_CONVENTIONS = ("kfold-grid", "kfold-exact", "kfold-youden", "kfold-angular", "best-threshold")
#: Default FAR list when the spec gives none.
DEFAULT_FARS = (1e-3,)

OPTIMISTIC_FLAG = "optimistic: oracle threshold on the whole set (best-threshold accuracy, no held-out folds)"


# ---------------------------------------------------------------------------------------------------- options


def as_bool(value: Any, name: str) -> bool:
    """An option value as a bool (accepts bools, 0/1 and the strings true/false/yes/no/1/0)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
        return value.strip().lower() in ("true", "yes", "1", "on")
    raise ValueError(f"option {name}={value!r}: expected true or false")


def as_count(value: Any, name: str, *, allow_none: bool = False) -> int | None:
    """An option value as a non-negative int (strings of digits accepted; ``None``/"none" if ``allow_none``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "any", "")):
        if allow_none:
            return None
        raise ValueError(f"option {name} needs a number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"option {name}={value!r}: expected a whole number") from None
    if isinstance(value, float) and value != number or number < 0:
        raise ValueError(f"option {name}={value!r}: expected a whole number >= 0")
    return number


class _FromSpec:
    """Sentinel default: take the value from the protocol spec."""

    def __repr__(self) -> str:
        return "<from spec>"


FROM_SPEC: Any = _FromSpec()


def expected_count(spec: Mapping[str, Any], value: Any, key: str = "pairs") -> int | None:
    """The pair count to enforce: the spec's ``[counts] <key>`` unless the option overrides it (None = no check)."""
    if value is FROM_SPEC:
        count = spec.get("counts", {}).get(key)
        return None if count is None else int(count)
    return as_count(value, f"expected_{key}", allow_none=True)


def contiguous_folds(n_pairs: int, n_folds: int) -> np.ndarray:
    """Fold id per pair for ``n_folds`` contiguous folds, sizes as ``np.array_split`` (the first ``n % k`` folds
    one larger), which is also scikit-learn ``KFold(shuffle=False)``'s layout."""
    if n_folds <= 0:
        return np.zeros(n_pairs, dtype=np.int64)
    sizes = [len(c) for c in np.array_split(np.arange(n_pairs), n_folds)]
    return np.repeat(np.arange(n_folds, dtype=np.int64), sizes)


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
        defaults = self.spec.get("conventions", {})
        acc_default = defaults.get("accuracy", allowed_acc[0])
        if acc_default not in allowed_acc:
            acc_default = allowed_acc[0]
        tar_default = defaults.get("tar", TAR_CONVENTIONS[0])
        return {
            "accuracy": [acc_default] + [c for c in allowed_acc if c != acc_default],
            "tar": [tar_default] + [c for c in TAR_CONVENTIONS if c != tar_default],
            **self.shared_conventions(),
        }

    @property
    def fars(self) -> tuple[float, ...]:
        return tuple(float(f) for f in self.spec.get("metrics", {}).get("fars", DEFAULT_FARS))

    # -- scoring --------------------------------------------------------------------------------------------

    def unit_embeddings(self, embeddings: np.ndarray, norms: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """``(L2-normalised rows, norm of each row)``; ``norms`` (if given) are the caller's feature norms."""
        emb = self.check_embeddings(embeddings).astype(np.float64)
        own = np.linalg.norm(emb, axis=1)
        used = np.flatnonzero(np.bincount(self.pairs.ravel(), minlength=len(emb)))
        zero = used[own[used] == 0]
        if zero.size:
            raise ValueError(
                f"{self.name}: {zero.size} embedding rows used by pairs are all zeros (e.g. row {zero[0]})"
            )
        if norms is None:
            feature_norms = own
        else:
            feature_norms = np.asarray(norms, dtype=np.float64).reshape(-1)
            if feature_norms.shape != (len(emb),):
                raise ValueError(
                    f"{self.name}: norms must have one value per image ({len(emb)}), got {np.shape(norms)}"
                )
        safe = np.where(own > 0, own, 1.0)
        return emb / safe[:, None], feature_norms

    def pair_scores(self, unit: np.ndarray) -> np.ndarray:
        """Cosine similarity of each pair (rows of ``unit`` are L2-normalised)."""
        return np.einsum("ij,ij->i", unit[self.pairs[:, 0]], unit[self.pairs[:, 1]])

    def resampling_units(self) -> Units:
        """The bootstrap unit of each pair side: the identity (``"subject"``) when the image identities are known,
        else the pair (see the module docstring)."""
        if self.identities is None:
            return Units.per_pair(len(self.labels))
        return Units.from_values(self.identities[self.pairs[:, 0]], self.identities[self.pairs[:, 1]], "subject")

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
        from fr_bench.metrics import pair_accuracy
        from fr_bench.metrics import angular_heldout_scores, angular_kfold_accuracy, kfold_correct

        skipped = ~np.isfinite(np.asarray(embeddings)).all(axis=1)
        if skipped.ndim == 1 and skipped.any() and skipped.size == len(self.images):
            return self._without_images(skipped).evaluate(
                np.where(skipped[:, None], 1.0, embeddings), None if norms is None else np.where(skipped, 1.0, norms),
                conventions=conventions, ci=ci, n_boot=n_boot, seed=seed, accuracy_unit=accuracy_unit,
            )
        chosen = self.choose(conventions)
        unit, feature_norms = self.unit_embeddings(embeddings, norms)
        scores = self.pair_scores(unit)
        labels = self.labels
        result = ProtocolResult(protocol=self.name, metrics={}, flags=list(self.load_flags))
        result.conventions = {
            "accuracy": chosen["accuracy"],
            "tar": chosen["tar"],
            "score": f"cosine of L2-normalised {FLIP_FEATURES[chosen['flip']]}",
            "flip": chosen["flip"],
        }

        # accuracy (fractions, not percent)
        acc_conv = chosen["accuracy"]
        if acc_conv == "kfold-angular":  # MagFace eval_1v1.py: training-fold mean subtracted, angular distance
            emb_a, emb_b = unit[self.pairs[:, 0]], unit[self.pairs[:, 1]]
            acc = angular_kfold_accuracy(emb_a, emb_b, labels, n_folds=self.n_folds)
            judged = angular_heldout_scores(emb_a, emb_b, n_folds=self.n_folds)
        else:
            acc = pair_accuracy(scores, labels, convention=acc_conv, n_folds=max(self.n_folds, 2))
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

        # TAR@FAR, EER, AUC, ROC, distribution (+ their intervals): one sort, the shared path
        units = self.resampling_units()
        score_verification(result, scores, labels, fars=self.fars, convention=chosen["tar"], units=units, ci=ci,
                           n_boot=n_boot, seed=seed)
        used = np.unique(self.pairs)
        result.metrics["xnorm"] = float(feature_norms[used].mean())
        result.details["counts"] = {
            "pairs": int(len(labels)),
            "genuine": int(labels.sum()),
            "impostor": int((~labels).sum()),
            "images": int(len(self.images)),
            "folds": int(self.n_folds),
            "n_pairs_scored": int(len(labels)),
            "n_pairs_total": int(self.n_pairs_total),
        }
        result.details["xnorm"] = (f"mean L2 norm of the embeddings of the images in scored pairs "
                                   f"({FLIP_FEATURES[chosen['flip']]})")
        result.provenance = {"source": self.source, "data_files": list(self._data_files)}
        result.scores = ScoreRecords(pairs=pair_record(scores, labels, units, folds=acc_folds, correct=correct))
        if ci is not None:
            if acc.optimistic and accuracy_unit == "fold":
                raise ValueError(f"{self.name}: accuracy_unit='fold' needs a k-fold accuracy convention, not "
                                 "best-threshold")
            result.intervals["accuracy"] = accuracy_interval(correct, acc_folds, accuracy_unit, ci=ci, n_boot=n_boot,
                                                             seed=seed)
            if accuracy_unit == "fold":
                result.flags.append(f"accuracy interval resamples the {acc.n_folds} folds: coarse (at most "
                                    f"{acc.n_folds} distinct fold accuracies)")
        return result


# ---------------------------------------------------------------------------------------------------- shared loading


def bin_protocol(
    path: Path,
    spec: Mapping[str, Any],
    *,
    expected_pairs: Any = FROM_SPEC,
    n_folds: int | None = None,
) -> PairProtocol:
    """A :class:`PairProtocol` over an insightface ``.bin`` pack: pair k = images 2k, 2k+1; contiguous folds."""
    from fr_bench.protocols.binpack import read_bin
    from fr_bench.protocols.images import BinPackImageSource

    bins, issame = read_bin(path, expected_count(spec, expected_pairs))
    n = len(issame)
    k = int(spec.get("counts", {}).get("folds", 10)) if n_folds is None else n_folds
    images = BinPackImageSource(path, 2 * n, bins=bins)
    pairs = np.arange(2 * n, dtype=np.int64).reshape(n, 2)
    return PairProtocol(
        spec, images, pairs, issame, contiguous_folds(n, k), n_folds=k, data_files=[str(path)], source="bin"
    )


def pack_or_official(
    base: Path,
    spec: Mapping[str, Any],
    format: str,
    *,
    official_found: bool,
    official_what: str,
    landmarks: str | None,
    aligned: bool,
    expected_pairs: Any,
    build_official: Callable[[], PairProtocol],
) -> PairProtocol:
    """The one rule for benchmarks shipped both as an official layout and as an insightface ``.bin`` pack.

    ``format``: ``"bin"``, ``"official"`` or ``"auto"``, which takes the official layout when it is present
    (``official_found``) and either ``landmarks``/``aligned`` says how to align its images or no pack exists, and the
    pack otherwise. ``official_what`` names the official files in error messages; ``build_official`` builds that
    protocol. Packs are looked up under the spec's ``[files] bin`` names.
    """
    if format not in ("auto", "official", "bin"):
        raise ValueError(f"option format={format!r}: choose auto, official or bin")
    bin_names = spec.get("files", {}).get("bin", [])
    bin_names = [bin_names] if isinstance(bin_names, str) else list(bin_names)
    pack = find_bin(base, bin_names)
    if format == "auto":
        if base.is_file() and pack is None:
            raise ProtocolError(f"{base}: a {spec.get('name', 'protocol')} root file must be a .bin pack")
        format = "official" if official_found and (landmarks is not None or aligned or pack is None) else "bin"
        if format == "bin" and pack is None:
            wanted = f"{official_what} (official layout) nor " if official_what else ""
            raise ProtocolError(f"{base}: found neither {wanted}{', '.join(bin_names)} (insightface pack)"
                                if wanted else f"{base}: no {' or '.join(bin_names)} found")
    if format == "bin":
        if pack is None:
            raise ProtocolError(f"{base}: no {' or '.join(bin_names)} found")
        if landmarks is not None or aligned:
            raise ValueError("options landmarks/aligned apply to the official layout, not to a .bin pack")
        return bin_protocol(pack, spec, expected_pairs=expected_pairs)
    if not official_found:
        raise ProtocolError(f"{base}: {official_what or 'no official layout is supported for this benchmark'}"
                            f"{' not found' if official_what else '; use the .bin pack'}")
    return build_official()


def find_bin(root: Path, names: Sequence[str]) -> Path | None:
    """``root`` itself if it is a ``.bin`` file, else the first ``root/<name>`` that exists, else None."""
    if root.is_file():
        if root.suffix.lower() == ".bin":
            return root
        return None
    for name in names:
        cand = root / name
        if cand.is_file():
            return cand
    return None


def file_pair_protocol(
    spec: Mapping[str, Any],
    root: Path,
    image_dir: Path,
    rel_a: Sequence[str],
    rel_b: Sequence[str],
    labels: Sequence[bool],
    folds: np.ndarray,
    n_folds: int,
    where: Sequence[tuple[str, int]],
    *,
    landmarks: str | Path | None,
    aligned: bool,
    allow_missing: bool,
    data_files: Sequence[str],
    source: str,
    flags: Sequence[str] = (),
) -> PairProtocol:
    """A :class:`PairProtocol` over image files ``image_dir/<rel>`` listed by a pair file.

    ``where[k]`` is the (file, line) that defined pair ``k``, for errors. Images must come with a landmark file
    (``landmarks``, see :func:`fr_bench.protocols.images.read_landmarks`; paths relative to ``image_dir`` or to
    ``root``) or be declared already aligned (``aligned=True``, 112x112 checked on load). With ``allow_missing``,
    pairs whose image file (or landmark line) is missing are dropped and flagged; otherwise the first one raises.
    """
    from fr_bench.protocols.base import file_error
    from fr_bench.protocols.images import FileImageSource, read_landmarks

    name = spec.get("name", "protocol")
    if landmarks is None and not aligned:
        raise ProtocolError(
            f"{image_dir}: {name} images in the official layout are not aligned 112x112 crops. Pass "
            "landmarks=PATH (lines '<relative path> x1 y1 ... x5 y5 [score]'; `frbench landmarks ROOT -o FILE` "
            "makes one with the shipped detector) to align them, aligned=True if this tree already holds aligned "
            "112x112 crops, or use the benchmark's .bin pack"
        )
    if landmarks is not None and aligned:
        raise ValueError(f"{name}: give either landmarks=PATH or aligned=True, not both")
    n = len(labels)
    unique: dict[str, int] = {}
    first_use: list[int] = []
    for k, rel in enumerate(r for pair in zip(rel_a, rel_b) for r in pair):
        if rel not in unique:
            unique[rel] = len(unique)
            first_use.append(k // 2)
    rels = list(unique)
    try:
        prefix = image_dir.relative_to(root).as_posix() if image_dir != root else ""
    except ValueError:
        prefix = ""
    prefix = f"{prefix}/" if prefix else ""
    missing = np.array([not (image_dir / rel).is_file() for rel in rels], dtype=bool)
    why = ["image file not found"] * len(rels)
    table_rows = None
    if landmarks is not None:
        table = read_landmarks(landmarks)
        table_rows = np.full(len(rels), -1, dtype=np.int64)
        for i, rel in enumerate(rels):
            row = table.lookup(rel, prefix + rel)
            if row is None:
                if not missing[i]:
                    why[i] = f"no landmarks for it in {table.path}"
                missing[i] = True
            else:
                table_rows[i] = row
        data_files = [*data_files, str(table.path)]
    if missing.any() and not allow_missing:
        i = int(np.flatnonzero(missing)[0])
        file, line = where[first_use[i]]
        raise file_error(
            file, line, f"{why[i]}: {image_dir / rels[i]} ({int(missing.sum())} such images in all; "
            "pass allow_missing=True to drop their pairs)"
        )
    index_a = np.array([unique[r] for r in rel_a], dtype=np.int64)
    index_b = np.array([unique[r] for r in rel_b], dtype=np.int64)
    keep_pair = ~(missing[index_a] | missing[index_b])
    flags = list(flags)
    if not keep_pair.all():
        flags.append(
            f"allow_missing: {int((~keep_pair).sum())} of {n} pairs dropped ({int(missing.sum())} images missing "
            f"or without landmarks); scored {int(keep_pair.sum())} pairs"
        )
    # compact the image list to images used by kept pairs, preserving order
    used = np.zeros(len(rels), dtype=bool)
    used[index_a[keep_pair]] = True
    used[index_b[keep_pair]] = True
    new_index = np.cumsum(used) - 1
    kept_rels = [r for r, u in zip(rels, used) if u]
    lm = None
    if table_rows is not None:
        lm = table.points[table_rows[used]]
    images = FileImageSource(image_dir, kept_rels, lm, key_prefix=prefix)
    if aligned:
        images.check_first()
    pairs = np.stack([new_index[index_a[keep_pair]], new_index[index_b[keep_pair]]], axis=1)
    return PairProtocol(
        spec,
        images,
        pairs,
        np.asarray(labels, dtype=bool)[keep_pair],
        np.asarray(folds)[keep_pair],
        n_folds=n_folds,
        data_files=[*data_files, str(image_dir)],
        source=source,
        n_pairs_total=n,
        flags=flags,
    )
