"""``demo``: the built-in benchmark on the 55 shipped faces of 5 people (no download, no root needed).

Data: ``fr_bench/protocols/demo_data/`` (see its README.md): aligned 112x112 crops ``<Name>/<Name>_NNNN.jpg``,
``pairs.txt`` (every unordered pair once: 275 genuine + 1,210 impostor = 1,485, in a fixed shuffled order) and
``identification.txt`` (gallery = the ``_0001`` image of each person, probes = the other 50).

``evaluate`` reports the pair metrics of :class:`~fr_bench.protocols.pairs.PairProtocol` over 10 contiguous folds
of the file order (``numpy.array_split`` sizes 149 x 5, 148 x 5), plus closed-set ``rank1`` identification of the
probes against the gallery (:func:`fr_bench.metrics.mate_ranks`: cosine of the ``score`` convention's prepared
features; a score that is not such a cosine gets no ``rank1``, flagged).

Intervals (``ci``): TAR@FAR and EER resample the 5 people (``"subject"``: the folder names), accuracy resamples pairs
(see :mod:`fr_bench.protocols.pairs`), ``rank1`` resamples the probes' people (``"subject"``). With 5 people these
intervals are very coarse: the demo is a smoke test, not a benchmark. ``result.scores.searches["rank1"]`` holds,
per probe, whether it was found at rank 1, its unit the code of the probe's person.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.base import ProtocolError, ProtocolResult, file_error, text_records
from fr_bench.protocols.folder import read_pair_list
from fr_bench.protocols.images import FileImageSource
from fr_bench.protocols.pair_loading import contiguous_folds
from fr_bench.protocols.pairs import PairProtocol
from fr_bench.protocols.scoring import Units, interval_dict
from fr_bench.results import SearchScores
from fr_bench.similarity import get_score

#: The shipped demo data.
DEMO_DATA = Path(__file__).resolve().parent / "demo_data"
PAIRS_FILE = "pairs.txt"
SPLIT_FILE = "identification.txt"
N_FOLDS = 10


def read_split(path: str | Path) -> tuple[list[str], list[str]]:
    """``(gallery images, probe images)`` from ``<gallery|probe> <relative path>`` lines (``#`` comments)."""
    p = Path(path)
    gallery, probes = [], []
    for lineno, fields in text_records(p, 2, "'<gallery|probe> <image>'", what="identification split file",
                                       comments=True):
        if fields[0] not in ("gallery", "probe"):
            raise file_error(p, lineno, f"expected '<gallery|probe> <image>', got {' '.join(fields)!r}")
        (gallery if fields[0] == "gallery" else probes).append(fields[1])
    if not gallery or not probes:
        raise ProtocolError(f"{p}: needs at least one gallery and one probe image")
    return gallery, probes


def identity_of(relpath: str) -> str:
    """The identity of ``<Name>/<file>``: its folder name."""
    return relpath.split("/")[0]


class DemoProtocol(PairProtocol):
    """Pair verification + closed-set rank-1 identification on the demo faces."""

    def __init__(self, *args: Any, gallery: np.ndarray, probes: np.ndarray, identities: list[str], **kwargs: Any):
        super().__init__(*args, identities=identities, **kwargs)
        self.gallery = np.asarray(gallery, dtype=np.int64)
        self.probes = np.asarray(probes, dtype=np.int64)

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
        from fr_bench.metrics import mate_ranks
        from fr_bench.metrics.uncertainty import bootstrap_rate, per_unit_counts

        if not np.isfinite(np.asarray(embeddings)).all():
            raise ValueError("demo: some embedding rows are NaN/inf (skipped images); the demo's rank-1 split needs "
                             "every image")
        result = super().evaluate(embeddings, norms, conventions=conventions, ci=ci, n_boot=n_boot, seed=seed,
                                  accuracy_unit=accuracy_unit)
        score = get_score(result.conventions["score"])
        if not score.cosine_of_prepared:  # the gallery search ranks by cosine
            result.flags.append(f"rank1: not computed: score {score.name!r} is not a cosine of prepared features, "
                                "which the closed-set search ranks by")
            return result
        prepared = score.prepare(self.feature_rows(embeddings, norms)[0])
        probe_ids, gallery_ids = self.identities[self.probes], self.identities[self.gallery]
        hit = mate_ranks(prepared[self.probes], probe_ids, prepared[self.gallery], gallery_ids) == 1
        result.metrics["rank1"] = int(hit.sum()) / hit.size
        result.conventions["identification"] = "closed-set rank-1, one gallery image per identity"
        result.details["identification"] = {"gallery": int(self.gallery.size), "probes": int(self.probes.size)}
        probe_unit = Units.from_values(probe_ids, probe_ids, "subject").a
        result.scores.searches["rank1"] = SearchScores.from_outcomes(hit, probe_unit, "subject")
        if ci is not None:
            _, successes, trials = per_unit_counts(hit, probe_unit)
            result.intervals["rank1"] = interval_dict(bootstrap_rate(successes, trials, n_boot=n_boot, level=ci,
                                                                     seed=seed, unit="subject"))
        return result


def load(root: str | Path | None, spec: Mapping[str, Any]) -> DemoProtocol:
    """The demo protocol over the shipped data (``root`` = another folder in the same layout, or None)."""
    base = DEMO_DATA if root is None else Path(root)
    rel_a, rel_b, labels, _ = read_pair_list(base / PAIRS_FILE)
    gallery, probes = read_split(base / SPLIT_FILE)
    rels = sorted(set(rel_a) | set(rel_b) | set(gallery) | set(probes))
    for rel in rels:
        if not (base / rel).is_file():
            raise ProtocolError(f"{base / rel}: demo image missing (listed in {PAIRS_FILE} or {SPLIT_FILE})")
    index = {r: i for i, r in enumerate(rels)}
    pairs = np.array([[index[a], index[b]] for a, b in zip(rel_a, rel_b)], dtype=np.int64)
    identities = [identity_of(r) for r in rels]
    truth = np.array([identity_of(a) == identity_of(b) for a, b in zip(rel_a, rel_b)])
    if not np.array_equal(truth, labels):
        k = int(np.flatnonzero(truth != labels)[0])
        raise ProtocolError(f"{base / PAIRS_FILE}: pair {k + 1} label disagrees with the folder identities")
    images = FileImageSource(base, rels, key_prefix="demo/")
    n = len(labels)
    return DemoProtocol(
        spec, images, pairs, labels, contiguous_folds(n, N_FOLDS), n_folds=N_FOLDS,
        data_files=[str(base / PAIRS_FILE), str(base / SPLIT_FILE)], source="shipped demo data",
        gallery=[index[g] for g in gallery], probes=[index[p] for p in probes], identities=identities,
    )
