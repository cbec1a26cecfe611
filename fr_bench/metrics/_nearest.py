"""The "nearest" TAR@FAR reading of weighted bootstrap replicates (private; dispatched from ``_replicates``).

scikit-learn's default ROC drops collinear points, and which points drop depends on each replicate's weights, so the
reading is done on the merged top slice (top impostors + the genuine pairs above them, in descending score order):
vectorised over replicates on windows of whole tie groups around each target (``nearest_windowed``), and, for the
replicates a window cannot prove, one replicate at a time on the whole slice (``nearest_one``). Both are exact: the
values are identical (tested).
"""

from __future__ import annotations

import math

import numpy as np

from fr_bench.metrics._pairs import Pairs, Slice
from fr_bench.metrics._roc import read_operating_points

VECTORISED_NEAREST = True  # False: every "nearest" replicate read one at a time (the reference loop)
CHUNK_ROWS = 64  # replicates per window chunk (sorted by how far their target lies from the anchor)
WINDOW_MARGIN = 2048  # impostor positions added on each side of a window


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
