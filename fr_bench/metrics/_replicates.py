"""The weighted-replicate kernel behind the TAR@FAR, TPIR@FPIR and EER bootstrap (private; public API:
``uncertainty``).

The bootstrap resamples the INDEPENDENT unit, not the pair: on IJB-B/C and MegaFace the pairs of one subject are
correlated, so a replicate draws subjects with replacement; on the 10-fold sets it draws folds or pairs (caller's
choice, see ``bootstrap_accuracy``). A replicate is a vector of multiplicities ``w_u`` (multinomial counts, the
number of times unit ``u`` was drawn, sum = number of units), never a re-sampled copy of the data:

- pair weight (two units, e.g. the two subjects of a template pair): ``w_a * w_b`` when ``a != b`` (the replicate
  holds ``w_a`` copies of subject a and ``w_b`` of subject b, hence ``w_a * w_b`` copies of every pair between
  them) and ``w_a`` when ``a == b`` (a subject's own pairs are part of that subject: they come with each copy of it;
  squaring would count pairs between two copies of one subject, which are not pairs of the protocol).
  With one unit per pair (``unit_b=None``) the weight is ``w_unit``.
- Every replicate statistic is the same definition as the point estimate, evaluated with integer weights as
  counts (the weighted ROC; ``floor(far * weighted n_impostor)`` exactly in integers).

Speed (TAR@FAR, strict and interpolated): the top ``1.25 * max_far * n_impostor`` impostor scores are selected
(partition) and sorted once. A replicate's threshold for target ``f`` sits where its weighted impostor count
reaches ``floor(f * N_r)``, near position ``f * n_impostor``: an anchor there gets each replicate's exact weighted
count before it from one product with the unit x unit pair-count matrix (sparse or dense), and only a window
around the anchor is scanned (gather, multiply, cumulative sum, searchsorted on (replicates x window) integer
matrices; replicates sorted by how far they must go, so each chunk's window is narrow). A replicate whose
threshold falls outside its window is redone with a wider one (up to the whole list): never a silent truncation.
Weighted totals use the same pair-count products. Torch runs it, on the GPU for CUDA score tensors. "nearest"
(scikit-learn's dropped points depend on each replicate's weights) is read by ``_nearest`` with the same anchor
and window scheme, exactly. Pairs, units and weighted counts: ``_pairs``.
"""



from __future__ import annotations

import math
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

from fr_bench.metrics._common import allowed_count
from fr_bench.metrics._nearest import nearest_replicates
from fr_bench.metrics._pairs import Pairs, Slice, ext, far_fractions
from fr_bench.metrics._roc import canonical_tar_convention, eer_from_counts

CHUNK_ELEMENTS = 1 << 25  # replicates x slice elements per chunk (about 128 MB per int32 matrix)
CHUNK_ROWS = 64  # replicates per chunk at most (chunks of similar replicates keep windows narrow)
WINDOW_MARGIN = 2048  # impostor positions added on each side of a window
ANCHOR_MIN = 32768  # targets this deep in the sorted impostors get an anchored window instead of a prefix scan


# ------------------------------------------------------------------------------------------------- TAR@FAR kernel


def window_tar(sl: Slice, d: Pairs, we: torch.Tensor, lo: int, hi: int, base: torch.Tensor, k: torch.Tensor,
                n: torch.Tensor, frac: Fraction, convention: str, gen_prefix: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """TAR of each replicate (rows of ``we``) at one FAR, from the slice window ``[lo, hi)`` whose preceding
    weighted impostor count is ``base``. Returns ``(tar, ok)``; ``ok`` False where the threshold is outside."""
    device = we.device
    ia = torch.from_numpy(sl.a[lo:hi]).to(device)
    ib = torch.from_numpy(sl.b[lo:hi]).to(device)
    cw = torch.cumsum(we[:, ia] * we[:, ib], dim=1, dtype=torch.int64) + base[:, None]
    j = torch.searchsorted(cw, k[:, None].contiguous(), right=True)[:, 0]  # first index with cumulative > k
    ok = (base <= k) & ((j < hi - lo) | torch.tensor(sl.complete and hi == sl.n, device=device))
    jj = j.clamp(max=hi - lo - 1)
    s_win = torch.from_numpy(sl.s[lo:hi]).to(device)
    tau = s_win[jj]  # accept when score > tau
    g_asc = torch.from_numpy(d.g_asc).to(device)
    g_tot = gen_prefix[:, -1]
    tp_gt = g_tot - gen_prefix.gather(1, torch.searchsorted(g_asc, tau, right=True)[:, None])[:, 0]
    tar = tp_gt.to(torch.float64) / g_tot.to(torch.float64)
    if convention == "interpolated":  # windows hold whole tie groups, so tau's group is inside
        first = torch.searchsorted(-s_win, -tau, right=False)
        last = torch.searchsorted(-s_win, -tau, right=True) - 1
        cw_ext = torch.cat([base[:, None], cw], dim=1)
        fp_gt = cw_ext.gather(1, first[:, None])[:, 0].to(torch.float64)
        fp_ge = cw_ext.gather(1, (last + 1)[:, None])[:, 0].to(torch.float64)
        tp_ge = g_tot - gen_prefix.gather(1, torch.searchsorted(g_asc, tau, right=False)[:, None])[:, 0]
        nf = n.to(torch.float64)
        fpr_lo, fpr_hi = fp_gt / nf, fp_ge / nf
        tpr_hi = tp_ge.to(torch.float64) / g_tot.to(torch.float64)
        tar = tar + (float(frac) - fpr_lo) * (tpr_hi - tar) / (fpr_hi - fpr_lo)
    return tar, ok


def vectorised_tar(d: Pairs, w: np.ndarray, n_imp_w: np.ndarray, fracs: list[Fraction], convention: str,
                    device: torch.device) -> np.ndarray:
    """``(F, R)`` TAR (strict or interpolated) of each replicate row of ``w``.

    For each target the replicates' thresholds lie near position ``far * n_impostor`` of the sorted impostors: an
    anchor ``a`` there, the exact weighted count before it (``weighted_count``, one sparse/dense product), and
    a window around it sized from the spread of ``k - count`` over the chunk, with slack. A replicate whose
    threshold falls outside its window is redone with a wider one, up to the whole slice (never truncated).
    """
    out = np.full((len(fracs), w.shape[0]), np.nan)
    d.top(int(1.25 * max(float(f) for f in fracs) * d.n_imp) + 4096)
    for fi, frac in enumerate(fracs):
        k_all = allowed_count(float(frac), n_imp_w)
        expected = int(float(frac) * d.n_imp)
        sl = d.top(int(1.25 * expected) + 4096)
        anchor = 0 if expected < ANCHOR_MIN else sl.group_start(min(expected, sl.n - 1))
        base_all = d.weighted_count(w, sl.a[:anchor], sl.b[:anchor]) if anchor else np.zeros(w.shape[0], np.int64)
        todo, slack, margin = np.arange(w.shape[0]), 1.25, WINDOW_MARGIN
        while todo.size:
            offset = k_all[todo] - base_all[todo]  # weighted count still to go past the anchor
            by_offset = np.argsort(offset, kind="stable")  # chunks of similar offsets get narrow windows
            todo, offset = todo[by_offset], offset[by_offset]
            span = int(offset.max() - offset.min()) + int(slack * np.abs(offset).max())
            chunk = max(1, CHUNK_ELEMENTS // (span + 4 * margin + 1))
            if anchor:  # windows around an anchor: few similar replicates per chunk keep them narrow
                chunk = min(chunk, CHUNK_ROWS)
            failed = []
            for start in range(0, todo.size, chunk):
                rows = todo[start:start + chunk]
                off_lo, off_hi = int(offset[start:start + chunk].min()), int(offset[start:start + chunk].max())
                # the weight per impostor position between anchor and threshold is assumed in [1/slack, slack]
                want_lo = anchor + int(math.floor(off_lo * (slack if off_lo < 0 else 1 / slack))) - margin
                want_hi = anchor + int(math.ceil(off_hi * (slack if off_hi > 0 else 1 / slack))) + margin
                if want_hi > sl.n and not sl.complete:
                    sl = d.top(max(want_hi, 2 * sl.n))
                lo = 0 if want_lo <= 0 else sl.group_start(min(want_lo, sl.n - 1))
                hi = sl.n if want_hi >= sl.n else sl.group_end(want_hi)
                we = ext(w[rows], device)
                # weighted count before lo: the anchor's count -/+ the weights between lo and the anchor
                left, right = min(lo, anchor), max(lo, anchor)
                ia = torch.from_numpy(sl.a[left:right]).to(device)
                ib = torch.from_numpy(sl.b[left:right]).to(device)
                between = (we[:, ia] * we[:, ib]).sum(dim=1, dtype=torch.int64)
                base = torch.from_numpy(base_all[rows]).to(device) + (between if lo > anchor else -between)
                wg = we[:, torch.from_numpy(d.ga).to(device)] * we[:, torch.from_numpy(d.gb).to(device)]
                gen_prefix = torch.cat([torch.zeros((wg.shape[0], 1), dtype=torch.int64, device=device),
                                        torch.cumsum(wg, dim=1, dtype=torch.int64)], dim=1)
                k = torch.from_numpy(k_all[rows]).to(device)
                n = torch.from_numpy(n_imp_w[rows]).to(device)
                tar, ok = window_tar(sl, d, we, lo, hi, base, k, n, frac, convention, gen_prefix)
                out[fi, rows] = tar.cpu().numpy()
                failed.extend(rows[~ok.cpu().numpy()].tolist())
            todo = np.asarray(failed, dtype=np.int64)
            # the margin grows too: a replicate with nothing left to count past the anchor (offset 0, e.g. k = 0)
            # whose next weighted impostors lie beyond the margin (zero-weight units) needs a wider window
            slack, margin = slack * 4, margin * 4
            if todo.size and slack > 1e6:  # cannot happen with consistent inputs; guard against looping
                raise RuntimeError("bootstrap TAR@FAR: could not place a replicate's threshold")
    return out


def tar_replicates(d: Pairs, w: np.ndarray, fars: Sequence[float], convention: str, device: torch.device,
                    initial_length: int | None = None) -> np.ndarray:
    """``(F, R)`` TAR of every replicate row of ``w`` (integer unit multiplicities); NaN where unresolvable."""
    convention = canonical_tar_convention(convention)
    if convention == "nearest-reference":  # replicates of resolvable targets: the "nearest" reading
        convention = "nearest"
    fracs = far_fractions(fars)
    n_imp_w = d.impostor_totals(w)
    if initial_length is not None:
        d.top(initial_length)
    if convention == "nearest":
        out = nearest_replicates(d, w, n_imp_w, [float(f) for f in fars], initial_length)
    else:
        out = vectorised_tar(d, w, n_imp_w, fracs, convention, device)
    # a target with no false accept allowed is unresolvable in that replicate
    resolvable = np.stack([allowed_count(float(f), n_imp_w) >= 1 for f in fracs])
    return np.where(resolvable, out, np.nan)




def eer_replicates(d: Pairs, w: np.ndarray, device: torch.device) -> np.ndarray:
    """``(R,)`` EER of every replicate row of ``w`` on its full weighted ROC (NaN where a class has no weight):
    the whole sorted score list, replicates in chunks, O(R x n_pairs)."""
    s = np.concatenate([d.s_imp, d.g_asc])
    a = np.concatenate([d.a_imp, d.ga])
    b = np.concatenate([d.b_imp, d.gb])
    gen = np.concatenate([np.zeros(d.n_imp, bool), np.ones(d.g_asc.size, bool)])
    order = np.argsort(-s, kind="stable")
    s, a, b, gen = s[order], a[order], b[order], gen[order]
    ends = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last index of each tie group
    out = np.empty(w.shape[0])
    chunk = max(1, CHUNK_ELEMENTS // s.size)
    ta, tb, tg = (torch.from_numpy(x).to(device) for x in (a, b, gen))
    te = torch.from_numpy(ends).to(device)
    for start in range(0, w.shape[0], chunk):
        we = ext(w[start:start + chunk], device).to(torch.int64)
        pw = we[:, ta] * we[:, tb]
        tps = torch.cumsum(torch.where(tg, pw, 0), dim=1)[:, te].cpu().numpy()
        fps = torch.cumsum(torch.where(tg, 0, pw), dim=1)[:, te].cpu().numpy()
        for r in range(tps.shape[0]):
            # zero-weight groups repeat a point; harmless for the EER crossing
            if fps[r, -1] == 0 or tps[r, -1] == 0:
                out[start + r] = math.nan
                continue
            out[start + r] = eer_from_counts(fps[r], tps[r])
    return out
