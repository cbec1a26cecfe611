"""Pairs prepared for weighted bootstrap replicates (private; see ``_replicates`` for the kernel and ``uncertainty``
for the public API): unit codes, the top impostors sorted on demand, exact weighted counts from unit-pair counts."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import torch

from fr_bench.metrics._checks import check_scores_labels, is_torch, to_numpy
from fr_bench.metrics._common import dense_codes, rate_fraction

DENSE_UNITS = 6000  # unit x unit count matrix kept dense up to this many units


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
