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

Interval: percentile (``low``/``high`` = quantiles ``(1-level)/2`` and ``(1+level)/2`` of the replicates, numpy's
linear interpolation; replicates where the statistic is undefined, e.g. no genuine pair drawn, are left out).

Speed (TAR@FAR, strict and interpolated): the top ``1.25 * max_far * n_impostor`` impostor scores are selected
(partition) and sorted once. A replicate's threshold for target ``f`` sits where its weighted impostor count
reaches ``floor(f * N_r)``, near position ``f * n_impostor``: an anchor there gets each replicate's exact weighted
count before it from one product with the unit x unit pair-count matrix (sparse or dense), and only a window
around the anchor is scanned (gather, multiply, cumulative sum, searchsorted on (replicates x window) integer
matrices; replicates sorted by how far they must go, so each chunk's window is narrow). A replicate whose
threshold falls outside its window is redone with a wider one (up to the whole list): never a silent truncation.
Weighted totals use the same pair-count products. Torch runs it, on the GPU for CUDA score tensors. "nearest"
(scikit-learn's dropped points depend on each replicate's weights) is exact but runs one replicate at a time.
"""


from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import torch

from fr_bench.metrics._checks import check_scores_labels, is_torch, to_numpy
from fr_bench.metrics._common import allowed_count, dense_codes, rate_fraction
from fr_bench.metrics._roc import canonical_tar_convention, eer_from_counts, read_operating_points

CHUNK_ELEMENTS = 1 << 25  # replicates x slice elements per chunk (about 128 MB per int32 matrix)
DENSE_UNITS = 6000  # unit x unit count matrix kept dense up to this many units
CHUNK_ROWS = 64  # replicates per chunk at most (chunks of similar replicates keep windows narrow)
WINDOW_MARGIN = 2048  # impostor positions added on each side of a window
ANCHOR_MIN = 32768  # targets this deep in the sorted impostors get an anchored window instead of a prefix scan
VECTORISED_NEAREST = True  # False: every "nearest" replicate read one at a time (the reference loop)


def far_fractions(fars: Sequence[float]) -> list[Fraction]:
    """FAR targets in (0, 1) as exact decimal fractions."""
    out = []
    for f in fars:
        if not 0.0 < float(f) < 1.0:
            raise ValueError(f"FAR targets must lie in (0, 1) for the bootstrap, got {f}")
        out.append(rate_fraction(f))
    if not out:
        raise ValueError("fars is empty")
    return out



# ------------------------------------------------------------------------------------------- weighted pair data


class Slice:
    """The top impostors in descending score order (whole tie groups) with their unit indices."""

    def __init__(self, s: np.ndarray, a: np.ndarray, b: np.ndarray, complete: bool):
        self.s, self.a, self.b, self.complete = s, a, b, complete
        self.n = int(s.size)

    def group_start(self, i: int) -> int:
        """First index of the tie group holding index ``i``."""
        return int(np.searchsorted(-self.s, -self.s[i], side="left"))

    def group_end(self, i: int) -> int:
        """One past the last index of the tie group holding index ``i``."""
        return int(np.searchsorted(-self.s, -self.s[i], side="right"))


class Pairs:
    """Pairs prepared once for weighted replicates: unit indices into ``W_ext``, genuine scores sorted ascending,
    and the top impostors sorted descending on demand (``top``).

    ``W_ext`` is a replicate's weight matrix with one extra column of ones (index ``n_units``): a pair's weight is
    ``W_ext[:, a] * W_ext[:, b_eff]`` where ``b_eff = n_units`` for same-unit pairs (linear weight).
    """

    def __init__(self, scores: np.ndarray, labels: np.ndarray, ca: np.ndarray, cb: np.ndarray, n_units: int):
        self.n_units = n_units
        b_eff = np.where(ca == cb, n_units, cb)
        imp = ~labels
        self.s_imp, self.a_imp, self.b_imp = scores[imp], ca[imp], b_eff[imp]
        self.n_imp = int(self.s_imp.size)
        gen_order = np.argsort(scores[labels], kind="stable")
        self.g_asc = scores[labels][gen_order]
        self.ga = ca[labels][gen_order]
        self.gb = b_eff[labels][gen_order]
        self._top: Slice | None = None

    def top(self, length: int) -> Slice:
        """At least the ``length`` highest impostors (extended to a whole tie group), sorted descending."""
        length = max(1, min(int(length), self.n_imp))
        if self._top is not None and (self._top.n >= length or self._top.complete):
            return self._top
        if length >= self.n_imp:
            idx = np.arange(self.n_imp)
        else:
            kth = np.partition(self.s_imp, self.n_imp - length)[self.n_imp - length]
            idx = np.flatnonzero(self.s_imp >= kth)
        idx = idx[np.argsort(-self.s_imp[idx], kind="stable")]
        self._top = Slice(self.s_imp[idx], self.a_imp[idx], self.b_imp[idx], idx.size == self.n_imp)
        return self._top

    def weighted_count(self, w: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Per replicate row of ``w``: the sum of the weights of the pairs ``(a, b)`` (int64, exact), from the
        unit-pair count matrix (sparse or dense) instead of one gather per pair."""
        n_u = self.n_units
        wf = w.astype(np.float64)
        same = b == n_u
        total = wf @ np.bincount(a[same], minlength=n_u).astype(np.float64)
        ca, cb = a[~same], b[~same]
        if ca.size == 0:
            return np.rint(total).astype(np.int64)
        if n_u > DENSE_UNITS or 8 * ca.size < n_u * n_u:
            import scipy.sparse as sp

            counts = sp.csr_matrix((np.ones(ca.size), (ca, cb)), shape=(n_u, n_u))
            total += np.einsum("ur,ur->r", counts @ wf.T, wf.T)
        else:  # integer counts and weights: float32 is exact while every partial sum stays below 2**24
            counts = np.bincount(ca * n_u + cb, minlength=n_u * n_u).reshape(n_u, n_u)
            exact32 = int(w.max(initial=0)) * int(counts.sum(axis=0).max()) < (1 << 24)
            ft = np.float32 if exact32 else np.float64
            total += np.einsum("ru,ru->r", (w.astype(ft) @ counts.astype(ft)).astype(np.float64), wf)
        return np.rint(total).astype(np.int64)

    def impostor_totals(self, w: np.ndarray) -> np.ndarray:
        """Weighted impostor count of each replicate (int64)."""
        return self.weighted_count(w, self.a_imp, self.b_imp)


def unit_codes(unit_a: Any, unit_b: Any | None, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Dense integer codes 0..U-1 for the units of each pair side (one shared vocabulary, sorted values), and U."""
    a = to_numpy(unit_a, "unit_a").reshape(-1)
    b = a if unit_b is None else to_numpy(unit_b, "unit_b").reshape(-1)
    if a.shape[0] != n or b.shape[0] != n:
        raise ValueError(f"units must have one entry per pair ({n}), got {a.shape[0]} and {b.shape[0]}")
    values, (ca, cb) = dense_codes(a, b)
    return ca, cb, int(values.size)


def prepare(scores: Any, labels: Any, unit_a: Any, unit_b: Any | None) -> tuple[Pairs, torch.device]:
    """Validate scores/labels/units once; the pairs prepared for weighted replicates, and the device to run on."""
    s, y = check_scores_labels(scores, labels)
    ca, cb, n_units = unit_codes(unit_a, unit_b, s.shape[0])
    device = scores.device if is_torch(scores) else torch.device("cpu")
    return Pairs(s, y, ca, cb, n_units), device


def ext(w: np.ndarray, device: torch.device) -> torch.Tensor:
    """Replicate weights as a tensor with one extra column of ones (the linear weight of same-unit pairs)."""
    wt = torch.from_numpy(np.ascontiguousarray(w)).to(device)
    return torch.cat([wt, torch.ones((wt.shape[0], 1), dtype=wt.dtype, device=device)], dim=1)



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


def merged_slice(d: Pairs, sl: Slice) -> dict[str, np.ndarray]:
    """The slice's impostors and the genuine pairs scoring at least as high, merged in descending score order,
    with the start of each tie group (computed once per slice, shared by all replicates)."""
    floor = -np.inf if sl.complete else sl.s[-1]
    g_keep = d.g_asc >= floor
    s = np.concatenate([sl.s, d.g_asc[g_keep]])
    order = np.argsort(-s, kind="stable")
    s = s[order]
    return {"a": np.concatenate([sl.a, d.ga[g_keep]])[order],
            "b": np.concatenate([sl.b, d.gb[g_keep]])[order],
            "gen": np.concatenate([np.zeros(sl.n, bool), np.ones(int(g_keep.sum()), bool)])[order],
            "starts": np.flatnonzero(np.r_[True, s[1:] != s[:-1]]), "s": s}


def nearest_one(d: Pairs, sl: Slice, m: dict[str, np.ndarray], w_row: np.ndarray, n_imp_w: int,
                 fars: list[float]) -> tuple[np.ndarray, bool]:
    """TAR ("nearest") of one replicate: weighted counts on the merged top slice ``m`` + one closing point for
    everything below it, read by the verification kernel. ``ok`` is False unless the reading is final (see below)."""
    we = np.append(w_row.astype(np.int64), 1)
    weight = we[m["a"]] * we[m["b"]]
    n_gen_w = int((we[d.ga] * we[d.gb]).sum())
    dfp = np.add.reduceat(np.where(m["gen"], 0, weight), m["starts"])
    dtp = np.add.reduceat(np.where(m["gen"], weight, 0), m["starts"])
    present = (dfp + dtp) > 0  # scikit-learn drops zero-weight samples before building the curve
    fps, tps, thr = np.cumsum(dfp[present]), np.cumsum(dtp[present]), m["s"][m["starts"]][present]
    if not sl.complete:  # everything below the slice as one closing point
        fps, tps, thr = np.append(fps, n_imp_w), np.append(tps, n_gen_w), np.append(thr, -np.inf)
    points = read_operating_points(fps, tps, thr, n_imp_w, n_gen_w, fars, "nearest")
    tars = np.array([points[f].tar for f in fars])
    if sl.complete:
        return tars, True
    if thr.size < 3:  # every point is next to the provisional closing point
        return tars, False
    # Exact iff, per target, the chosen point's kept/dropped status is final (it lies at or before the third-last
    # point, whose neighbours are true points) and the last slice point is already farther from the target than
    # it (every point beyond the slice has at least that FPR, and later points win ties in the reversed reading).
    last_fpr = fps[-2] / n_imp_w
    ok = all(p.threshold >= thr[-3] and last_fpr - f > abs(p.far - f) for f, p in points.items() if p.resolvable)
    return tars, ok


def _window_nearest(m: dict[str, np.ndarray], wext: np.ndarray, lo_g: int, hi_g: int, base_f: np.ndarray,
                    base_t: np.ndarray, n_imp_w: np.ndarray, n_gen_w: np.ndarray, f: float, at_end: bool
                    ) -> tuple[np.ndarray, np.ndarray]:
    """TAR ("nearest") of each replicate row of ``wext`` (weights + a column of ones) read on the groups
    ``[lo_g, hi_g)`` of the merged slice ``m``, whose preceding weighted impostor / genuine counts are ``base_f`` /
    ``base_t``. Returns ``(tar, ok)``; ``ok`` False where the window cannot prove the reading (see below)."""
    starts, n_el = m["starts"], m["s"].size
    e_lo, e_hi = int(starts[lo_g]), int(starts[hi_g]) if hi_g < starts.size else n_el
    gen = m["gen"][e_lo:e_hi]
    wts = wext[:, m["a"][e_lo:e_hi]] * wext[:, m["b"][e_lo:e_hi]]
    ends = np.r_[starts[lo_g + 1:hi_g], e_hi] - 1 - e_lo  # last element of each group, in the window
    fps = np.cumsum(np.where(gen, 0, wts), axis=1)[:, ends] + base_f[:, None]
    tps = np.cumsum(np.where(gen, wts, 0), axis=1)[:, ends] + base_t[:, None]
    del wts
    fp_prev = np.concatenate([base_f[:, None], fps[:, :-1]], axis=1)  # counts at the previous present point
    tp_prev = np.concatenate([base_t[:, None], tps[:, :-1]], axis=1)
    present = (fps != fp_prev) | (tps != tp_prev)  # scikit-learn drops zero-weight samples
    n_g = fps.shape[1]
    idx = np.where(present, np.arange(n_g), n_g)
    nxt = np.concatenate([np.minimum.accumulate(idx[:, ::-1], axis=1)[:, ::-1][:, 1:],
                          np.full((idx.shape[0], 1), n_g)], axis=1)  # next present group (n_g: none in window)
    has_next = nxt < n_g
    nxt_c = np.minimum(nxt, n_g - 1)
    fn, tn = np.take_along_axis(fps, nxt_c, axis=1), np.take_along_axis(tps, nxt_c, axis=1)
    corner = ((fn - fps) != (fps - fp_prev)) | ((tn - tps) != (tps - tp_prev))
    first = (fp_prev == 0) & (tp_prev == 0)  # nothing weighs above it: the curve's first point
    # kept by drop_intermediate, with a status the window proves (the last point is kept at the slice's true end)
    kept = present & np.where(has_next, corner | first, at_end)
    with np.errstate(invalid="ignore", divide="ignore"):
        fpr = fps / n_imp_w[:, None].astype(np.float64)
    dist = np.where(kept, np.abs(fpr - f), np.inf)
    best = dist.min(axis=1)
    lead = e_lo == 0  # the leading point (0, 0) is on the curve; later points win ties
    best_all = np.minimum(best, f) if lead else best
    j = n_g - 1 - np.argmax((dist == best[:, None])[:, ::-1], axis=1)
    on_group = np.isfinite(best) & (best <= best_all)
    rows = np.arange(fps.shape[0])
    with np.errstate(invalid="ignore", divide="ignore"):
        tar = np.where(on_group, tps[rows, j] / n_gen_w.astype(np.float64), 0.0)
    # exact iff no point outside the window can be nearer: a proven kept point at or below the target on the left
    # (points before it are no nearer and lose ties), and on the right a point already farther than the best
    left_ok = lead | (kept & (fpr <= f)).any(axis=1)
    right_ok = at_end | (present & (fpr - f > best_all[:, None])).any(axis=1)
    return tar, left_ok & right_ok & np.isfinite(best_all)


def nearest_windowed(d: Pairs, sl: Slice, m: dict[str, np.ndarray], w: np.ndarray, n_imp_w: np.ndarray,
                     fars: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(F, R)`` TAR ("nearest") of every replicate row of ``w`` on the merged slice ``m``, vectorised over
    replicates: per target an anchor near ``far * n_impostor`` with each replicate's exact weighted counts before
    it (``weighted_count``), replicates sorted by how far their target lies from it and read in chunks on a window
    of whole tie groups (``_window_nearest``), windows widened twice on failure. Returns ``(tar, ok)``; rows not
    ``ok`` are left to the exact one-replicate reading (``nearest_one``)."""
    n_r, starts, gen = w.shape[0], m["starts"], m["gen"]
    out, ok = np.full((len(fars), n_r), np.nan), np.zeros((len(fars), n_r), bool)
    cum_imp = np.r_[0, np.cumsum(~gen)]  # impostors before each element
    wext = np.concatenate([w.astype(np.int64), np.ones((n_r, 1), np.int64)], axis=1)
    n_gen_w = d.weighted_count(w, d.ga, d.gb)
    at_end_ok = sl.complete
    for fi, f in enumerate(fars):
        g_a = max(0, int(np.searchsorted(starts, np.searchsorted(cum_imp, f * d.n_imp), side="right")) - 1)
        anchor = int(starts[g_a])
        pre_gen = gen[:anchor]
        base_f = d.weighted_count(w, m["a"][:anchor][~pre_gen], m["b"][:anchor][~pre_gen])
        base_t = d.weighted_count(w, m["a"][:anchor][pre_gen], m["b"][:anchor][pre_gen])
        offset = f * n_imp_w - base_f  # weighted impostors from the anchor to the target
        todo, slack, margin = np.argsort(offset, kind="stable"), 1.25, WINDOW_MARGIN
        for _ in range(3):
            failed = []
            for start in range(0, todo.size, CHUNK_ROWS):
                rows = todo[start:start + CHUNK_ROWS]
                lo_off, hi_off = float(offset[rows].min()), float(offset[rows].max())
                imp_lo = cum_imp[anchor] + math.floor(lo_off * (slack if lo_off < 0 else 1 / slack)) - margin
                imp_hi = cum_imp[anchor] + math.ceil(hi_off * (slack if hi_off > 0 else 1 / slack)) + margin
                lo_g = max(0, int(np.searchsorted(starts, np.searchsorted(cum_imp, max(imp_lo, 0)), "right")) - 1)
                hi_g = max(lo_g + 1, int(np.searchsorted(starts, np.searchsorted(cum_imp, imp_hi), "left")))
                hi_g = min(hi_g, starts.size)
                e_lo = int(starts[lo_g])
                left, right = min(e_lo, anchor), max(e_lo, anchor)
                sub = wext[rows]
                between = sub[:, m["a"][left:right]] * sub[:, m["b"][left:right]]
                bf = np.where(gen[left:right], 0, between).sum(axis=1)
                bt = np.where(gen[left:right], between, 0).sum(axis=1)
                sign = 1 if e_lo >= anchor else -1
                tar, good = _window_nearest(m, sub, lo_g, hi_g, base_f[rows] + sign * bf, base_t[rows] + sign * bt,
                                            n_imp_w[rows], n_gen_w[rows], f, at_end_ok and hi_g == starts.size)
                out[fi, rows] = tar
                ok[fi, rows] = good
                failed.extend(rows[~good].tolist())
            todo = np.asarray(failed, dtype=np.int64)
            if not todo.size:
                break
            slack, margin = slack * 4, margin * 8
    return out, ok



def nearest_replicates(d: Pairs, w: np.ndarray, n_imp_w: np.ndarray, fars: list[float],
                       initial_length: int | None = None) -> np.ndarray:
    """``(F, R)`` TAR ("nearest") of every replicate row of ``w``: vectorised windows first
    (``nearest_windowed``), then the replicates they could not prove one at a time (``nearest_one``), on a top
    slice doubled until every reading is final. Identical values either way."""
    length = initial_length or int(1.25 * max(fars) * d.n_imp) + 4096
    sl = d.top(length)
    merged = merged_slice(d, sl)
    if VECTORISED_NEAREST:
        out, proven = nearest_windowed(d, sl, merged, w, n_imp_w, fars)
        todo = np.flatnonzero(~proven.all(axis=0))
    else:
        out, todo = np.full((len(fars), w.shape[0]), np.nan), np.arange(w.shape[0])
    while todo.size:
        failed = []
        for r in todo:
            out[:, r], final = nearest_one(d, sl, merged, w[r], int(n_imp_w[r]), fars)
            if not final:
                failed.append(r)
        todo = np.asarray(failed, dtype=np.int64)
        if todo.size:
            sl = d.top(2 * sl.n)
            merged = merged_slice(d, sl)
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
