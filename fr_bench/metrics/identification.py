"""Identification metrics: closed-set CMC, open-set TPIR@FPIR (NIST, IJB-B/C), MegaFace challenge 1.

Features are compared by cosine similarity: every function L2-normalises its inputs itself (a zero vector is an
error). Inputs are numpy arrays or torch tensors (CPU or CUDA); matrix products and reductions run in torch on the
device of the probe tensor (or ``device``), in the dtype of the inputs (float32 stays float32). The score matrix is
never materialised beyond one block (``block_size`` rows or columns, see each function).

Conventions, stated once:
- Rank of a probe's mate: ``1 + number of NON-mated gallery entries whose score is strictly greater than the best
  mated score``. With several gallery entries of the probe's identity, the best one counts (a probe hits at rank k if
  any entry of its identity is among the top k); ties between the mate and a non-mate are resolved in the mate's
  favour.
- Open-set alarm rule: a search raises an alarm at threshold ``t`` when its score is strictly greater than ``t``
  (``score > t``). Rates are integer counts over integer totals; a target rate ``r`` over ``n`` searches allows
  ``floor(r * n)`` alarms, computed in exact decimal arithmetic (``0.29 * 100`` allows 29, not 28).
- Ties are decided on the computed float scores. Two mathematically equal similarities (a duplicated feature
  vector in the gallery or among the distractors) can differ by one ulp, since BLAS rounds a dot product
  differently depending on where it sits in the matrix product, so such a tie is not guaranteed to be seen as one.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from fr_bench.metrics._checks import is_torch, to_numpy

__all__ = [
    "DistractorResult",
    "DistractorVerificationPoint",
    "OpenSetPoint",
    "OpenSetSearch",
    "allowed_count",
    "cmc",
    "distractor_rank1",
    "distractor_verification",
    "ijb_1n_merged",
    "ijb_1n_nist",
    "mate_ranks",
    "open_set_search",
    "tpir_at_fpir",
]


# ----------------------------------------------------------------------------------------------- input handling


def allowed_count(rate: float, n: int) -> int:
    """``floor(rate * n)`` in exact decimal arithmetic (the rate as written, e.g. ``1e-3``, not its binary float)."""
    if not (0.0 <= float(rate) <= 1.0):
        raise ValueError(f"a rate must lie in [0, 1], got {rate}")
    return int(math.floor(Decimal(repr(float(rate))) * int(n)))


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
    _, inverse = np.unique(np.concatenate([probe_ids, gallery_ids]), return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    return inverse[: probe_ids.shape[0]], inverse[probe_ids.shape[0]:]


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


def open_set_search(probe: Any, probe_ids: Any, gallery: Any, gallery_ids: Any,
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


def mate_ranks(probe: Any, probe_ids: Any, gallery: Any, gallery_ids: Any, block_size: int = 4096) -> np.ndarray:
    """Closed-set rank of each probe's best mate (int64, >= 1). Raises ``ValueError`` if a probe has no mate."""
    search = open_set_search(probe, probe_ids, gallery, gallery_ids, block_size)
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


def cmc(probe: Any, probe_ids: Any, gallery: Any, gallery_ids: Any, ranks: Sequence[int] = (1, 5, 10, 20),
        block_size: int = 4096) -> dict[int, float]:
    """Closed-set cumulative match characteristic: ``{k: (#probes whose mate rank <= k) / #probes}``.

    The gallery may hold several entries per identity (the best-scoring one counts); ties are resolved in the mate's
    favour (module docstring). Every probe's identity must be in the gallery (``ValueError`` otherwise).
    """
    return _cmc_from_ranks(mate_ranks(probe, probe_ids, gallery, gallery_ids, block_size), ranks)


# ---------------------------------------------------------------------------------------------- open set (NIST)


@dataclass(frozen=True)
class OpenSetPoint:
    """One open-set operating point. ``threshold``: alarm when score > threshold. ``fpir``: realised FPIR."""

    target_fpir: float
    tpir: float
    fpir: float
    threshold: float
    n_mated: int
    n_nonmated: int
    resolvable: bool


def _open_set_points(search: OpenSetSearch, fpirs: Sequence[float], rank: int) -> dict[float, OpenSetPoint]:
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    nonmated = np.sort(search.top_score[~search.mated])[::-1]
    n_nm = int(nonmated.shape[0])
    n_m = int(search.mated.sum())
    hit = search.mated & (search.mate_rank <= rank)
    hit_scores = search.mate_score[hit]
    out: dict[float, OpenSetPoint] = {}
    for target in fpirs:
        target = float(target)
        k = allowed_count(target, n_nm)
        if n_m == 0 or k < 1:
            why = "no mated probes" if n_m == 0 else (
                f"{n_nm} non-mated searches cannot resolve FPIR={target:g} (needs >= {math.ceil(1 / target)})")
            warnings.warn(f"TPIR at FPIR={target:g} is not resolvable: {why}", stacklevel=3)
            out[target] = OpenSetPoint(target, math.nan, math.nan, math.nan, n_m, n_nm, False)
            continue
        # Most permissive threshold whose alarm count does not exceed k: the (k+1)-th largest non-mated score.
        threshold = float(nonmated[k]) if k < n_nm else -math.inf
        n_alarm = int((nonmated > threshold).sum())
        tpir = int((hit_scores > threshold).sum()) / n_m
        out[target] = OpenSetPoint(target, tpir, n_alarm / n_nm, threshold, n_m, n_nm, True)
    return out


def tpir_at_fpir(probe: Any, probe_ids: Any, gallery: Any, gallery_ids: Any,
                 fpirs: Sequence[float] = (1e-3, 1e-2, 1e-1), rank: int = 1,
                 block_size: int = 4096) -> dict[float, OpenSetPoint]:
    """Open-set identification (NIST definition, IJB-B/C 1:N): TPIR at FPIR for one gallery.

    Probes whose identity has a gallery entry are mated, the others non-mated.
    ``FPIR(t) = #(non-mated probes with top score > t) / #non-mated``;
    ``TPIR(t) = #(mated probes whose mate rank <= rank and mate score > t) / #mated``.
    For a target FPIR ``f`` the threshold is the most permissive one with ``#alarms <= floor(f * #non-mated)``:
    the (k+1)-th largest non-mated top score. Targets with ``f * #non-mated < 1`` are not resolvable: NaN + warning.
    """
    return _open_set_points(open_set_search(probe, probe_ids, gallery, gallery_ids, block_size), fpirs, rank)


def ijb_1n_nist(probe: Any, probe_ids: Any, galleries: Mapping[str, tuple[Any, Any]],
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
        search = searches[name] if searches is not None else open_set_search(probe, probe_ids, feats, ids, block_size)
        mated_ranks = search.mate_rank[search.mated]
        if mated_ranks.size == 0:
            raise ValueError(f"gallery {name!r}: no probe is mated (no probe identity in the gallery)")
        per[name] = {"cmc": _cmc_from_ranks(mated_ranks, ranks), "tpir": _open_set_points(search, fpirs, 1),
                     "n_mated": int(search.mated.sum()), "n_nonmated": int((~search.mated).sum())}
    mean_cmc = {int(k): float(np.mean([r["cmc"][int(k)] for r in per.values()])) for k in ranks}
    mean_tpir = {float(f): float(np.mean([r["tpir"][float(f)].tpir for r in per.values()])) for f in fpirs}
    return {"galleries": per, "mean": {"cmc": mean_cmc, "tpir": mean_tpir}}


def ijb_1n_merged(probe: Any, probe_ids: Any, galleries: Mapping[str, tuple[Any, Any]],
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
    ranks_arr = mate_ranks(p, pid, g, gid, block_size)
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


# ------------------------------------------------------------------------------------------------- MegaFace


@dataclass(frozen=True)
class DistractorResult:
    """MegaFace challenge 1 identification: ``rank1 = n_correct / n_queries``."""

    rank1: float
    n_queries: int
    n_correct: int
    n_distractors: int
    #: per identity (for a bootstrap by subject): identity ids, correct queries, queries
    identities: np.ndarray | None = field(default=None, compare=False, repr=False)
    correct_per_identity: np.ndarray | None = field(default=None, compare=False, repr=False)
    queries_per_identity: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class DistractorVerificationPoint:
    """MegaFace verification at one FAR (strict reading; accept when score > threshold)."""

    target_far: float
    tar: float
    far: float
    threshold: float
    n_genuine: int
    n_impostor: int
    resolvable: bool


def _distractor_pass(probe: Any, distractors: Any, block_size: int, device: torch.device | str | None,
                     keep_top: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """One pass over the distractors in blocks of ``block_size`` rows.

    Returns the normalised probes, the max distractor score per probe, the ``keep_top`` largest probe-distractor
    scores overall (descending; a running top-k merge) and the number of distractors.
    """
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    p = _features(probe, "probe", device=device)
    d = distractors if is_torch(distractors) else torch.from_numpy(np.asarray(to_numpy(distractors, "distractors")))
    if d.ndim != 2 or d.shape[0] == 0:
        raise ValueError(f"distractors must be a non-empty 2-D array, got shape {tuple(d.shape)}")
    if d.shape[1] != p.shape[1]:
        raise ValueError(f"probe and distractor dimensions differ: {p.shape[1]} vs {d.shape[1]}")
    dtype = torch.promote_types(p.dtype, d.dtype if d.is_floating_point() else p.dtype)
    pn = _normalise(p.to(dtype), "probe")
    best = torch.full((pn.shape[0],), -math.inf, dtype=dtype, device=pn.device)
    top = torch.empty(0, dtype=dtype, device=pn.device)
    n_d = int(d.shape[0])
    for start in range(0, n_d, block_size):
        blk = d[start:start + block_size].to(device=pn.device, dtype=dtype)
        bn = _normalise(blk, f"distractors[{start}:{start + blk.shape[0]}]")
        if pn.device.type == "cpu":  # numpy's BLAS is the faster CPU GEMM here (measured in bench/metrics_bench.py)
            s = torch.from_numpy(pn.numpy() @ bn.numpy().T)
        else:
            s = pn @ bn.T
        torch.maximum(best, s.max(dim=1).values, out=best)
        if keep_top:
            flat = s.reshape(-1)
            if top.numel() >= keep_top:  # only scores above the current k-th largest can enter the top k
                flat = flat[flat > top[-1]]
            else:  # a cheap lower bound of the k-th largest: the k-th largest of the per-row top scores
                per_row = min(s.shape[1], -(-keep_top // s.shape[0]))
                bound_pool = torch.cat([top, torch.topk(s, per_row, dim=1).values.reshape(-1)])
                if bound_pool.numel() >= keep_top:
                    flat = flat[flat >= torch.topk(bound_pool, keep_top).values[-1]]
            merged = torch.cat([top, flat])
            top = torch.topk(merged, min(keep_top, merged.numel())).values
    return pn, best, top, n_d


def _same_identity_pairs(pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All unordered pairs (i < j) of probe indices with the same identity."""
    order = np.argsort(pid, kind="stable")
    _, starts, counts = np.unique(pid[order], return_index=True, return_counts=True)
    ii, jj = [], []
    for s, c in zip(starts, counts):
        if c > 1:
            a, b = np.triu_indices(c, k=1)
            ii.append(order[s + a])
            jj.append(order[s + b])
    if not ii:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(ii), np.concatenate(jj)


def distractor_rank1(probe: Any, probe_ids: Any, distractors: Any, block_size: int = 65536,
                     device: torch.device | str | None = None) -> DistractorResult:
    """MegaFace challenge 1 rank-1 identification rate with ``distractors`` as the gallery.

    Procedure (the devkit's): for each identity, each probe image in turn is the query and every OTHER image of the
    same identity in turn is the single mate added to the distractor gallery; queries = all ordered pairs (query,
    mate) of distinct images of one identity. A query succeeds if the mate's score is strictly greater than the
    highest distractor score (a tie counts as a failure). Identities with one image give no query.
    The max distractor score per probe is computed once, in blocks of ``block_size`` distractors (memory:
    ``n_probe x block_size`` scores); then all mate comparisons are cheap.
    """
    p_in = _features(probe, "probe", device=device)
    pid = _ids(probe_ids, p_in.shape[0], "probe_ids")
    pn, best, _, n_d = _distractor_pass(p_in, distractors, block_size, device, keep_top=0)
    ii, jj = _same_identity_pairs(pid)
    if ii.size == 0:
        raise ValueError("no identity has two probe images: MegaFace identification has no query")
    ti, tj = torch.from_numpy(ii).to(pn.device), torch.from_numpy(jj).to(pn.device)
    mate = (pn[ti] * pn[tj]).sum(dim=1)
    # ordered pairs: (i queries, j is the mate) and (j queries, i is the mate); same score, each side's max
    ok = ((mate > best[ti]).to(torch.int64) + (mate > best[tj]).to(torch.int64)).cpu().numpy()
    identities, code = np.unique(pid[ii], return_inverse=True)
    correct = np.bincount(code.reshape(-1), weights=ok, minlength=identities.size).astype(np.int64)
    queries = 2 * np.bincount(code.reshape(-1), minlength=identities.size)
    n_correct, n_queries = int(correct.sum()), int(queries.sum())
    return DistractorResult(n_correct / n_queries, n_queries, n_correct, n_d, identities, correct, queries)


def distractor_verification(probe: Any, probe_ids: Any, distractors: Any, fars: Sequence[float] = (1e-6,),
                            block_size: int = 65536,
                            device: torch.device | str | None = None) -> dict[float, DistractorVerificationPoint]:
    """MegaFace challenge 1 verification: TAR at FAR, strict reading.

    Genuine pairs: unordered pairs of distinct probe images of one identity. Impostor pairs: every (probe,
    distractor) pair, ``P * N`` of them, never stored: only the ``floor(max_far * P * N) + 1`` largest scores are kept
    with a running top-k merge across blocks. For a target ``f``: ``k = floor(f * P * N)`` allowed false accepts,
    threshold = the (k+1)-th largest impostor score, accept when score > threshold; ``tar = #(genuine > threshold) /
    #genuine``; ``far`` = realised rate. Targets with ``f * P * N < 1`` are not resolvable (NaN + warning).
    """
    p_in = _features(probe, "probe", device=device)
    pid = _ids(probe_ids, p_in.shape[0], "probe_ids")
    n_d_rows = int(distractors.shape[0])
    n_imp = int(p_in.shape[0]) * n_d_rows
    ks = {float(f): allowed_count(f, n_imp) for f in fars}
    keep = min(max(ks.values()) + 1, n_imp)
    pn, _, top, _ = _distractor_pass(p_in, distractors, block_size, device, keep_top=keep)
    ii, jj = _same_identity_pairs(pid)
    if ii.size == 0:
        raise ValueError("no identity has two probe images: MegaFace verification has no genuine pair")
    ti, tj = torch.from_numpy(ii).to(pn.device), torch.from_numpy(jj).to(pn.device)
    genuine = (pn[ti] * pn[tj]).sum(dim=1)
    n_gen = int(ii.size)
    out = {}
    for f, k in ks.items():
        if k < 1:
            warnings.warn(f"MegaFace TAR at FAR={f:g} is not resolvable with {n_imp} impostor pairs", stacklevel=2)
            out[f] = DistractorVerificationPoint(f, math.nan, math.nan, math.nan, n_gen, n_imp, False)
            continue
        threshold = top[k] if k < top.numel() else torch.tensor(-math.inf, dtype=top.dtype, device=top.device)
        n_fa = int((top > threshold).sum())
        out[f] = DistractorVerificationPoint(f, int((genuine > threshold).sum()) / n_gen, n_fa / n_imp,
                                             float(threshold), n_gen, n_imp, True)
    return out
