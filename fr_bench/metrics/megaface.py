"""MegaFace challenge 1: rank-1 identification and verification against a large distractor set, from ONE pass over
the probe x distractor scores (``distractor_metrics``; ``distractor_rank1`` / ``distractor_verification`` are the
same pass asked for one of the two).

Features are compared by cosine similarity (inputs L2-normalised here; a zero vector is an error); the score matrix
is never materialised beyond one block of ``block_size`` distractors. Ties are decided on the computed float scores
(see ``identification``'s module docstring).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from fr_bench.metrics._checks import is_torch, to_numpy
from fr_bench.metrics._common import allowed_count, dense_codes
from fr_bench.metrics._roc import OperatingPoint, strict_point_from_top
from fr_bench.metrics.identification import _features, _ids, _normalise

__all__ = ["DistractorResult", "DistractorVerificationPoint", "distractor_metrics", "distractor_rank1",
           "distractor_verification"]

#: MegaFace verification points are ``OperatingPoint``s (strict reading; accept iff ``score >= threshold``).
DistractorVerificationPoint = OperatingPoint


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


def _distractor_tensor(distractors: Any, dim: int) -> torch.Tensor:
    d = distractors if is_torch(distractors) else torch.from_numpy(np.asarray(to_numpy(distractors, "distractors")))
    if d.ndim != 2 or d.shape[0] == 0:
        raise ValueError(f"distractors must be a non-empty 2-D array, got shape {tuple(d.shape)}")
    if d.shape[1] != dim:
        raise ValueError(f"probe and distractor dimensions differ: {dim} vs {d.shape[1]}")
    return d


def _merge_top(top: torch.Tensor, s: torch.Tensor, row_max: torch.Tensor, keep: int) -> torch.Tensor:
    """The ``keep`` largest of ``top`` (descending) and the block ``s``: only rows whose maximum can enter the top k
    are scanned, and in them only scores above the current k-th largest."""
    if top.numel() >= keep:
        rows = torch.nonzero(row_max > top[-1])[:, 0]
        if rows.numel() == 0:
            return top
        # few candidate rows: gather them; many: one compare over the block is cheaper than the gather
        flat = s[rows].reshape(-1) if 8 * rows.numel() < s.shape[0] else s.reshape(-1)
        flat = flat[flat > top[-1]]
    else:  # a cheap lower bound of the k-th largest: the k-th largest of the per-row top scores
        per_row = min(s.shape[1], -(-keep // s.shape[0]))
        bound_pool = torch.cat([top, torch.topk(s, per_row, dim=1).values.reshape(-1)])
        flat = s.reshape(-1)
        if bound_pool.numel() >= keep:
            flat = flat[flat >= torch.topk(bound_pool, keep).values[-1]]
    merged = torch.cat([top, flat])
    return torch.topk(merged, min(keep, merged.numel())).values


def _distractor_pass(pn: torch.Tensor, d: torch.Tensor, block_size: int, keep_top: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """One pass over the distractors ``d`` in blocks of ``block_size`` rows against the normalised probes ``pn``:
    the max distractor score per probe and the ``keep_top`` largest probe-distractor scores (descending)."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    dtype = pn.dtype
    best = torch.full((pn.shape[0],), -math.inf, dtype=dtype, device=pn.device)
    top = torch.empty(0, dtype=dtype, device=pn.device)
    for start in range(0, int(d.shape[0]), block_size):
        blk = d[start:start + block_size].to(device=pn.device, dtype=dtype)
        bn = _normalise(blk, f"distractors[{start}:{start + blk.shape[0]}]")
        if pn.device.type == "cpu":  # numpy's BLAS GEMM and row max are the faster ones on CPU (bench/RESULTS.md)
            s_np = pn.numpy() @ bn.numpy().T
            s, row_max = torch.from_numpy(s_np), torch.from_numpy(s_np.max(axis=1))
        else:
            s = pn @ bn.T
            row_max = s.max(dim=1).values
        torch.maximum(best, row_max, out=best)
        if keep_top:
            top = _merge_top(top, s, row_max, keep_top)
    return best, top


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


def _rank1(pid: np.ndarray, ii: np.ndarray, jj: np.ndarray, mate: torch.Tensor, best: torch.Tensor,
           n_d: int) -> DistractorResult:
    """Rank-1 from the genuine (mate) scores of pairs ``(ii, jj)`` and each probe's best distractor score."""
    ti, tj = torch.from_numpy(ii).to(best.device), torch.from_numpy(jj).to(best.device)
    # ordered pairs: (i queries, j is the mate) and (j queries, i is the mate); same score, each side's max
    ok = ((mate > best[ti]).to(torch.int64) + (mate > best[tj]).to(torch.int64)).cpu().numpy()
    identities, (code,) = dense_codes(pid[ii])
    correct = np.bincount(code, weights=ok, minlength=identities.size).astype(np.int64)
    queries = 2 * np.bincount(code, minlength=identities.size)
    n_correct, n_queries = int(correct.sum()), int(queries.sum())
    return DistractorResult(n_correct / n_queries, n_queries, n_correct, n_d, identities, correct, queries)


def _verification(fars: Sequence[float], top: torch.Tensor, mate: torch.Tensor, n_imp: int
                  ) -> dict[float, OperatingPoint]:
    top_np = top.double().cpu().numpy()
    genuine = mate.double().cpu().numpy()
    out = {}
    for f in fars:
        point = strict_point_from_top(float(f), top_np, n_imp, genuine, genuine.size)
        if not point.resolvable:
            warnings.warn(f"MegaFace TAR at FAR={float(f):g} is not resolvable with {n_imp} impostor pairs",
                          stacklevel=3)
        out[float(f)] = point
    return out


def distractor_metrics(probe: Any, probe_ids: Any, distractors: Any, *, fars: Sequence[float] | None = (1e-6,),
                       rank1: bool = True, block_size: int = 8192, device: torch.device | str | None = None
                       ) -> tuple[DistractorResult | None, dict[float, OperatingPoint]]:
    """MegaFace challenge 1 identification and verification from ONE pass over the distractors.

    Rank-1 (the devkit's procedure): for each identity, each probe image in turn is the query and every OTHER image
    of the same identity in turn is the single mate added to the distractor gallery; queries = all ordered pairs
    (query, mate) of distinct images of one identity. A query succeeds if the mate's score is strictly greater than
    the highest distractor score (a tie counts as a failure). Identities with one image give no query.

    Verification, TAR at each FAR of ``fars`` (strict reading): genuine pairs are the unordered pairs of distinct
    probe images of one identity; impostor pairs every (probe, distractor) pair, ``P * N`` of them, never stored:
    only the ``floor(max_far * P * N) + 1`` largest scores are kept (running top-k). For a target ``f``:
    ``k = floor(f * P * N)`` false accepts allowed; accepted = scores above the (k+1)-th largest impostor score;
    ``threshold`` = the lowest accepted score (accept iff ``score >= threshold``, as ``operating_points``); ``far``
    realised. Targets with ``f * P * N < 1`` are unresolvable (NaN + warning).

    Returns ``(DistractorResult or None when rank1=False, {far: OperatingPoint}, empty when fars is None)``.
    Memory: one ``n_probe x block_size`` score block.
    """
    p = _features(probe, "probe", device=device)
    pid = _ids(probe_ids, p.shape[0], "probe_ids")
    d = _distractor_tensor(distractors, p.shape[1])
    fars = [] if fars is None else [float(f) for f in fars]
    n_imp = int(p.shape[0]) * int(d.shape[0])
    keep = min(max(allowed_count(f, n_imp) for f in fars) + 1, n_imp) if fars else 0
    dtype = torch.promote_types(p.dtype, d.dtype if d.is_floating_point() else p.dtype)
    pn = _normalise(p.to(dtype), "probe")
    best, top = _distractor_pass(pn, d, block_size, keep)
    ii, jj = _same_identity_pairs(pid)
    if ii.size == 0:
        raise ValueError("no identity has two probe images: MegaFace has no query and no genuine pair")
    ti, tj = torch.from_numpy(ii).to(pn.device), torch.from_numpy(jj).to(pn.device)
    mate = (pn[ti] * pn[tj]).sum(dim=1)
    result = _rank1(pid, ii, jj, mate, best, int(d.shape[0])) if rank1 else None
    return result, (_verification(fars, top, mate, n_imp) if fars else {})


def distractor_rank1(probe: Any, probe_ids: Any, distractors: Any, *, block_size: int = 8192,
                     device: torch.device | str | None = None) -> DistractorResult:
    """MegaFace challenge 1 rank-1 identification rate (``distractor_metrics`` without verification)."""
    result, _ = distractor_metrics(probe, probe_ids, distractors, fars=None, block_size=block_size, device=device)
    assert result is not None
    return result


def distractor_verification(probe: Any, probe_ids: Any, distractors: Any, *, fars: Sequence[float] = (1e-6,),
                            block_size: int = 8192, device: torch.device | str | None = None
                            ) -> dict[float, OperatingPoint]:
    """MegaFace challenge 1 verification, TAR at FAR (``distractor_metrics`` without rank-1)."""
    _, points = distractor_metrics(probe, probe_ids, distractors, fars=fars, rank1=False, block_size=block_size,
                                   device=device)
    return points
