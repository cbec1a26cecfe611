"""Identification metrics: closed-set CMC, open-set TPIR@FPIR (NIST, IJB-B/C), the merged-gallery shortcut.

MegaFace challenge 1 is in ``megaface``. Features are compared by cosine similarity: every function L2-normalises
its inputs itself (a zero vector is an error). Inputs are numpy arrays or torch tensors (CPU or CUDA); matrix products and reductions run in torch on the
device of the probe tensor (or ``device``), in the dtype of the inputs (float32 stays float32). The score matrix is
never materialised beyond one block (``block_size`` rows or columns, see each function).

Conventions, stated once:
- Rank of a probe's mate: ``1 + number of NON-mated gallery entries whose score is strictly greater than the best
  mated score``. With several gallery entries of the probe's identity, the best one counts (a probe hits at rank k if
  any entry of its identity is among the top k); ties between the mate and a non-mate are resolved in the mate's
  favour.
- Open-set reading (strict, as TAR@FAR's): a target rate ``r`` over ``n`` non-mated searches allows ``k =
  floor(r * n)`` alarms (``allowed_count``: exact decimal arithmetic, ``0.29 * 100`` allows 29, not 28); alarms are
  the searches scoring above the (k+1)-th largest non-mated score. The point is an ``OperatingPoint`` whose
  ``threshold`` is the lowest score raising an alarm (alarm iff ``score >= threshold``, as for every operating
  point). Rates are integer counts over integer totals.
- Ties are decided on the computed float scores. Two mathematically equal similarities (a duplicated feature
  vector in the gallery or among the distractors) can differ by one ulp, since BLAS rounds a dot product
  differently depending on where it sits in the matrix product, so such a tie is not guaranteed to be seen as one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from fr_bench.metrics._checks import is_torch, to_numpy
from fr_bench.metrics._common import allowed_count, dense_codes
from fr_bench.metrics._roc import OperatingPoint, strict_point_from_top

__all__ = [
    "OpenSetPoint",
    "OpenSetSearch",
    "allowed_count",
    "cmc",
    "ijb_1n_merged",
    "ijb_1n_nist",
    "mate_ranks",
    "open_set_search",
    "tpir_at_fpir",
]


# ----------------------------------------------------------------------------------------------- input handling


def _features(x: Any, name: str, device: torch.device | str | None = None) -> torch.Tensor:
    """``x`` as a 2-D floating torch tensor (no copy for float numpy / CPU tensors), validated."""
    t = x if is_torch(x) else torch.from_numpy(np.ascontiguousarray(to_numpy(x, name)))
    if t.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_items, dim), got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if device is not None:
        t = t.to(device)
    return t


def _normalise(t: torch.Tensor, name: str) -> torch.Tensor:
    norms = torch.linalg.vector_norm(t, dim=1, keepdim=True)
    if not torch.isfinite(norms).all():
        raise ValueError(f"{name} contains NaN or inf values")
    if (norms == 0).any():
        bad = torch.nonzero(norms[:, 0] == 0)[:5, 0].tolist()
        raise ValueError(f"{name} has zero vectors (rows {bad}): cosine similarity is undefined for them")
    return t / norms


def _ids(x: Any, n: int, name: str) -> np.ndarray:
    ids = to_numpy(x, name)
    if ids.ndim != 1 or ids.shape[0] != n:
        raise ValueError(f"{name} must be 1-D with one id per feature row ({n}), got shape {ids.shape}")
    return ids


def _codes(probe_ids: np.ndarray, gallery_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes of both id arrays in one shared vocabulary (ids may be ints or strings)."""
    _, (pc, gc) = dense_codes(probe_ids, gallery_ids)
    return pc, gc


# --------------------------------------------------------------------------------------------------- searching


@dataclass(frozen=True)
class OpenSetSearch:
    """Per-probe outcome of searching one gallery (all arrays have one entry per probe).

    ``mated``: the probe's identity has at least one gallery entry. ``mate_rank``: rank of the best mate (see the
    module docstring; 0 for non-mated probes). ``mate_score``: best mated score (NaN for non-mated).
    ``top_score``: the highest score over the whole gallery (the score an open-set system thresholds).
    """

    mated: np.ndarray
    mate_rank: np.ndarray
    mate_score: np.ndarray
    top_score: np.ndarray


def open_set_search(probe: Any, probe_ids: Any, gallery: Any, gallery_ids: Any, *,
                    block_size: int = 4096) -> OpenSetSearch:
    """Search every probe against the gallery by cosine similarity, ``block_size`` probes at a time.

    Memory: one ``block_size x len(gallery)`` score block. Time: O(P x G x dim).
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    p = _features(probe, "probe")
    g = _features(gallery, "gallery", device=p.device)
    if p.shape[1] != g.shape[1]:
        raise ValueError(f"probe and gallery dimensions differ: {p.shape[1]} vs {g.shape[1]}")
    pid = _ids(probe_ids, p.shape[0], "probe_ids")
    gid = _ids(gallery_ids, g.shape[0], "gallery_ids")
    pc, gc = _codes(pid, gid)
    dtype = torch.promote_types(p.dtype, g.dtype)
    p = _normalise(p.to(dtype), "probe")
    g = _normalise(g.to(dtype), "gallery")
    gcode = torch.from_numpy(gc).to(p.device)
    n = p.shape[0]
    mate_rank = np.zeros(n, dtype=np.int64)
    mate_score = np.full(n, np.nan)
    top_score = np.empty(n)
    neg_inf = torch.tensor(-math.inf, dtype=dtype, device=p.device)
    for start in range(0, n, block_size):
        stop = min(start + block_size, n)
        scores = p[start:stop] @ g.T
        mask = torch.from_numpy(pc[start:stop]).to(p.device)[:, None] == gcode[None, :]
        best_mate = torch.where(mask, scores, neg_inf).max(dim=1).values
        outranked = ((scores > best_mate[:, None]) & ~mask).sum(dim=1)
        has_mate = mask.any(dim=1)
        top_score[start:stop] = scores.max(dim=1).values.double().cpu().numpy()
        hm = has_mate.cpu().numpy()
        mate_rank[start:stop] = np.where(hm, 1 + outranked.cpu().numpy(), 0)
        mate_score[start:stop] = np.where(hm, best_mate.double().cpu().numpy(), np.nan)
    return OpenSetSearch(mated=mate_rank > 0, mate_rank=mate_rank, mate_score=mate_score, top_score=top_score)


def mate_ranks(probe: Any, probe_ids: Any, gallery: Any, gallery_ids: Any, *, block_size: int = 4096) -> np.ndarray:
    """Closed-set rank of each probe's best mate (int64, >= 1). Raises ``ValueError`` if a probe has no mate."""
    search = open_set_search(probe, probe_ids, gallery, gallery_ids, block_size=block_size)
    if not search.mated.all():
        pid = _ids(probe_ids, search.mated.shape[0], "probe_ids")
        missing = np.unique(pid[~search.mated])
        raise ValueError(
            f"{int((~search.mated).sum())} probes have no gallery entry of their identity (closed-set "
            f"identification needs one), e.g. ids {missing[:5].tolist()}; use tpir_at_fpir for open-set search")
    return search.mate_rank


def _cmc_from_ranks(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    out = {}
    for k in ks:
        if int(k) < 1:
            raise ValueError(f"ranks must be >= 1, got {k}")
        out[int(k)] = int((ranks <= int(k)).sum()) / ranks.shape[0] if ranks.shape[0] else math.nan
    return out


def cmc(probe: Any, probe_ids: Any, gallery: Any, gallery_ids: Any, *, ranks: Sequence[int] = (1, 5, 10, 20),
        block_size: int = 4096) -> dict[int, float]:
    """Closed-set cumulative match characteristic: ``{k: (#probes whose mate rank <= k) / #probes}``.

    The gallery may hold several entries per identity (the best-scoring one counts); ties are resolved in the mate's
    favour (module docstring). Every probe's identity must be in the gallery (``ValueError`` otherwise).
    """
    return _cmc_from_ranks(mate_ranks(probe, probe_ids, gallery, gallery_ids, block_size=block_size), ranks)


# ---------------------------------------------------------------------------------------------- open set (NIST)


#: An open-set operating point is an ``OperatingPoint`` (the one operating-point type), read as: ``target_far`` the
#: target FPIR, ``tar`` the TPIR, ``far`` the realised FPIR, ``n_genuine`` / ``n_impostor`` the mated / non-mated
#: searches, ``threshold`` the lowest score raising an alarm (alarm iff ``score >= threshold``).
OpenSetPoint = OperatingPoint


def _open_set_points(search: OpenSetSearch, fpirs: Sequence[float], rank: int) -> dict[float, OperatingPoint]:
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    nonmated = np.sort(search.top_score[~search.mated])[::-1]
    hit = search.mated & (search.mate_rank <= rank)
    n_m, n_nm = int(search.mated.sum()), int(nonmated.shape[0])
    out: dict[float, OperatingPoint] = {}
    for target in fpirs:
        point = strict_point_from_top(float(target), nonmated, n_nm, search.mate_score[hit], n_m)
        if not point.resolvable:
            why = "no mated probes" if n_m == 0 else (
                f"{n_nm} non-mated searches cannot resolve FPIR={float(target):g} "
                f"(needs >= {math.ceil(1 / float(target))})")
            warnings.warn(f"TPIR at FPIR={float(target):g} is not resolvable: {why}", stacklevel=3)
        out[float(target)] = point
    return out


def tpir_at_fpir(probe: Any, probe_ids: Any, gallery: Any, gallery_ids: Any, *,
                 fpirs: Sequence[float] = (1e-3, 1e-2, 1e-1), rank: int = 1,
                 block_size: int = 4096) -> dict[float, OperatingPoint]:
    """Open-set identification (NIST definition, IJB-B/C 1:N): TPIR at FPIR for one gallery.

    Probes whose identity has a gallery entry are mated, the others non-mated.
    ``FPIR(t) = #(non-mated probes with top score > t) / #non-mated``;
    ``TPIR(t) = #(mated probes whose mate rank <= rank and mate score > t) / #mated``.
    For a target FPIR ``f`` the threshold is the most permissive one with ``#alarms <= floor(f * #non-mated)``:
    the (k+1)-th largest non-mated top score. Targets with ``f * #non-mated < 1`` are not resolvable: NaN + warning.
    """
    search = open_set_search(probe, probe_ids, gallery, gallery_ids, block_size=block_size)
    return _open_set_points(search, fpirs, rank)


def ijb_1n_nist(probe: Any, probe_ids: Any, galleries: Mapping[str, tuple[Any, Any]], *,
                fpirs: Sequence[float] = (1e-3, 1e-2, 1e-1), ranks: Sequence[int] = (1, 5, 10),
                block_size: int = 4096, searches: Mapping[str, OpenSetSearch] | None = None) -> dict[str, Any]:
    """IJB-B/C 1:N as NIST defines it: each gallery (G1, G2 / S1, S2) searched separately.

    Per gallery: CMC over the mated searches (``{k: rate}``), TPIR@FPIR at rank 1 (``{fpir: OpenSetPoint}``) and the
    counts. ``"mean"``: the unweighted mean over galleries of each CMC rate and each TPIR.
    ``searches`` (optional): the :func:`open_set_search` of ``probe`` in each gallery, when the caller already has
    them (they are not recomputed). Returns ``{"galleries": {name: {"cmc", "tpir", "n_mated", "n_nonmated"}},
    "mean": {"cmc", "tpir"}}``.
    """
    if not galleries:
        raise ValueError("galleries is empty: give at least one (features, ids) gallery")
    per: dict[str, Any] = {}
    for name, (feats, ids) in galleries.items():
        search = (searches[name] if searches is not None
                  else open_set_search(probe, probe_ids, feats, ids, block_size=block_size))
        mated_ranks = search.mate_rank[search.mated]
        if mated_ranks.size == 0:
            raise ValueError(f"gallery {name!r}: no probe is mated (no probe identity in the gallery)")
        per[name] = {"cmc": _cmc_from_ranks(mated_ranks, ranks), "tpir": _open_set_points(search, fpirs, 1),
                     "n_mated": int(search.mated.sum()), "n_nonmated": int((~search.mated).sum())}
    mean_cmc = {int(k): float(np.mean([r["cmc"][int(k)] for r in per.values()])) for k in ranks}
    mean_tpir = {float(f): float(np.mean([r["tpir"][float(f)].tar for r in per.values()])) for f in fpirs}
    return {"galleries": per, "mean": {"cmc": mean_cmc, "tpir": mean_tpir}}


def ijb_1n_merged(probe: Any, probe_ids: Any, galleries: Mapping[str, tuple[Any, Any]], *,
                  fars: Sequence[float] = (1e-2, 1e-1), ranks: Sequence[int] = (1, 5, 10),
                  block_size: int = 4096) -> dict[str, Any]:
    """The widespread IJB 1:N shortcut (insightface ``IJB_1N.py``): NOT the NIST TPIR@FPIR.

    All galleries are merged into one closed-set gallery that must hold exactly one entry per identity, and every
    probe must be mated (as in that script, which fails otherwise). Reported:
    - ``"cmc"``: closed-set CMC on the merged gallery (our tie rule; the script's argsort breaks exact ties
      arbitrarily).
    - ``"rate_at_far"``: for each "FAR" ``f``: ``k = ceil(f * #probes)`` computed in floats exactly as the script
      does (so ``0.1 * 30`` gives 4, not 3: this convention exists to reproduce old tables), the threshold is the k-th largest of the ``#probes * (#gallery - 1)`` non-mate entries of the
      probe x gallery similarity matrix, and the rate is ``#(probes whose mate score > threshold) / #probes``
      regardless of rank. ``"threshold"``: those thresholds. The "FAR" is thus false alarms per probe over the
      non-mated matrix entries, not the FPIR of non-mated searches.
    """
    if not galleries:
        raise ValueError("galleries is empty: give at least one (features, ids) gallery")
    feats = [_features(f, f"gallery {n!r}") for n, (f, _) in galleries.items()]
    ids = [_ids(i, f.shape[0], f"gallery {n!r} ids") for (n, (_, i)), f in zip(galleries.items(), feats)]
    device = feats[0].device
    g = torch.cat([f.to(device) for f in feats])
    gid = np.concatenate(ids)
    uniq, counts = np.unique(gid, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f"the merged-gallery shortcut needs one gallery entry per identity; ids "
                         f"{uniq[counts > 1][:5].tolist()} have several")
    p = _features(probe, "probe", device=device)
    pid = _ids(probe_ids, p.shape[0], "probe_ids")
    ranks_arr = mate_ranks(p, pid, g, gid, block_size=block_size)
    pc, gc = _codes(pid, gid)
    dtype = torch.promote_types(p.dtype, g.dtype)
    pn, gn = _normalise(p.to(dtype), "probe"), _normalise(g.to(dtype), "gallery")
    col_of_code = np.empty(int(max(gc.max(), pc.max())) + 1, dtype=np.int64)
    col_of_code[gc] = np.arange(gc.shape[0])
    mate_col = torch.from_numpy(col_of_code[pc]).to(device)  # every probe is mated (checked by mate_ranks)
    n_p, n_g = pn.shape[0], gn.shape[0]
    n_neg = n_p * (n_g - 1)
    ks = {float(f): int(math.ceil(float(f) * n_p)) for f in fars}  # float arithmetic, as the script
    k_max = max([k for k in ks.values() if 1 <= k <= n_neg], default=0)
    top = torch.empty(0, dtype=dtype, device=device)
    mate_scores = torch.empty(n_p, dtype=dtype, device=device)
    for start in range(0, n_p, block_size):
        stop = min(start + block_size, n_p)
        s = pn[start:stop] @ gn.T
        rows = torch.arange(stop - start, device=device)
        cols = mate_col[start:stop]
        mate_scores[start:stop] = s[rows, cols]
        s[rows, cols] = -math.inf
        if k_max:  # running top-k of the non-mate entries
            flat = s.reshape(-1)
            merged = torch.cat([top, torch.topk(flat, min(k_max, flat.numel())).values])
            top = torch.topk(merged, min(k_max, merged.numel())).values
    rate, thresholds = {}, {}
    for f, k in ks.items():
        if not 1 <= k <= n_neg:
            warnings.warn(f"merged-gallery rate at FAR={f:g}: k={k} is outside 1..{n_neg}", stacklevel=2)
            rate[f], thresholds[f] = math.nan, math.nan
            continue
        th = top[k - 1]
        rate[f] = int((mate_scores > th).sum()) / n_p
        thresholds[f] = float(th)
    return {"cmc": _cmc_from_ranks(ranks_arr, ranks), "rate_at_far": rate, "threshold": thresholds,
            "convention": "insightface merged gallery (NOT NIST TPIR@FPIR)"}
