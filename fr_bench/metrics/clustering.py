"""Scores of a predicted clustering against identity labels: pairwise and BCubed precision / recall / F, and NMI.

Every count comes from the contingency table (``n_ij`` = items of identity ``i`` put in cluster ``j``), never from a
loop over pairs, so the scores cost O(n log n) for any number of items.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from ._checks import to_numpy
from ._common import dense_codes


def _codes(labels_true: Any, labels_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated int64 codes of the two labelings (each its own vocabulary); ``ValueError`` on bad input."""
    t = to_numpy(labels_true, "labels_true")
    p = to_numpy(labels_pred, "labels_pred")
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"labels_true and labels_pred must be 1-D, got shapes {t.shape} and {p.shape}")
    if t.shape[0] != p.shape[0]:
        raise ValueError(f"labels_true and labels_pred differ in length: {t.shape[0]} != {p.shape[0]}")
    if t.shape[0] == 0:
        raise ValueError("clustering scores need at least one item, got empty labels")
    for name, a in (("labels_true", t), ("labels_pred", p)):
        if np.issubdtype(a.dtype, np.floating) and not np.all(np.isfinite(a)):
            raise ValueError(f"{name} holds NaN or inf labels")
    return dense_codes(t)[1][0], dense_codes(p)[1][0]


def _contingency(ct: np.ndarray, cp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(n_ij, a_i of each cell's identity, b_j of each cell's cluster, a, b)`` over the non-empty cells only
    (sparse: memory O(n), whatever the numbers of identities and clusters). All int64."""
    n_pred = int(cp.max()) + 1
    cells, n_ij = np.unique(ct * n_pred + cp, return_counts=True)
    a = np.bincount(ct).astype(np.int64)  # identity sizes
    b = np.bincount(cp).astype(np.int64)  # cluster sizes
    n_ij = n_ij.astype(np.int64)
    return n_ij, a[cells // n_pred], b[cells % n_pred], a, b


def _choose2(x: np.ndarray) -> int:
    """``sum(x choose 2)`` as an exact Python int."""
    return int(np.sum(x * (x - 1) // 2, dtype=np.int64))


def pair_counts(labels_true: Any, labels_pred: Any) -> dict[str, int]:
    """Integer pair counts over unordered pairs of distinct items: ``same_both`` (same identity and same cluster,
    ``sum_ij C(n_ij, 2)``), ``same_cluster`` (``sum_j C(b_j, 2)``), ``same_identity`` (``sum_i C(a_i, 2)``) and
    ``total`` (``C(n, 2)``). The numerators and denominators of the pairwise scores."""
    ct, cp = _codes(labels_true, labels_pred)
    n_ij, _, _, a, b = _contingency(ct, cp)
    n = int(ct.shape[0])
    return {"same_both": _choose2(n_ij), "same_cluster": _choose2(b), "same_identity": _choose2(a),
            "total": n * (n - 1) // 2}


def _harmonic(p: float, r: float) -> float:
    """``2 p r / (p + r)``; 0 when both are 0."""
    return 0.0 if p + r == 0 else 2.0 * p * r / (p + r)


def clustering_scores(labels_true: Any, labels_pred: Any) -> dict[str, float]:
    """Scores of the clustering ``labels_pred`` against the identities ``labels_true`` (1-D, same length, any
    hashable-sortable labels: ints or strings; only the partitions matter, so renaming labels changes nothing).

    With ``n_ij`` the items of identity ``i`` in cluster ``j``, ``a_i = sum_j n_ij`` (identity sizes),
    ``b_j = sum_i n_ij`` (cluster sizes), ``n`` items, ``C(k, 2) = k (k - 1) / 2``:

    - pairwise, over unordered pairs of distinct items (integer counts):
      ``pairwise_precision = sum_ij C(n_ij, 2) / sum_j C(b_j, 2)`` (of the pairs put in one cluster, the share
      that share an identity); ``pairwise_recall = sum_ij C(n_ij, 2) / sum_i C(a_i, 2)`` (of the same-identity
      pairs, the share put in one cluster); ``pairwise_f = 2 P R / (P + R)``.
    - BCubed (Amigo, Gonzalo, Artiles, Verdejo 2009), per item ``e`` then averaged over the ``n`` items, the item
      itself counted in its own cluster and identity: precision(e) = share of e's cluster with e's identity,
      recall(e) = share of e's identity in e's cluster, so
      ``bcubed_precision = (1/n) sum_ij n_ij^2 / b_j``, ``bcubed_recall = (1/n) sum_ij n_ij^2 / a_i``,
      ``bcubed_f = 2 P R / (P + R)`` (the harmonic mean of the averages, their F with alpha = 0.5).
    - ``nmi``: scikit-learn's ``normalized_mutual_info_score`` with its default arithmetic averaging,
      ``I(T; P) / ((H(T) + H(P)) / 2)`` (1.0 when both labelings are a single group).

    Degenerate cases (chosen so that no score is NaN and each agrees with BCubed's limits):

    - no pair put in one cluster (all predicted singletons, or one item): ``pairwise_precision = 1`` (no wrong
      merge was made, as BCubed precision is 1 for singletons);
    - no pair of one identity (all identities singletons, or one item): ``pairwise_recall = 1`` (nothing to
      recover, as BCubed recall is 1 then);
    - an F whose precision and recall are both 0 is 0.

    So one item scores 1 everywhere. Raises ``ValueError`` for empty input, lengths that differ, non-1-D input or
    NaN / inf float labels.
    """
    ct, cp = _codes(labels_true, labels_pred)
    n = int(ct.shape[0])
    n_ij, a_cell, b_cell, a, b = _contingency(ct, cp)
    same_both, same_cluster, same_identity = _choose2(n_ij), _choose2(b), _choose2(a)
    pw_p = same_both / same_cluster if same_cluster else 1.0
    pw_r = same_both / same_identity if same_identity else 1.0
    sq = (n_ij * n_ij).astype(np.float64)
    bc_p = float(np.sum(sq / b_cell)) / n
    bc_r = float(np.sum(sq / a_cell)) / n
    nmi = float(normalized_mutual_info_score(ct, cp, average_method="arithmetic"))
    return {
        "pairwise_precision": float(pw_p),
        "pairwise_recall": float(pw_r),
        "pairwise_f": _harmonic(pw_p, pw_r),
        "bcubed_precision": bc_p,
        "bcubed_recall": bc_r,
        "bcubed_f": _harmonic(bc_p, bc_r),
        "nmi": nmi,
    }
