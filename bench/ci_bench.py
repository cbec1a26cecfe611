"""Bootstrap TAR@FAR intervals: the vectorised subject bootstrap against a naive per-replicate re-sort.

Synthetic IJB-C-sized 1:1 scores (default 15.7M template pairs, ~0.12% genuine, 3,500 subjects, scores with a
per-subject offset so that pairs of one subject are correlated). Times ``bootstrap_tar_at_far`` (strict, FAR 1e-6
.. 1e-1) with ``--boot`` replicates on CPU and, when CUDA is available, on the GPU; the naive baseline (per
replicate: weights for every pair, full argsort, weighted cumulative counts, strict reading) is timed on
``--naive`` replicates and EXTRAPOLATED linearly to ``--boot`` replicates (printed as such).

    python bench/ci_bench.py                 # full size (about 40 s on 2 cores)
    python bench/ci_bench.py --n 1000000     # smaller
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout
from fr_bench.metrics.uncertainty import (  # noqa: E402
    _prepare,
    _tar_replicates,
    bootstrap_tar_at_far,
    draw_unit_weights,
)

FARS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


def synthetic_pairs(n_pairs: int, n_subjects: int, genuine_fraction: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_gen = max(1, int(round(n_pairs * genuine_fraction)))
    offset = rng.normal(0.0, 0.05, n_subjects)
    a = rng.integers(0, n_subjects, n_pairs)
    b = rng.integers(0, n_subjects - 1, n_pairs)
    b = np.where(b >= a, b + 1, b)  # impostor pairs: two different subjects
    b[:n_gen] = a[:n_gen]  # genuine pairs: one subject
    labels = np.zeros(n_pairs, bool)
    labels[:n_gen] = True
    scores = rng.normal(0.0, 0.1, n_pairs) + offset[a] + offset[b]
    scores[:n_gen] = rng.normal(0.55, 0.15, n_gen) + offset[a[:n_gen]]
    return scores.astype(np.float64), labels, a, b


def naive_replicate(scores, labels, ua, ub, w, fars):
    """One replicate the straightforward way: pair weights, a fresh sort, weighted cumulative counts."""
    weight = np.where(ua == ub, w[ua], w[ua] * w[ub])
    order = np.argsort(-scores, kind="stable")
    wi = np.where(labels, 0, weight)[order]
    wg = np.where(labels, weight, 0)[order]
    s = scores[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]
    fps, tps = np.cumsum(wi)[last], np.cumsum(wg)[last]
    out = []
    for f in fars:
        k = int(np.floor(f * fps[-1]))
        i = np.searchsorted(fps, k, side="right") - 1
        out.append(tps[i] / tps[-1] if i >= 0 else 0.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=15_658_489, help="number of pairs (IJB-C: 15,658,489)")
    ap.add_argument("--subjects", type=int, default=3_500)
    ap.add_argument("--genuine", type=float, default=0.0012, help="genuine fraction")
    ap.add_argument("--boot", type=int, default=1000, help="bootstrap replicates")
    ap.add_argument("--naive", type=int, default=1, help="naive replicates to time (then extrapolated)")
    args = ap.parse_args()

    scores, labels, ua, ub = synthetic_pairs(args.n, args.subjects, args.genuine)
    print(f"pairs {args.n:,}  genuine {int(labels.sum()):,}  subjects {args.subjects:,}  replicates {args.boot}  "
          f"torch threads {torch.get_num_threads()}")

    t0 = time.perf_counter()
    res = bootstrap_tar_at_far(scores, labels, ua, ub, fars=FARS, n_boot=args.boot, seed=0)
    t_cpu = time.perf_counter() - t0
    for f, iv in res.items():
        print(f"  FAR {f:g}: TAR {iv.point:.4f}  95% CI [{iv.low:.4f}, {iv.high:.4f}]")
    print(f"vectorised CPU: {t_cpu:.1f} s for {args.boot} replicates (point estimate and setup included)")

    w = draw_unit_weights(args.subjects, args.naive, seed=1)
    t0 = time.perf_counter()
    naive = [naive_replicate(scores, labels, ua, ub, w[r], FARS) for r in range(args.naive)]
    t_naive = (time.perf_counter() - t0) / args.naive * args.boot
    pairs, device = _prepare(scores, labels, ua, ub)
    fast = _tar_replicates(pairs, w, FARS, "strict", device)
    print(f"same replicate values, naive vs vectorised: max |diff| = {np.nanmax(np.abs(np.array(naive).T - fast)):.2e}")
    print(f"naive re-sort: {t_naive / args.boot:.2f} s per replicate, EXTRAPOLATED to {args.boot}: {t_naive:.0f} s")
    print(f"ratio naive / vectorised CPU: {t_naive / t_cpu:.1f}x")

    if torch.cuda.is_available():
        s_gpu = torch.from_numpy(scores).cuda()
        bootstrap_tar_at_far(s_gpu, labels, ua, ub, fars=FARS, n_boot=10, seed=0)  # warm-up
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        res_gpu = bootstrap_tar_at_far(s_gpu, labels, ua, ub, fars=FARS, n_boot=args.boot, seed=0)
        torch.cuda.synchronize()
        t_gpu = time.perf_counter() - t0
        same = all(abs(res_gpu[f].low - res[f].low) < 1e-12 and abs(res_gpu[f].high - res[f].high) < 1e-12
                   for f in FARS)
        print(f"vectorised CUDA ({torch.cuda.get_device_name()}): {t_gpu:.1f} s; same intervals as CPU: {same}; "
              f"ratio naive / CUDA: {t_naive / t_gpu:.1f}x")
    else:
        print("CUDA: not available")


if __name__ == "__main__":
    main()
