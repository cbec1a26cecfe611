"""K-FACE (Korean face dataset, AI Hub) verification as used by UNPG -- a documented PROPOSAL, not a confirmed layout.

Expected under ``root`` (docs/FORMATS.md "K-FACE")::

    <root>/<ID>/<S001..S006>/<L1..L30>/<E01..E03>/<C1..C20>.jpg   aligned 112x112 crops (made beforehand from each
                                                                  folder's bounding box / landmark information file)
    <root>/kface.Q1.txt ... kface.Q4.txt                          pair lists: <path A> <path B> <label 1|0>

(``lists_dir=`` points elsewhere for the lists.) Paths in the lists are relative to ``root``. The tier definitions
(which S/L/E/C make Q1..Q4) are not confirmed: the lists are read, never generated.

Per list: scores of the ``score`` convention (default cosine of the L2-normalised embeddings), by default of the
image and mirror embeddings concatenated (flip convention ``concat``, as UNPG's released evaluation does; ``sum`` and
``none`` selectable); TAR@FAR (1e-4, 1e-3, 1e-2, 1e-1; convention ``nearest`` by default as in the UNPG tables,
``strict``/``interpolated`` selectable). With 500 impostor pairs a list cannot resolve FAR below 2e-3 (needs
floor(far * n_impostor) >= 1): those are NaN and flagged, unless ``tar=nearest-reference`` is asked for by name: it
reads them at the nearest FPR as UNPG's tables do (TAR@FAR=1e-3 on 500 impostors), flagged as unsound.
Accuracy: ``best-threshold`` by default (UNPG's ``best_th``: the best threshold on the whole list, scored on the same
list -- an optimistic "oracle" figure, flagged);
``kfold-exact`` / ``kfold-grid`` are selectable (meaningful only if the list interleaves genuine and impostor pairs
across its 10 contiguous folds).

Intervals (``ci``), percentile bootstrap per list: ``<Q>/tar@far=<f>`` and ``<Q>/eer`` resample IDENTITIES (the
path's first component; a pair of two identities weighs ``w_a * w_b``), ``<Q>/accuracy`` resamples pairs with the
threshold(s) fixed as fitted (one unit per pair is what the accuracy bootstrap takes; best-threshold stays
optimistic). ``result.scores.pairs``: the :mod:`fr_bench.protocols.scoring` record over the lists concatenated in
order (``unit_a``/``unit_b`` identity codes shared by the lists, ``folds`` within each list, ``correct``) with the
extra ``list`` (int8 index into ``details["lists"]``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ImageSource, Protocol, ProtocolResult, file_error, require_root
from fr_bench.protocols.array_images import ArrayImageSource
from fr_bench.protocols.columns import check_count, read_columns
from fr_bench.protocols.conventions import TAR_CONVENTIONS
from fr_bench.protocols.scoring import Units, accuracy_interval, op_dict, pair_record, score_verification
from fr_bench.results import ScoreRecords
from fr_bench.similarity import get_score

LISTS = ("Q1", "Q2", "Q3", "Q4")
ACCURACY_CONVENTIONS = ("best-threshold", "kfold-exact", "kfold-grid")
PATH_PATTERN = re.compile(r"^[^/\s]+/S\d+/L\d+/E\d+/C\d+\.[A-Za-z]+$")


def read_kface_list(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(paths A, paths B, labels int8) of a K-FACE pair list; paths must follow ``<ID>/S../L../E../C...<ext>``."""
    a, b, y = read_columns(path, (str, str, int))
    bad = np.flatnonzero((y != 0) & (y != 1))
    if bad.size:
        raise file_error(path, int(bad[0]) + 1, f"label must be 1 (genuine) or 0 (impostor), found {y[bad[0]]}")
    for col, paths in ((1, a), (2, b)):
        for i, p in enumerate(paths.tolist()):
            if not PATH_PATTERN.match(p):
                raise file_error(path, i + 1, f"field {col} {p!r} is not a K-FACE path <ID>/S###/L#/E##/C#.jpg")
    return a.astype(str), b.astype(str), y.astype(np.int8)


class KFace(Protocol):
    """K-FACE verification over the selected pair lists (one image list shared by all of them)."""

    #: UNPG's released K-FACE evaluation concatenates the image and mirror embeddings: its numbers need it.
    flip_convention = "concat"

    def __init__(self, root: Path, spec: Mapping[str, Any], *, lists: Sequence[str], lists_dir: Path,
                 check_counts: bool) -> None:
        super().__init__(spec)
        self.name = spec.get("name", "kface")
        lists = tuple(lists)
        unknown = [q for q in lists if q not in LISTS]
        if unknown or not lists:
            raise ValueError(f"lists must be a non-empty subset of {LISTS}, got {lists}")
        counts = spec.get("counts", {})
        self.lists = lists
        self.pairs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        pattern = spec.get("files", {}).get("pair_list", "kface.{list}.txt")
        self._files: list[str] = []
        all_paths = []
        for q in lists:
            path = lists_dir / pattern.format(list=q)
            a, b, y = read_kface_list(path)
            check_count(path, "pairs", len(y), counts.get(q), check_counts)
            self.pairs[q] = (a, b, y)
            all_paths += [a, b]
            self._files.append(str(path))
        uniq, first = np.unique(np.concatenate(all_paths), return_index=True)
        order = np.argsort(first, kind="stable")  # images in order of first appearance
        self.paths = uniq[order]
        rank = np.empty(len(uniq), dtype=np.int64)
        rank[order] = np.arange(len(uniq))
        self.rows = {q: (rank[np.searchsorted(uniq, a)], rank[np.searchsorted(uniq, b)]) for q, (a, b, _) in
                     self.pairs.items()}
        self.identities = np.array([p.split("/", 1)[0] for p in self.paths.tolist()])  # <ID>/S../L../E../C..
        self._images = ArrayImageSource(root, self.paths, None, unaligned_hint="K-FACE crops must be aligned "
                                        "beforehand from each folder's information file")
        self._files.append(str(root))

    @property
    def images(self) -> ImageSource:
        return self._images

    @property
    def data_files(self) -> Sequence[str]:
        return list(self._files)

    @property
    def conventions(self) -> dict[str, list[str]]:
        return {**self.spec_defaults({"tar": TAR_CONVENTIONS, "accuracy": ACCURACY_CONVENTIONS}),
                **self.shared_conventions()}

    def pair_qualities(self, image_quality: np.ndarray, *, how: str = "min",
                       skipped: np.ndarray | None = None) -> np.ndarray:
        """Pairwise quality (the two images' qualities by ``how``) of the selected lists concatenated in order, as
        ``result.scores.pairs`` holds them (K-FACE needs every image: ``skipped`` changes nothing)."""
        from fr_bench.metrics import pair_quality

        q = np.asarray(image_quality, dtype=np.float64).reshape(-1)
        ra = np.concatenate([self.rows[name][0] for name in self.lists])
        rb = np.concatenate([self.rows[name][1] for name in self.lists])
        return pair_quality(q[ra], q[rb], how=how)

    def evaluate(self, embeddings: np.ndarray, norms: np.ndarray | None = None, *,
                 conventions: Mapping[str, str] | None = None, ci: float | None = None, n_boot: int = 1000,
                 seed: int = 0) -> ProtocolResult:
        """Per list: TAR@FAR / EER / AUC (shared path ``scoring.score_verification``) and accuracy; intervals and
        per-pair arrays: module docstring."""
        from fr_bench.metrics import kfold_correct, pair_accuracy

        chosen = self.choose(conventions)
        tar_conv, acc_conv = chosen["tar"], chosen["accuracy"]
        score = get_score(chosen["score"])
        prepared = score.prepare(self.check_embeddings(embeddings).astype(np.float64))
        fars = tuple(self.spec.get("metrics", {}).get("fars", (1e-4, 1e-3, 1e-2, 1e-1)))
        result = ProtocolResult(protocol=self.name, metrics={}, conventions=dict(chosen))
        result.details["score"] = self.describe_score(chosen)
        identity = Units.from_values(self.identities, self.identities, "identity").a  # one code per image
        arrays = []
        for code, q in enumerate(self.lists):
            ra, rb = self.rows[q]
            labels = self.pairs[q][2].astype(bool)
            scores = np.asarray(score.rows(prepared[ra], prepared[rb]))
            units = Units(identity[ra], identity[rb], "identity")
            score_verification(result, scores, labels, fars=fars, convention=tar_conv, prefix=f"{q}/", units=units,
                               ci=ci, n_boot=n_boot, seed=seed)
            acc = pair_accuracy(scores, labels, convention=acc_conv)
            correct, folds = kfold_correct(scores, labels, accuracy=acc)
            result.metrics[f"{q}/accuracy"] = acc.mean
            result.details[f"{q}/accuracy"] = op_dict(acc)
            if ci is not None:
                result.intervals[f"{q}/accuracy"] = accuracy_interval(correct, folds, "pair", ci=ci, n_boot=n_boot,
                                                                      seed=seed)
            arrays.append(pair_record(scores, labels, units, folds=folds, correct=correct,
                                      list=np.full(len(labels), code, dtype=np.int8)))
        if acc_conv == "best-threshold":
            result.flags.append("accuracy uses the best threshold on the whole list (UNPG best_th): optimistic")
        result.scores = ScoreRecords(pairs=pair_record(
            np.concatenate([a.scores for a in arrays]), np.concatenate([a.labels for a in arrays]),
            Units(np.concatenate([a.unit_a for a in arrays]), np.concatenate([a.unit_b for a in arrays]), "identity"),
            folds=np.concatenate([a.folds for a in arrays]), correct=np.concatenate([a.correct for a in arrays]),
            list=np.concatenate([a.extra["list"] for a in arrays])))
        result.details["lists"] = list(self.lists)
        result.details["counts"] = {"images": len(self.paths), **{q: len(self.pairs[q][2]) for q in self.lists}}
        result.flags.append("K-FACE layout and lists are a documented proposal (docs/FORMATS.md), not a confirmed "
                            "release")
        return result


def load_kface(root: str | os.PathLike | None, spec: Mapping[str, Any], *, lists: Sequence[str] = LISTS,
               lists_dir: str | os.PathLike | None = None, check_counts: bool = True) -> KFace:
    """K-FACE over ``root`` (aligned crop tree); pair lists ``kface.<Q>.txt`` in ``lists_dir`` (default ``root``)."""
    root_p = require_root(root, spec, folder=True)
    return KFace(root_p, spec, lists=lists, lists_dir=Path(lists_dir) if lists_dir is not None else root_p,
                 check_counts=check_counts)
